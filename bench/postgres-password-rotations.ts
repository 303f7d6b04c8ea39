/**
 * postgres-password rotations per second end to end (request → mint → set → test login →
 * activate → notify → revoke, through the queues), beside the raw rate of the same
 * `ALTER ROLE … PASSWORD '<SCRAM verifier>'` statements issued directly, with the same
 * concurrency, against the same PostgreSQL, in the same run.
 *
 * The target is a private PostgreSQL that checks passwords (scram-sha-256), so the test
 * login costs what it costs in production; rekey's own database is on DATABASE_URL.
 *
 *   npm run bench:postgres-password [-- --rotations 200 --concurrency 8 --strategy single|alternating]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startRoles } from '../services/cli/start-roles.ts';
import { requestRotation } from '../shared/db/rotation-store.ts';
import { closeTargetPools } from '../shared/providers/postgres-target/postgres-target.ts';
import { scramSha256Verifier } from '../shared/providers/postgres-target/scram-verifier.ts';
import { createSecret } from '../shared/secret-admin.ts';
import { enqueueRotation } from '../shared/start-rotation.ts';
import { PasswordPostgres } from '../test/support/password-postgres.ts';
import { createScratchDatabase } from '../test/support/scratch-space.ts';

const { values } = parseArgs({
  options: {
    rotations: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8' },
    strategy: { type: 'string', default: 'single' },
  },
});
const n = Number(values.rotations);
const concurrency = Number(values.concurrency);
const strategy = values.strategy === 'alternating' ? 'alternating' : 'single';
const id = randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const roleOf = (i: number, half = 0) => `bench_${i}_${half}`;

async function untilAllCompleted(pool: pg.Pool): Promise<void> {
  while ((await pool.query(`SELECT count(*)::int AS n FROM rotations WHERE status NOT IN ('completed', 'failed')`)).rows[0].n > 0) await sleep(20);
  const failed = (await pool.query(`SELECT count(*)::int AS n, min(error) AS error FROM rotations WHERE status = 'failed'`)).rows[0];
  if (failed.n > 0) throw new Error(`${failed.n} rotations failed, e.g. ${failed.error}`);
}

/** `count` statements from `make(i)` over `concurrency` connections; returns statements per second. */
async function raw(target: PasswordPostgres, count: number, make: (i: number) => Promise<string>): Promise<number> {
  const pool = new pg.Pool({ connectionString: target.adminUrl(), max: concurrency });
  await Promise.all(Array.from({ length: concurrency }, () => pool.query('SELECT 1')));
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) await pool.query(await make(i));
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await pool.end();
  return count / seconds;
}

const target = await PasswordPostgres.start();
const db = await createScratchDatabase(process.env.DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres', `rekey_bench_pg_${id}`);
const { databaseUrl, pool } = db;
let result: Record<string, unknown>;
try {
  await target.admin(async (c) => {
    for (let i = 0; i < n; i++) {
      await c.query(`CREATE ROLE ${roleOf(i)} LOGIN`);
      if (strategy === 'alternating') await c.query(`CREATE ROLE ${roleOf(i, 1)} LOGIN`);
    }
  });
  const { rt } = await startRoles(['rotator', 'notifier'], {
    ...process.env,
    DATABASE_URL: databaseUrl,
    REKEY_REDIS_PREFIX: `rekey-bench-pg-${id}`,
    REKEY_MASTER_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'warn',
    ROTATOR_CONCURRENCY: String(concurrency),
    NOTIFIER_CONCURRENCY: String(concurrency),
    PG_BENCH_ADMIN: target.adminUrl(),
  });
  try {
    const secrets = [];
    for (let i = 0; i < n; i++) {
      const config = strategy === 'single' ? { strategy, role: roleOf(i) } : { strategy, roles: [roleOf(i), roleOf(i, 1)] };
      secrets.push((await createSecret(rt, { name: `bench/pg${i}`, provider: 'postgres-password', config: { admin: 'env:PG_BENCH_ADMIN', ...config } }, 'bench')).secret);
    }
    await untilAllCompleted(pool);

    const started = performance.now();
    for (const s of secrets) {
      const { rotation } = await requestRotation(pool, { secretId: s.id, trigger: 'manual', reason: 'bench', emergency: false });
      await enqueueRotation(rt, rotation.id, false);
    }
    await untilAllCompleted(pool);
    const seconds = (performance.now() - started) / 1000;
    const { rows } = await pool.query(
      `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
       FROM (SELECT extract(epoch FROM completed_at - triggered_at) * 1000 AS ms FROM rotations WHERE trigger = 'manual') t`,
    );

    // Where an end-to-end rotation spends its time (median per step), to read the ratio by.
    const steps = (
      await pool.query(
        `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM minting_at - queued_at) * 1000) AS queued,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM setting_at - minting_at) * 1000) AS minting,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM testing_at - setting_at) * 1000) AS setting,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM activating_at - testing_at) * 1000) AS testing,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM notifying_at - activating_at) * 1000) AS activating,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM revoking_at - notifying_at) * 1000) AS notifying,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - revoking_at) * 1000) AS revoking
         FROM rotations WHERE trigger = 'manual'`,
      )
    ).rows[0] as Record<string, number>;
    const rawVerifier = await raw(target, n, async (i) => `ALTER ROLE ${roleOf(i)} PASSWORD '${await scramSha256Verifier(randomBytes(32).toString('base64url'))}'`);
    const rawPlaintext = await raw(target, n, async (i) => `ALTER ROLE ${roleOf(i)} PASSWORD '${randomBytes(32).toString('base64url')}'`);
    const endToEnd = n / seconds;
    result = {
      bench: 'postgres-password-rotations',
      strategy,
      rotations: n,
      concurrency,
      endToEndRotationsPerSecond: Number(endToEnd.toFixed(1)),
      endToEndTriggerToCompletedMs: { p50: Math.round(rows[0].p50), p99: Math.round(rows[0].p99) },
      endToEndStepMedianMs: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, Number(Number(v).toFixed(1))])),
      // The baseline: the statement rekey sends (client-side SCRAM verifier), issued directly.
      rawAlterRolePasswordPerSecond: Number(rawVerifier.toFixed(1)),
      rawMsPerAlterRole: Number(((1000 * concurrency) / rawVerifier).toFixed(2)),
      ratioEndToEndToRaw: Number((endToEnd / rawVerifier).toFixed(3)),
      // For reference: the plaintext form (server hashes; the password lands in its log).
      rawAlterRolePlaintextPerSecond: Number(rawPlaintext.toFixed(1)),
    };
  } finally {
    await rt.close();
    await closeTargetPools();
  }
} finally {
  await target.cleanup();
  await db.drop();
}
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
process.exit(0);
