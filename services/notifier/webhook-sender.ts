import type pg from 'pg';
import type { ValueCipher } from '../../shared/crypto/value-cipher.ts';
import { findEvent } from '../../shared/db/event-outbox.ts';
import { findSubscriber } from '../../shared/db/subscriber-store.ts';
import { buildEvent } from '../../shared/events/invalidation-event.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import { webhookSecretName } from '../../shared/subscriber-admin.ts';
import { decodeEventPayload } from '../../shared/subscribers/stream-ids.ts';
import type { PropagationMetrics } from '../../shared/subscribers/propagation-metrics.ts';
import { standardWebhookHeaders } from '../../shared/webhooks/standard-webhook-signer.ts';

/** The receiver answered, but not 2xx: retried by the queue with backoff and jitter. */
export class WebhookRefusedError extends Error {}

/**
 * Delivers one event to one remote subscriber: POST the CloudEvent (structured JSON, the
 * signed JWS alongside in `rekeyjws` so it can also be verified against /v1/jwks), signed
 * per Standard Webhooks with the subscriber's own secret. The job carries ids only; the
 * URL and the sealed secret are read here.
 */
export class WebhookSender {
  constructor(
    private readonly deps: { pool: pg.Pool; cipher: ValueCipher; log: Logger; metrics: PropagationMetrics; timeoutMs: number },
  ) {}

  async deliver(subscriberId: string, eventId: string, attempt: { final: boolean }): Promise<'delivered' | 'skipped'> {
    const [sub, event] = await Promise.all([findSubscriber(this.deps.pool, subscriberId), findEvent(this.deps.pool, eventId)]);
    if (!sub || sub.revoked_at || !sub.webhook_url || !sub.webhook_ciphertext || !event) return 'skipped';
    // Enqueued just before the publisher marks the event: let the queue retry until it has.
    if (!event.jws) throw new WebhookRefusedError('event not signed yet');
    const secret = this.deps.cipher.open(webhookSecretName(sub.id), 0, { keyId: sub.webhook_key_id!, iv: sub.webhook_iv!, ciphertext: sub.webhook_ciphertext, tag: sub.webhook_tag! });
    const signed = decodeEventPayload(event.jws) ?? buildEvent(event.type, event.data, event.created_at);
    const body = JSON.stringify({ ...signed, rekeyjws: event.jws });
    const isRotated = event.type === 'dev.rekey.secret.rotated';
    try {
      const res = await fetch(sub.webhook_url, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents+json', ...standardWebhookHeaders(secret, `${eventId}.${sub.id}`, body) },
        body,
        signal: AbortSignal.timeout(this.deps.timeoutMs),
        redirect: 'manual',
      });
      await res.body?.cancel().catch(() => {});
      if (res.status < 200 || res.status >= 300) throw new WebhookRefusedError(`webhook answered ${res.status}`);
      this.deps.metrics.deliveries.inc({ channel: 'webhook', outcome: 'delivered' });
      if (isRotated) await this.record(event.rotation_id, sub.id, null);
      return 'delivered';
    } catch (raw) {
      const err = coerceError(raw);
      // The message names the status or the network error; never the URL's credentials or the body.
      const reason = err instanceof WebhookRefusedError ? err.message : `${err.name}: ${(err as { cause?: { code?: string } }).cause?.code ?? err.message}`.slice(0, 200);
      this.deps.metrics.deliveries.inc({ channel: 'webhook', outcome: attempt.final ? 'failed' : 'retried' });
      if (isRotated) await this.record(event.rotation_id, sub.id, reason).catch(() => {});
      this.deps.log.warn({ subscriber: sub.name, eventId, err: reason, final: attempt.final }, 'webhook delivery failed');
      throw new WebhookRefusedError(reason);
    }
  }

  private async record(rotationId: string, subscriberId: string, error: string | null): Promise<void> {
    await this.deps.pool.query(
      `UPDATE deliveries SET attempts = attempts + 1, last_attempt_at = now(), last_error = $3,
         delivered_at = CASE WHEN $3::text IS NULL THEN COALESCE(delivered_at, now()) ELSE delivered_at END
       WHERE rotation_id = $1 AND subscriber_id = $2`,
      [rotationId, subscriberId, error],
    );
  }
}
