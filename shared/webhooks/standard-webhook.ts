import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Verifies a delivery signed per the Standard Webhooks scheme (standardwebhooks.com):
 *
 *   webhook-id:        msg_2Lq…            (unique per message; retries reuse it)
 *   webhook-timestamp: 1700000000          (integer seconds since the epoch)
 *   webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<raw body>")> [v1,… …]
 *
 * The signature covers the exact bytes received, so callers must hand over the raw body,
 * never a re-serialisation of parsed JSON. Several signing secrets may be configured at
 * once, so the webhook secret itself can be rotated: a delivery passes if any listed
 * `v1` signature matches any configured key. Every comparison is constant-time.
 *
 * Outcomes are return values, not exceptions: a refusal is expected traffic.
 */

/** Standard Webhooks' tolerance: 5 minutes, both ways. */
export const timestampToleranceSeconds = 300;

/** `whsec_` + base64 of 24–64 random bytes (Standard Webhooks' recommendation). */
export const signingSecretPattern = /^whsec_[A-Za-z0-9+/]+={0,2}$/;

export type WebhookRefusal =
  | 'missing_headers'
  | 'malformed_headers'
  | 'timestamp_too_old'
  | 'timestamp_too_new'
  | 'bad_signature';

export type WebhookVerification = { ok: true; id: string; timestamp: number } | { ok: false; reason: WebhookRefusal };

/** Decodes `whsec_…` into the HMAC key; throws on anything that is not a valid secret. */
export function signingKeyOf(secret: string): Buffer {
  if (!signingSecretPattern.test(secret)) throw new Error('a webhook signing secret must be whsec_ followed by base64');
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  if (key.length < 24 || key.length > 64) throw new Error('a webhook signing secret must decode to 24–64 bytes');
  return key;
}

/** base64 HMAC-SHA256 over `id.timestamp.body`: what a sender puts after `v1,`. */
export function signatureOf(key: Buffer, id: string, timestamp: number | string, body: Buffer | string): string {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64');
}

const headerValue = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? undefined : v);

/** Standard Webhooks ids are short opaque tokens; bound them so they stay cheap to store and log. */
const idPattern = /^[\x21-\x7e]{1,256}$/;
const timestampPattern = /^\d{1,12}$/;

export class StandardWebhookVerifier {
  private readonly keys: Buffer[];

  constructor(secrets: readonly string[]) {
    this.keys = secrets.map(signingKeyOf);
  }

  get configured(): boolean {
    return this.keys.length > 0;
  }

  verify(headers: Record<string, string | string[] | undefined>, rawBody: Buffer, nowMs = Date.now()): WebhookVerification {
    const id = headerValue(headers['webhook-id']);
    const ts = headerValue(headers['webhook-timestamp']);
    const signatures = headerValue(headers['webhook-signature']);
    if (!id || !ts || !signatures) return { ok: false, reason: 'missing_headers' };
    if (!idPattern.test(id) || !timestampPattern.test(ts) || signatures.length > 4096) return { ok: false, reason: 'malformed_headers' };

    // The window check comes first and needs no key: a replayed old delivery costs no HMAC.
    const timestamp = Number(ts);
    const now = Math.floor(nowMs / 1000);
    if (timestamp < now - timestampToleranceSeconds) return { ok: false, reason: 'timestamp_too_old' };
    if (timestamp > now + timestampToleranceSeconds) return { ok: false, reason: 'timestamp_too_new' };

    const candidates = signatures
      .split(' ')
      .filter((s) => s.startsWith('v1,'))
      .map((s) => Buffer.from(s.slice(3), 'base64'))
      .filter((b) => b.length === 32);
    let matched = false;
    for (const key of this.keys) {
      const expected = createHmac('sha256', key).update(`${id}.${ts}.`).update(rawBody).digest();
      // No early exit: the time taken does not depend on which key or which signature matched.
      for (const candidate of candidates) matched = timingSafeEqual(expected, candidate) || matched;
    }
    return matched ? { ok: true, id, timestamp } : { ok: false, reason: 'bad_signature' };
  }
}
