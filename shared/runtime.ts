import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { baseEnv, parseEnv, type BaseConfig } from './config.ts';
import { createPool } from './db/pool.ts';
import { loadMasterKey } from './crypto/master-key.ts';
import { ValueCipher } from './crypto/value-cipher.ts';
import { ConfigError } from './errors.ts';
import { createLogger, type Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { QueueClient } from './queues/queue-client.ts';
import type { DestinationStream } from 'pino';

/**
 * What every role of a process shares: one pool, one queue client, one cipher, one
 * metrics registry, one logger. Built once in a process's composition root.
 */
export interface Runtime {
  config: BaseConfig;
  env: NodeJS.ProcessEnv;
  log: Logger;
  pool: pg.Pool;
  queues: QueueClient;
  cipher: ValueCipher;
  metrics: Metrics;
  /** A Redis connection for publishing events and reading streams (not for BullMQ). */
  redis: Redis;
  resolveReference: (ref: string) => string;
  /** Registers a cleanup; `close()` runs them last-in first-out, all of them, even if one throws. */
  defer(cleanup: () => Promise<void> | void): void;
  close(): Promise<void>;
}

/** `env:NAME` or `file:/path` → the referenced text. Config names the reference, never the credential. */
export function referenceResolver(env: NodeJS.ProcessEnv) {
  return (ref: string): string => {
    if (ref.startsWith('env:')) {
      const name = ref.slice(4);
      const v = env[name];
      if (v === undefined || v === '') throw new ConfigError(`${name}: referenced by ${ref} but not set`);
      return v;
    }
    if (ref.startsWith('file:')) return readFileSync(ref.slice(5), 'utf8').trim();
    throw new ConfigError(`reference must start with env: or file: (got ${ref.split(':')[0]})`);
  };
}

export function createRuntime(
  env: NodeJS.ProcessEnv = process.env,
  opts: { logDestination?: DestinationStream; name?: string } = {},
): Runtime {
  const config = parseEnv(baseEnv, env);
  const log = createLogger({ level: config.LOG_LEVEL, name: opts.name }, opts.logDestination);
  const cipher = new ValueCipher(loadMasterKey(config, log));
  const pool = createPool(config.DATABASE_URL, { max: config.DATABASE_POOL_MAX, applicationName: opts.name ?? 'rekey' });
  const queues = new QueueClient(config.REDIS_URL, config.REKEY_REDIS_PREFIX);
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2, enableOfflineQueue: false });
  redis.on('error', () => {});
  const cleanups: (() => Promise<void> | void)[] = [
    () => pool.end(),
    () => void redis.disconnect(),
    () => queues.close(),
  ];
  let closing: Promise<void> | null = null;
  return {
    config,
    env,
    log,
    pool,
    queues,
    cipher,
    metrics: new Metrics(),
    redis,
    resolveReference: referenceResolver(env),
    defer: (cleanup) => void cleanups.push(cleanup),
    close() {
      closing ??= (async () => {
        const errors: unknown[] = [];
        for (const cleanup of cleanups.reverse()) {
          try {
            await cleanup();
          } catch (err) {
            errors.push(err);
          }
        }
        if (errors.length) throw new AggregateError(errors, 'shutdown had errors');
      })();
      return closing;
    },
  };
}
