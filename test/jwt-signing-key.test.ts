import { SignJWT, createLocalJWKSet, importJWK, jwtVerify, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';

let t: TestEnv;
let rekey: InProcessRekey;

beforeAll(async () => {
  t = await createTestEnv();
  rekey = await startRekey(t);
});
afterAll(async () => {
  await rekey?.stop();
  await t?.cleanup();
});

async function signWithCurrentKey(name: string, subject: string) {
  const { body } = await rekey.api('GET', `/v1/secrets/${name}/value`);
  const jwk = JSON.parse(body.value) as JWK;
  const key = await importJWK(jwk, jwk.alg);
  return new SignJWT({ sub: subject }).setProtectedHeader({ alg: jwk.alg!, kid: jwk.kid }).setIssuedAt().setExpirationTime('1h').sign(key);
}

/** Verifies against a fresh copy of the JWKS, as a verifier with an expired cache would. */
async function verifies(token: string): Promise<boolean> {
  const jwks = await fetch(`${rekey.baseUrl}/v1/jwks`).then((r) => r.json());
  try {
    await jwtVerify(token, createLocalJWKSet(jwks));
    return true;
  } catch {
    return false;
  }
}

describe.each(['EdDSA', 'ES256'])('jwt-signing-key (%s)', (alg) => {
  it('old tokens verify during grace and fail after revocation; new tokens verify', async () => {
    const name = `jwt/${alg.toLowerCase()}`;
    expect((await rekey.api('POST', '/v1/secrets', { name, provider: 'jwt-signing-key', config: { alg }, policy: { grace: '2s' } })).status).toBe(201);
    await waitFor(async () => (await rekey.api('GET', `/v1/secrets/${name}/value`)).status === 200, { what: 'version 1' });

    const oldToken = await signWithCurrentKey(name, 'old');
    expect(await verifies(oldToken)).toBe(true);

    const { body: rotation } = await rekey.api('POST', `/v1/secrets/${name}/rotate`, { reason: 'jwt test' });
    await waitFor(async () => (await rekey.api('GET', `/v1/rotations/${rotation.rotationId}`)).body.status === 'revoking', { what: 'grace period' });

    const newToken = await signWithCurrentKey(name, 'new');
    expect(await verifies(newToken)).toBe(true);
    expect(await verifies(oldToken)).toBe(true); // still in grace

    const done = await waitFor(async () => {
      const r = await rekey.api('GET', `/v1/rotations/${rotation.rotationId}`);
      return r.body.status === 'completed' ? r.body : null;
    }, { what: 'revocation' });
    expect(done.timeToRevokeMs).toBeGreaterThanOrEqual(2000);
    expect(await verifies(oldToken)).toBe(false);
    expect(await verifies(newToken)).toBe(true);
  });
});

describe('/v1/jwks', () => {
  it('serves only public key material', async () => {
    const { keys } = await fetch(`${rekey.baseUrl}/v1/jwks`).then((r) => r.json());
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key).toHaveProperty('kid');
      expect(key).not.toHaveProperty('d'); // the private scalar of EC and OKP keys
    }
  });
});
