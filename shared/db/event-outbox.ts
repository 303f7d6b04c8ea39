import type { Queryable } from './pool.ts';
import type { RotationRow } from './rows.ts';
import { eventId, type InvalidationData } from '../events/invalidation-event.ts';
import type { EventType } from '../queues/job-catalogue.ts';

/**
 * Records an event in the outbox inside the caller's transaction, so the state change and
 * the event commit together. Idempotent on the event id.
 */
export async function recordEvent(db: Queryable, type: EventType, rotation: RotationRow, secretName: string): Promise<void> {
  const data: InvalidationData = {
    secret: secretName,
    version: rotation.to_version,
    previousVersion: rotation.from_version,
    rotationId: rotation.id,
    emergency: rotation.emergency,
    revokeAt: rotation.revoke_after?.toISOString() ?? null,
  };
  await db.query(
    `INSERT INTO events (id, type, rotation_id, secret_id, data) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
    [eventId(rotation.id, type), type, rotation.id, rotation.secret_id, data],
  );
}

export interface OutboxEvent {
  id: string;
  type: EventType;
  rotation_id: string;
  data: InvalidationData;
  created_at: Date;
  jws: string | null;
  published_at: Date | null;
}

export async function findEvent(db: Queryable, id: string): Promise<OutboxEvent | null> {
  const { rows } = await db.query<OutboxEvent>('SELECT * FROM events WHERE id = $1', [id]);
  return rows[0] ?? null;
}

export async function unpublishedEvents(db: Queryable, olderThanMs: number, limit: number): Promise<OutboxEvent[]> {
  const { rows } = await db.query<OutboxEvent>(
    `SELECT * FROM events WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1::float8 / 1000)
     ORDER BY created_at LIMIT $2`,
    [olderThanMs, limit],
  );
  return rows;
}
