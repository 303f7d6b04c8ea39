import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { baseEnv, parseEnv } from '../../shared/config.ts';
import { ensureDatabase } from '../../shared/db/ensure-database.ts';
import { connectionConfig, createPool } from '../../shared/db/pool.ts';
import { migrate } from '../../shared/db/migrate.ts';
import { startRoles } from './start-roles.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Says which of Redis and PostgreSQL does not answer, and how to start it. */
async function checkServices(cfg: { REDIS_URL: string; DATABASE_URL: string }, print: (s: string) => void): Promise<boolean> {
  let ok = true;
  const redis = new Redis(cfg.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch {
    ok = false;
    print(`Redis does not answer at ${cfg.REDIS_URL}. Start it, e.g.:\n  redis-server --daemonize yes --port 6379 --save "" --appendonly no\nor set REDIS_URL.`);
  } finally {
    redis.disconnect();
  }
  const url = new URL(cfg.DATABASE_URL);
  url.pathname = '/postgres';
  const client = new pg.Client({ ...connectionConfig(url.toString()), connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch {
    ok = false;
    print(`PostgreSQL does not answer at ${url.host}. Start it, e.g.:\n  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\nor set DATABASE_URL.`);
  } finally {
    await client.end().catch(() => {});
  }
  return ok;
}

/**
 * `rekey demo`: every role in this process, three demo secrets, scheduled, manual and
 * emergency rotations, and each rotation's step timings and time-to-revoke.
 */
export async function runDemo(print: (s: string) => void): Promise<number> {
  const cfg = parseEnv(baseEnv);
  if (!(await checkServices(cfg, print))) return 1;
  await ensureDatabase(cfg.DATABASE_URL);
  const pool = createPool(cfg.DATABASE_URL, { max: 1 });
  await migrate(pool).finally(() => pool.end());

  const adminToken = process.env.REKEY_ADMIN_TOKEN ?? randomBytes(24).toString('base64url');
  const env = {
    LOG_LEVEL: 'warn',
    SCHEDULER_TICK_MS: '200',
    RECONCILE_INTERVAL_MS: '2000',
    ...process.env,
    REKEY_ADMIN_TOKEN: adminToken,
    PORT: process.env.PORT ?? '0',
  };
  const { rt, apiPort } = await startRoles(['api', 'scheduler', 'rotator', 'notifier'], env);
  const base = `http://127.0.0.1:${apiPort}`;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };

  try {
    print(`rekey demo: api on ${base}, all roles in this process\n`);
    for (const s of (await call('GET', '/v1/secrets?prefix=demo/')).secrets) await call('DELETE', `/v1/secrets/${s.name}`);

    const secrets = [
      { name: 'demo/api-key', provider: 'random', config: { length: 40, prefix: 'rk_' }, policy: { interval: '3s', grace: '1s' } },
      { name: 'demo/signing-key', provider: 'jwt-signing-key', config: { alg: 'EdDSA' }, policy: { interval: '4s', grace: '2s' } },
      { name: 'demo/hmac', provider: 'random', config: { alphabet: 'hex', length: 64 }, policy: {} },
    ];
    for (const s of secrets) {
      await call('POST', '/v1/secrets', s);
      print(`created ${s.name} (${s.provider}, ${s.policy.interval ? `every ${s.policy.interval}, grace ${s.policy.grace}` : 'manual only'})`);
    }
    print('\nletting the scheduler rotate for 8 seconds…');
    await sleep(8000);
    const manual = await call('POST', '/v1/secrets/demo/hmac/rotate', { reason: 'demo: manual rotation' });
    const emergency = await call('POST', '/v1/secrets/demo/api-key/rotate', { reason: 'demo: leaked key', emergency: true });
    for (const id of [manual.rotationId, emergency.rotationId]) {
      for (let i = 0; i < 100; i++) {
        const r = await call('GET', `/v1/rotations/${id}`);
        if (r.status === 'completed' || r.status === 'failed') break;
        await sleep(100);
      }
    }
    await sleep(2500); // let scheduled rotations in grace finish revoking

    print('\nROTATIONS');
    print('secret             trigger    status     version  time-to-revoke  steps (ms)');
    for (const s of secrets) {
      const { rotations } = await call('GET', `/v1/rotations?secret=${encodeURIComponent(s.name)}&limit=20`);
      for (const r of rotations.reverse()) {
        const steps = r.steps.map((st: { step: string; durationMs: number | null }) => `${st.step} ${st.durationMs ?? '…'}`).join(', ');
        const version = `${r.fromVersion ?? '∅'}→${r.toVersion ?? '?'}`;
        const ttr = r.timeToRevokeMs === null ? '-' : `${r.timeToRevokeMs} ms`;
        print(`${s.name.padEnd(17)}  ${r.trigger.padEnd(9)}  ${r.status.padEnd(9)}  ${version.padEnd(7)}  ${ttr.padEnd(14)}  ${steps}`);
      }
    }
    const jwks = await (await fetch(`${base}/v1/jwks`)).json();
    print(`\n/v1/jwks serves ${jwks.keys.length} keys (rekey's event-signing key + demo/signing-key's current and in-grace keys)`);
    print('emergency rotations revoke the old credential as soon as the new one is active; scheduled ones after their grace.');
    return 0;
  } finally {
    await rt.close();
  }
}
