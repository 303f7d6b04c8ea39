import { sleep } from '../faults/index.ts';
import type { Scenario } from '../harness/scenario.ts';
import { requestRotations, seedSecrets, statusCounts, waitForAllEnded } from '../harness/workload.ts';

/**
 * Scenario 1. Redis is SIGKILLed with rotations in flight and comes back from its AOF
 * (appendfsync everysec, as in docker-compose: up to a second of writes may be gone,
 * which the reconciler must make good). Requests keep arriving during the outage.
 */
export const redisKillAof: Scenario = {
  name: 'redis-kill-aof',
  title: 'Redis SIGKILLed with rotations in flight, restarted with AOF',
  fault: 'SIGKILL of redis-server mid-storm; 2 s down; restart from appendonly file (everysec)',
  invariant: 'every accepted rotation completes exactly once',
  quick: true,
  timeoutMs: (quick) => (quick ? 120_000 : 300_000),
  redis: { aof: true, appendfsync: 'everysec' },
  async run({ env, quick, figures, check, note }) {
    const total = quick ? 200 : 1000;
    const names = await seedSecrets(env, total);
    const pipeline = await env.startPipeline();
    note(`pipeline up; requesting ${total} rotations`);
    let killAt: Promise<void> | null = null;
    const requests = requestRotations(env, pipeline.api, names, {
      concurrency: 16,
      perSecond: quick ? 100 : 250,
      onSent: (sent) => {
        if (sent !== Math.floor(total / 2)) return;
        killAt = (async () => {
          const inFlight = await statusCounts(env);
          await env.redis.kill();
          figures.atKill = inFlight;
          note(`redis SIGKILLed with ${JSON.stringify(inFlight)}`);
          await sleep(2000);
          await env.redis.restart();
          figures.keysAfterRestart = await env.redis.dbsize();
          note(`redis restarted from AOF with ${figures.keysAfterRestart} keys`);
        })();
      },
    });
    const outcome = await requests;
    await killAt;
    figures.refused = outcome.refused;
    const atKill = (figures.atKill ?? {}) as Record<string, number>;
    const inFlight = Object.entries(atKill).filter(([s]) => !['completed', 'failed'].includes(s)).reduce((a, [, n]) => a + n, 0);
    figures.inFlightAtKill = inFlight;
    check('the fault hit rotations in flight', inFlight > 0, { inFlight });
    check('redis came back with its AOF data', Number(figures.keysAfterRestart) > 0, { keys: figures.keysAfterRestart });
    const drainedMs = await waitForAllEnded(env, quick ? 60_000 : 180_000);
    figures.drainAfterRequestsMs = drainedMs;
    return { accepted: outcome.accepted, requireCompleted: true };
  },
};
