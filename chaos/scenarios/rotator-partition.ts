import { sleep, TcpFaultProxy } from '../faults/index.ts';
import type { Scenario } from '../harness/scenario.ts';
import { requestRotations, seedSecrets, waitForAllEnded } from '../harness/workload.ts';

/**
 * Scenario 3. Rotator A reaches Redis through a fault proxy; rotator B directly. With
 * rotations flowing, A is blackholed from Redis (sockets open, nothing flows) for several
 * job-lock periods: its job locks expire, B takes its jobs over and re-claims the
 * rotations (bumping the fence). A keeps its PostgreSQL connection, so when the partition
 * heals its held Redis calls return and it carries on with steps it no longer owns. Those
 * late writes must change nothing: the fence check turns each into a FencedError.
 */
export const rotatorPartition: Scenario = {
  name: 'rotator-partition',
  title: 'One rotator blackholed from Redis for longer than its job lock while another runs',
  fault: 'TCP blackhole between rotator A and Redis for 4 job-lock periods (JOB_LOCK_MS=3000), then heal',
  invariant: 'fencing prevents a double activation; the partitioned worker’s late writes change nothing',
  quick: true,
  timeoutMs: (quick) => (quick ? 120_000 : 240_000),
  async run({ env, quick, figures, check, note }) {
    // Enough load that A always has rotations mid-step when the partition starts.
    const secrets = quick ? 150 : 300;
    const rounds = 3;
    const names = await seedSecrets(env, secrets);
    const proxy = await TcpFaultProxy.start({ port: env.redis.port });
    env.cleanups.push('redis proxy', () => proxy.close());
    const lockMs = 3000;
    const [api] = await Promise.all([
      env.start(['api'], {}, 'api'),
      env.start(['scheduler'], {}, 'scheduler'),
      env.start(['notifier'], {}, 'notifier'),
      env.start(['rotator'], { REDIS_URL: proxy.via(env.redis.url), JOB_LOCK_MS: String(lockMs) }, 'rotator-a (partitioned)'),
      env.start(['rotator'], { JOB_LOCK_MS: String(lockMs) }, 'rotator-b'),
    ]);
    const rotatorA = env.processes.find((p) => p.label.startsWith('rotator-a'))!;
    const requests = Array.from({ length: rounds }, () => names).flat();
    note(`requesting ${requests.length} rotations of ${secrets} secrets`);
    let partition: Promise<void> | null = null;
    const outcome = await requestRotations(env, api!, requests, {
      concurrency: 16,
      perSecond: 250,
      onSent: (sent) => {
        if (sent !== Math.floor(requests.length / 3)) return;
        partition = (async () => {
          await proxy.blackhole();
          note('rotator A blackholed from Redis');
          await sleep(lockMs * 4);
          await proxy.pass();
          note('partition healed');
        })();
      },
    });
    await partition;
    figures.refused = outcome.refused;
    figures.drainAfterRequestsMs = await waitForAllEnded(env, quick ? 60_000 : 120_000);
    // Give A's late calls time to land after the drain.
    await sleep(2000);
    const fencedA = rotatorA.lines.filter((l) => l.includes('taken over by another worker')).length;
    const takeovers = (await env.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rotations WHERE attempts > 1`)).rows[0]!.n;
    figures.lateWritesFencedOnA = fencedA;
    figures.rotationsClaimedMoreThanOnce = takeovers;
    check('the partition made B take over rotations A was working on', takeovers > 0 && fencedA > 0, { takeovers, fencedA });
    return { accepted: outcome.accepted, requireCompleted: true };
  },
};
