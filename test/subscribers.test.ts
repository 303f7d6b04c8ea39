import { SignJWT, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';
import { RekeyClient } from '../services/injector/sdk.ts';

let t: TestEnv;
let rekey: InProcessRekey;

beforeAll(async () => {
  t = await createTestEnv({ REKEY_REDELIVER_MS: '500' });
  rekey = await startRekey(t);
  for (const name of ['team-a/db', 'team-a/api-key', 'team-b/x']) {
    expect((await rekey.api('POST', '/v1/secrets', { name, provider: 'random' })).status).toBe(201);
  }
  await waitFor(async () => Number((await t.pool.query(`SELECT count(*) FROM secrets WHERE current_version IS NOT NULL`)).rows[0].count) === 3, { what: 'first versions' });
});
afterAll(async () => {
  await rekey?.stop();
  await t?.cleanup();
});

const as = (token: string) => ({ authorization: `Bearer ${token}` });

async function addSubscriber(name: string, scope: string[]) {
  const res = await rekey.api('POST', '/v1/subscribers', { name, scope });
  expect(res.status).toBe(201);
  return res.body as { id: string; token: string };
}

describe('subscribers and their tokens', () => {
  it('returns the token once, lists without it, and refuses bad input with the field at fault', async () => {
    const created = await addSubscriber('lister', ['team-a/']);
    expect(created.token.split('.')).toHaveLength(3);
    const list = await rekey.api('GET', '/v1/subscribers');
    expect(list.status).toBe(200);
    const entry = list.body.subscribers.find((s: { name: string }) => s.name === 'lister');
    expect(entry).toMatchObject({ id: created.id, scope: ['team-a/'] });
    expect(JSON.stringify(list.body)).not.toContain(created.token);
    expect((await rekey.api('POST', '/v1/subscribers', { name: 'lister', scope: ['team-a/'] })).status).toBe(409);
    const bad = await rekey.api('POST', '/v1/subscribers', { name: 'x', scope: ['Not A Scope'] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.issues[0].path).toBe('body.scope.0');
    // A subscriber token is not an admin token.
    expect((await rekey.api('GET', '/v1/subscribers', undefined, as(created.token))).status).toBe(401);
  });

  it('a subscriber scoped to team-a/ reads team-a values, gets 403 for team-b/x, and admin reads still work', async () => {
    const { token } = await addSubscriber('scoped', ['team-a/']);
    const ok = await rekey.api('GET', '/v1/secrets/team-a/db/value', undefined, as(token));
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ version: 1 });
    expect(typeof ok.body.value).toBe('string');
    expect((await rekey.api('GET', '/v1/secrets/team-b/x/value', undefined, as(token))).status).toBe(403);
    expect((await rekey.api('POST', '/v1/acks', { secret: 'team-b/x', version: 1 }, as(token))).status).toBe(403);
    // Subscriber tokens only reach value reads, never the admin routes.
    expect((await rekey.api('GET', '/v1/secrets/team-a/db', undefined, as(token))).status).toBe(401);
    expect((await rekey.api('GET', '/v1/secrets/team-b/x/value')).status).toBe(200);
  });

  it('refuses a revoked token at once, and forged, expired, wrong-audience or alg=none tokens', async () => {
    const { id, token } = await addSubscriber('revokee', ['team-a/']);
    expect((await rekey.api('GET', '/v1/secrets/team-a/db/value', undefined, as(token))).status).toBe(200);
    expect((await rekey.api('DELETE', `/v1/subscribers/${id}`)).status).toBe(204);
    expect((await rekey.api('GET', '/v1/secrets/team-a/db/value', undefined, as(token))).status).toBe(401);
    expect((await rekey.api('POST', '/v1/acks', { secret: 'team-a/db', version: 1 }, as(token))).status).toBe(401);

    const { id: liveId } = await addSubscriber('victim', ['team-a/']);
    const claims = { scope: ['team-a/'] };
    const other = await generateKeyPair('EdDSA');
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: 'whatever' }).setIssuer('rekey').setAudience('rekey-injector').setSubject(liveId).setJti(liveId).setExpirationTime('1h').sign(other.privateKey);
    const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: 'rekey', aud: 'rekey-injector', sub: liveId, jti: liveId, exp: 2e9 })).toString('base64url')}.`;
    const hmac = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('rekey').setAudience('rekey-injector').setSubject(liveId).setJti(liveId).setExpirationTime('1h').sign(new TextEncoder().encode('x'.repeat(32)));
    for (const bad of [forged, none, hmac, 'not-a-token', 'a.b.c']) {
      expect((await rekey.api('GET', '/v1/secrets/team-a/db/value', undefined, as(bad))).status).toBe(401);
    }
    const unauthorized = await fetch(`${rekey.baseUrl}/metrics`).then((r) => r.text());
    expect(unauthorized).toMatch(/rekey_http_unauthorized_total\{route="\/v1\/secrets\/\*"\} [1-9]/);
  });
});

describe('value fetch coalescing', () => {
  it('300 concurrent fetches of one secret coalesce into fewer PostgreSQL reads and all get the same version', async () => {
    const { token } = await addSubscriber('herd', ['team-a/']);
    const coalesced = async () => Number(/rekey_value_fetch_coalesced_total (\d+)/.exec(await fetch(`${rekey.baseUrl}/metrics`).then((r) => r.text()))?.[1] ?? 0);
    const before = await coalesced();
    const results = await Promise.all(Array.from({ length: 300 }, () => rekey.api('GET', '/v1/secrets/team-a/api-key/value', undefined, as(token))));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(new Set(results.map((r) => `${r.body.version}:${r.body.value}`)).size).toBe(1);
    // Every request either ran a read or joined the next one: far fewer reads than requests.
    expect((await coalesced()) - before).toBeGreaterThan(50);
  });
});

describe('scoped event stream', () => {
  it('a team-a/ subscriber sees team-a events and never team-b ones; a revoked one is cut off', async () => {
    const { id, token } = await addSubscriber('stream-a', ['team-a/']);
    const client = new RekeyClient({ url: rekey.baseUrl, token, secrets: ['team-a/db'] });
    await client.start();
    const received: string[] = [];
    const res = await fetch(`${rekey.baseUrl}/v1/events`, { headers: as(token) });
    const reader = res.body!.getReader();
    const pump = (async () => {
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        received.push(dec.decode(value));
      }
    })();
    const b = await rekey.api('POST', '/v1/secrets/team-b/x/rotate', { reason: 'b' });
    const a = await rekey.api('POST', '/v1/secrets/team-a/db/rotate', { reason: 'a' });
    await waitFor(async () => client.version('team-a/db') === 2, { what: 'client at v2' });
    const payloads = () =>
      [...received.join('').matchAll(/^data: (.+)$/gm)].map((m) => JSON.parse(Buffer.from(m[1]!.split('.')[1]!, 'base64url').toString()));
    await waitFor(async () => payloads().some((p) => p.data.rotationId === a.body.rotationId), { what: 'team-a event on the raw stream' });
    await waitFor(async () => (await rekey.api('GET', `/v1/rotations/${b.body.rotationId}`)).body.status === 'completed', { what: 'b done' });
    await waitFor(async () => (await t.pool.query(`SELECT 1 FROM events WHERE rotation_id = $1 AND published_at IS NOT NULL AND type LIKE '%revoked'`, [b.body.rotationId])).rowCount, { what: 'b revoked event out' });
    expect(payloads().every((p) => p.data.secret.startsWith('team-a/'))).toBe(true);
    // The refetch-spread hint rides in the signed data; never a value.
    const rotated = payloads().find((p) => p.data.rotationId === a.body.rotationId);
    expect(rotated.data.refetchSpreadMs).toEqual(expect.any(Number));
    expect(Object.keys(rotated.data).sort()).toEqual(['emergency', 'previousVersion', 'refetchSpreadMs', 'revokeAt', 'rotationId', 'secret', 'version']);
    expect(payloads().some((p) => p.data.rotationId === b.body.rotationId)).toBe(false);
    // b's events did go out (the client proves the stream works; the raw one proves the filter).
    const bEvents = await t.redis.xrange(`${t.prefix}:events:stream`, '-', '+');
    expect(bEvents.some(([, f]) => f.includes('team-b/x'))).toBe(true);
    // Revoking closes the open stream.
    await rekey.api('DELETE', `/v1/subscribers/${id}`);
    await Promise.race([pump, new Promise((_, rej) => setTimeout(() => rej(new Error('stream stayed open')), 5000))]);
    await client.close();
  });

  it('rejects a malformed Last-Event-ID with 400', async () => {
    const { token } = await addSubscriber('bad-resume', ['team-a/']);
    const res = await fetch(`${rekey.baseUrl}/v1/events`, { headers: { ...as(token), 'last-event-id': 'garbage' } });
    expect(res.status).toBe(400);
    expect((await res.json()).error.details.issues[0].path).toBe('headers.last-event-id');
  });
});

describe('rekey subscriber add|list|rm', () => {
  it('adds a subscriber whose token works, lists it, and rm revokes it at once on the running api', async () => {
    const { execFile } = await import('node:child_process');
    const cli = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile('node', ['services/cli/rekey.mjs', ...args], { env: t.env }, (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr })),
      );
    const added = await cli('subscriber', 'add', 'cli-sub', '--scope', 'team-a/db,team-a/api-key');
    expect(added.code).toBe(0);
    const { token, scope } = JSON.parse(added.stdout);
    expect(scope).toEqual(['team-a/db', 'team-a/api-key']);
    expect((await rekey.api('GET', '/v1/secrets/team-a/api-key/value', undefined, as(token))).status).toBe(200);
    const listed = await cli('subscriber', 'list');
    expect(listed.stdout).toContain('cli-sub');
    expect(listed.stdout).not.toContain(token);
    expect((await cli('subscriber', 'rm', 'cli-sub')).code).toBe(0);
    // The CLI's revocation reaches the api through Redis, not through a cache timeout.
    await waitFor(async () => (await rekey.api('GET', '/v1/secrets/team-a/api-key/value', undefined, as(token))).status === 401, { timeoutMs: 2000, what: 'token refused' });
    expect((await cli('subscriber', 'add', 'bad', '--scope', 'UPPER')).code).toBe(1);
  });
});

describe('stragglers', () => {
  it('re-delivers to a live subscriber that has not acked, and reports it when the grace deadline revokes anyway', async () => {
    expect((await rekey.api('POST', '/v1/secrets', { name: 'slow/key', provider: 'random', policy: { grace: '3s', revokeWhen: 'acked' } })).status).toBe(201);
    await waitFor(async () => (await rekey.api('GET', '/v1/secrets/slow/key')).body.currentVersion === 1, { what: 'v1' });
    const { token } = await addSubscriber('straggler', ['slow/']);
    // Listens but never acks.
    const res = await fetch(`${rekey.baseUrl}/v1/events`, { headers: as(token) });
    const frames: string[] = [];
    const reader = res.body!.getReader();
    void (async () => {
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) break;
        frames.push(...dec.decode(value).split('\n\n'));
      }
    })();
    await waitFor(async () => (await t.pool.query(`SELECT 1 FROM subscribers WHERE name = 'straggler' AND last_seen_at IS NOT NULL`)).rowCount, { what: 'straggler live' });
    const { body } = await rekey.api('POST', '/v1/secrets/slow/key/rotate', { reason: 'straggler' });
    const rotatedFrames = () =>
      frames.filter((f) => f.includes('event: dev.rekey.secret.rotated') && JSON.parse(Buffer.from(/data: (.+)/.exec(f)![1]!.split('.')[1]!, 'base64url').toString()).data.rotationId === body.rotationId);
    // The first delivery carries a resume id; re-deliveries do not move the resume point.
    await waitFor(async () => rotatedFrames().length >= 2, { what: 're-delivery', timeoutMs: 10_000 });
    expect(rotatedFrames()[0]).toMatch(/^id: \d+-\d+/m);
    expect(rotatedFrames()[1]).not.toMatch(/^id:/m);
    const done = await waitFor(async () => {
      const r = (await rekey.api('GET', `/v1/rotations/${body.rotationId}`)).body;
      return r.status === 'completed' ? r : null;
    }, { what: 'revoked at the grace deadline', timeoutMs: 15_000 });
    expect(done.propagatedAt).toBeNull();
    expect(new Date(done.revokedAt).getTime()).toBeGreaterThanOrEqual(new Date(done.revokeAfter).getTime());
    expect(done.deliveries).toEqual([expect.objectContaining({ subscriber: 'straggler', ackedAt: null })]);
    expect(done.deliveries[0].attempts).toBeGreaterThanOrEqual(2);
    const report = await waitFor(async () => rekey.logs.lines.map((l) => JSON.parse(l)).find((l) => l.rotationId === body.rotationId && l.msg === 'previous version revoked while subscribers still held it'), { what: 'straggler report' });
    expect(report.stragglers).toEqual([{ subscriber: 'straggler', ackedVersion: null }]);
    const metrics = await fetch(`${rekey.baseUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/rekey_stragglers_total\{trigger="manual"\} [1-9]/);
    await reader.cancel();
  });
});
