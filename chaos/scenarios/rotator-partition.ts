import { sleep, TcpFaultProxy } from '../faults/index.ts';
import type { Scenario } from '../harness/scenario.ts';
import { requestRotations, seedSecrets, waitForAllEnded } from '../harness/workload.ts';

/**
 * Scenario 3. Rotator A reaches Redis and PostgreSQL through fault proxies; rotator B
 * directly. With rotations flowing, A is blackholed (sockets open, nothing flows) for
 * several job-lock periods: its job locks expire, B takes its jobs over and re-claims the
 * rotations (bumping the fence). When the partition heals, A's held statements arrive and
 * it carries on with steps it no longer owns. Those late writes must change nothing: the
 * fence check turns each into a FencedError.
 *
 * Why PostgreSQL too: rekey bounds every Redis call (2 s), so a worker cut off from Redis
 * alone finishes its in-flight steps in PostgreSQL before its job lock even expires, and
 * fencing is never needed. Cutting A's PostgreSQL as well holds it mid-step, which is
 * what a paused VM, a long GC or a real network partition does.
 */
export const rotatorPartition: Scenario = {
  name: 'rotator-partition',
  title: 'One rotator partitioned (Redis and PostgreSQL blackholed) for longer than its job lock while another runs',
  fault: 'TCP blackhole between rotator A and Redis + PostgreSQL for 4 job-lock periods (JOB_LOCK_MS=3000), then heal',
  invariant: 'fencing prevents a double activation; the partitioned worker’s late writes change nothing',
  quick: true,
  timeoutMs: (quick) => (quick ? 120_000 : 240_000),
  async run({ env, quick, figures, check, note }) {
    // Enough load that A always has rotations mid-step when the partition starts.
    // Few secrets and many requests: most requests join a rotation still queued (coalesce),
    // so the rotators stay saturated for the whole storm without a huge backlog to drain.
    const secrets = quick ? 40 : 80;
    const rounds = quick ? 25 : 40;
    const names = await seedSecrets(env, secrets);
    const proxy = await TcpFaultProxy.start({ port: env.redis.port });
    env.cleanups.push('redis proxy', () => proxy.close());
    const pgProxy = await TcpFaultProxy.start({ port: env.postgres.port });
    env.cleanups.push('postgres proxy', () => pgProxy.close());
    const lockMs = 3000;
    const [api] = await Promise.all([
      env.start(['api'], {}, 'api'),
      env.start(['scheduler'], {}, 'scheduler'),
      env.start(['notifier'], {}, 'notifier'),
      env.start(['rotator'], { REDIS_URL: proxy.via(env.redis.url), DATABASE_URL: pgProxy.via(env.databaseUrl), JOB_LOCK_MS: String(lockMs) }, 'rotator-a (partitioned)'),
      env.start(['rotator'], { JOB_LOCK_MS: String(lockMs) }, 'rotator-b'),
    ]);
    const rotatorA = env.processes.find((p) => p.label.startsWith('rotator-a'))!;
    const requests = Array.from({ length: rounds }, () => names).flat();
    note(`requesting ${requests.length} rotations of ${secrets} secrets`);
    // Partition A while it is working (both rotators saturated, A activating), so it holds
    // rotations mid-step when its network goes silent. Whether one partition catches A
    // mid-step is a matter of timing, so the partition repeats (up to `tries`) until B has
    // taken over at least one rotation; the verdict says how many it took.
    let stormOver = false;
    let partitions = 0;
    const tries = quick ? 3 : 4;
    const takeoverCount = async () => (await env.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rotations WHERE attempts > 1`)).rows[0]!.n;
    const partition = (async () => {
      while (partitions < tries && !stormOver) {
        const deadline = Date.now() + 30_000;
        let seen = rotatorA.lines.filter((l) => l.includes('new version is current')).length;
        while (Date.now() < deadline && !stormOver) {
          const { rows } = await env.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rotations WHERE status = 'queued'`);
          const now = rotatorA.lines.filter((l) => l.includes('new version is current')).length;
          if (rows[0]!.n >= 20 && now > seen) break;
          seen = now;
          await sleep(50);
        }
        if (stormOver) break;
        partitions++;
        await Promise.all([proxy.blackhole(), pgProxy.blackhole()]);
        note(`partition ${partitions}: rotator A blackholed from Redis and PostgreSQL`);
        await sleep(lockMs * 4);
        await Promise.all([proxy.pass(), pgProxy.pass()]);
        await sleep(3000);
        const n = await takeoverCount();
        note(`partition ${partitions} healed; ${n} rotations taken over so far`);
        if (n > 0) break;
      }
    })();
    const outcome = await requestRotations(env, api!, requests, { concurrency: 32, perSecond: quick ? 60 : 80 });
    stormOver = true;
    await partition;
    figures.partitions = partitions;
    figures.refused = outcome.refused;
    figures.drainAfterRequestsMs = await waitForAllEnded(env, quick ? 60_000 : 120_000);
    // Give A's late calls time to land after the drain.
    await sleep(2000);
    const fencedA = rotatorA.lines.filter((l) => l.includes('taken over by another worker')).length;
    const takeovers = await takeoverCount();
    figures.lateWritesFencedOnA = fencedA;
    figures.rotationsClaimedMoreThanOnce = takeovers;
    check('the partition made B take over rotations A was working on', takeovers > 0 && fencedA > 0, { takeovers, fencedA });
    return { accepted: outcome.accepted, requireCompleted: true };
  },
};
