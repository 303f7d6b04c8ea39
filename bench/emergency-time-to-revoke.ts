/**
 * Emergency time-to-revoke, idle and behind a scheduled backlog (issue 4).
 *
 *   npm run bench:emergency            # 100 emergency rotations per phase, 5,000 scheduled
 *   BENCH_EMERGENCY=200 BENCH_BACKLOG=5000 npm run bench:emergency
 *
 * rekey (api, scheduler, rotator, notifier) runs as one child process against the local
 * PostgreSQL and Redis, on a fresh database and Redis prefix that are removed afterwards.
 * Each phase fires signed webhooks one after another, each naming its own random secret,
 * and waits for the rotation to complete. Reported per phase: the server-side
 * `timeToRevokeMs` (webhook received → old version revoked) and what the sender saw
 * (request sent → completion observed in PostgreSQL), p50/p99/max.
 *
 * Phase `idle` is the baseline; phase `backlog` first makes BENCH_BACKLOG secrets due at
 * once, waits until the scheduler has queued them in the normal lane, then measures while
 * they are queued (a burst: the scheduled lane stays paused between the emergencies). Phase
 * `backlogSpaced` (BENCH_SPACED emergencies, default 30) leaves more than the hold time
 * between emergencies, so each one meets a running scheduled lane with jobs in flight. The
 * ratios against idle are the emergency lane's isolation: 1.0 is perfect.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { RoleProcess } from '../chaos/faults/index.ts';
import { createScratchDatabase, deleteKeysWithPrefix } from '../test/support/scratch-space.ts';
import { sign } from '../test/support/webhook-sender.ts';

const emergencyCount = Number(process.env.BENCH_EMERGENCY ?? 100);
const backlogSize = Number(process.env.BENCH_BACKLOG ?? 5000);
/** Extra phase: emergencies spaced wider than ROTATOR_EMERGENCY_HOLD_MS, so each meets a running scheduled lane. */
const spacedCount = Number(process.env.BENCH_SPACED ?? 30);
const holdMs = 1000;
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const serverUrl = new URL(process.env.DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres');

const id = randomBytes(4).toString('hex');
const prefix = `rekey-bench-${id}`;
const adminToken = randomBytes(24).toString('base64url');
const webhookSecret = `whsec_${randomBytes(32).toString('base64')}`;

const stepSpans = [
  ['triggeredToClaimed', 'triggered_at', 'minting_at'],
  ['minting', 'minting_at', 'setting_at'],
  ['setting', 'setting_at', 'testing_at'],
  ['testing', 'testing_at', 'activating_at'],
  ['activating', 'activating_at', 'activated_at'],
  ['notifying', 'notifying_at', 'revoking_at'],
  ['revoking', 'revoking_at', 'revoked_at'],
] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const summary = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s.at(-1)!, mean: Math.round((s.reduce((a, b) => a + b, 0) / s.length) * 10) / 10 };
};

