import { CompactSign, calculateJwkThumbprint, compactVerify, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { z } from 'zod';
import type { CredentialProvider } from '../provider.ts';
import { ProviderError } from '../../errors.ts';

const configSchema = z.object({ alg: z.enum(['EdDSA', 'ES256']).default('EdDSA') }).strict();
type JwtSigningKeyConfig = z.infer<typeof configSchema>;

/**
 * An asymmetric signing key pair. The private JWK is the secret value; the public JWK
 * (with its thumbprint as `kid`) goes in `public.jwk` and is served by GET /v1/jwks while
 * the version is current or previous. Revocation = the version leaves the JWKS.
 */
export const jwtSigningKeyProvider: CredentialProvider<JwtSigningKeyConfig> = {
  type: 'jwt-signing-key',
  configSchema,
  async mint({ config }) {
    const { privateKey, publicKey } = await generateKeyPair(config.alg, { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const privateJwk = await exportJWK(privateKey);
    return {
      value: JSON.stringify({ ...privateJwk, kid, alg: config.alg }),
      public: { kid, alg: config.alg, jwk: { ...publicJwk, kid, alg: config.alg, use: 'sig' } },
    };
  },
  async set() {},
  /** Signs a probe with the private key and verifies it with the published public key. */
  async test(_ctx, next) {
    const jwk = next.public.jwk as JWK;
    const privateKey = await importJWK(JSON.parse(next.value) as JWK, jwk.alg);
    const probe = new TextEncoder().encode(`rekey-probe:${next.version}`);
    const jws = await new CompactSign(probe).setProtectedHeader({ alg: jwk.alg as string, kid: jwk.kid }).sign(privateKey);
    try {
      await compactVerify(jws, await importJWK(jwk, jwk.alg));
    } catch {
      throw new ProviderError('signing key pair failed its sign/verify probe');
    }
  },
  async revoke() {},
};
