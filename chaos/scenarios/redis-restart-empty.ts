import { sleep } from '../faults/index.ts';
import type { Scenario } from '../harness/scenario.ts';
import { requestRotations, seedSecrets, statusCounts, waitForAllEnded } from '../harness/workload.ts';

/**
 * Scenario 2. Redis without persistence is SIGKILLed mid-storm and comes back with no
 * data: every queued job, lock and delayed revoke is gone. PostgreSQL is the truth; the
 * scheduler's reconciler must re-enqueue every unfinished rotation and event.
 */
export const redisRestartEmpty: Scenario = {
  name: 'redis-restart-empty',
  title: 'Redis restarted empty (no persistence): the reconciler re-enqueues from PostgreSQL',
  fault: 'SIGKILL of redis-server mid-storm, data directory wiped, restart after 2 s',
  invariant: 'every accepted rotation completes, none twice',
  quick: true,
  timeoutMs: (quick) => (quick ? 120_000 : 300_000),
  redis: { aof: false },
  async run({ env, quick, figures, check, note }) {
    const total = quick ? 200 : 1000;
    const names = await seedSecrets(env, total);
    const pipeline = await env.startPipeline();
    note(`pipeline up; requesting ${total} rotations`);
    let fault: Promise<void> | null = null;
    const outcome = await requestRotations(env, pipeline.api, names, {
      concurrency: 16,
      perSecond: quick ? 100 : 250,
      onSent: (sent) => {
        if (sent !== Math.floor(total / 2)) return;
        fault = (async () => {
          figures.atKill = await statusCounts(env);
          await env.redis.kill();
          await sleep(2000);
          await env.redis.restart({ empty: true });
          figures.keysRightAfterRestart = await env.redis.dbsize();
          note(`redis restarted empty; rotations were ${JSON.stringify(figures.atKill)}`);
        })();
      },
    });
    await fault;
    figures.refused = outcome.refused;
    const atKill = (figures.atKill ?? {}) as Record<string, number>;
    const inFlight = Object.entries(atKill).filter(([s]) => !['completed', 'failed'].includes(s)).reduce((a, [, n]) => a + n, 0);
    figures.inFlightAtKill = inFlight;
    check('the fault hit rotations in flight', inFlight > 0, { inFlight });
    const drainedMs = await waitForAllEnded(env, quick ? 60_000 : 180_000);
    figures.drainAfterRequestsMs = drainedMs;
    return { accepted: outcome.accepted, requireCompleted: true };
  },
};
