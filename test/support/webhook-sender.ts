import { createHmac, randomBytes } from 'node:crypto';

/**
 * A Standard Webhooks sender, written from the scheme (not from rekey's verifier), so a
 * bug in the verifier is not mirrored here: v1 = base64(HMAC-SHA256(key, id.ts.body)),
 * key = base64-decoded part of `whsec_…`.
 */
export const newSigningSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

export function sign(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

export interface Delivery {
  id?: string;
  /** Seconds since the epoch; default now. */
  timestamp?: number;
  /** Signing secrets; each adds one `v1,` signature (space-separated, as the scheme allows). */
  secrets: string[];
  body: string;
  /** Sent instead of `body` (the signature still covers `body`). */
  sentBody?: string;
  headers?: Record<string, string>;
}

export async function deliver(baseUrl: string, d: Delivery): Promise<{ status: number; body: any; headers: Headers }> {
  const id = d.id ?? `msg_${randomBytes(12).toString('hex')}`;
  const timestamp = d.timestamp ?? Math.floor(Date.now() / 1000);
  const res = await fetch(`${baseUrl}/v1/webhooks/emergency-rotation`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': d.secrets.map((s) => sign(s, id, timestamp, d.body)).join(' '),
      ...d.headers,
    },
    body: d.sentBody ?? d.body,
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {}
  return { status: res.status, body, headers: res.headers };
}
