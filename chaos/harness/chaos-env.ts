import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { createPool } from '../../shared/db/pool.ts';
import { ensureDatabase } from '../../shared/db/ensure-database.ts';
import { migrate } from '../../shared/db/migrate.ts';
import { ValueCipher } from '../../shared/crypto/value-cipher.ts';
import { loadMasterKey } from '../../shared/crypto/master-key.ts';
import { createLogger } from '../../shared/logger.ts';
import { PrivatePostgres, PrivateRedis, RoleProcess, type PrivateRedisOptions } from '../faults/index.ts';
import { CleanupStack } from './cleanup-stack.ts';

/**
 * One scenario's world: its own PostgreSQL cluster and redis-server on spare loopback
 * ports, a migrated database, a master key, and the rekey role processes it starts.
 * Nothing here touches the shared Redis or PostgreSQL. `cleanup()` stops everything,
 * last started first, even after a failure.
 */
export class ChaosEnv {
  readonly cleanups = new CleanupStack();
  readonly processes: RoleProcess[] = [];
  readonly adminToken = randomBytes(24).toString('base64url');
  readonly masterKey = randomBytes(32).toString('base64');
  /** The same key the role processes use, so the verdict can open every stored value. */
  readonly cipher = new ValueCipher(
    loadMasterKey({ REKEY_MASTER_KEY: this.masterKey, REKEY_DEV_KEY_FILE: '', NODE_ENV: 'test' }, createLogger({ level: 'silent' })),
  );
  /** Every secret value this scenario planted or read back: none may appear in a log. */
  readonly canaries = new Set<string>();
  postgres!: PrivatePostgres;
  redis!: PrivateRedis;
  pool!: pg.Pool;

  private constructor(readonly name: string) {}

  static async create(name: string, opts: { redis?: PrivateRedisOptions } = {}): Promise<ChaosEnv> {
    const env = new ChaosEnv(name);
    try {
      const [postgres, redis] = await Promise.all([PrivatePostgres.start(), PrivateRedis.start(opts.redis)]);
      env.postgres = postgres;
      env.redis = redis;
      env.cleanups.push('private postgres', () => postgres.cleanup());
      env.cleanups.push('private redis', () => redis.cleanup());
      await ensureDatabase(env.databaseUrl);
      env.pool = createPool(env.databaseUrl, { max: 4, applicationName: 'rekey-chaos' });
      env.cleanups.push('verdict pool', () => env.pool.end());
      await migrate(env.pool);
    } catch (err) {
      await env.cleanup();
      throw err;
    }
    return env;
  }

  get databaseUrl(): string {
    return this.postgres.url('rekey');
  }

  /** Environment for a role process; `overrides` e.g. point REDIS_URL at a fault proxy. */
  roleEnv(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'test',
      DATABASE_URL: this.databaseUrl,
      REDIS_URL: this.redis.url,
      REKEY_REDIS_PREFIX: 'chaos',
      REKEY_MASTER_KEY: this.masterKey,
      REKEY_ADMIN_TOKEN: this.adminToken,
      LOG_LEVEL: 'info',
      PORT: '0',
      SCHEDULER_TICK_MS: '200',
      RECONCILE_INTERVAL_MS: '2000',
      JOB_LOCK_MS: '3000',
      ROTATION_BACKOFF_MS: '300',
      ROTATION_ATTEMPTS: '8',
      ...overrides,
    };
  }

  /** Starts a role process (waits until it is up) and registers its SIGKILL as a cleanup. */
  async start(roles: string[], overrides: Record<string, string> = {}, label?: string): Promise<RoleProcess> {
    const p = new RoleProcess(roles, this.roleEnv(overrides), label);
    this.processes.push(p);
    this.cleanups.push(`process ${p.label}`, () => p.kill());
    await p.start();
    return p;
  }

  /** The usual topology: api, scheduler, two rotators, one notifier, each its own process. */
  async startPipeline(overrides: Record<string, string> = {}): Promise<Pipeline> {
    const [api, scheduler, rotatorA, rotatorB, notifier] = await Promise.all([
      this.start(['api'], overrides, 'api'),
      this.start(['scheduler'], overrides, 'scheduler'),
      this.start(['rotator'], overrides, 'rotator-a'),
      this.start(['rotator'], overrides, 'rotator-b'),
      this.start(['notifier'], overrides, 'notifier'),
    ]);
    return { api: api!, scheduler: scheduler!, rotators: [rotatorA!, rotatorB!], notifier: notifier! };
  }

  /** Admin call to an api process. */
  async api(proc: RoleProcess, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(`http://127.0.0.1:${proc.apiPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {}
    return { status: res.status, body: parsed };
  }

  /** All role-process output so far. */
  logs(): string {
    return this.processes.map((p) => p.text()).join('\n');
  }

  async cleanup(): Promise<string[]> {
    return this.cleanups.runAll();
  }
}

export interface Pipeline {
  api: RoleProcess;
  scheduler: RoleProcess;
  rotators: RoleProcess[];
  notifier: RoleProcess;
}
