import { CompactSign, SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK, type CryptoKey } from 'jose';
import type pg from 'pg';
import { withTransaction } from '../db/pool.ts';
import type { ValueCipher } from './value-cipher.ts';

const alg = 'EdDSA';

/**
 * rekey's own signing key: it signs invalidation events (and, later, subscriber tokens).
 * Its public half is served in /v1/jwks so injectors can verify what they receive. The
 * private half is sealed like any secret value.
 */
export class SystemKeys {
  private constructor(
    readonly kid: string,
    private readonly privateKey: CryptoKey,
  ) {}

  static async load(pool: pg.Pool, cipher: ValueCipher): Promise<SystemKeys> {
    return withTransaction(pool, async (client) => {
      // Replicas starting together must agree on one key.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('rekey:system-keys'))`);
      const { rows } = await client.query(
        'SELECT * FROM system_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1',
      );
      let kid: string;
      let privateJwk: JWK;
      if (rows[0]) {
        kid = rows[0].kid;
        privateJwk = JSON.parse(cipher.open(`system:${kid}`, 0, { keyId: rows[0].key_id, iv: rows[0].iv, ciphertext: rows[0].ciphertext, tag: rows[0].tag }));
      } else {
        const pair = await generateKeyPair(alg, { extractable: true });
        const publicJwk = await exportJWK(pair.publicKey);
        kid = `rekey-${await calculateJwkThumbprint(publicJwk)}`;
        privateJwk = await exportJWK(pair.privateKey);
        const sealed = cipher.seal(`system:${kid}`, 0, JSON.stringify(privateJwk));
        await client.query(
          `INSERT INTO system_keys (kid, alg, public_jwk, key_id, iv, ciphertext, tag) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [kid, alg, { ...publicJwk, kid, alg, use: 'sig' }, sealed.keyId, sealed.iv, sealed.ciphertext, sealed.tag],
        );
      }
      return new SystemKeys(kid, (await importJWK(privateJwk, alg)) as CryptoKey);
    });
  }

  static async publicJwks(db: Pick<pg.Pool, 'query'>): Promise<Record<string, unknown>[]> {
    const { rows } = await db.query<{ public_jwk: Record<string, unknown> }>(
      'SELECT public_jwk FROM system_keys WHERE retired_at IS NULL ORDER BY created_at DESC',
    );
    return rows.map((r) => r.public_jwk);
  }

  async sign(payload: object, typ: string): Promise<string> {
    return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
      .setProtectedHeader({ alg, kid: this.kid, typ })
      .sign(this.privateKey);
  }

  /** A JWT signed with the same key (subscriber tokens); claims are the caller's, checked by its verifier. */
  async signJwt(claims: Record<string, unknown>, opts: { issuer: string; audience: string; subject: string; jti: string; expiresAt: Date }): Promise<string> {
    return new SignJWT(claims)
      .setProtectedHeader({ alg, kid: this.kid, typ: 'JWT' })
      .setIssuer(opts.issuer)
      .setAudience(opts.audience)
      .setSubject(opts.subject)
      .setJti(opts.jti)
      .setIssuedAt()
      .setExpirationTime(Math.floor(opts.expiresAt.getTime() / 1000))
      .sign(this.privateKey);
  }
}
