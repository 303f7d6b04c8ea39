import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeTargetPools } from '../shared/providers/postgres-target/postgres-target.ts';
import { TcpFaultProxy } from '../chaos/faults/index.ts';
import { PasswordPostgres } from './support/password-postgres.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env.ts';

// postgres-password against a real PostgreSQL that checks passwords (a private cluster:
// the shared one trusts every loopback login, so a dead password could not be seen there).
let t: TestEnv;
let rekey: InProcessRekey;
let target: PasswordPostgres;
let proxy: TcpFaultProxy;
const suffix = randomBytes(3).toString('hex');
const role = (name: string) => `app_${name}_${suffix}`;
/** Every password rekey ever served in this file: none may reach a log. */
const served = new Set<string>();
const sessions: pg.Client[] = [];

beforeAll(async () => {
  target = await PasswordPostgres.start({ logStatements: true });
  await target.admin(async (c) => {
    await c.query('CREATE DATABASE app');
    await c.query('CREATE DATABASE app_locked');
    for (const r of ['single', 'alt1', 'alt2', 'loop1', 'loop2', 'down1', 'down2', 'cut1', 'cut2', 'revert']) await c.query(`CREATE ROLE ${role(r)} LOGIN`);
  });
  proxy = await TcpFaultProxy.start({ port: target.cluster.port });
  t = await createTestEnv({ PG_TARGET_ADMIN: target.adminUrl(), PG_TARGET_VIA_PROXY: proxy.via(target.adminUrl()), ROTATION_ATTEMPTS: '3', ROTATION_BACKOFF_MS: '50' });
  rekey = await startRekey(t);
});
afterAll(async () => {
  for (const s of sessions) await s.end().catch(() => {});
  await rekey?.stop();
  await closeTargetPools();
  await proxy?.close();
  await target?.cleanup();
  await t?.cleanup();
});

interface Served {
  version: number;
  username: string;
  password: string;
}

async function current(name: string): Promise<Served> {
  const { status, body } = await rekey.api('GET', `/v1/secrets/${name}/value`);
  expect(status).toBe(200);
  const login = JSON.parse(body.value) as { username: string; password: string };
  served.add(login.password);
  return { version: body.version, ...login };
}

async function createSecret(name: string, config: Record<string, unknown>, policy: Record<string, unknown> = {}): Promise<Served> {
  const created = await rekey.api('POST', '/v1/secrets', { name, provider: 'postgres-password', config: { admin: 'env:PG_TARGET_ADMIN', database: 'app', ...config }, policy });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  await waitFor(async () => (await rekey.api('GET', `/v1/rotations/${created.body.rotationId}`)).body.status === 'completed', { what: `${name} v1` });
  return current(name);
}

async function rotate(name: string, body: { reason: string; emergency?: boolean }, until: string[]): Promise<any> {
  const r = await rekey.api('POST', `/v1/secrets/${name}/rotate`, body);
  expect(r.status).toBe(202);
  return waitFor(async () => {
    const got = await rekey.api('GET', `/v1/rotations/${r.body.rotationId}`);
    return until.includes(got.body.status) ? got.body : null;
  }, { what: `rotation of ${name} to reach ${until.join('/')}`, timeoutMs: 30_000 });
}

async function session(s: Served, database = 'app'): Promise<pg.Client> {
  const c = await target.connect(s.username, s.password, database);
  sessions.push(c);
  return c;
}

const alive = (c: pg.Client) => c.query('SELECT 1').then(() => true, () => false);

