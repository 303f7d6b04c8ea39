import { parseEnv, workerEnv } from '../../shared/config.ts';
import { SystemKeys } from '../../shared/crypto/system-keys.ts';
import { jitteredBackoff } from '../../shared/queues/queue-client.ts';
import type { Runtime } from '../../shared/runtime.ts';
import { propagationMetrics } from '../../shared/subscribers/propagation-metrics.ts';
import { subscriberEnv } from '../../shared/subscribers/subscriber-config.ts';
import { Scheduler } from '../scheduler/scheduler.ts';
import { EventPublisher } from './event-publisher.ts';
import { PropagationTracker } from './propagation-tracker.ts';
import { WebhookSender } from './webhook-sender.ts';

/** The notifier role: publishes outbox events, tracks deliveries and acks, re-delivers, sends webhooks. */
export async function startNotifier(rt: Runtime): Promise<void> {
  const cfg = parseEnv({ ...workerEnv, ...subscriberEnv }, rt.env);
  const keys = await SystemKeys.load(rt.pool, rt.cipher);
  const log = rt.log.child({ role: 'notifier' });
  const metrics = propagationMetrics(rt.metrics);
  const tracker = new PropagationTracker({
    pool: rt.pool,
    redis: rt.redis,
    queues: rt.queues,
    log,
    metrics,
    prefix: rt.config.REKEY_REDIS_PREFIX,
    config: {
      liveMs: cfg.REKEY_SUBSCRIBER_LIVE_MS,
      redeliverMs: cfg.REKEY_REDELIVER_MS,
      redeliverMaxAttempts: cfg.REKEY_REDELIVER_MAX_ATTEMPTS,
      refetchRate: cfg.REKEY_REFETCH_RATE,
      spreadMaxMs: cfg.REKEY_REFETCH_SPREAD_MAX_MS,
      spreadEmergencyMaxMs: cfg.REKEY_REFETCH_SPREAD_EMERGENCY_MAX_MS,
    },
  });
  const publisher = new EventPublisher({ pool: rt.pool, redis: rt.redis, keys, prefix: rt.config.REKEY_REDIS_PREFIX, metrics: rt.metrics, tracker });
  rt.queues.createWorker(
    'notifications',
    {
      publish: async ({ rotationId, type }) => {
        const outcome = await publisher.publish(rotationId, type);
        log.debug({ rotationId, type, outcome }, 'event');
      },
      propagated: ({ rotationId }) => tracker.propagatedJob(rotationId),
    },
    { concurrency: cfg.NOTIFIER_CONCURRENCY, lockDurationMs: cfg.JOB_LOCK_MS, backoffMs: jitteredBackoff(200, 10_000) },
  );
  const webhooks = new WebhookSender({ pool: rt.pool, cipher: rt.cipher, log, metrics, timeoutMs: cfg.REKEY_WEBHOOK_TIMEOUT_MS });
  rt.queues.createWorker(
    'webhooks',
    {
      deliver: async ({ subscriberId, eventId }, job) => {
        const final = job.attemptsMade + 1 >= cfg.REKEY_WEBHOOK_ATTEMPTS;
        try {
          await webhooks.deliver(subscriberId, eventId, { final });
        } catch (err) {
          if (final) return; // recorded in deliveries.last_error and the metric; stop retrying
          throw err;
        }
      },
    },
    { concurrency: cfg.NOTIFIER_CONCURRENCY, lockDurationMs: cfg.JOB_LOCK_MS, backoffMs: jitteredBackoff(cfg.REKEY_WEBHOOK_BACKOFF_MS, 5 * 60_000) },
  );
  rt.defer(Scheduler.every(cfg.REKEY_REDELIVER_MS, log, 'propagation-sweep', () => tracker.sweep()));
  log.info({ concurrency: cfg.NOTIFIER_CONCURRENCY }, 'notifier started');
}
