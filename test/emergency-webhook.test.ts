import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { createLocalJWKSet, importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomProvider } from '../shared/providers/random/random-provider.ts';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';
import { deliver, newSigningSecret, sign } from './support/webhook-sender.ts';

let t: TestEnv;
let rekey: InProcessRekey;
const oldSecret = newSigningSecret();
const newSecret = newSigningSecret();
/** Planted in request bodies and headers: must never reach logs or the audit log. */
const canary = `canary-${randomBytes(8).toString('hex')}`;

beforeAll(async () => {
  t = await createTestEnv();
  // Both secrets listed: the webhook secret is being rotated.
  rekey = await startRekey(t, undefined, { REKEY_WEBHOOK_SECRETS: `${oldSecret}, ${newSecret}` });
});
afterAll(async () => {
  await rekey?.stop();
  await t?.cleanup();
});

const now = () => Math.floor(Date.now() / 1000);
const body = (o: Record<string, unknown>) => JSON.stringify(o);

async function createSecret(name: string, provider = 'random', policy?: unknown) {
  const r = await rekey.api('POST', '/v1/secrets', { name, provider, ...(policy !== undefined && { policy }) });
  expect(r.status).toBe(201);
  await waitFor(async () => (await rekey.api('GET', `/v1/secrets/${name}`)).body.currentVersion === 1, { what: `${name} v1` });
}

async function rotationCount(): Promise<number> {
  return Number((await t.pool.query<{ n: string }>(`SELECT count(*) AS n FROM rotations WHERE trigger = 'webhook'`)).rows[0]!.n);
}

async function completed(id: string) {
  return waitFor(async () => {
    const r = await rekey.api('GET', `/v1/rotations/${id}`);
    return r.body.status === 'completed' || r.body.status === 'failed' ? r.body : null;
  }, { what: `rotation ${id}`, timeoutMs: 20_000 });
}

describe('signature verification', () => {
  beforeAll(() => createSecret('sig/key'));

  const refusals: [string, () => Parameters<typeof deliver>[1], string][] = [
    ['a bad signature', () => ({ secrets: [oldSecret], body: body({ secret: 'sig/key', reason: 'x' }), headers: { 'webhook-signature': `v1,${randomBytes(32).toString('base64')}` } }), 'bad_signature'],
    ['a timestamp 301 s old', () => ({ secrets: [oldSecret], timestamp: now() - 301, body: body({ secret: 'sig/key', reason: 'x' }) }), 'timestamp_too_old'],
    ['a timestamp 301 s ahead', () => ({ secrets: [oldSecret], timestamp: now() + 301, body: body({ secret: 'sig/key', reason: 'x' }) }), 'timestamp_too_new'],
    ['a body re-serialised after signing', () => ({ secrets: [oldSecret], body: '{"secret": "sig/key", "reason": "x"}', sentBody: '{"secret":"sig/key","reason":"x"}' }), 'bad_signature'],
    ['an unknown signing secret', () => ({ secrets: [newSigningSecret()], body: body({ secret: 'sig/key', reason: 'x' }) }), 'bad_signature'],
    ['no signature header', () => ({ secrets: [oldSecret], body: body({ secret: 'sig/key', reason: 'x' }), headers: { 'webhook-signature': '' } }), 'missing_headers'],
  ];
  for (const [what, delivery, reason] of refusals) {
    it(`refuses ${what} with 401 and starts nothing`, async () => {
      const before = await rotationCount();
      const r = await deliver(rekey.baseUrl, delivery());
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('unauthorized');
      expect(r.body.error.details.reason).toBe(reason);
      expect(await rotationCount()).toBe(before);
    });
  }

  it('accepts the old and the new signing secret while both are listed', async () => {
    for (const secret of [oldSecret, newSecret]) {
      const r = await deliver(rekey.baseUrl, { secrets: [secret], body: body({ secret: 'sig/key', reason: 'webhook secret rotation' }) });
      expect(r.status).toBe(202);
      expect(r.body.rotationIds).toHaveLength(1);
      await completed(r.body.rotationIds[0]);
    }
    // A signature list where only one entry is valid (sender signs with old and new) passes too.
    const r = await deliver(rekey.baseUrl, { secrets: [newSigningSecret(), newSecret], body: body({ secret: 'sig/key', reason: 'both' }) });
    expect(r.status).toBe(202);
  });

  it('accepts a timestamp 290 s off either way (inside the 5-minute window)', async () => {
    for (const timestamp of [now() - 290, now() + 290]) {
      const r = await deliver(rekey.baseUrl, { secrets: [oldSecret], timestamp, body: body({ secret: 'sig/key', reason: 'window' }) });
      expect(r.status).toBe(202);
    }
  });
});

