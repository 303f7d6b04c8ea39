import { isUnavailable, ProviderError, UnavailableError, type RekeyError } from '../errors.ts';

const unsafePatterns: RegExp[] = [
  // A SCRAM verifier is as good as a password hash for an offline guess.
  /SCRAM-SHA-256\$[^\s'"]*/g,
  // Redis ACL password hashes (#<sha256>), and any other long hex blob.
  /[#!<>]?[0-9a-f]{64}/gi,
  // Credentials inside a connection URL.
  /\b([a-z][a-z0-9+.-]*:\/\/)[^@/\s]*@/gi,
  // PostgreSQL echoes a token of the statement it could not parse.
  /at or near "[^"]*"/g,
  // Redis echoes the ACL modifier it refused.
  /modifier '[^']*'/g,
];

/** The message of a target's error with every secret and statement fragment cut out. */
export function sanitizeTargetMessage(message: string, secrets: readonly string[] = []): string {
  let text = message;
  for (const s of secrets) if (s && s.length >= 4) text = text.split(s).join('[redacted]');
  for (const p of unsafePatterns) text = text.replace(p, (_m, scheme?: string) => (typeof scheme === 'string' && scheme.includes('://') ? `${scheme}[redacted]@` : '[redacted]'));
  return text.slice(0, 300);
}

/**
 * Turns whatever a credential target threw into rekey's vocabulary, safe to store in a
 * rotation's `error`, the audit log and logs: an unreachable target becomes an
 * UnavailableError (the rotator retries with backoff), a refusal a ProviderError. The
 * original error is dropped, not kept as `cause`: drivers attach statements and
 * parameters to it.
 */
export function targetFailure(err: unknown, action: string, secrets: readonly string[] = []): RekeyError {
  const e = (err ?? {}) as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? sanitizeTargetMessage(e.message, secrets) : 'unknown error';
  if (isUnavailable(err)) return new UnavailableError(`${action}: target unreachable (${code ?? message})`, code ? { code } : undefined);
  return new ProviderError(`${action}: ${message}${code ? ` [${code}]` : ''}`, code ? { code } : undefined);
}
