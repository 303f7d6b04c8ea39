import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, type TestEnv } from './support/test-env.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';

let t: TestEnv;
let rekey: InProcessRekey;

beforeAll(async () => {
  t = await createTestEnv();
  rekey = await startRekey(t, ['api']);
  await rekey.api('POST', '/v1/secrets', { name: 'input/existing', provider: 'random' });
});
afterAll(async () => {
  await rekey?.stop();
  await t?.cleanup();
});

const paths = (body: any): string[] => (body?.error?.details?.issues ?? []).map((i: { path: string }) => i.path);

describe('bad input gets 400 naming the field', () => {
  const cases: [string, string, string, unknown, string][] = [
    ['unknown provider', 'POST', '/v1/secrets', { name: 'a', provider: 'vault-magic' }, 'body.provider'],
    ['malformed interval', 'POST', '/v1/secrets', { name: 'a', provider: 'random', policy: { interval: '5 minutes' } }, 'body.policy.interval'],
    ['interval and cron together', 'POST', '/v1/secrets', { name: 'a', provider: 'random', policy: { interval: '5m', cron: '* * * * *' } }, 'body.policy.cron'],
    ['bad cron', 'POST', '/v1/secrets', { name: 'a', provider: 'random', policy: { cron: 'every day' } }, 'body.policy.cron'],
    ['missing name', 'POST', '/v1/secrets', { provider: 'random' }, 'body.name'],
    ['name of the wrong type', 'POST', '/v1/secrets', { name: 42, provider: 'random' }, 'body.name'],
    ['name with bad characters', 'POST', '/v1/secrets', { name: 'Bad Name!', provider: 'random' }, 'body.name'],
    ['name ending in a verb', 'POST', '/v1/secrets', { name: 'x/rotate', provider: 'random' }, 'body.name'],
    ['provider config of the wrong type', 'POST', '/v1/secrets', { name: 'a', provider: 'random', config: { length: 'long' } }, 'body.config.length'],
    ['unknown provider config field', 'POST', '/v1/secrets', { name: 'a', provider: 'jwt-signing-key', config: { alg: 'HS256' } }, 'body.config.alg'],
    ['unknown top-level field', 'POST', '/v1/secrets', { name: 'a', provider: 'random', colour: 'blue' }, 'body'],
    ['rotate without a reason', 'POST', '/v1/secrets/input/existing/rotate', {}, 'body.reason'],
    ['emergency of the wrong type', 'POST', '/v1/secrets/input/existing/rotate', { reason: 'x', emergency: 'yes' }, 'body.emergency'],
    ['policy update with bad grace', 'PATCH', '/v1/secrets/input/existing', { policy: { grace: '-1s' } }, 'body.policy.grace'],
    ['rotation id not a uuid', 'GET', '/v1/rotations/not-a-uuid', undefined, 'params.id'],
    ['unknown rotation status', 'GET', '/v1/rotations?status=exploded', undefined, 'query.status'],
    ['limit out of range', 'GET', '/v1/secrets?limit=0', undefined, 'query.limit'],
  ];
  it.each(cases)('%s', async (_label, method, path, body, field) => {
    const res = await rekey.api(method, path, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_request');
    expect(paths(res.body)).toContain(field);
  });

  it('malformed JSON is a 400', async () => {
    const res = await rekey.api('POST', '/v1/secrets', '{"name": "a", ');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_request');
  });

  it('a duplicate name is a 409 and an unknown one a 404', async () => {
    expect((await rekey.api('POST', '/v1/secrets', { name: 'input/existing', provider: 'random' })).status).toBe(409);
    expect((await rekey.api('GET', '/v1/secrets/input/missing')).status).toBe(404);
    expect((await rekey.api('POST', '/v1/secrets/input/missing/rotate', { reason: 'x' })).status).toBe(404);
  });

  it('refuses missing and wrong admin tokens with 401', async () => {
    expect((await rekey.api('GET', '/v1/secrets', undefined, { authorization: '' })).status).toBe(401);
    expect((await rekey.api('GET', '/v1/secrets', undefined, { authorization: 'Bearer not-the-token' })).status).toBe(401);
    const metrics = await fetch(`${rekey.baseUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/rekey_http_unauthorized_total\{route="\/v1\/secrets"\} [2-9]/);
  });
});

describe('no request makes a 500', () => {
  it('survives arbitrary JSON bodies, paths and query strings', async () => {
    const methods = fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE');
    const segment = fc.oneof(fc.constantFrom('v1', 'secrets', 'rotations', 'rotate', 'value', 'input', 'existing', '%2F', '..', '%00'), fc.string({ maxLength: 12 }).map(encodeURIComponent));
    const path = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => `/${s.join('/')}`);
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record({ name: fc.string(), provider: fc.constantFrom('random', 'jwt-signing-key', 'x'), config: fc.jsonValue(), policy: fc.jsonValue() }, { requiredKeys: [] }),
      fc.record({ reason: fc.jsonValue(), emergency: fc.jsonValue() }, { requiredKeys: [] }),
    );
    await fc.assert(
      fc.asyncProperty(methods, fc.oneof(path, fc.constantFrom('/v1/secrets', '/v1/secrets/input/existing/rotate', '/v1/rotations')), body, fc.string({ maxLength: 20 }), async (method, p, b, q) => {
        const withBody = method === 'POST' || method === 'PATCH';
        const res = await rekey.api(method, `${p}?${encodeURIComponent(q)}=${encodeURIComponent(q)}`, withBody ? JSON.stringify(b) : undefined);
        expect(res.status, `${method} ${p} → ${JSON.stringify(res.body)}`).toBeLessThan(500);
      }),
      { numRuns: 300 },
    );
  });
});

describe('OpenAPI document', () => {
  it('describes the routes with the request schemas the handlers validate with', async () => {
    const doc = await fetch(`${rekey.baseUrl}/v1/openapi.json`).then((r) => r.json());
    expect(doc.openapi).toBe('3.1.0');
    for (const path of ['/v1/secrets', '/v1/secrets/{name}/rotate', '/v1/rotations/{id}', '/v1/webhooks/emergency-rotation', '/v1/events', '/v1/jwks']) {
      expect(Object.keys(doc.paths)).toContain(path);
    }
    const createBody = doc.paths['/v1/secrets'].post.requestBody.content['application/json'].schema;
    expect(createBody.required).toEqual(expect.arrayContaining(['name', 'provider']));
    expect(createBody.additionalProperties).toBe(false);
    expect(doc.paths['/v1/secrets/{name}/rotate'].post.requestBody.content['application/json'].schema.properties).toHaveProperty('emergency');
  });
});