describe('idempotency on webhook-id', () => {
  it('answers 50 concurrent deliveries of one webhook-id identically, with one set of rotations', async () => {
    await createSecret('idem/a');
    await createSecret('idem/b');
    const id = `msg_${randomBytes(8).toString('hex')}`;
    const payload = body({ secrets: ['idem/a', 'idem/b'], reason: 'concurrent repeats' });
    // Each repeat is signed afresh (as a retrying sender does), with the same id and body.
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => deliver(rekey.baseUrl, { id, secrets: [i % 2 ? oldSecret : newSecret], timestamp: now() - (i % 3), body: payload })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(202));
    const bodies = new Set(answers.map((a) => JSON.stringify(a.body)));
    expect(bodies.size).toBe(1);
    expect(answers.filter((a) => a.headers.get('idempotent-replayed') !== 'true')).toHaveLength(1);
    const { rotationIds } = answers[0]!.body;
    expect(rotationIds).toHaveLength(2);
    const { rows } = await t.pool.query(
      `SELECT r.id FROM rotations r JOIN secrets s ON s.id = r.secret_id WHERE s.name IN ('idem/a', 'idem/b') AND r.trigger = 'webhook'`,
    );
    expect(rows.map((r) => r.id).sort()).toEqual([...rotationIds].sort());
    for (const rid of rotationIds) expect((await completed(rid)).status).toBe('completed');

    // A later repeat, after the rotations finished, still starts nothing.
    const later = await deliver(rekey.baseUrl, { id, secrets: [oldSecret], body: payload });
    expect(later.status).toBe(202);
    expect(later.body).toEqual(answers[0]!.body);
    const versions = await t.pool.query(`SELECT count(*)::int AS n FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = 'idem/a'`);
    expect(versions.rows[0].n).toBe(2);

    // The same id with a different body is not a repeat: refused, nothing started.
    const reused = await deliver(rekey.baseUrl, { id, secrets: [oldSecret], body: body({ secret: 'idem/a', reason: 'different' }) });
    expect(reused.status).toBe(409);
    expect(await t.pool.query(`SELECT count(*)::int AS n FROM rotations WHERE reason = 'different'`).then((r) => r.rows[0].n)).toBe(0);
  });
});

describe('selectors', () => {
  it('rotates exactly the secrets under a prefix', async () => {
    const under = ['leak/a', 'leak/b', 'leak/deep/c'];
    const outside = ['leaky/d', 'other/leak/e'];
    for (const n of [...under, ...outside]) await createSecret(n);
    const r = await deliver(rekey.baseUrl, { secrets: [oldSecret], body: body({ prefix: 'leak/', reason: 'team leak' }) });
    expect(r.status).toBe(202);
    expect(r.body.rotations.map((x: { secret: string }) => x.secret)).toEqual(under);
    for (const id of r.body.rotationIds) await completed(id);
    const { rows } = await t.pool.query<{ name: string; current_version: number }>(
      `SELECT name, current_version FROM secrets WHERE name = ANY($1) ORDER BY name`,
      [[...under, ...outside]],
    );
    expect(Object.fromEntries(rows.map((x) => [x.name, x.current_version]))).toEqual({
      'leak/a': 2, 'leak/b': 2, 'leak/deep/c': 2, 'leaky/d': 1, 'other/leak/e': 1,
    });
  });

  it('refuses unknown names with 404 and starts nothing (all or nothing)', async () => {
    const before = await rotationCount();
    const r = await deliver(rekey.baseUrl, { secrets: [oldSecret], body: body({ secrets: ['leak/a', 'nope/x'], reason: 'typo' }) });
    expect(r.status).toBe(404);
    expect(r.body.error.details.missing).toEqual(['nope/x']);
    expect(await rotationCount()).toBe(before);
    const prefix = await deliver(rekey.baseUrl, { secrets: [oldSecret], body: body({ prefix: 'nothing-here/', reason: 'x' }) });
    expect(prefix.status).toBe(404);
  });

  it('refuses a body naming two selectors, with the field at fault', async () => {
    const r = await deliver(rekey.baseUrl, { secrets: [oldSecret], body: body({ secret: 'leak/a', prefix: 'leak/', reason: 'x' }) });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/^body: name exactly one/);
  });
});