describe('postgres-password, single', () => {
  it('old works before, new after; the old password fails at once and its sessions end at revoke', async () => {
    const v1 = await createSecret('pg/single', { strategy: 'single', role: role('single') }, { grace: '1500ms', terminateSessions: true });
    expect(v1).toMatchObject({ version: 1, username: role('single') });
    expect(await target.loginError(v1.username, v1.password, 'app')).toBeNull();
    const oldSession = await session(v1);

    const activated = await rotate('pg/single', { reason: 'test' }, ['revoking']);
    const v2 = await current('pg/single');
    expect(v2.version).toBe(2);
    expect(await target.loginError(v2.username, v2.password, 'app')).toBeNull();
    // One password per role: the old one stopped working when the new one was set.
    expect((await target.loginError(v1.username, v1.password, 'app'))?.message).toMatch(/password authentication failed/);
    const newSession = await session(v2);

    await waitFor(async () => (await rekey.api('GET', `/v1/rotations/${activated.id}`)).body.status === 'completed', { what: 'revocation after grace' });
    // Sessions opened before the new version became current used the old password: ended.
    expect(await alive(oldSession)).toBe(false);
    // A session opened with the new password during the grace period lives on.
    expect(await alive(newSession)).toBe(true);
  });

  it('puts the old password back when the new one fails its test, so nobody is locked out', async () => {
    const v1 = await createSecret('pg/revert', { strategy: 'single', role: role('revert'), database: 'app_locked' });
    await target.admin((c) => c.query('REVOKE CONNECT ON DATABASE app_locked FROM PUBLIC'));
    const failed = await rotate('pg/revert', { reason: 'test fails' }, ['failed', 'completed']);
    await target.admin((c) => c.query('GRANT CONNECT ON DATABASE app_locked TO PUBLIC'));
    expect(failed.status).toBe('failed');
    expect(failed.failedStep).toBe('testing');
    expect(failed.error).toMatch(/log in as .*permission denied/);
    const still = await current('pg/revert');
    expect(still.version).toBe(1);
    expect(await target.loginError(v1.username, v1.password, 'app_locked')).toBeNull();
  });
});

describe('postgres-password, alternating', () => {
  it('keeps the previous role valid through grace; revocation makes it NOLOGIN and ends its sessions', async () => {
    const v1 = await createSecret('pg/alt', { strategy: 'alternating', roles: [role('alt1'), role('alt2')] }, { grace: '1h' });
    expect(v1.username).toBe(role('alt1'));
    const s1 = await session(v1);

    const scheduled = await rotate('pg/alt', { reason: 'scheduled-like' }, ['revoking']);
    const v2 = await current('pg/alt');
    expect(v2.username).toBe(role('alt2'));
    expect(await target.loginError(v2.username, v2.password, 'app')).toBeNull();
    // In grace: the previous role still logs in and its session is untouched.
    expect(await target.loginError(v1.username, v1.password, 'app')).toBeNull();
    expect(await alive(s1)).toBe(true);
    const s2 = await session(v2);

    // An emergency rotation first retires v1 (still in grace), reuses its role for v3,
    // then revokes v2 at once.
    const emergency = await rotate('pg/alt', { reason: 'leak', emergency: true }, ['completed', 'failed']);
    expect(emergency.status).toBe('completed');
    const v3 = await current('pg/alt');
    expect(v3).toMatchObject({ version: 3, username: role('alt1') });
    expect(await target.loginError(v3.username, v3.password, 'app')).toBeNull();
    expect(await target.loginError(v1.username, v1.password, 'app')).not.toBeNull();
    expect((await target.loginError(v2.username, v2.password, 'app'))?.message).toMatch(/not permitted to log in|password authentication failed/);
    expect(await alive(s1)).toBe(false);
    expect(await alive(s2)).toBe(false);
    expect((await rekey.api('GET', `/v1/rotations/${scheduled.id}`)).body.status).toBe('completed');
  });

  it('a client that always logs in with the served value sees zero failures through 20 back-to-back rotations', async () => {
    await createSecret('pg/loop', { strategy: 'alternating', roles: [role('loop1'), role('loop2')] }, { grace: '30s' });
    let stop = false;
    let logins = 0;
    const failures: string[] = [];
    const versions = new Set<number>();
    const client = (async () => {
      while (!stop) {
        const v = await current('pg/loop');
        versions.add(v.version);
        const err = await target.loginError(v.username, v.password, 'app');
        if (err) failures.push(`v${v.version} as ${v.username}: ${err.message}`);
        else logins++;
      }
    })();
    try {
      for (let i = 0; i < 20; i++) {
        const r = await rotate('pg/loop', { reason: `back-to-back ${i}` }, ['revoking', 'completed', 'failed']);
        expect(r.status).not.toBe('failed');
      }
    } finally {
      stop = true;
      await client;
    }
    expect(failures).toEqual([]);
    expect(logins).toBeGreaterThanOrEqual(20);
    expect(versions.size).toBeGreaterThanOrEqual(5);
    expect((await current('pg/loop')).version).toBe(21);
  });
});

