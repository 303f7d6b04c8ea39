import { ConflictError, NotFoundError } from '../errors.ts';
import type { Queryable } from './pool.ts';

export interface AckInput {
  subscriberId: string;
  secret: string;
  version: number;
}

/** Per ack: null when recorded, or the error to answer with. */
export type AckOutcome = Error | null;

/**
 * Records acks in bulk (the api batches the acks that arrive in one tick): the newest ack
 * per subscriber and secret, and every delivery of a rotation up to that version. Returns
 * each ack's outcome and the rotations whose deliveries these acks closed, for the caller
 * to check for completion AFTER this commits (so the last of concurrent acks always sees
 * all the others).
 */
export async function recordAcks(db: Queryable, acks: AckInput[]): Promise<{ outcomes: AckOutcome[]; closedRotations: string[] }> {
  const names = [...new Set(acks.map((a) => a.secret))];
  const { rows: secrets } = await db.query<{ id: string; name: string; current_version: number | null }>(
    'SELECT id, name, current_version FROM secrets WHERE name = ANY($1::text[]) AND deleted_at IS NULL',
    [names],
  );
  const byName = new Map(secrets.map((s) => [s.name, s]));
  const valid: { subscriberId: string; secretId: string; version: number }[] = [];
  const outcomes = acks.map((a): AckOutcome => {
    const s = byName.get(a.secret);
    if (!s) return new NotFoundError(`secret ${a.secret} not found`);
    if (s.current_version === null || a.version > s.current_version) return new ConflictError(`version ${a.version} of ${a.secret} is not active`);
    valid.push({ subscriberId: a.subscriberId, secretId: s.id, version: a.version });
    return null;
  });
  if (!valid.length) return { outcomes, closedRotations: [] };
  const { rows } = await db.query<{ rotation_id: string }>(
    `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::int[]) AS i(subscriber_id, secret_id, version)
     ), newest AS (
       SELECT subscriber_id, secret_id, max(version) AS version FROM input GROUP BY subscriber_id, secret_id
     ), ack AS (
       INSERT INTO subscriber_acks (subscriber_id, secret_id, version) SELECT subscriber_id, secret_id, version FROM newest
       ON CONFLICT (subscriber_id, secret_id) DO UPDATE
         SET version = GREATEST(subscriber_acks.version, EXCLUDED.version), acked_at = now()
     )
     UPDATE deliveries d SET acked_version = n.version, acked_at = now(), delivered_at = COALESCE(d.delivered_at, now())
     FROM newest n, rotations r
     WHERE d.rotation_id = r.id AND r.secret_id = n.secret_id AND r.to_version <= n.version AND d.subscriber_id = n.subscriber_id AND d.acked_at IS NULL
     RETURNING d.rotation_id`,
    [valid.map((v) => v.subscriberId), valid.map((v) => v.secretId), valid.map((v) => v.version)],
  );
  return { outcomes, closedRotations: [...new Set(rows.map((r) => r.rotation_id))] };
}

export async function markDelivered(db: Queryable, rotationId: string, subscriberIds: string[]): Promise<void> {
  // Bookkeeping only: rows an ack is writing right now are skipped, never waited for (no lock-order deadlock with acks).
  await db.query(
    `UPDATE deliveries SET delivered_at = COALESCE(delivered_at, now()), attempts = attempts + 1, last_attempt_at = now()
     WHERE ctid IN (SELECT ctid FROM deliveries WHERE rotation_id = $1 AND subscriber_id = ANY($2::uuid[]) AND delivered_at IS NULL FOR UPDATE SKIP LOCKED)`,
    [rotationId, subscriberIds],
  );
}
