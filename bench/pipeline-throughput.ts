/**
 * End-to-end rotation throughput (random provider: the pipeline's own cost, no target),
 * beside the floor measured in the same run: the same number of jobs hopping through three
 * bare BullMQ queues (what rotate → notify → revoke costs in Redis alone) with the same
 * concurrency.
 *
 *   npm run bench:pipeline [-- --rotations 1000]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';
import { startRoles } from '../services/cli/start-roles.ts';
import { createScratchDatabase } from '../test/support/scratch-space.ts';
import { requestRotation } from '../shared/db/rotation-store.ts';
import { enqueueRotation } from '../shared/start-rotation.ts';
import { createSecret } from '../shared/secret-admin.ts';

const { values } = parseArgs({ options: { rotations: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '16' } } });
const n = Number(values.rotations);
const concurrency = Number(values.concurrency);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const serverUrl = process.env.DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres';
const id = randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function bullmqFloor(): Promise<number> {
  const prefix = `rekey-bench-floor-${id}`;
  const connection = { url: redisUrl, maxRetriesPerRequest: null };
  const names = ['hop-a', 'hop-b', 'hop-c'];
  const queues = names.map((name) => new Queue(name, { connection, prefix }));
  let done = 0;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const workers = names.map(
    (name, i) =>
      new Worker(
        name,
        async (job) => {
          if (i < 2) await queues[i + 1]!.add('hop', job.data, { jobId: `${job.id}-${i + 1}`, removeOnComplete: true });
          else if (++done === n) finish();
        },
        { connection, prefix, concurrency },
      ),
  );
  const started = performance.now();
  await queues[0]!.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'hop', data: { rotationId: `r${i}` }, opts: { jobId: `j${i}`, removeOnComplete: true } })));
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(workers.map((w) => w.close()));
  for (const q of queues) {
    await q.obliterate({ force: true });
    await q.close();
  }
  return n / seconds;
}

async function pipeline(): Promise<{ perSecond: number; p50Ms: number; p99Ms: number }> {
  const db = await createScratchDatabase(serverUrl, `rekey_bench_${id}`);
  const { databaseUrl, pool } = db;
  const env = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REKEY_REDIS_PREFIX: `rekey-bench-${id}`,
    REKEY_MASTER_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'warn',
    ROTATOR_CONCURRENCY: String(concurrency),
    NOTIFIER_CONCURRENCY: String(concurrency),
  };
  const { rt } = await startRoles(['rotator', 'notifier'], env);
  try {
    // One secret per rotation, so requests do not coalesce; version 1 minted first.
    const secrets = [];
    for (let i = 0; i < n; i++) secrets.push((await createSecret(rt, { name: `bench/s${i}`, provider: 'random' }, 'bench')).secret);
    while ((await pool.query(`SELECT count(*)::int AS n FROM rotations WHERE status <> 'completed'`)).rows[0].n > 0) await sleep(100);

    const started = performance.now();
    for (const s of secrets) {
      const { rotation } = await requestRotation(pool, { secretId: s.id, trigger: 'manual', reason: 'bench', emergency: false });
      await enqueueRotation(rt, rotation.id, false);
    }
    while ((await pool.query(`SELECT count(*)::int AS n FROM rotations WHERE status <> 'completed'`)).rows[0].n > 0) await sleep(50);
    const seconds = (performance.now() - started) / 1000;
    const { rows } = await pool.query(
      `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
       FROM (SELECT extract(epoch FROM completed_at - triggered_at) * 1000 AS ms FROM rotations WHERE trigger = 'manual') t`,
    );
    return { perSecond: n / seconds, p50Ms: Math.round(rows[0].p50), p99Ms: Math.round(rows[0].p99) };
  } finally {
    await rt.close();
    await db.drop();
  }
}

const floor = await bullmqFloor();
const rekey = await pipeline();
process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'pipeline-throughput',
      rotations: n,
      concurrency,
      rekeyRotationsPerSecond: Math.round(rekey.perSecond),
      rekeyTriggerToCompletedMs: { p50: rekey.p50Ms, p99: rekey.p99Ms },
      baselineBullmqThreeHopJobsPerSecond: Math.round(floor),
      ratioToFloor: Number((rekey.perSecond / floor).toFixed(3)),
    },
    null,
    2,
  )}\n`,
);
process.exit(0);