describe('revoke now', () => {
  it('a random secret: the old value is revoked once the 202 rotation completes, with a time-to-revoke', async () => {
    await createSecret('now/api-key', 'random', { grace: '1h' });
    const old = (await rekey.api('GET', '/v1/secrets/now/api-key/value')).body;
    const r = await deliver(rekey.baseUrl, { secrets: [oldSecret], body: body({ secret: 'now/api-key', reason: 'leaked in a chat' }) });
    expect(r.status).toBe(202);
    const done = await completed(r.body.rotationIds[0]);
    expect(done.status).toBe('completed');
    expect(done.trigger).toBe('webhook');
    expect(done.emergency).toBe(true);
    // A 1h grace policy does not apply to an emergency.
    expect(done.timeToRevokeMs).toBeGreaterThanOrEqual(0);
    expect(done.timeToRevokeMs).toBeLessThan(10_000);
    for (const k of ['triggeredAt', 'activatedAt', 'revokedAt']) expect(Date.parse(done[k]), k).toBeGreaterThan(0);
    expect(done).toHaveProperty('propagatedAt');
    const secret = (await rekey.api('GET', '/v1/secrets/now/api-key')).body;
    expect(secret.versions.find((v: { version: number }) => v.version === old.version).state).toBe('revoked');
    const fresh = (await rekey.api('GET', '/v1/secrets/now/api-key/value')).body;
    expect(fresh.version).toBe(old.version + 1);
    expect(fresh.value).not.toBe(old.value);
  });

  it('a jwt-signing-key: tokens signed with the old key stop verifying against /v1/jwks', async () => {
    await createSecret('now/signing', 'jwt-signing-key', { grace: '1h' });
    const old = (await rekey.api('GET', '/v1/secrets/now/signing/value')).body;
    const privateJwk = JSON.parse(old.value) as JWK;
    const token = await new SignJWT({ sub: 'user-1' })
      .setProtectedHeader({ alg: privateJwk.alg!, kid: privateJwk.kid })
      .sign(await importJWK(privateJwk, privateJwk.alg));
    const verifyNow = async () => {
      const jwks = await fetch(`${rekey.baseUrl}/v1/jwks`).then((x) => x.json());
      return jwtVerify(token, createLocalJWKSet(jwks)).then(() => true, () => false);
    };
    expect(await verifyNow()).toBe(true);

    const r = await deliver(rekey.baseUrl, { secrets: [newSecret], body: body({ secret: 'now/signing', reason: 'key leaked' }) });
    expect(r.status).toBe(202);
    const done = await completed(r.body.rotationIds[0]);
    expect(done.status).toBe('completed');
    expect(done.timeToRevokeMs).toBeLessThan(10_000);
    expect(await verifyNow()).toBe(false);
    const jwks = await fetch(`${rekey.baseUrl}/v1/jwks`).then((x) => x.json());
    expect(jwks.keys.map((k: JWK) => k.kid)).not.toContain(privateJwk.kid);
  });

  it('the admin route with emergency: true revokes immediately too', async () => {
    await createSecret('now/admin', 'random', { grace: '1h' });
    const r = await rekey.api('POST', '/v1/secrets/now/admin/rotate', { reason: 'admin emergency', emergency: true });
    expect(r.status).toBe(202);
    const done = await completed(r.body.rotationId);
    expect(done).toMatchObject({ status: 'completed', trigger: 'emergency', emergency: true });
    expect(done.timeToRevokeMs).toBeLessThan(10_000);
  });
});

