import { sleep } from '../faults/index.ts';
import type { Scenario } from '../harness/scenario.ts';
import { requestRotations, seedSecrets, statusCounts, waitForAllEnded } from '../harness/workload.ts';

/**
 * Redis stalls without dropping anyone: `CLIENT PAUSE 6000 ALL` mid-storm, twice as long
 * as the job lock. Every client's commands wait (lock renewals, enqueues, the api's
 * enqueue-after-accept), then all arrive at once. Bounded Redis calls time out and fall
 * back to the reconciler; locks that expired during the pause let stalled jobs run twice,
 * which the fence and idempotent steps must absorb.
 */
export const redisPause: Scenario = {
  name: 'redis-pause',
  title: 'Redis paused (CLIENT PAUSE ALL) for twice the job lock mid-storm',
  fault: 'CLIENT PAUSE 6000 ALL on redis-server with rotations in flight (JOB_LOCK_MS=3000)',
  invariant: 'every accepted rotation completes exactly once; no process crashes',
  // Run by name or in the full suite; the quick subset (CI) keeps to about 3 minutes.
  quick: false,
  timeoutMs: (quick) => (quick ? 120_000 : 240_000),
  async run({ env, quick, figures, check, note }) {
    const total = quick ? 200 : 600;
    const names = await seedSecrets(env, total);
    const pipeline = await env.startPipeline();
    let fault: Promise<void> | null = null;
    const outcome = await requestRotations(env, pipeline.api, names, {
      concurrency: 16,
      perSecond: quick ? 60 : 100,
      onSent: (sent) => {
        if (sent !== Math.floor(total / 3)) return;
        fault = (async () => {
          figures.atPause = await statusCounts(env);
          await env.redis.pause(6000);
          note(`redis paused with rotations ${JSON.stringify(figures.atPause)}`);
          await sleep(6000);
        })();
      },
    });
    await fault;
    const atPause = (figures.atPause ?? {}) as Record<string, number>;
    const inFlight = Object.entries(atPause).filter(([s]) => !['completed', 'failed'].includes(s)).reduce((a, [, n]) => a + n, 0);
    check('the pause hit rotations in flight', inFlight > 0, { inFlight });
    figures.refused = outcome.refused;
    figures.drainAfterRequestsMs = await waitForAllEnded(env, quick ? 60_000 : 120_000);
    return { accepted: outcome.accepted, requireCompleted: true };
  },
};
