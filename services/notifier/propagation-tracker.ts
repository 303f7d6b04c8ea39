import type { Redis } from 'ioredis';
import type pg from 'pg';
import { withTransaction } from '../../shared/db/pool.ts';
import { completePropagation, countLiveInScope, createDeliveries, dueStragglers, stragglersAtRevocation, type PropagatedRotation } from '../../shared/db/propagation-store.ts';
import type { OutboxEvent } from '../../shared/db/event-outbox.ts';
import type { Logger } from '../../shared/logger.ts';
import { rotationPolicySchema } from '../../shared/policy/rotation-policy.ts';
import { eventId } from '../../shared/events/invalidation-event.ts';
import { jobIds, rotationQueueFor } from '../../shared/queues/job-catalogue.ts';
import type { QueueClient } from '../../shared/queues/queue-client.ts';
import type { PropagationMetrics } from '../../shared/subscribers/propagation-metrics.ts';
import { subscriberChannels, type RedeliverMessage } from '../../shared/subscribers/subscriber-channels.ts';

export interface TrackerConfig {
  liveMs: number;
  redeliverMs: number;
  redeliverMaxAttempts: number;
  refetchRate: number;
  spreadMaxMs: number;
  spreadEmergencyMaxMs: number;
}

/**
 * Propagation: who must acknowledge a rotation, who has, and what happens when all have.
 *
 * - `prepare` (before the `rotated` event goes out) snapshots the deliveries: every live
 *   subscriber in scope, plus webhook subscribers; and sizes the refetch-spread hint.
 * - Acks arrive at the api (POST /v1/acks), which closes deliveries and checks completion
 *   after its commit; this tracker's `sweep` re-checks every unpropagated rotation, which
 *   also covers concurrent acks and subscribers that stopped being live.
 * - `sweep` re-delivers the signed event to stragglers (stream subscribers that have not
 *   acked after `redeliverMs`), targeted through the redeliver channel.
 * - `onPropagated` observes rekey_propagation_seconds and, when the secret's policy says
 *   `revokeWhen: acked`, brings the delayed revoke job forward: invariant 4 — revoke after
 *   every subscriber acked OR the grace deadline, whichever policy says.
 */
export class PropagationTracker {
  constructor(
    private readonly deps: { pool: pg.Pool; redis: Redis; queues: QueueClient; log: Logger; metrics: PropagationMetrics; prefix: string; config: TrackerConfig },
  ) {}

  async prepare(event: OutboxEvent): Promise<{ refetchSpreadMs: number; webhookSubscribers: string[] }> {
    const { config } = this.deps;
    const data = event.data;
    const live = await countLiveInScope(this.deps.pool, data.secret, config.liveMs);
    const cap = data.emergency ? config.spreadEmergencyMaxMs : config.spreadMaxMs;
    const refetchSpreadMs = Math.min(cap, Math.ceil((live / config.refetchRate) * 1000));
    let webhookSubscribers: string[] = [];
    if (event.type === 'dev.rekey.secret.rotated' && data.version !== null) {
      const secretId = (await this.deps.pool.query<{ secret_id: string }>('SELECT secret_id FROM rotations WHERE id = $1', [event.rotation_id])).rows[0]!.secret_id;
      ({ webhookSubscribers } = await createDeliveries(this.deps.pool, { rotationId: event.rotation_id, secretId, secretName: data.secret, version: data.version, liveMs: config.liveMs }));
    } else {
      const { rows } = await this.deps.pool.query<{ id: string }>(
        `SELECT s.id FROM subscribers s WHERE s.revoked_at IS NULL AND s.webhook_url IS NOT NULL
           AND EXISTS (SELECT 1 FROM unnest(s.scope) e WHERE e = $1 OR (right(e, 1) = '/' AND starts_with($1, e)))`,
        [data.secret],
      );
      webhookSubscribers = rows.map((r) => r.id);
    }
    return { refetchSpreadMs, webhookSubscribers };
  }

  async dispatchWebhooks(event: OutboxEvent, webhookSubscribers: string[]): Promise<void> {
    for (const subscriberId of webhookSubscribers) {
      await this.deps.queues.enqueue('webhooks', 'deliver', { subscriberId, eventId: event.id }, { jobId: jobIds.webhook(event.id, subscriberId) });
    }
  }

  /** After publishing: a rotation with nobody to wait for is propagated at once; a revocation reports stragglers. */
  async published(event: OutboxEvent): Promise<void> {
    if (event.type === 'dev.rekey.secret.rotated') await this.check([event.rotation_id]);
    if (event.type === 'dev.rekey.secret.revoked') await this.reportStragglers(event);
  }

