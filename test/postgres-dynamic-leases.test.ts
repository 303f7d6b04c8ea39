import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeTargetPools } from '../shared/providers/postgres-target/postgres-target.ts';
import { PasswordPostgres } from './support/password-postgres.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env.ts';

// postgres-dynamic leases against a private PostgreSQL that checks passwords.
let t: TestEnv;
let rekey: InProcessRekey;
let target: PasswordPostgres;
const passwords = new Set<string>();
const adminPassword = `admin-${randomBytes(12).toString('hex')}`;

beforeAll(async () => {
  target = await PasswordPostgres.start();
  await target.admin(async (c) => {
    await c.query('CREATE DATABASE app');
    await c.query('CREATE ROLE app_group NOLOGIN');
    // Not a superuser: what the README says an operator must grant.
    await c.query(`CREATE ROLE rekey_admin LOGIN CREATEROLE PASSWORD '${adminPassword}' IN ROLE pg_signal_backend`);
  });
  await target.admin(async (c) => {
    await c.query('CREATE TABLE orders (id int)');
    await c.query('INSERT INTO orders VALUES (1), (2)');
    await c.query('GRANT SELECT ON orders TO app_group');
  }, 'app');
  const adminUrl = new URL(target.adminUrl('app'));
  adminUrl.username = 'rekey_admin';
  adminUrl.password = adminPassword;
  t = await createTestEnv({ PG_TARGET_ADMIN: adminUrl.toString(), LEASE_REAPER_INTERVAL_MS: '200' });
  rekey = await startRekey(t);
  for (const name of ['db/app', 'db/emergency']) {
    const created = await rekey.api('POST', '/v1/secrets', {
      name,
      provider: 'postgres-dynamic',
      config: { admin: 'env:PG_TARGET_ADMIN', groupRole: 'app_group', defaultTtl: '1h', maxTtl: '24h', usernamePrefix: 'lease_' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await waitFor(async () => (await rekey.api('GET', `/v1/rotations/${created.body.rotationId}`)).body.status === 'completed', { what: `${name} v1` });
  }
});
afterAll(async () => {
  await rekey?.stop();
  await closeTargetPools();
  await target?.cleanup();
  await t?.cleanup();
});

interface Lease {
  leaseId: string;
  username: string;
  password: string;
  expiresAt: string;
}

async function lease(name: string, body: unknown = {}): Promise<Lease> {
  const r = await rekey.api('POST', `/v1/secrets/${name}/leases`, body);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  passwords.add(r.body.password);
  return r.body;
}

const leaseRoles = () =>
  target.admin(async (c) => (await c.query<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'lease\\_%'`)).rows.map((r) => r.rolname));

async function inBatches<T, R>(items: T[], size: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

describe('postgres-dynamic leases', () => {
  it('creates, renews and revokes 100 leases; each logs in with its group grants; pg_roles holds none afterwards', async () => {
    const leases = await inBatches(Array.from({ length: 100 }, (_, i) => i), 10, () => lease('db/app'));
    expect(new Set(leases.map((l) => l.username)).size).toBe(100);
    expect((await leaseRoles()).length).toBe(100);

    const first = leases[0]!;
    const session = await target.connect(first.username, first.password, 'app');
    expect((await session.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(2);
    for (const l of leases.slice(1, 4)) expect(await target.loginError(l.username, l.password, 'app')).toBeNull();
    expect(await target.loginError(first.username, 'not-the-password', 'app')).not.toBeNull();

    const renewed = await inBatches(leases, 10, async (l) => {
      const r = await rekey.api('POST', `/v1/leases/${l.leaseId}/renew`, { ttl: '2h' });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body;
    });
    for (const [i, r] of renewed.entries()) expect(new Date(r.expiresAt).getTime()).toBeGreaterThan(new Date(leases[i]!.expiresAt).getTime());
    const validUntil = await target.admin(async (c) => (await c.query('SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1', [first.username])).rows[0].rolvaliduntil as Date);
    expect(Math.abs(validUntil.getTime() - new Date(renewed[0].expiresAt).getTime())).toBeLessThan(1000);

    const revoked = await inBatches(leases, 10, (l) => rekey.api('DELETE', `/v1/leases/${l.leaseId}`));
    expect(revoked.map((r) => r.status)).toEqual(Array(100).fill(204));
    expect(await leaseRoles()).toEqual([]);
    // Its session ended with the role, and the password no longer logs in.
    expect(await session.query('SELECT 1').then(() => 'alive', () => 'dead')).toBe('dead');
    await session.end().catch(() => {});
    expect(await target.loginError(first.username, first.password, 'app')).not.toBeNull();
    // Revoking twice is harmless; renewing a revoked lease is a conflict.
    expect((await rekey.api('DELETE', `/v1/leases/${first.leaseId}`)).status).toBe(204);
    expect((await rekey.api('POST', `/v1/leases/${first.leaseId}/renew`, {})).status).toBe(409);
  });

  it('reaps an expired lease without any call', async () => {
    const l = await lease('db/app', { ttl: '3s' });
    expect(await leaseRoles()).toContain(l.username);
    await waitFor(async () => !(await leaseRoles()).includes(l.username), { what: 'expired lease role dropped', timeoutMs: 15_000 });
    const shown = await rekey.api('GET', `/v1/leases/${l.leaseId}`);
    expect(shown.body).toMatchObject({ revokeReason: 'expired' });
    expect(shown.body.revokedAt).not.toBeNull();
  });

  it('an emergency rotation of the secret drops every lease issued under the old version', async () => {
    const before = await Promise.all([lease('db/emergency'), lease('db/emergency')]);
    const r = await rekey.api('POST', '/v1/secrets/db/emergency/rotate', { reason: 'leak', emergency: true });
    await waitFor(async () => (await rekey.api('GET', `/v1/rotations/${r.body.rotationId}`)).body.status === 'completed', { what: 'emergency rotation' });
    const roles = await leaseRoles();
    for (const l of before) expect(roles).not.toContain(l.username);
    const after = await lease('db/emergency');
    expect(await target.loginError(after.username, after.password, 'app')).toBeNull();
    await waitFor(async () => (await rekey.api('GET', `/v1/leases/${before[0]!.leaseId}`)).body.revokeReason === 'version revoked', { what: 'lease row closed by the reaper' });
    expect((await rekey.api('DELETE', `/v1/leases/${after.leaseId}`)).status).toBe(204);
  });

  it('refuses bad requests with the right status, and keeps lease passwords nowhere', async () => {
    const tooLong = await rekey.api('POST', '/v1/secrets/db/app/leases', { ttl: '2d' });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.details.issues[0].path).toBe('body.ttl');
    expect((await rekey.api('POST', '/v1/secrets/db/app/leases', { ttl: 'soon' })).status).toBe(400);
    expect((await rekey.api('POST', '/v1/secrets/db/nope/leases', {})).status).toBe(404);
    expect((await rekey.api('GET', '/v1/leases/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await rekey.api('GET', '/v1/leases/not-a-uuid')).status).toBe(400);
    await rekey.api('POST', '/v1/secrets', { name: 'plain/key', provider: 'random' });
    expect((await rekey.api('POST', '/v1/secrets/plain/key/leases', {})).status).toBe(409);

    const rows = JSON.stringify((await t.pool.query('SELECT * FROM leases')).rows);
    const audit = JSON.stringify((await t.pool.query('SELECT * FROM audit_events')).rows);
    const logs = rekey.logs.text();
    expect(passwords.size).toBeGreaterThanOrEqual(100);
    for (const p of [...passwords, adminPassword]) {
      expect(rows.includes(p)).toBe(false);
      expect(audit.includes(p)).toBe(false);
      expect(logs.includes(p)).toBe(false);
    }
  });
});
