import { scopeMatchSql } from '../subscribers/subscriber-config.ts';
import type { Queryable } from './pool.ts';

export interface PropagatedRotation {
  id: string;
  trigger: string;
  status: string;
  emergency: boolean;
  secret_id: string;
  activated_at: Date;
  propagated_at: Date;
  revoke_after: Date | null;
}

const liveSql = `s.revoked_at IS NULL AND s.last_seen_at > now() - make_interval(secs => $LIVE::float8 / 1000)`;

/**
 * Snapshots who must acknowledge a rotation: every live subscriber in scope (stream
 * subscribers) and every webhook subscriber in scope. A subscriber that already acked
 * this version (it fetched early) starts acked. Idempotent.
 */
export async function createDeliveries(db: Queryable, r: { rotationId: string; secretId: string; secretName: string; version: number; liveMs: number }): Promise<{ webhookSubscribers: string[] }> {
  const { rows } = await db.query<{ subscriber_id: string; channel: string }>(
    `INSERT INTO deliveries (rotation_id, subscriber_id, channel, acked_version, acked_at)
     SELECT $1, s.id, CASE WHEN s.webhook_url IS NULL THEN 'stream' ELSE 'webhook' END,
            CASE WHEN a.version >= $4 THEN a.version END, CASE WHEN a.version >= $4 THEN now() END
     FROM subscribers s LEFT JOIN subscriber_acks a ON a.subscriber_id = s.id AND a.secret_id = $2
     WHERE s.revoked_at IS NULL AND (s.webhook_url IS NOT NULL OR s.last_seen_at > now() - make_interval(secs => $5::float8 / 1000))
       AND ${scopeMatchSql('$3')}
     ON CONFLICT (rotation_id, subscriber_id) DO UPDATE SET channel = EXCLUDED.channel
     RETURNING subscriber_id, channel`,
    [r.rotationId, r.secretId, r.secretName, r.version, r.liveMs],
  );
  // An ack that committed while the insert ran found no row to close and the insert did not
  // see it: close such rows now (an ack committing after this sees the rows itself).
  await db.query(
    `UPDATE deliveries d SET acked_version = a.version, acked_at = now(), delivered_at = COALESCE(d.delivered_at, now())
     FROM subscriber_acks a
     WHERE d.rotation_id = $1 AND d.acked_at IS NULL AND a.subscriber_id = d.subscriber_id AND a.secret_id = $2 AND a.version >= $3`,
    [r.rotationId, r.secretId, r.version],
  );
  return { webhookSubscribers: rows.filter((x) => x.channel === 'webhook').map((x) => x.subscriber_id) };
}

/** Live subscribers in scope of a secret now: sizes the refetch-spread hint. */
export async function countLiveInScope(db: Queryable, secretName: string, liveMs: number): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM subscribers s WHERE ${liveSql.replace('$LIVE', '$2')} AND ${scopeMatchSql('$1')}`,
    [secretName, liveMs],
  );
  return Number(rows[0]!.n);
}

/**
 * Sets propagated_at on each rotation (of `ids`, or every published unpropagated one)
 * whose every live subscriber has acked. Returns the rotations this call completed.
 */
export async function completePropagation(db: Queryable, ids: string[] | null, liveMs: number): Promise<PropagatedRotation[]> {
  const { rows } = await db.query<PropagatedRotation>(
    `UPDATE rotations r SET propagated_at = now(), updated_at = now()
     WHERE r.propagated_at IS NULL AND r.activated_at IS NOT NULL
       AND ${ids ? 'r.id = ANY($2::uuid[])' : `r.activated_at > now() - interval '7 days'`}
       AND EXISTS (SELECT 1 FROM events e WHERE e.rotation_id = r.id AND e.type = 'dev.rekey.secret.rotated' AND e.published_at IS NOT NULL)
       AND NOT EXISTS (
         SELECT 1 FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
         WHERE d.rotation_id = r.id AND d.acked_at IS NULL AND ${liveSql.replace('$LIVE', '$1')})
     RETURNING r.id, r.trigger, r.status, r.emergency, r.secret_id, r.activated_at, r.propagated_at, r.revoke_after`,
    ids ? [liveMs, ids] : [liveMs],
  );
  return rows;
}

export interface Straggler {
  rotation_id: string;
  subscriber_id: string;
  name: string;
  channel: string;
  attempts: number;
}

/** Claims (attempts + 1) unacked deliveries of unpropagated rotations to live subscribers, last tried before `olderThanMs` ago. */
export async function dueStragglers(db: Queryable, olderThanMs: number, maxAttempts: number, liveMs: number): Promise<Straggler[]> {
  const { rows } = await db.query<Straggler>(
    `UPDATE deliveries d SET attempts = d.attempts + 1, last_attempt_at = now()
     FROM subscribers s, rotations r
     WHERE s.id = d.subscriber_id AND r.id = d.rotation_id AND r.propagated_at IS NULL
       AND d.acked_at IS NULL AND d.attempts < $2 AND d.channel = 'stream'
       AND COALESCE(d.last_attempt_at, d.created_at) < now() - make_interval(secs => $1::float8 / 1000)
       AND ${liveSql.replace('$LIVE', '$3')}
       -- Rows an ack holds are acked in a moment: skip them rather than deadlock with it.
       AND d.ctid IN (SELECT ctid FROM deliveries WHERE acked_at IS NULL FOR UPDATE SKIP LOCKED)
     RETURNING d.rotation_id, d.subscriber_id, s.name, d.channel, d.attempts`,
    [olderThanMs, maxAttempts, liveMs],
  );
  return rows;
}

/** Subscribers that had not acked a rotation's new version when its previous version was revoked. */
export async function stragglersAtRevocation(db: Queryable, rotationId: string): Promise<{ subscriber_id: string; name: string; acked_version: number | null }[]> {
  const { rows } = await db.query(
    `SELECT d.subscriber_id, s.name, d.acked_version FROM deliveries d
     JOIN subscribers s ON s.id = d.subscriber_id JOIN rotations r ON r.id = d.rotation_id
     WHERE d.rotation_id = $1 AND s.revoked_at IS NULL AND (d.acked_at IS NULL OR d.acked_at > r.revoked_at)
     ORDER BY s.name`,
    [rotationId],
  );
  return rows;
}

/** Per-subscriber delivery and ack state of a rotation (GET /v1/rotations/{id}). */
export async function deliveriesOf(db: Queryable, rotationId: string) {
  const { rows } = await db.query(
    `SELECT s.id AS "subscriberId", s.name AS subscriber, d.channel, d.attempts, d.delivered_at AS "deliveredAt",
            d.acked_version AS "ackedVersion", d.acked_at AS "ackedAt", d.last_error AS "lastError"
     FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.rotation_id = $1 ORDER BY s.name`,
    [rotationId],
  );
  return rows;
}

/**
 * True when a rotation's previous version may be revoked before its grace deadline:
 * its policy says `revokeWhen: acked` and every live subscriber has acked (propagated_at).
 */
export async function ackedEarlyRevoke(db: Queryable, rotationId: string): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>(
    `SELECT r.propagated_at IS NOT NULL AND s.policy ->> 'revokeWhen' = 'acked' AS ok
     FROM rotations r JOIN secrets s ON s.id = r.secret_id WHERE r.id = $1`,
    [rotationId],
  );
  return rows[0]?.ok ?? false;
}
