import { ConflictError, NotFoundError } from '../errors.ts';
import type { Queryable } from './pool.ts';

/**
 * Records that a subscriber holds `version` of a secret: the newest ack per secret, and
 * every delivery of a rotation up to that version. Returns the rotations whose delivery
 * this ack closed, for the caller to check for completion AFTER this commits (so the last
 * of several concurrent acks always sees all the others).
 */
export async function recordAck(db: Queryable, subscriberId: string, secretName: string, version: number): Promise<string[]> {
  const { rows: secrets } = await db.query<{ id: string; current_version: number | null; latest_version: number }>(
    'SELECT id, current_version, latest_version FROM secrets WHERE name = $1 AND deleted_at IS NULL',
    [secretName],
  );
  const secret = secrets[0];
  if (!secret) throw new NotFoundError(`secret ${secretName} not found`);
  if (secret.current_version === null || version > secret.current_version) {
    throw new ConflictError(`version ${version} of ${secretName} is not active`);
  }
  const { rows } = await db.query<{ rotation_id: string }>(
    `WITH ack AS (
       INSERT INTO subscriber_acks (subscriber_id, secret_id, version) VALUES ($1, $2, $3)
       ON CONFLICT (subscriber_id, secret_id) DO UPDATE
         SET version = GREATEST(subscriber_acks.version, EXCLUDED.version), acked_at = now()
     )
     UPDATE deliveries d SET acked_version = $3, acked_at = now(), delivered_at = COALESCE(d.delivered_at, now())
     FROM rotations r
     WHERE d.rotation_id = r.id AND r.secret_id = $2 AND r.to_version <= $3 AND d.subscriber_id = $1 AND d.acked_at IS NULL
     RETURNING d.rotation_id`,
    [subscriberId, secret.id, version],
  );
  return rows.map((r) => r.rotation_id);
}

export async function markDelivered(db: Queryable, rotationId: string, subscriberIds: string[]): Promise<void> {
  await db.query(
    `UPDATE deliveries SET delivered_at = COALESCE(delivered_at, now()), attempts = attempts + 1, last_attempt_at = now()
     WHERE rotation_id = $1 AND subscriber_id = ANY($2::uuid[])`,
    [rotationId, subscriberIds],
  );
}
