import { parseEnv, schedulerEnv } from '../../shared/config.ts';
import type { Runtime } from '../../shared/runtime.ts';
import { Scheduler } from './scheduler.ts';
import { reapLeases } from '../../shared/leases/lease-reaper.ts';

export async function startScheduler(rt: Runtime): Promise<void> {
  const cfg = parseEnv(schedulerEnv, rt.env);
  const log = rt.log.child({ role: 'scheduler' });
  const scheduler = new Scheduler({ pool: rt.pool, queues: rt.queues, log, metrics: rt.metrics, maxPerTick: cfg.SCHEDULER_MAX_PER_TICK });
  const stopTick = Scheduler.every(cfg.SCHEDULER_TICK_MS, log, 'tick', async () => {
    await scheduler.tick();
    await scheduler.measureCompliance(cfg.SCHEDULER_TICK_MS);
  });
  const stopReconcile = Scheduler.every(cfg.RECONCILE_INTERVAL_MS, log, 'reconcile', async () => {
    const found = await scheduler.reconcile({ olderThanMs: Math.max(2000, cfg.RECONCILE_INTERVAL_MS) });
    if (found.rotations || found.events) log.debug(found, 'reconciled unfinished work with the queues');
  });
  // Expired dynamic-credential leases (postgres-dynamic) are dropped at their target without any call.
  rt.defer(Scheduler.every(cfg.LEASE_REAPER_INTERVAL_MS, log, 'lease-reaper', () => reapLeases({ pool: rt.pool, log, resolveReference: rt.resolveReference })));
  rt.defer(stopTick);
  rt.defer(stopReconcile);
  log.info({ tickMs: cfg.SCHEDULER_TICK_MS, maxPerTick: cfg.SCHEDULER_MAX_PER_TICK }, 'scheduler started');
}