describe('postgres-password, target down', () => {
  it('fails cleanly after its retries, the old credential works once the target is back, and the next rotation succeeds', async () => {
    const v1 = await createSecret('pg/down', { strategy: 'alternating', roles: [role('down1'), role('down2')] });
    await target.cluster.stop();
    let failed: any;
    try {
      failed = await rotate('pg/down', { reason: 'target is down' }, ['failed', 'completed']);
    } finally {
      await target.cluster.start();
    }
    expect(failed.status).toBe('failed');
    expect(failed.failedStep).toBe('setting');
    expect(failed.attempts).toBe(3);
    expect(failed.error).toMatch(/target unreachable/);
    expect(failed.error).not.toContain(v1.password);

    expect((await current('pg/down')).version).toBe(1);
    expect(await target.loginError(v1.username, v1.password, 'app')).toBeNull();

    const metrics = await fetch(`${rekey.baseUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/rekey_rotations_total\{outcome="failed",trigger="manual",provider="postgres-password"\} [1-9]/);
    const audit = await rekey.api('GET', '/v1/audit?limit=1000');
    const entry = audit.body.events.find((e: any) => e.action === 'rotation.failed' && e.target === failed.id);
    expect(entry?.details).toMatchObject({ step: 'setting' });

    // The next scheduled rotation tries again, and succeeds.
    expect((await rekey.api('PATCH', '/v1/secrets/pg/down', { policy: { interval: '1s' } })).status).toBe(200);
    const scheduled = await waitFor(async () => {
      const list = await rekey.api('GET', '/v1/rotations?secret=pg/down&limit=10');
      return list.body.rotations.find((r: any) => r.trigger === 'schedule' && ['completed', 'failed'].includes(r.status));
    }, { what: 'a scheduled rotation of pg/down' });
    expect((await rekey.api('PATCH', '/v1/secrets/pg/down', { policy: {} })).status).toBe(200);
    expect(scheduled.status).toBe('completed');
    const latest = await current('pg/down');
    expect(latest.version).toBeGreaterThanOrEqual(3);
    expect(await target.loginError(latest.username, latest.password, 'app')).toBeNull();
  });

  it('cut off by a proxy (every connection reset): the same — fails after retries, old works, next succeeds', async () => {
    const created = await rekey.api('POST', '/v1/secrets', {
      name: 'pg/cut',
      provider: 'postgres-password',
      config: { admin: 'env:PG_TARGET_VIA_PROXY', database: 'app', strategy: 'alternating', roles: [role('cut1'), role('cut2')] },
    });
    expect(created.status).toBe(201);
    await waitFor(async () => (await rekey.api('GET', `/v1/rotations/${created.body.rotationId}`)).body.status === 'completed', { what: 'pg/cut v1' });
    const v1 = await current('pg/cut');
    await proxy.set({ mode: 'reset' });
    let failed: any;
    try {
      failed = await rotate('pg/cut', { reason: 'partitioned from the target' }, ['failed', 'completed']);
    } finally {
      await proxy.set({ mode: 'pass' });
    }
    expect(failed.status).toBe('failed');
    expect(failed.failedStep).toBe('setting');
    expect(failed.error).toMatch(/target unreachable/);
    expect(await target.loginError(v1.username, v1.password, 'app')).toBeNull();
    expect((await rotate('pg/cut', { reason: 'healed' }, ['completed', 'failed'])).status).toBe('completed');
    const v3 = await current('pg/cut');
    expect(await target.loginError(v3.username, v3.password, 'app')).toBeNull();
  });
});

describe('postgres-password, target-side fence', () => {
  it('refuses a late set from an older version, so a superseded worker cannot overwrite a newer password', async () => {
    const { postgresPasswordProvider } = await import('../shared/providers/postgres-password/postgres-password-provider.ts');
    const config = postgresPasswordProvider.configSchema.parse({ strategy: 'single', role: role('fence'), admin: 'env:PG_TARGET_ADMIN', database: 'app' });
    const ctx = { secretName: 'pg/fence', config, log: rekey.rt.log, resolveReference: rekey.rt.resolveReference };
    await target.admin((c) => c.query(`CREATE ROLE ${role('fence')} LOGIN`));
    const cred = (version: number, password: string) => ({ version, value: JSON.stringify({ username: role('fence'), password }), public: { username: role('fence') } });
    const newer = cred(8, `newer-${suffix}`);
    const stale = cred(7, `stale-${suffix}`);

    await postgresPasswordProvider.set(ctx, newer, null);
    await postgresPasswordProvider.set(ctx, newer, null); // a retry of the same version is fine
    await expect(postgresPasswordProvider.set(ctx, stale, null)).rejects.toThrow(/stale/);
    // A discard of the stale version must not touch the role either.
    await expect(postgresPasswordProvider.discard!(ctx, stale, cred(6, `older-${suffix}`))).rejects.toThrow(/stale/);
    expect(await target.loginError(role('fence'), `newer-${suffix}`, 'app')).toBeNull();
    expect(await target.loginError(role('fence'), `stale-${suffix}`, 'app')).not.toBeNull();

    // After a discard, a late set of the discarded version is refused too.
    await postgresPasswordProvider.discard!(ctx, newer, cred(6, `older-${suffix}`));
    await expect(postgresPasswordProvider.set(ctx, newer, null)).rejects.toThrow(/stale/);
    expect(await target.loginError(role('fence'), `older-${suffix}`, 'app')).toBeNull();
  });
});

describe('postgres-password, configuration and secrecy', () => {
  it('refuses a bad config with 400 naming the field', async () => {
    const post = (config: unknown) => rekey.api('POST', '/v1/secrets', { name: `pg/bad-${randomBytes(3).toString('hex')}`, provider: 'postgres-password', config });
    const paths = async (config: unknown) => {
      const r = await post(config);
      expect(r.status).toBe(400);
      return (r.body.error.details.issues as { path: string }[]).map((i) => i.path);
    };
    expect(await paths({ strategy: 'alternating', roles: ['x', 'x'], admin: 'env:PG_TARGET_ADMIN' })).toContain('body.config.roles');
    expect(await paths({ strategy: 'single', role: 'x', admin: 'postgres://root:hunter2@127.0.0.1/postgres' })).toContain('body.config.admin');
    expect(await paths({ role: 'x', admin: 'env:PG_TARGET_ADMIN' })).toContain('body.config.strategy');
  });

  it('never sends a plaintext password to the server log, nor to rekey logs or the API', async () => {
    expect(served.size).toBeGreaterThanOrEqual(25);
    const serverLog = target.serverLog();
    // The log does hold the statements (so this check can fail): verifiers, not passwords.
    expect(serverLog).toMatch(/ALTER ROLE .* PASSWORD 'SCRAM-SHA-256\$4096:/);
    const rekeyLogs = rekey.logs.text();
    const rotations = JSON.stringify((await rekey.api('GET', '/v1/rotations?limit=1000')).body);
    for (const password of served) {
      expect(serverLog.includes(password)).toBe(false);
      expect(rekeyLogs.includes(password)).toBe(false);
      expect(rotations.includes(password)).toBe(false);
    }
  });
});
