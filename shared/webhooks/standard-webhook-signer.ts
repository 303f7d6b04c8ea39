import { signatureOf, signingKeyOf } from './standard-webhook.ts';

/**
 * The signing side of Standard Webhooks, for rekey's outgoing webhooks to remote
 * subscribers. It shares the primitive (key decoding, HMAC over `id.timestamp.body`)
 * with the verifier of the emergency webhook, so the two cannot drift apart. The id stays
 * the same across retries of one message so the receiver can deduplicate.
 */
export function standardWebhookHeaders(secret: string, id: string, body: string, now = new Date()): Record<string, string> {
  const timestamp = Math.floor(now.getTime() / 1000);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': `v1,${signatureOf(signingKeyOf(secret), id, timestamp, body)}`,
  };
}
