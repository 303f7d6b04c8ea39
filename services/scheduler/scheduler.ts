import type pg from 'pg';
import { withTransaction } from '../../shared/db/pool.ts';
import { requestRotation } from '../../shared/db/rotation-store.ts';
import { unfinishedRotations } from '../../shared/db/rotation-store.ts';
import { unpublishedEvents } from '../../shared/db/event-outbox.ts';
import type { RotationRow } from '../../shared/db/rows.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { Metrics } from '../../shared/metrics.ts';
import { nextRotationAt, rotationPolicySchema } from '../../shared/policy/rotation-policy.ts';
import { jobIds, rotationQueueFor } from '../../shared/queues/job-catalogue.ts';
import type { QueueClient } from '../../shared/queues/queue-client.ts';
import { enqueueRotation } from '../../shared/start-rotation.ts';

export interface SchedulerDeps {
  pool: pg.Pool;
  queues: Pick<QueueClient, 'enqueue'>;
  log: Logger;
  metrics: Metrics;
  maxPerTick: number;
}

/**
 * Turns due policies into rotations, and makes Redis agree with PostgreSQL.
 *
 * `tick` reads secrets whose next_rotation_at has passed (SKIP LOCKED, so replicas split
 * the work), records a rotation and the next due time in one transaction, then enqueues
 * with the deterministic job id. A repeated tick, or two schedulers, cannot double-rotate:
 * the due time moved in the same commit, and queued rotations coalesce.
 *
 * `reconcile` re-enqueues every unfinished rotation and unpublished event. Enqueueing an
 * id that is already queued is a no-op, so this is safe to run at any time, and after
 * Redis lost its data it is what brings every accepted rotation back.
 */
export class Scheduler {
  constructor(private readonly deps: SchedulerDeps) {}

  async tick(now = new Date()): Promise<number> {
    const started = await withTransaction(this.deps.pool, async (c) => {
      const { rows } = await c.query<{ id: string; name: string; policy: unknown; next_rotation_at: Date }>(
        `SELECT id, name, policy, next_rotation_at FROM secrets
         WHERE deleted_at IS NULL AND next_rotation_at <= $1
         ORDER BY next_rotation_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [now, this.deps.maxPerTick],
      );
      const rotations: RotationRow[] = [];
      for (const s of rows) {
        const policy = rotationPolicySchema.parse(s.policy);
        const { rotation, coalesced } = await requestRotation(c, {
          secretId: s.id,
          trigger: 'schedule',
          reason: 'scheduled rotation',
          emergency: false,
          triggeredAt: now,
        });
        // From now, not from the missed due time: a scheduler that was down does not fire a burst.
        await c.query('UPDATE secrets SET next_rotation_at = $2 WHERE id = $1', [s.id, nextRotationAt(policy, now)]);
        if (!coalesced) rotations.push(rotation);
      }
      return rotations;
    });
    for (const r of started) await enqueueRotation(this.deps, r.id, r.emergency);
    if (started.length) this.deps.log.info({ count: started.length }, 'scheduled rotations');
    return started.length;
  }

  async reconcile(opts: { olderThanMs: number; limit?: number } = { olderThanMs: 2000 }): Promise<{ rotations: number; events: number }> {
    const limit = opts.limit ?? 5000;
    const rotations = await unfinishedRotations(this.deps.pool, opts.olderThanMs, limit);
    for (const r of rotations) {
      if (r.status === 'revoking') {
        const delay = Math.max(0, (r.revoke_after?.getTime() ?? 0) - Date.now());
        await this.deps.queues.enqueue(rotationQueueFor(r.emergency), 'revoke', { rotationId: r.id }, { jobId: jobIds.revoke(r.id), delay });
      } else {
        await this.deps.queues.enqueue(rotationQueueFor(r.emergency), 'rotate', { rotationId: r.id }, { jobId: jobIds.rotate(r.id) });
      }
    }
    const events = await unpublishedEvents(this.deps.pool, opts.olderThanMs, limit);
    for (const e of events) {
      await this.deps.queues.enqueue('notifications', 'publish', { rotationId: e.rotation_id, type: e.type }, { jobId: jobIds.publish(e.rotation_id, e.type) });
    }
    return { rotations: rotations.length, events: events.length };
  }

  async measureCompliance(tickMs: number): Promise<void> {
    const { rows } = await this.deps.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM secrets WHERE deleted_at IS NULL AND next_rotation_at < now() - make_interval(secs => $1::float8 / 1000)`,
      [tickMs * 2],
    );
    this.deps.metrics.overdueSecrets.set(Number(rows[0]!.n));
  }

  /** Runs fn every intervalMs until stopped; an error is logged and the loop goes on. */
  static every(intervalMs: number, log: Logger, name: string, fn: () => Promise<unknown>): () => Promise<void> {
    let stopped = false;
    let running: Promise<unknown> = Promise.resolve();
    let timer: NodeJS.Timeout;
    const loop = () => {
      if (stopped) return;
      running = fn()
        .catch((err) => log.warn({ loop: name, err: coerceError(err).message }, 'scheduler loop failed; retrying'))
        .finally(() => {
          if (!stopped) timer = setTimeout(loop, intervalMs);
        });
    };
    timer = setTimeout(loop, 0);
    return async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    };
  }
}
