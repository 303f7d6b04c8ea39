import pg from 'pg';
import { connectionConfig } from './pool.ts';

/** Creates the database DATABASE_URL names if it does not exist yet (first run, demo, CI). */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  if (!name) return false;
  url.pathname = '/postgres';
  const client = new pg.Client(connectionConfig(url.toString()));
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return false;
    await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
    return true;
  } catch (err) {
    // Another process created it between our check and our create.
    if ((err as { code?: string }).code === '42P04') return false;
    throw err;
  } finally {
    await client.end();
  }
}
