import type { ValueCipher } from '../crypto/value-cipher.ts';
import type { Credential } from '../providers/provider.ts';
import type { Queryable } from './pool.ts';
import type { VersionRow } from './rows.ts';

export async function findVersion(db: Queryable, secretId: string, version: number): Promise<VersionRow | null> {
  const { rows } = await db.query<VersionRow>('SELECT * FROM secret_versions WHERE secret_id = $1 AND version = $2', [secretId, version]);
  return rows[0] ?? null;
}

export async function listVersions(db: Queryable, secretId: string): Promise<Omit<VersionRow, 'iv' | 'ciphertext' | 'tag'>[]> {
  const { rows } = await db.query(
    `SELECT secret_id, version, state, key_id, public, rotation_id, created_at, activated_at, revoked_at
     FROM secret_versions WHERE secret_id = $1 ORDER BY version`,
    [secretId],
  );
  return rows;
}

/** Decrypts a stored version. Throws if it was shredded or does not open under the master key. */
export function openCredential(cipher: ValueCipher, secretName: string, row: VersionRow): Credential {
  if (!row.ciphertext || !row.iv || !row.tag || !row.key_id) {
    throw new Error(`version ${row.version} of ${secretName} holds no value (shredded)`);
  }
  const value = cipher.open(secretName, row.version, { keyId: row.key_id, iv: row.iv, ciphertext: row.ciphertext, tag: row.tag });
  return { version: row.version, value, public: row.public };
}

/** Public JWKs of every live jwt-signing-key version: current, and previous while in grace. */
export async function publishedJwks(db: Queryable): Promise<Record<string, unknown>[]> {
  const { rows } = await db.query<{ jwk: Record<string, unknown> }>(
    `SELECT v.public -> 'jwk' AS jwk FROM secret_versions v JOIN secrets s ON s.id = v.secret_id
     WHERE s.deleted_at IS NULL AND v.state IN ('current', 'previous') AND v.public ? 'jwk'
     ORDER BY s.name, v.version DESC`,
  );
  return rows.map((r) => r.jwk);
}
