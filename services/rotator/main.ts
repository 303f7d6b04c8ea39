import { DelayedError, type Job } from 'bullmq';
import { parseEnv, workerEnv } from '../../shared/config.ts';
import { jitteredBackoff } from '../../shared/queues/queue-client.ts';
import type { RotationQueue } from '../../shared/queues/job-catalogue.ts';
import type { Runtime } from '../../shared/runtime.ts';
import { RotationStateMachine } from './rotation-state-machine.ts';
import { ScheduledLaneYield } from './scheduled-lane-yield.ts';

/**
 * The rotator role: one worker per lane. The emergency lane has workers of its own, so
 * scheduled backlog never delays an emergency rotation.
 */
export async function startRotator(rt: Runtime): Promise<void> {
  const cfg = parseEnv(workerEnv, rt.env);
  const log = rt.log.child({ role: 'rotator' });
  const machine = new RotationStateMachine({
    pool: rt.pool,
    cipher: rt.cipher,
    queues: rt.queues,
    metrics: rt.metrics,
    log,
    resolveReference: rt.resolveReference,
  });

  const handle = async (queue: RotationQueue, rotationId: string, job: Job, token: string | undefined) => {
    const finalAttempt = job.attemptsMade + 1 >= cfg.ROTATION_ATTEMPTS;
    const outcome = await machine.advance(rotationId, { finalAttempt });
    if (outcome === 'busy') {
      // Another rotation of this secret holds the lock; look again shortly without using up an attempt.
      await job.moveToDelayed(Date.now() + 100 + Math.floor(Math.random() * 200), token);
      throw new DelayedError();
    }
    log.debug({ rotationId, queue, outcome }, 'rotation job done');
  };

  const workerOpts = (concurrency: number) => ({ concurrency, lockDurationMs: cfg.JOB_LOCK_MS, backoffMs: jitteredBackoff(cfg.ROTATION_BACKOFF_MS) });
  const scheduledLane = rt.queues.createWorker(
    'rotations',
    {
      rotate: ({ rotationId }, job, token) => handle('rotations', rotationId, job, token),
      revoke: ({ rotationId }, job, token) => handle('rotations', rotationId, job, token),
    },
    workerOpts(cfg.ROTATOR_CONCURRENCY),
  );
  // While emergency jobs run here, the scheduled lane takes no new ones (see ScheduledLaneYield).
  const yieldLane = new ScheduledLaneYield(scheduledLane, cfg.ROTATOR_EMERGENCY_HOLD_MS);
  rt.queues.createWorker(
    'rotations-emergency',
    {
      rotate: ({ rotationId }, job, token) => yieldLane.around(() => handle('rotations-emergency', rotationId, job, token)),
      revoke: ({ rotationId }, job, token) => yieldLane.around(() => handle('rotations-emergency', rotationId, job, token)),
    },
    workerOpts(cfg.ROTATOR_EMERGENCY_CONCURRENCY),
  );
  log.info({ concurrency: cfg.ROTATOR_CONCURRENCY, emergencyConcurrency: cfg.ROTATOR_EMERGENCY_CONCURRENCY }, 'rotator started');
}