  async check(ids: string[] | null): Promise<void> {
    for (const r of await completePropagation(this.deps.pool, ids, this.deps.config.liveMs)) await this.onPropagated(r);
  }

  async onPropagated(r: Pick<PropagatedRotation, 'id' | 'trigger' | 'activated_at' | 'propagated_at'>): Promise<void> {
    this.deps.metrics.propagation.observe({ trigger: r.trigger }, (r.propagated_at.getTime() - r.activated_at.getTime()) / 1000);
    this.deps.log.info({ rotationId: r.id, propagationMs: r.propagated_at.getTime() - r.activated_at.getTime() }, 'every live subscriber holds the new version');
    await this.revokeEarlyIfPolicySays(r.id);
  }

  /** Runs the propagated job: the api completed a rotation's propagation. */
  async propagatedJob(rotationId: string): Promise<void> {
    const { rows } = await this.deps.pool.query('SELECT id, trigger, activated_at, propagated_at FROM rotations WHERE id = $1', [rotationId]);
    if (rows[0]?.propagated_at) await this.onPropagated(rows[0]);
  }

  private async revokeEarlyIfPolicySays(rotationId: string): Promise<void> {
    const { rows } = await this.deps.pool.query<{ status: string; emergency: boolean; revoke_after: Date | null; policy: unknown }>(
      'SELECT r.status, r.emergency, r.revoke_after, s.policy FROM rotations r JOIN secrets s ON s.id = r.secret_id WHERE r.id = $1',
      [rotationId],
    );
    const r = rows[0];
    // Not yet `revoking`: the rotator reads propagated_at itself when it gets there (revokeWhenDue).
    if (!r || r.status !== 'revoking' || !r.revoke_after || r.revoke_after.getTime() <= Date.now()) return;
    const policy = rotationPolicySchema.safeParse(r.policy);
    if (!policy.success || policy.data.revokeWhen !== 'acked') return;
    const queue = this.deps.queues.queue(rotationQueueFor(r.emergency));
    const job = await queue.getJob(jobIds.revoke(rotationId));
    if (job && (await job.isDelayed())) await job.promote();
    else if (!job) await this.deps.queues.enqueue(rotationQueueFor(r.emergency), 'revoke', { rotationId }, { jobId: jobIds.revoke(rotationId) });
    this.deps.log.info({ rotationId }, 'all subscribers acked: revoking the previous version before its grace deadline');
  }

  /** One replica at a time: completion checks, then re-delivery to stragglers. */
  async sweep(): Promise<void> {
    await this.check(null);
    const stragglers = await withTransaction(this.deps.pool, async (c) => {
      const { rows } = await c.query<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock(hashtext('rekey:redeliver')) AS ok`);
      if (!rows[0]!.ok) return [];
      const { config } = this.deps;
      return dueStragglers(c, config.redeliverMs, config.redeliverMaxAttempts, config.liveMs);
    });
    if (!stragglers.length) return;
    const byRotation = new Map<string, string[]>();
    for (const s of stragglers) byRotation.set(s.rotation_id, [...(byRotation.get(s.rotation_id) ?? []), s.subscriber_id]);
    for (const [rotationId, subscribers] of byRotation) {
      const { rows } = await this.deps.pool.query<{ jws: string | null; stream_id: string | null }>('SELECT jws, stream_id FROM events WHERE id = $1', [eventId(rotationId, 'dev.rekey.secret.rotated')]);
      if (!rows[0]?.jws) continue;
      const message: RedeliverMessage = { subscribers, jws: rows[0].jws, streamId: rows[0].stream_id };
      await this.deps.redis.publish(subscriberChannels(this.deps.prefix).redeliver, JSON.stringify(message));
      this.deps.log.info({ rotationId, count: subscribers.length }, 're-delivered the rotated event to stragglers');
    }
  }

  private async reportStragglers(event: OutboxEvent): Promise<void> {
    const stragglers = await stragglersAtRevocation(this.deps.pool, event.rotation_id);
    if (!stragglers.length) return;
    const { rows } = await this.deps.pool.query<{ trigger: string }>('SELECT trigger FROM rotations WHERE id = $1', [event.rotation_id]);
    this.deps.metrics.stragglers.inc({ trigger: rows[0]?.trigger ?? 'unknown' }, stragglers.length);
    this.deps.log.warn(
      { rotationId: event.rotation_id, secretName: event.data.secret, stragglers: stragglers.slice(0, 50).map((s) => ({ subscriber: s.name, ackedVersion: s.acked_version })), count: stragglers.length },
      'previous version revoked while subscribers still held it',
    );
  }
}
