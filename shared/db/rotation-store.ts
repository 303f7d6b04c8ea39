import type { Queryable } from './pool.ts';
import type { RotationRow, RotationStatus, RotationTrigger } from './rows.ts';

export interface RotationRequest {
  secretId: string;
  trigger: RotationTrigger;
  reason: string | null;
  emergency: boolean;
  triggeredAt?: Date;
}

export interface RequestedRotation {
  rotation: RotationRow;
  /** True when the request joined a rotation of the same secret that had not started yet. */
  coalesced: boolean;
}

/**
 * Records a rotation request durably. At most one rotation per secret waits in `queued`;
 * a request that arrives while one waits joins it (the waiting rotation has not minted
 * anything yet, so it still yields a credential newer than the request). An emergency
 * request upgrades the waiting rotation to emergency (and re-labels it as that trigger). Requests that arrive while a
 * rotation is already running queue a new one behind it.
 */
export async function requestRotation(db: Queryable, req: RotationRequest): Promise<RequestedRotation> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const inserted = await db.query<RotationRow>(
      `INSERT INTO rotations (secret_id, trigger, reason, emergency, status, triggered_at)
       VALUES ($1, $2, $3, $4, 'queued', $5)
       ON CONFLICT (secret_id) WHERE status = 'queued' DO NOTHING
       RETURNING *`,
      [req.secretId, req.trigger, req.reason, req.emergency, req.triggeredAt ?? new Date()],
    );
    if (inserted.rows[0]) return { rotation: inserted.rows[0], coalesced: false };
    // An emergency upgrading a waiting rotation takes it over: its trigger, reason and
    // triggeredAt become the emergency's, so time-to-revoke is measured from the alarm.
    const existing = await db.query<RotationRow>(
      `UPDATE rotations SET
         trigger = CASE WHEN $2 AND NOT emergency THEN $3 ELSE trigger END,
         reason = CASE WHEN $2 AND NOT emergency THEN $4 ELSE reason END,
         triggered_at = CASE WHEN $2 AND NOT emergency THEN $5 ELSE triggered_at END,
         emergency = emergency OR $2, updated_at = now()
       WHERE secret_id = $1 AND status = 'queued' RETURNING *`,
      [req.secretId, req.emergency, req.trigger, req.reason, req.triggeredAt ?? new Date()],
    );
    if (existing.rows[0]) return { rotation: existing.rows[0], coalesced: true };
    // The queued rotation started between our two statements; try again.
  }
  throw new Error('could not record rotation request: contention on the queued rotation');
}

export async function findRotation(db: Queryable, id: string): Promise<RotationRow | null> {
  const { rows } = await db.query<RotationRow>('SELECT * FROM rotations WHERE id = $1', [id]);
  return rows[0] ?? null;
}

export async function listRotations(
  db: Queryable,
  opts: { secretId?: string; status?: RotationStatus; limit: number },
): Promise<(RotationRow & { secret_name: string })[]> {
  const { rows } = await db.query<RotationRow & { secret_name: string }>(
    `SELECT r.*, s.name AS secret_name FROM rotations r JOIN secrets s ON s.id = r.secret_id
     WHERE ($1::bigint IS NULL OR r.secret_id = $1) AND ($2::text IS NULL OR r.status = $2)
     ORDER BY r.triggered_at DESC LIMIT $3`,
    [opts.secretId ?? null, opts.status ?? null, opts.limit],
  );
  return rows;
}

/** Rotations PostgreSQL says are unfinished; the reconciler makes sure each has a job. */
export async function unfinishedRotations(db: Queryable, olderThanMs: number, limit: number): Promise<RotationRow[]> {
  const { rows } = await db.query<RotationRow>(
    `SELECT * FROM rotations WHERE status NOT IN ('completed', 'failed')
       AND updated_at < now() - make_interval(secs => $1::float8 / 1000)
     ORDER BY updated_at LIMIT $2`,
    [olderThanMs, limit],
  );
  return rows;
}
