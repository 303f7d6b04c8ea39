import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import type { Pool } from '../../shared/db/pool.ts';
import { createScratchDatabase, deleteKeysWithPrefix } from './scratch-space.ts';

/** Collects every log line a runtime writes, for canary checks. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  text() {
    return this.lines.join('\n');
  }
}

export interface TestEnv {
  /** Environment for a rekey process bound to this test's database and Redis prefix. */
  env: NodeJS.ProcessEnv;
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  adminToken: string;
  /** A pool on this test's database, for assertions. */
  pool: Pool;
  redis: Redis;
  cleanup(): Promise<void>;
}

/**
 * A fresh PostgreSQL database (migrated) and a random Redis key prefix per test file:
 * tests isolate by name, never by mocks, and can run side by side.
 */
export async function createTestEnv(extra: Record<string, string> = {}): Promise<TestEnv> {
  const id = randomBytes(5).toString('hex');
  const redisUrl = inject('redisUrl');
  const db = await createScratchDatabase(inject('databaseUrl'), `rekey_t_${id}`, 5);
  const { databaseUrl, pool } = db;
  const prefix = `rekey-t-${id}`;
  const adminToken = randomBytes(24).toString('base64url');
  const redis = new Redis(redisUrl);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REKEY_REDIS_PREFIX: prefix,
    REKEY_MASTER_KEY: randomBytes(32).toString('base64'),
    REKEY_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: 'info',
    PORT: '0',
    SCHEDULER_TICK_MS: '100',
    RECONCILE_INTERVAL_MS: '1000',
    JOB_LOCK_MS: '2000',
    ROTATION_BACKOFF_MS: '50',
    ...extra,
  };
  return {
    env,
    databaseUrl,
    redisUrl,
    prefix,
    adminToken,
    pool,
    redis,
    async cleanup() {
      await deleteKeysWithPrefix(redis, prefix).finally(() => redis.disconnect());
      await db.drop().catch(() => {});
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until fn returns a truthy value or the time runs out. */
export async function waitFor<T>(fn: () => Promise<T | null | undefined | false>, opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? 'condition'}`);
    await sleep(opts.intervalMs ?? 50);
  }
}