async function main() {
  const db = await createScratchDatabase(serverUrl.toString(), `rekey_bench_${id}`);
  const { databaseUrl, pool } = db;
  const rekey = await RoleProcess.start(['api', 'scheduler', 'rotator', 'notifier'], {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REKEY_REDIS_PREFIX: prefix,
    REKEY_MASTER_KEY: randomBytes(32).toString('base64'),
    REKEY_ADMIN_TOKEN: adminToken,
    REKEY_WEBHOOK_SECRETS: webhookSecret,
    LOG_LEVEL: 'info', // RoleProcess waits for each role's start line
    PORT: '0',
    SCHEDULER_TICK_MS: '200',
    SCHEDULER_MAX_PER_TICK: String(Math.max(500, backlogSize)),
    ROTATOR_EMERGENCY_HOLD_MS: String(holdMs),
  });
  const base = `http://127.0.0.1:${rekey.apiPort}`;
  const redis = new Redis(redisUrl);
  const normalLane = new Queue('rotations', { connection: redis, prefix });
  try {
    // Secrets the emergency webhooks name (one each), created through the admin API.
    const names = Array.from({ length: emergencyCount * 2 + spacedCount }, (_, i) => `bench/e${String(i).padStart(4, '0')}`);
    for (const name of names) {
      const res = await fetch(`${base}/v1/secrets`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name, provider: 'random', policy: { grace: '1h' } }),
      });
      if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${await res.text()}`);
    }
    // The backlog: secrets on an hourly schedule, not due until the loaded phase.
    await pool.query(
      `INSERT INTO secrets (name, provider, config, policy, next_rotation_at)
       SELECT 'bulk/s' || lpad(g::text, 5, '0'), 'random', '{}', '{"interval": "1h", "grace": "0s", "terminateSessions": false}', NULL
       FROM generate_series(1, $1) g`,
      [backlogSize],
    );
    await until(async () => (await pool.query(`SELECT count(*)::int AS n FROM secrets WHERE name LIKE 'bench/%' AND current_version = 1`)).rows[0].n === names.length, 60_000);

    const fire = async (secret: string) => {
      const webhookId = `msg_${randomBytes(8).toString('hex')}`;
      const ts = Math.floor(Date.now() / 1000);
      const body = JSON.stringify({ secret, reason: 'benchmark' });
      const started = performance.now();
      const res = await fetch(`${base}/v1/webhooks/emergency-rotation`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'webhook-id': webhookId, 'webhook-timestamp': String(ts), 'webhook-signature': sign(webhookSecret, webhookId, ts, body) },
        body,
      });
      const accepted = performance.now() - started;
      if (res.status !== 202) throw new Error(`webhook for ${secret}: ${res.status} ${await res.text()}`);
      const [rotationId] = ((await res.json()) as { rotationIds: string[] }).rotationIds;
      for (;;) {
        const { rows } = await pool.query<{ status: string; time_to_revoke_ms: number | null }>('SELECT status, time_to_revoke_ms FROM rotations WHERE id = $1', [rotationId]);
        if (rows[0]!.status === 'completed') return { rotationId: rotationId!, ttr: rows[0]!.time_to_revoke_ms!, seen: performance.now() - started, accepted };
        if (rows[0]!.status === 'failed') throw new Error(`rotation ${rotationId} failed`);
        if (performance.now() - started > 60_000) throw new Error(`rotation ${rotationId} did not complete in 60s`);
        await sleep(3);
      }
    };
    const phase = async (secrets: string[], gapMs = 0) => {
      const results = [];
      for (const s of secrets) {
        if (gapMs) await sleep(gapMs);
        results.push(await fire(s));
      }
      // Where the time goes: median ms from one milestone to the next.
      const { rows: [steps] } = await pool.query(
        `SELECT ${stepSpans.map(([name, from, to]) => `round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ${to} - ${from}) * 1000)::numeric, 1)::float8 AS "${name}"`).join(', ')}
         FROM rotations WHERE id = ANY($1::uuid[])`,
        [results.map((r) => r.rotationId)],
      );
      return {
        medianStepMs: steps,
        timeToRevokeMs: summary(results.map((r) => r.ttr)),
        senderObservedMs: summary(results.map((r) => Math.round(r.seen * 10) / 10)),
        acceptedMs: summary(results.map((r) => Math.round(r.accepted * 10) / 10)),
      };
    };

    // Warm-up (JIT, connection pools), not measured.
    for (const s of names.slice(0, 5)) await fire(s);
    const idle = await phase(names.slice(0, emergencyCount));

    await pool.query(`UPDATE secrets SET next_rotation_at = now() WHERE name LIKE 'bulk/%'`);
    // The scheduler records the whole backlog in one tick, then enqueues it job by job. Start
    // once it is all in Redis (jobs still queued + rotations already picked up), so the phase
    // measures a standing backlog, not the enqueue burst.
    const queuedAtStart = await until(async () => {
      const c = await normalLane.getJobCounts('waiting', 'active', 'delayed');
      const queued = c.waiting! + c.active! + c.delayed!;
      const picked = (await pool.query(`SELECT count(*)::int AS n FROM rotations WHERE trigger = 'schedule' AND status <> 'queued'`)).rows[0].n as number;
      return queued + picked >= backlogSize ? queued : null;
    }, 120_000);
    const loadedStart = Date.now();
    const backlog = await phase(names.slice(emergencyCount, emergencyCount * 2));
    const counts = await normalLane.getJobCounts('waiting', 'active', 'delayed');
    const queuedAtEnd = counts.waiting! + counts.active! + counts.delayed!;
    const scheduledDone = (await pool.query(`SELECT count(*)::int AS n FROM rotations WHERE trigger = 'schedule' AND status = 'completed' AND completed_at >= to_timestamp($1 / 1000.0)`, [loadedStart])).rows[0].n;
    // Sparse emergencies: the scheduled lane has resumed (hold expired) before each one.
    const spaced = spacedCount > 0 ? await phase(names.slice(emergencyCount * 2), holdMs + 300) : null;
    const spacedCounts = await normalLane.getJobCounts('waiting', 'active', 'delayed');

    const ratio = (a: number, b: number) => Math.round((a / Math.max(b, 1)) * 100) / 100;
    console.log(JSON.stringify({
      benchmark: 'emergency-time-to-revoke',
      emergencyRotationsPerPhase: emergencyCount,
      provider: 'random',
      idle,
      backlog: { ...backlog, scheduledQueuedAtStart: queuedAtStart, scheduledQueuedAtEnd: queuedAtEnd, scheduledCompletedDuringPhase: scheduledDone },
      backlogSpaced: spaced && { ...spaced, gapMs: holdMs + 300, scheduledQueuedAtEnd: spacedCounts.waiting! + spacedCounts.active! + spacedCounts.delayed! },
      ratio: {
        timeToRevokeP50: ratio(backlog.timeToRevokeMs.p50, idle.timeToRevokeMs.p50),
        timeToRevokeP99: ratio(backlog.timeToRevokeMs.p99, idle.timeToRevokeMs.p99),
        senderObservedP50: ratio(backlog.senderObservedMs.p50, idle.senderObservedMs.p50),
        ...(spaced && {
          spacedTimeToRevokeP50: ratio(spaced.timeToRevokeMs.p50, idle.timeToRevokeMs.p50),
          spacedTimeToRevokeP99: ratio(spaced.timeToRevokeMs.p99, idle.timeToRevokeMs.p99),
        }),
      },
      machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    }, null, 2));
  } finally {
    await normalLane.close().catch(() => {});
    await rekey.stop().catch(() => {});
    await deleteKeysWithPrefix(redis, prefix);
    redis.disconnect();
    await db.drop().catch(() => {});
  }
}

async function until<T>(fn: () => Promise<T | null | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(50);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
