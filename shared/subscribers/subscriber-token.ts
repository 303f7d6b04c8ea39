import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWK } from 'jose';
import type pg from 'pg';
import { SystemKeys } from '../crypto/system-keys.ts';
import { UnauthorizedError } from '../errors.ts';

/**
 * Subscriber tokens: JWTs issued by rekey and signed with its system key (the one in
 * /v1/jwks). A token only proves who the subscriber is; its scope and whether it was
 * revoked are read from PostgreSQL (see services/api/subscriber-auth.ts), so revocation
 * takes effect at once rather than at expiry.
 */
export const tokenIssuer = 'rekey';
export const tokenAudience = 'rekey-injector';
/** The only algorithm accepted: never `none`, never an HMAC confusable with a public key. */
export const tokenAlgorithms = ['EdDSA'];

export interface TokenClaims {
  subscriberId: string;
  tokenId: string;
  /** Expiry, epoch milliseconds. */
  expiresAt: number;
}

export function issueSubscriberToken(keys: SystemKeys, t: { subscriberId: string; tokenId: string; scope: string[]; expiresAt: Date }): Promise<string> {
  return keys.signJwt({ scope: t.scope }, { issuer: tokenIssuer, audience: tokenAudience, subject: t.subscriberId, jti: t.tokenId, expiresAt: t.expiresAt });
}

export class SubscriberTokenVerifier {
  private keySet: ReturnType<typeof createLocalJWKSet> | null = null;
  private loadedAt = 0;

  constructor(private readonly db: Pick<pg.Pool, 'query'>) {}

  async verify(token: string): Promise<TokenClaims> {
    try {
      return await this.verifyWith(await this.keys(false), token);
    } catch (err) {
      // A key added after we loaded ours (another replica created it): reload once, rate limited.
      if (err instanceof joseErrors.JWKSNoMatchingKey && Date.now() - this.loadedAt > 1000) {
        return this.verifyWith(await this.keys(true), token).catch((e) => Promise.reject(refusal(e)));
      }
      throw refusal(err);
    }
  }

  private async verifyWith(keySet: ReturnType<typeof createLocalJWKSet>, token: string): Promise<TokenClaims> {
    const { payload } = await jwtVerify(token, keySet, {
      issuer: tokenIssuer,
      audience: tokenAudience,
      algorithms: tokenAlgorithms,
      requiredClaims: ['exp', 'sub', 'jti'],
      clockTolerance: 5,
    });
    return { subscriberId: payload.sub!, tokenId: payload.jti!, expiresAt: payload.exp! * 1000 };
  }

  private loading: Promise<ReturnType<typeof createLocalJWKSet>> | null = null;

  /** Loads rekey's public keys once however many requests ask at the same time. */
  private async keys(reload: boolean) {
    if (this.keySet && !reload) return this.keySet;
    this.loading ??= SystemKeys.publicJwks(this.db)
      .then((keys) => {
        this.keySet = createLocalJWKSet({ keys: keys as JWK[] });
        this.loadedAt = Date.now();
        return this.keySet;
      })
      .finally(() => (this.loading = null));
    return this.loading;
  }
}

function refusal(err: unknown): Error {
  if (err instanceof UnauthorizedError) return err;
  // jose's errors say what was wrong (expired, bad audience) without echoing the token.
  if (err instanceof joseErrors.JOSEError) return new UnauthorizedError(`invalid subscriber token: ${err.code}`);
  return err instanceof Error ? err : new UnauthorizedError('invalid subscriber token');
}
