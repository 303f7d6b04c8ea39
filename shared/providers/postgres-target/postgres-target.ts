import { createHash } from 'node:crypto';
import pg from 'pg';
import { connectionConfig } from '../../db/pool.ts';
import { RekeyError } from '../../errors.ts';
import { targetFailure } from '../target-errors.ts';

/**
 * Connections to a PostgreSQL credential target, shared by the postgres-password and
 * postgres-dynamic providers.
 *
 * Admin connections are pooled per admin URL (keyed by its digest, so the URL with its
 * password is not a map key anyone could dump), small, and idle out: a process that
 * rotates a few secrets keeps no connections open between rotations, and a pool never
 * keeps the process alive. A changed admin credential (a new URL behind the reference)
 * simply gets a new pool.
 */
const pools = new Map<string, pg.Pool>();
const maxPools = 32;

const CONNECT_TIMEOUT_MS = 3000;
const QUERY_TIMEOUT_MS = 15_000;

function adminPool(adminUrl: string): pg.Pool {
  const key = createHash('sha256').update(adminUrl).digest('hex');
  let pool = pools.get(key);
  if (!pool) {
    if (pools.size >= maxPools) {
      const [oldestKey, oldest] = pools.entries().next().value!;
      pools.delete(oldestKey);
      void oldest.end().catch(() => {});
    }
    pool = new pg.Pool({
      ...connectionConfig(adminUrl),
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      max: 4,
      idleTimeoutMillis: 5000,
      allowExitOnIdle: true,
      application_name: 'rekey-provider',
    });
    pool.on('error', () => {});
    pools.set(key, pool);
  }
  return pool;
}

/**
 * Runs fn on an admin connection. Any error leaves as UnavailableError or ProviderError
 * with `secrets` (and statement fragments) cut out of its message.
 */
export async function withAdmin<T>(adminUrl: string, action: string, secrets: readonly string[], fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient | undefined;
  try {
    client = await adminPool(adminUrl).connect();
    return await fn(client);
  } catch (err) {
    // A client that failed mid-statement may be broken; do not return it to the pool.
    client?.release(true);
    client = undefined;
    if (err instanceof RekeyError) throw err;
    throw targetFailure(err, action, [...secrets, adminUrl, passwordOf(adminUrl)]);
  } finally {
    client?.release();
  }
}

/**
 * Opens a fresh connection as `username` with `password` (never pooled: the point is to
 * prove a new login works) and returns current_user. `database` defaults to the admin
 * URL's database.
 */
export async function loginAs(adminUrl: string, database: string | undefined, username: string, password: string): Promise<string> {
  const url = new URL(adminUrl);
  url.username = encodeURIComponent(username);
  url.password = encodeURIComponent(password);
  if (database) url.pathname = `/${encodeURIComponent(database)}`;
  const client = new pg.Client({
    connectionString: url.toString(),
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    application_name: 'rekey-probe',
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ user: string }>('SELECT current_user AS user');
    return rows[0]!.user;
  } catch (err) {
    throw targetFailure(err, `log in as ${username}`, [password, adminUrl, passwordOf(adminUrl)]);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Ends sessions of `role` (not our own). With `startedBefore`, only sessions that began
 * before it: where a role has one password, those are the ones opened with the old one.
 */
export async function terminateRoleSessions(c: pg.PoolClient, role: string, startedBefore: Date | null): Promise<number> {
  const { rows } = await c.query<{ n: string }>(
    `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity
     WHERE usename = $1 AND pid <> pg_backend_pid() AND ($2::timestamptz IS NULL OR backend_start < $2)`,
    [role, startedBefore],
  );
  return Number(rows[0]!.n);
}

export async function roleExists(c: pg.PoolClient, role: string): Promise<boolean> {
  const { rowCount } = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
  return rowCount === 1;
}

export const ident = (name: string) => pg.escapeIdentifier(name);
export const literal = (text: string) => pg.escapeLiteral(text);

function passwordOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return '';
  }
}

/** Ends every pooled admin connection (benchmarks and tests that want a clean exit). */
export async function closeTargetPools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.allSettled(all.map((p) => p.end()));
}
