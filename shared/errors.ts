/**
 * rekey's error vocabulary. Every catch goes through `coerceError`; the api maps a
 * class to an HTTP status in one table (`httpStatusOf`). Expected outcomes (a coalesced
 * rotation, a busy secret) are return values, not errors.
 *
 * Messages must never contain a secret value: they end up in logs, audit rows and
 * rotation records.
 */
export class RekeyError extends Error {
  readonly code: string = 'internal';
  constructor(
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends RekeyError {
  override readonly code = 'invalid_request';
}
export class UnauthorizedError extends RekeyError {
  override readonly code = 'unauthorized';
}
export class ForbiddenError extends RekeyError {
  override readonly code = 'forbidden';
}
export class NotFoundError extends RekeyError {
  override readonly code = 'not_found';
}
export class ConflictError extends RekeyError {
  override readonly code = 'conflict';
}
export class RateLimitedError extends RekeyError {
  override readonly code = 'rate_limited';
}
/** A dependency (PostgreSQL, Redis, a credential target) did not answer. Retryable. */
export class UnavailableError extends RekeyError {
  override readonly code = 'unavailable';
}
/** A configuration variable is missing or malformed; names the variable. */
export class ConfigError extends RekeyError {
  override readonly code = 'config';
}
/** Another worker holds a newer fence for this rotation; our writes must stop. */
export class FencedError extends RekeyError {
  override readonly code = 'fenced';
}
/** A credential target refused or failed a step (set/test/revoke). Retryable by policy. */
export class ProviderError extends RekeyError {
  override readonly code = 'provider_error';
}

export function coerceError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new Error(typeof err === 'string' ? err : JSON.stringify(err));
}

const statusByCode: Record<string, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  rate_limited: 429,
  unavailable: 503,
  // A credential target refused (lease routes call targets synchronously): not the client's fault.
  provider_error: 502,
};

export function httpStatusOf(err: Error): number {
  return err instanceof RekeyError ? (statusByCode[err.code] ?? 500) : 500;
}

const unavailableCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08006']);

/** True when err says a dependency (PostgreSQL, Redis, a target) is unreachable, not that a request was wrong. */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof UnavailableError) return true;
  const e = err as { code?: unknown; message?: unknown; errors?: unknown[] } | null;
  if (!e) return false;
  if (typeof e.code === 'string' && unavailableCodes.has(e.code)) return true;
  if (typeof e.message === 'string' && /Connection terminated|timeout exceeded when trying to connect|Connection is closed/i.test(e.message)) return true;
  return Array.isArray(e.errors) && e.errors.some(isUnavailable);
}
