import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeTargetPools } from '../shared/providers/postgres-target/postgres-target.ts';
import { PasswordPostgres } from './support/password-postgres.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env.ts';
import { deliver, newSigningSecret } from './support/webhook-sender.ts';

// Emergency webhook against a real PostgreSQL target that checks passwords (issue 4):
// once the rotation the 202 names completes, the leaked password no longer logs in and
// sessions opened with it are gone, with no grace, whatever the policy says.
let t: TestEnv;
let rekey: InProcessRekey;
let target: PasswordPostgres;
const signing = newSigningSecret();
const suffix = randomBytes(3).toString('hex');
const role = (name: string) => `leak_${name}_${suffix}`;
const sessions: pg.Client[] = [];

beforeAll(async () => {
  target = await PasswordPostgres.start();
  await target.admin(async (c) => {
    await c.query('CREATE DATABASE app');
    for (const r of ['single', 'alt1', 'alt2']) await c.query(`CREATE ROLE ${role(r)} LOGIN`);
  });
  t = await createTestEnv({ PG_TARGET_ADMIN: target.adminUrl(), REKEY_WEBHOOK_SECRETS: signing });
  rekey = await startRekey(t);
});
afterAll(async () => {
  for (const s of sessions) await s.end().catch(() => {});
  await rekey?.stop();
  await closeTargetPools();
  await target?.cleanup();
  await t?.cleanup();
});

async function current(name: string) {
  const { body } = await rekey.api('GET', `/v1/secrets/${name}/value`);
  return { version: body.version as number, ...(JSON.parse(body.value) as { username: string; password: string }) };
}

async function create(name: string, config: Record<string, unknown>) {
  // A long grace and no session termination in the policy: the emergency ignores both.
  const created = await rekey.api('POST', '/v1/secrets', {
    name,
    provider: 'postgres-password',
    config: { admin: 'env:PG_TARGET_ADMIN', database: 'app', ...config },
    policy: { grace: '1h', terminateSessions: false },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  await waitFor(async () => (await rekey.api('GET', `/v1/rotations/${created.body.rotationId}`)).body.status === 'completed', { what: `${name} v1` });
  return current(name);
}

const alive = (c: pg.Client) => c.query('SELECT 1').then(() => true, () => false);

async function emergency(secret: string) {
  const r = await deliver(rekey.baseUrl, { secrets: [signing], body: JSON.stringify({ secret, reason: 'password found in a public repo' }) });
  expect(r.status).toBe(202);
  return waitFor(async () => {
    const x = await rekey.api('GET', `/v1/rotations/${r.body.rotationIds[0]}`);
    return ['completed', 'failed'].includes(x.body.status) ? x.body : null;
  }, { what: 'emergency rotation', timeoutMs: 30_000 });
}

describe('emergency webhook, postgres-password', () => {
  it('alternating: the leaked role stops logging in and its sessions end', async () => {
    const leaked = await create('leak/alt', { strategy: 'alternating', roles: [role('alt1'), role('alt2')] });
    const s = await target.connect(leaked.username, leaked.password, 'app');
    sessions.push(s);
    expect(await alive(s)).toBe(true);

    const done = await emergency('leak/alt');
    expect(done.status).toBe('completed');
    expect(done.timeToRevokeMs).toBeGreaterThan(0);
    expect(done.timeToRevokeMs).toBeLessThan(15_000);
    expect(new Date(done.revokedAt).getTime()).toBeGreaterThanOrEqual(new Date(done.activatedAt).getTime());

    expect(await target.loginError(leaked.username, leaked.password, 'app')).not.toBeNull();
    expect(await alive(s)).toBe(false);
    const fresh = await current('leak/alt');
    expect(fresh.username).toBe(role('alt2'));
    expect(await target.loginError(fresh.username, fresh.password, 'app')).toBeNull();
  });

  it('single: the leaked password fails and sessions opened with it end', async () => {
    const leaked = await create('leak/single', { strategy: 'single', role: role('single') });
    const s = await target.connect(leaked.username, leaked.password, 'app');
    sessions.push(s);

    const done = await emergency('leak/single');
    expect(done.status).toBe('completed');
    expect(done.timeToRevokeMs).toBeGreaterThan(0);
    expect((await target.loginError(leaked.username, leaked.password, 'app'))?.message).toMatch(/password authentication failed/);
    expect(await alive(s)).toBe(false);
    const fresh = await current('leak/single');
    expect(fresh.version).toBe(2);
    expect(await target.loginError(fresh.username, fresh.password, 'app')).toBeNull();
  });
});
