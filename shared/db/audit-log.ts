import { createHash } from 'node:crypto';
import type pg from 'pg';
import { withTransaction } from './pool.ts';

export interface AuditEntry {
  actor: string;
  action: string;
  target?: string | null;
  outcome: 'ok' | 'refused' | 'failed' | string;
  /** Never a secret value or a signature; ids, reasons and error codes only. */
  details?: Record<string, unknown>;
}

const genesis = '0'.repeat(64);

/** JSON with object keys sorted at every level, so a row hashes the same after a jsonb round trip. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

function rowHash(prevHash: string, at: string, e: Required<AuditEntry>): string {
  return createHash('sha256')
    .update(prevHash)
    .update(canonical([at, e.actor, e.action, e.target, e.outcome, e.details]))
    .digest('hex');
}

async function appendWith(client: pg.PoolClient, entry: AuditEntry): Promise<void> {
  // The chain needs one writer at a time; the lock is held until the caller's commit.
  await client.query(`SELECT pg_advisory_xact_lock(hashtext('rekey:audit'))`);
  const prev = await client.query<{ hash: string }>('SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1');
  const prevHash = prev.rows[0]?.hash ?? genesis;
  const at = new Date().toISOString();
  const e = { target: null, details: {}, ...entry } as Required<AuditEntry>;
  await client.query(
    `INSERT INTO audit_events (at, actor, action, target, outcome, details, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [at, e.actor, e.action, e.target, e.outcome, e.details, prevHash, rowHash(prevHash, at, e)],
  );
}

/** Appends inside the caller's transaction (client) or in a transaction of its own (pool). */
export async function appendAudit(db: pg.Pool | pg.PoolClient, entry: AuditEntry): Promise<void> {
  if ('release' in db) return appendWith(db, entry);
  await withTransaction(db as pg.Pool, (client) => appendWith(client, entry));
}

export interface AuditVerification {
  rows: number;
  ok: boolean;
  /** First row whose hash or link does not match. */
  brokenAt?: string;
}

export async function verifyAudit(pool: pg.Pool): Promise<AuditVerification> {
  const { rows } = await pool.query<{ id: string; at: Date; actor: string; action: string; target: string | null; outcome: string; details: Record<string, unknown>; prev_hash: string; hash: string }>(
    'SELECT * FROM audit_events ORDER BY id',
  );
  let prevHash = genesis;
  for (const r of rows) {
    const expected = rowHash(prevHash, r.at.toISOString(), { actor: r.actor, action: r.action, target: r.target, outcome: r.outcome, details: r.details });
    if (r.prev_hash !== prevHash || r.hash !== expected) return { rows: rows.length, ok: false, brokenAt: r.id };
    prevHash = r.hash;
  }
  return { rows: rows.length, ok: true };
}

export async function listAudit(pool: pg.Pool, opts: { limit: number; beforeId?: string }) {
  const { rows } = await pool.query(
    `SELECT id, at, actor, action, target, outcome, details FROM audit_events
     WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2`,
    [opts.beforeId ?? null, opts.limit],
  );
  return rows;
}
