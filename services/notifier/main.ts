import { parseEnv, workerEnv } from '../../shared/config.ts';
import { SystemKeys } from '../../shared/crypto/system-keys.ts';
import { jitteredBackoff } from '../../shared/queues/queue-client.ts';
import type { Runtime } from '../../shared/runtime.ts';
import { EventPublisher } from './event-publisher.ts';

/** The notifier role: publishes outbox events. Subscriber delivery and acks build on this. */
export async function startNotifier(rt: Runtime): Promise<void> {
  const cfg = parseEnv(workerEnv, rt.env);
  const keys = await SystemKeys.load(rt.pool, rt.cipher);
  const publisher = new EventPublisher({ pool: rt.pool, redis: rt.redis, keys, prefix: rt.config.REKEY_REDIS_PREFIX, metrics: rt.metrics });
  const log = rt.log.child({ role: 'notifier' });
  rt.queues.createWorker(
    'notifications',
    {
      publish: async ({ rotationId, type }) => {
        const outcome = await publisher.publish(rotationId, type);
        log.debug({ rotationId, type, outcome }, 'event');
      },
    },
    { concurrency: cfg.NOTIFIER_CONCURRENCY, lockDurationMs: cfg.JOB_LOCK_MS, backoffMs: jitteredBackoff(200, 10_000) },
  );
  log.info({ concurrency: cfg.NOTIFIER_CONCURRENCY }, 'notifier started');
}
