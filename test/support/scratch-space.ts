import type { Redis } from 'ioredis';
import { ensureDatabase } from '../../shared/db/ensure-database.ts';
import { createPool, type Pool } from '../../shared/db/pool.ts';
import { migrate } from '../../shared/db/migrate.ts';

export interface ScratchDatabase {
  databaseUrl: string;
  pool: Pool;
  /** Ends the pool and drops the database (even with sessions still open). */
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database named `name` on the server `serverUrl` points at: how tests,
 * benchmarks and chaos runs isolate themselves, by name, on a shared PostgreSQL.
 */
export async function createScratchDatabase(serverUrl: string, name: string, poolMax = 4): Promise<ScratchDatabase> {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  await ensureDatabase(databaseUrl);
  const pool = createPool(databaseUrl, { max: poolMax });
  await migrate(pool);
  return {
    databaseUrl,
    pool,
    async drop() {
      await pool.end().catch(() => {});
      const admin = createPool(serverUrl, { max: 1 });
      try {
        await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** Deletes every Redis key under `prefix:` (queues, streams), and nothing else. */
export async function deleteKeysWithPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}
