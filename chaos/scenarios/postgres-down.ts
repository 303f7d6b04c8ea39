import { sleep } from '../faults/index.ts';
import type { Scenario } from '../harness/scenario.ts';
import { requestRotations, seedSecrets, statusCounts, waitForAllEnded } from '../harness/workload.ts';

/**
 * Scenario 5. PostgreSQL (the scenario's private cluster) shuts down for 10 s in the
 * middle of a storm: every session is terminated, pools fail to reconnect, transactions
 * in flight roll back. No process may crash, requests meanwhile are refused (not
 * accepted and lost), and once it is back every accepted rotation finishes with no
 * half-written state (no pending version, no gap).
 */
export const postgresDown: Scenario = {
  name: 'postgres-down',
  title: 'PostgreSQL down for 10 s during a storm',
  fault: 'fast shutdown of the PostgreSQL cluster mid-storm, restarted 10 s later',
  invariant: 'no process crashes, rotations resume, no half-written state',
  quick: true,
  timeoutMs: (quick) => (quick ? 150_000 : 240_000),
  async run({ env, quick, figures, check, note }) {
    const total = quick ? 600 : 1200;
    const perSecond = quick ? 30 : 50;
    const names = await seedSecrets(env, total);
    const pipeline = await env.startPipeline();
    let outage: Promise<void> | null = null;
    note(`storm of ${total} rotations at ${perSecond}/s`);
    const outcome = await requestRotations(env, pipeline.api, names, {
      concurrency: 16,
      perSecond,
      onSent: (sent) => {
        if (sent !== Math.floor(total / 4)) return;
        outage = (async () => {
          figures.atStop = await statusCounts(env);
          await env.postgres.stop();
          note(`postgres stopped with rotations ${JSON.stringify(figures.atStop)}`);
          await sleep(10_000);
          await env.postgres.start();
          note('postgres back');
        })();
      },
    });
    await outage;
    figures.refusedWhileDown = outcome.refused;
    const atStop = (figures.atStop ?? {}) as Record<string, number>;
    const inFlight = Object.entries(atStop).filter(([s]) => !['completed', 'failed'].includes(s)).reduce((a, [, n]) => a + n, 0);
    check('the outage hit rotations in flight', inFlight > 0, { inFlight });
    check('requests during the outage were refused, not silently accepted', Object.keys(outcome.refused).length > 0, outcome.refused);
    figures.drainAfterStormMs = await waitForAllEnded(env, quick ? 90_000 : 150_000);
    return { accepted: outcome.accepted, requireCompleted: true };
  },
};
