import { userInfo } from 'node:os';
import pg from 'pg';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

/**
 * Connection settings from a URL. A URL without a user (the default
 * postgres://127.0.0.1:5432/rekey) connects as the OS user, as psql does.
 */
export function connectionConfig(databaseUrl: string): pg.ClientConfig {
  const url = new URL(databaseUrl);
  if (!url.username) url.username = process.env.PGUSER || userInfo().username;
  return { connectionString: url.toString(), connectionTimeoutMillis: 5000 };
}

export function createPool(databaseUrl: string, opts: { max?: number; applicationName?: string } = {}): pg.Pool {
  const pool = new pg.Pool({
    ...connectionConfig(databaseUrl),
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'rekey',
    // A worker frozen inside a transaction (a partition, a stopped process) would hold its
    // secret's row lock and stall everyone behind it; the server ends such sessions. The
    // longest legitimate pause inside a transaction is a target call (under 20 s).
    idle_in_transaction_session_timeout: 60_000,
  });
  // An idle client losing its server must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  return pool;
}

/** Runs fn in a transaction; rolls back on any throw and always releases the client. */
export async function withTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // The pool listens for errors only on idle clients. A server that goes away while we hold
  // this one between two statements (shutdown, crash, failover) makes it emit 'error' with
  // no listener, which would kill the process (found by chaos/ postgres-down). Keep the
  // error, let the next statement fail, and throw the broken client away on release.
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken = err;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}
