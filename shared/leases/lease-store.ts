import type { Queryable } from '../db/pool.ts';

/** A lease row joined with what acting on it at the target needs (its secret's config). */
export interface LeaseRow {
  id: string;
  secret_id: string;
  secret_name: string;
  secret_config: Record<string, unknown>;
  version: number;
  username: string;
  created_at: Date;
  expires_at: Date;
  max_expires_at: Date;
  renewed_at: Date | null;
  revoked_at: Date | null;
  revoke_reason: string | null;
  last_error: string | null;
}

const selectLease = `SELECT l.*, s.name AS secret_name, s.config AS secret_config FROM leases l JOIN secrets s ON s.id = l.secret_id`;

export async function insertLease(
  db: Queryable,
  l: { secretId: string; version: number; username: string; expiresAt: Date; maxExpiresAt: Date },
): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO leases (secret_id, version, username, expires_at, max_expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
    [l.secretId, l.version, l.username, l.expiresAt, l.maxExpiresAt],
  );
  return rows[0]!.id;
}

export async function findLease(db: Queryable, id: string, opts: { forUpdate?: boolean } = {}): Promise<LeaseRow | null> {
  const { rows } = await db.query<LeaseRow>(`${selectLease} WHERE l.id = $1${opts.forUpdate ? ' FOR UPDATE OF l' : ''}`, [id]);
  return rows[0] ?? null;
}

export async function setLeaseExpiry(db: Queryable, id: string, expiresAt: Date): Promise<void> {
  await db.query('UPDATE leases SET expires_at = $2, renewed_at = now() WHERE id = $1', [id, expiresAt]);
}

export async function markLeaseRevoked(db: Queryable, id: string, reason: string, error: string | null = null): Promise<void> {
  await db.query(
    `UPDATE leases SET revoked_at = coalesce(revoked_at, now()), revoke_reason = coalesce(revoke_reason, $2), last_error = $3 WHERE id = $1`,
    [id, reason, error],
  );
}

export async function recordLeaseError(db: Queryable, id: string, error: string): Promise<void> {
  await db.query('UPDATE leases SET last_error = $2 WHERE id = $1', [id, error]);
}

/**
 * Live leases that must end now: expired, or issued under a version that was revoked
 * (the provider dropped their roles; the row still has to say so). Locked with SKIP
 * LOCKED, so scheduler replicas split the work and never drop the same role twice.
 */
export async function lockLeasesToReap(db: Queryable, limit: number): Promise<(LeaseRow & { version_revoked: boolean })[]> {
  const { rows } = await db.query<LeaseRow & { version_revoked: boolean }>(
    `SELECT l.*, s.name AS secret_name, s.config AS secret_config, (v.state = 'revoked') AS version_revoked
     FROM leases l JOIN secrets s ON s.id = l.secret_id
     JOIN secret_versions v ON v.secret_id = l.secret_id AND v.version = l.version
     WHERE l.revoked_at IS NULL AND (l.expires_at <= now() OR v.state = 'revoked')
     ORDER BY l.expires_at LIMIT $1 FOR UPDATE OF l SKIP LOCKED`,
    [limit],
  );
  return rows;
}

export function leaseView(l: Pick<LeaseRow, 'id' | 'secret_name' | 'version' | 'username' | 'created_at' | 'expires_at' | 'renewed_at' | 'revoked_at' | 'revoke_reason'>) {
  return {
    leaseId: l.id,
    secret: l.secret_name,
    version: l.version,
    username: l.username,
    createdAt: l.created_at,
    expiresAt: l.expires_at,
    renewedAt: l.renewed_at,
    revokedAt: l.revoked_at,
    revokeReason: l.revoke_reason,
  };
}
