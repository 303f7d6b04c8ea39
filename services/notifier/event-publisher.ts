import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { SystemKeys } from '../../shared/crypto/system-keys.ts';
import { findEvent } from '../../shared/db/event-outbox.ts';
import { buildEvent, eventChannels, eventId, signedEventType } from '../../shared/events/invalidation-event.ts';
import type { Metrics } from '../../shared/metrics.ts';
import type { EventType } from '../../shared/queues/job-catalogue.ts';
import { propagationMetrics } from '../../shared/subscribers/propagation-metrics.ts';
import type { PropagationTracker } from './propagation-tracker.ts';

/** Keep about this many events in the stream for injectors to catch up from. */
const streamMaxLen = 100_000;

/**
 * Signs an outbox event and publishes it: first to the Redis stream (the durable,
 * resumable log injectors catch up from), then on the pub/sub channel (fast, at most
 * once). A crash between publishing and marking the row can publish an event twice;
 * consumers deduplicate on the CloudEvent id.
 *
 * With a tracker, the deliveries a rotation waits for are recorded BEFORE the event goes
 * out (an ack can then never arrive for a delivery that does not exist yet), and the
 * signed data carries the refetch-spread hint.
 */
export class EventPublisher {
  constructor(
    private readonly deps: { pool: pg.Pool; redis: Redis; keys: SystemKeys; prefix: string; metrics: Metrics; tracker?: PropagationTracker },
  ) {}

  async publish(rotationId: string, type: EventType): Promise<'published' | 'already-published' | 'unknown'> {
    const id = eventId(rotationId, type);
    const event = await findEvent(this.deps.pool, id);
    if (!event) return 'unknown';
    if (event.published_at) return 'already-published';
    const prepared = await this.deps.tracker?.prepare(event);
    const data = prepared ? { ...event.data, refetchSpreadMs: prepared.refetchSpreadMs } : event.data;
    const jws = event.jws ?? (await this.deps.keys.sign(buildEvent(event.type, data, event.created_at), signedEventType));
    const { pubsub, stream } = eventChannels(this.deps.prefix);
    const streamId = await this.deps.redis.xadd(stream, 'MAXLEN', '~', streamMaxLen, '*', 'id', id, 'type', type, 'secret', event.data.secret, 'jws', jws);
    await this.deps.redis.publish(pubsub, jws);
    propagationMetrics(this.deps.metrics).deliveries.inc({ channel: 'pubsub', outcome: 'published' });
    // Webhook jobs first (idempotent ids): a failure here retries this job, which has not marked the row yet.
    await this.deps.tracker?.dispatchWebhooks(event, prepared?.webhookSubscribers ?? []);
    await this.deps.pool.query('UPDATE events SET jws = $2, published_at = now(), stream_id = $3 WHERE id = $1', [id, jws, streamId]);
    this.deps.metrics.eventsPublished.inc({ type });
    await this.deps.tracker?.published(event);
    return 'published';
  }
}