describe('supersede', () => {
  it('takes over from a manual rotation stuck in flight instead of waiting for it', async () => {
    await createSecret('sup/key', 'random', { grace: '1h' });
    // Hold the manual rotation inside its `setting` step (as a slow target would).
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const originalSet = randomProvider.set;
    let held = false;
    randomProvider.set = async (ctx, next, current) => {
      if (ctx.secretName === 'sup/key' && !held) {
        held = true;
        await gate;
      }
      return originalSet(ctx, next, current);
    };
    try {
      const manual = await rekey.api('POST', '/v1/secrets/sup/key/rotate', { reason: 'routine' });
      await waitFor(async () => (await rekey.api('GET', `/v1/rotations/${manual.body.rotationId}`)).body.status === 'setting', { what: 'manual rotation in setting' });

      const r = await deliver(rekey.baseUrl, { secrets: [oldSecret], body: body({ secret: 'sup/key', reason: 'leak during rotation' }) });
      expect(r.status).toBe(202);
      const emergency = await completed(r.body.rotationIds[0]);
      expect(emergency.status).toBe('completed');
      const superseded = (await rekey.api('GET', `/v1/rotations/${manual.body.rotationId}`)).body;
      expect(superseded.status).toBe('failed');
      expect(superseded.failedStep).toBe('setting');
      expect(superseded.error).toBe(`superseded by emergency rotation ${emergency.id}`);

      // The stuck worker wakes up and finds itself fenced: it changes nothing.
      release();
      await new Promise((r) => setTimeout(r, 500));
      const versions = (await rekey.api('GET', '/v1/secrets/sup/key')).body.versions.map((v: { version: number; state: string }) => [v.version, v.state]);
      expect(versions).toEqual([[1, 'revoked'], [2, 'revoked'], [3, 'current']]);
      expect(emergency.fromVersion).toBe(1);
      expect(emergency.toVersion).toBe(3);
      const after = (await rekey.api('GET', `/v1/rotations/${manual.body.rotationId}`)).body;
      expect(after.status).toBe('failed');
      const shredded = await t.pool.query(`SELECT ciphertext FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = 'sup/key' AND version = 2`);
      expect(shredded.rows[0].ciphertext).toBeNull();
    } finally {
      release();
      randomProvider.set = originalSet;
    }
  });
});

