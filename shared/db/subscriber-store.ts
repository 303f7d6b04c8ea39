import type { Queryable } from './pool.ts';

export interface SubscriberRow {
  id: string;
  name: string;
  scope: string[];
  created_at: Date;
  revoked_at: Date | null;
  token_id: string | null;
  token_expires_at: Date | null;
  webhook_url: string | null;
  webhook_key_id: string | null;
  webhook_iv: Buffer | null;
  webhook_ciphertext: Buffer | null;
  webhook_tag: Buffer | null;
  last_seen_at: Date | null;
}

export async function insertSubscriber(
  db: Queryable,
  s: { id: string; name: string; scope: string[]; tokenId: string; tokenExpiresAt: Date; webhookUrl: string | null; webhookSealed: { keyId: string; iv: Buffer; ciphertext: Buffer; tag: Buffer } | null },
): Promise<SubscriberRow | null> {
  const { rows } = await db.query<SubscriberRow>(
    `INSERT INTO subscribers (id, name, scope, token_id, token_expires_at, webhook_url, webhook_key_id, webhook_iv, webhook_ciphertext, webhook_tag)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING RETURNING *`,
    [s.id, s.name, s.scope, s.tokenId, s.tokenExpiresAt, s.webhookUrl, s.webhookSealed?.keyId ?? null, s.webhookSealed?.iv ?? null, s.webhookSealed?.ciphertext ?? null, s.webhookSealed?.tag ?? null],
  );
  return rows[0] ?? null;
}

export async function findSubscriber(db: Queryable, id: string): Promise<SubscriberRow | null> {
  const { rows } = await db.query<SubscriberRow>('SELECT * FROM subscribers WHERE id = $1', [id]);
  return rows[0] ?? null;
}

export async function findSubscribers(db: Queryable, ids: string[]): Promise<SubscriberRow[]> {
  const { rows } = await db.query<SubscriberRow>('SELECT * FROM subscribers WHERE id = ANY($1::uuid[])', [ids]);
  return rows;
}

export async function listSubscribers(db: Queryable, opts: { includeRevoked: boolean }): Promise<SubscriberRow[]> {
  const { rows } = await db.query<SubscriberRow>(
    `SELECT * FROM subscribers ${opts.includeRevoked ? '' : 'WHERE revoked_at IS NULL'} ORDER BY name, created_at`,
  );
  return rows;
}

/** Revokes the live subscriber with this id or name; null if there is none. */
export async function revokeSubscriber(db: Queryable, idOrName: string): Promise<SubscriberRow | null> {
  const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrName);
  const { rows } = await db.query<SubscriberRow>(
    `UPDATE subscribers SET revoked_at = now() WHERE revoked_at IS NULL AND ${isUuid ? 'id = $1::uuid' : 'name = $1'} RETURNING *`,
    [idOrName],
  );
  return rows[0] ?? null;
}

export async function touchSubscribers(db: Queryable, ids: string[]): Promise<void> {
  if (ids.length) await db.query('UPDATE subscribers SET last_seen_at = now() WHERE id = ANY($1::uuid[])', [ids]);
}
