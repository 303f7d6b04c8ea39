import type pg from 'pg';
import type { Queryable } from './pool.ts';
import type { SecretRow } from './rows.ts';

export interface NewSecret {
  name: string;
  provider: string;
  config: Record<string, unknown>;
  policy: Record<string, unknown>;
  nextRotationAt: Date | null;
}

/** Inserts a secret; returns null when a live secret already has that name. */
export async function insertSecret(db: Queryable, s: NewSecret): Promise<SecretRow | null> {
  const { rows } = await db.query<SecretRow>(
    `INSERT INTO secrets (name, provider, config, policy, next_rotation_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (name) WHERE deleted_at IS NULL DO NOTHING
     RETURNING *`,
    [s.name, s.provider, s.config, s.policy, s.nextRotationAt],
  );
  return rows[0] ?? null;
}

export async function findSecret(db: Queryable, name: string): Promise<SecretRow | null> {
  const { rows } = await db.query<SecretRow>('SELECT * FROM secrets WHERE name = $1 AND deleted_at IS NULL', [name]);
  return rows[0] ?? null;
}

export async function listSecrets(db: Queryable, opts: { prefix?: string; limit: number; after?: string }): Promise<SecretRow[]> {
  const { rows } = await db.query<SecretRow>(
    `SELECT * FROM secrets WHERE deleted_at IS NULL
       AND ($1::text IS NULL OR starts_with(name, $1))
       AND ($2::text IS NULL OR name > $2)
     ORDER BY name LIMIT $3`,
    [opts.prefix ?? null, opts.after ?? null, opts.limit],
  );
  return rows;
}

export async function updateSecretPolicy(
  db: Queryable,
  name: string,
  policy: Record<string, unknown>,
  nextRotationAt: Date | null,
): Promise<SecretRow | null> {
  const { rows } = await db.query<SecretRow>(
    `UPDATE secrets SET policy = $2, next_rotation_at = $3, updated_at = now()
     WHERE name = $1 AND deleted_at IS NULL RETURNING *`,
    [name, policy, nextRotationAt],
  );
  return rows[0] ?? null;
}

/**
 * Soft-deletes a secret: it stops rotating, unfinished rotations fail, and every stored
 * value is crypto-shredded. What the target still accepts is left as it is.
 */
export async function deleteSecret(client: pg.PoolClient, name: string): Promise<SecretRow | null> {
  const { rows } = await client.query<SecretRow>(
    `UPDATE secrets SET deleted_at = now(), next_rotation_at = NULL, active_rotation_id = NULL, fence = fence + 1
     WHERE name = $1 AND deleted_at IS NULL RETURNING *`,
    [name],
  );
  const secret = rows[0];
  if (!secret) return null;
  await client.query(
    `UPDATE rotations SET status = 'failed', failed_step = status, error = 'secret deleted', failed_at = now(), updated_at = now()
     WHERE secret_id = $1 AND status NOT IN ('completed', 'failed')`,
    [secret.id],
  );
  await client.query(
    `UPDATE secret_versions SET state = 'revoked', revoked_at = coalesce(revoked_at, now()),
       key_id = NULL, iv = NULL, ciphertext = NULL, tag = NULL
     WHERE secret_id = $1`,
    [secret.id],
  );
  return secret;
}