describe('malformed input (fuzzed)', () => {
  it('never answers 500 to arbitrary bodies and headers', async () => {
    const headerValue = fc.oneof(fc.string({ maxLength: 40 }), fc.constant(''), fc.integer().map(String), fc.constant(`v1,${'A'.repeat(43)}=`));
    const jsonish = fc.oneof(
      fc.json(),
      fc.string({ maxLength: 200 }),
      fc.record({ secret: fc.oneof(fc.string(), fc.constant('sig/key')), reason: fc.oneof(fc.string(), fc.integer()) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
      fc.record({ prefix: fc.string(), secrets: fc.array(fc.string()), reason: fc.string() }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
    );
    const before = await rotationCount();
    await fc.assert(
      fc.asyncProperty(jsonish, headerValue, headerValue, fc.boolean(), fc.boolean(), async (payload, id, ts, signIt, validTs) => {
        const timestamp = validTs ? now() : ts;
        const webhookId = id.replace(/[^\x21-\x7e]/g, '') || 'x';
        const headers: Record<string, string> = {
          'content-type': 'application/json',
          'webhook-id': webhookId,
          'webhook-timestamp': String(timestamp).replace(/[^\x20-\x7e]/g, ''),
          'webhook-signature': signIt && /^\d+$/.test(String(timestamp)) ? sign(oldSecret, webhookId, Number(timestamp), payload) : ts.replace(/[^\x20-\x7e]/g, ''),
        };
        const res = await fetch(`${rekey.baseUrl}/v1/webhooks/emergency-rotation`, { method: 'POST', headers, body: payload });
        const text = await res.text();
        expect(res.status, text).toBeLessThan(500);
        expect(JSON.parse(text).error ?? JSON.parse(text).rotationIds).toBeDefined();
      }),
      { numRuns: 150 },
    );
    // Valid-signed fuzz bodies may name sig/key; everything else must start nothing.
    const { rows } = await t.pool.query(`SELECT s.name FROM rotations r JOIN secrets s ON s.id = r.secret_id WHERE r.trigger = 'webhook' ORDER BY r.triggered_at DESC LIMIT $1`, [Math.max(0, (await rotationCount()) - before)]);
    for (const r of rows) expect(r.name).toBe('sig/key');
  });

  it('refuses a body larger than the limit without a 500', async () => {
    const big = body({ secret: 'sig/key', reason: 'x'.repeat(300 * 1024) });
    const r = await deliver(rekey.baseUrl, { secrets: [oldSecret], body: big });
    expect(r.status).toBe(413);
  });
});

describe('audit', () => {
  it('records every call, accepted or refused with the reason, never the body or signature', async () => {
    const id = `msg_${randomBytes(6).toString('hex')}`;
    const timestamp = now();
    const payload = body({ secret: 'sig/key', reason: 'audit check', leaked: canary });
    const unknownSecret = newSigningSecret();
    const badId = `msg_${randomBytes(6).toString('hex')}`;
    const signatures = [sign(oldSecret, id, timestamp, payload), sign(unknownSecret, badId, timestamp, payload)].map((s) => s.slice(3));
    expect((await deliver(rekey.baseUrl, { id, timestamp, secrets: [oldSecret], body: payload })).status).toBe(202);
    expect((await deliver(rekey.baseUrl, { id, timestamp, secrets: [oldSecret], body: payload })).status).toBe(202);
    expect((await deliver(rekey.baseUrl, { id: badId, timestamp, secrets: [unknownSecret], body: payload })).status).toBe(401);
    const { rows } = await t.pool.query<{ action: string; target: string; outcome: string; details: any }>(
      `SELECT action, target, outcome, details FROM audit_events WHERE target = ANY($1) ORDER BY id`,
      [[id, badId]],
    );
    expect(rows.map((r) => [r.action, r.target, r.outcome])).toEqual([
      ['webhook.emergency-rotation', id, 'ok'],
      ['webhook.emergency-rotation.replayed', id, 'ok'],
      ['webhook.emergency-rotation', badId, 'refused'],
    ]);
    expect(rows[0]!.details.reason).toBe('audit check');
    expect(rows[0]!.details.rotations).toHaveLength(1);
    expect(rows[2]!.details).toEqual({ reason: 'bad_signature', status: 401 });

    const everything = JSON.stringify((await t.pool.query('SELECT * FROM audit_events')).rows) + JSON.stringify((await t.pool.query('SELECT * FROM webhook_deliveries')).rows);
    expect(everything).not.toContain(canary);
    for (const sig of signatures) {
      expect(everything).not.toContain(sig);
      expect(rekey.logs.text()).not.toContain(sig);
    }
    expect(rekey.logs.text()).not.toContain(canary);
    expect(rekey.logs.text()).not.toContain(oldSecret.slice(6, 30));
    // The chain still verifies with webhook rows in it.
    const refusedCount = (await t.pool.query(`SELECT count(*)::int AS n FROM audit_events WHERE action LIKE 'webhook.%' AND outcome = 'refused'`)).rows[0].n;
    expect(refusedCount).toBeGreaterThan(5);
  });
});

describe('metrics', () => {
  it('exposes time-to-revoke for webhook rotations and webhook outcomes', async () => {
    const text = await fetch(`${rekey.baseUrl}/metrics`).then((r) => r.text());
    expect(text).toMatch(/rekey_time_to_revoke_seconds_count\{trigger="webhook"\} [1-9]/);
    expect(text).toMatch(/rekey_rotation_duration_seconds_count\{trigger="webhook",provider="random"\} [1-9]/);
    expect(text).toMatch(/rekey_webhook_requests_total\{outcome="accepted"\} [1-9]/);
    expect(text).toMatch(/rekey_webhook_requests_total\{outcome="bad_signature"\} [1-9]/);
  });
});

describe('configuration', () => {
  it('refuses malformed signing secrets at start, naming the variable and never the value', async () => {
    const { apiEnv, parseEnv } = await import('../shared/config.ts');
    const bad = `whsec_${randomBytes(8).toString('base64')}`;
    let message = '';
    try {
      parseEnv(apiEnv, { REKEY_ADMIN_TOKEN: t.adminToken, REKEY_WEBHOOK_SECRETS: `${oldSecret},${bad},plain-text-secret` });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/REKEY_WEBHOOK_SECRETS: entry 2: .*24–64 bytes/);
    expect(message).toMatch(/REKEY_WEBHOOK_SECRETS: entry 3: .*whsec_/);
    for (const leaked of [bad, 'plain-text-secret', oldSecret]) expect(message).not.toContain(leaked);
  });
});

describe('not configured', () => {
  it('starts without signing secrets and refuses webhooks with 503', async () => {
    const bare = await startRekey(t, ['api'], { REKEY_WEBHOOK_SECRETS: '' });
    try {
      const r = await deliver(bare.baseUrl, { secrets: [oldSecret], body: body({ secret: 'sig/key', reason: 'x' }) });
      expect(r.status).toBe(503);
      expect(r.body.error.message).toMatch(/REKEY_WEBHOOK_SECRETS/);
    } finally {
      await bare.stop();
    }
  });
});

describe('a lane of its own', () => {
  it('completes an emergency rotation while a backlog of 500 scheduled rotations is still queued', async () => {
    await createSecret('lane/target');
    await t.pool.query(
      `INSERT INTO secrets (name, provider, config, policy, next_rotation_at)
       SELECT 'lane/bulk-' || g, 'random', '{}', '{"interval": "1h", "grace": "0s", "terminateSessions": false}', now()
       FROM generate_series(1, 500) g`,
    );
    const scheduled = async (status?: string) =>
      (await t.pool.query(`SELECT count(*)::int AS n FROM rotations WHERE trigger = 'schedule' AND ($1::text IS NULL OR status = $1)`, [status ?? null])).rows[0].n as number;
    await waitFor(async () => (await scheduled()) >= 500, { what: 'the scheduler to queue the backlog' });
    const r = await deliver(rekey.baseUrl, { secrets: [oldSecret], body: body({ secret: 'lane/target', reason: 'leak during backlog' }) });
    expect(r.status).toBe(202);
    const done = await completed(r.body.rotationIds[0]);
    const scheduledDone = await scheduled('completed');
    expect(done.status).toBe('completed');
    // It did not wait its turn: most of the backlog is still unfinished.
    expect(scheduledDone).toBeLessThan(250);
  });
});

describe('rekey status', () => {
  it('prints recent rotations and time-to-revoke percentiles by trigger', async () => {
    const { printStatus } = await import('../services/cli/status-command.ts');
    const lines: string[] = [];
    expect(await printStatus(t.pool, undefined, (s) => lines.push(s))).toBe(0);
    const out = lines.join('\n');
    expect(out).toMatch(/ROTATION\s+SECRET\s+TRIGGER\s+STATUS/);
    expect(out).toMatch(/TIME-TO-REVOKE.*p50 ms.*p99 ms/);
    expect(lines.some((l) => /^\s+webhook\s+\d+\s+\d+/.test(l))).toBe(true);
    expect(lines.some((l) => /^\s+emergency\s+\d+\s+\d+/.test(l))).toBe(true);
  });
});
