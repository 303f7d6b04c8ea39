import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { ValueCipher } from '../../shared/crypto/value-cipher.ts';
import { parseMasterKey } from '../../shared/crypto/master-key.ts';
import type { Pool } from '../../shared/db/pool.ts';
import { createScratchDatabase, deleteKeysWithPrefix } from '../../test/support/scratch-space.ts';
import { registerSubscribers } from './bulk-subscribers.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

export interface BenchRekey {
  url: string;
  /** Every api replica (the first is `url`). */
  urls: string[];
  adminToken: string;
  pool: Pool;
  prefix: string;
  api(method: string, path: string, body?: unknown): Promise<any>;
  /** Registers n subscribers in bulk (SQL + tokens signed here with rekey's key), marked live. */
  subscribers(n: number, scope: string[]): Promise<{ id: string; token: string }[]>;
  metric(name: RegExp): Promise<number>;
  stop(): Promise<void>;
}

/**
 * rekey (api + rotator + notifier) as a child process on a fresh database, so the bench
 * process (which plays the subscribers) and rekey do not share an event loop.
 */
export async function startBenchRekey(env: Record<string, string> = {}, opts: { apiReplicas?: number } = {}): Promise<BenchRekey> {
  const id = randomBytes(4).toString('hex');
  const db = await createScratchDatabase(process.env.DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres', `rekey_bench_${id}`);
  const { databaseUrl, pool } = db;
  const masterKey = randomBytes(32).toString('base64');
  const adminToken = randomBytes(24).toString('base64url');
  const prefix = `rekey-bench-${id}`;
  const childEnv = (port: number) => ({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: databaseUrl,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    REKEY_REDIS_PREFIX: prefix,
    REKEY_MASTER_KEY: masterKey,
    REKEY_ADMIN_TOKEN: adminToken,
    PORT: String(port),
    LOG_LEVEL: 'warn',
    REKEY_SUBSCRIBER_CACHE_MS: '60000',
    REKEY_REDELIVER_MS: '2000',
    ...env,
  });
  // The first process runs every role; further api replicas share the same PostgreSQL and Redis.
  const children: ChildProcess[] = [];
  const urls: string[] = [];
  for (let i = 0; i < (opts.apiReplicas ?? 1); i++) {
    const port = await freePort();
    const roles = i === 0 ? ['api', 'rotator', 'notifier'] : ['api'];
    children.push(spawn('node', ['services/cli/rekey.mjs', 'start', ...roles], { env: childEnv(port), stdio: ['ignore', 'inherit', 'inherit'] }));
    urls.push(`http://127.0.0.1:${port}`);
    const url = urls[i]!;
    for (let k = 0; ; k++) {
      try {
        if ((await fetch(`${url}/healthz`)).ok) break;
      } catch {}
      if (k > 300) throw new Error('rekey did not start');
      await sleep(100);
    }
  }
  const url = urls[0]!;
  const stopChildren = () => children.forEach((c) => c.kill('SIGKILL'));
  process.once('exit', stopChildren);
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  };
  return {
    url,
    urls,
    adminToken,
    pool,
    prefix,
    api,
    subscribers: (n, scope) => registerSubscribers(pool, new ValueCipher(parseMasterKey(masterKey, 'REKEY_MASTER_KEY')), n, scope),
    async metric(name) {
      const text = await fetch(`${url}/metrics`).then((r) => r.text());
      return Number(name.exec(text)?.[1] ?? 0);
    },
    async stop() {
      await Promise.all(
        children.map((child) => {
          child.kill('SIGTERM');
          return Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000).then(() => child.kill('SIGKILL'))]);
        }),
      );
      process.off('exit', stopChildren);
      await db.drop().catch(() => {});
      // This run's Redis keys (queues, event stream) go too; only this prefix.
      const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
      await deleteKeysWithPrefix(redis, prefix);
      redis.disconnect();
    },
  };
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
