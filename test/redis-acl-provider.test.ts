import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env.ts';

// redis-acl against the shared Redis: one ACL user with a random name, deleted after.
let t: TestEnv;
let rekey: InProcessRekey;
let admin: Redis;
const user = `rekey_t_${randomBytes(4).toString('hex')}`;
const served = new Set<string>();
const clients: Redis[] = [];

beforeAll(async () => {
  admin = new Redis(inject('redisUrl'));
  t = await createTestEnv({ REDIS_TARGET_ADMIN: inject('redisUrl') });
  rekey = await startRekey(t);
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await rekey?.stop();
  await admin?.call('ACL', 'DELUSER', user).catch(() => {});
  admin?.disconnect();
  await t?.cleanup();
});

async function current(): Promise<{ version: number; username: string; password: string }> {
  const { status, body } = await rekey.api('GET', '/v1/secrets/redis/app/value');
  expect(status).toBe(200);
  const login = JSON.parse(body.value);
  served.add(login.password);
  return { version: body.version, ...login };
}

/** Logs in as the user and writes a key it may write; resolves to the error, or null. */
async function loginError(login: { username: string; password: string }): Promise<Error | null> {
  const c = new Redis(inject('redisUrl'), { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.call('AUTH', login.username, login.password);
    await c.set(`app:${user}`, '1');
    return null;
  } catch (err) {
    return err as Error;
  } finally {
    c.disconnect();
  }
}

async function rotate(body: { reason: string; emergency?: boolean }, until: string[]) {
  const r = await rekey.api('POST', '/v1/secrets/redis/app/rotate', body);
  expect(r.status).toBe(202);
  return waitFor(async () => {
    const got = await rekey.api('GET', `/v1/rotations/${r.body.rotationId}`);
    return until.includes(got.body.status) ? got.body : null;
  }, { what: `rotation to reach ${until.join('/')}` });
}

describe('redis-acl', () => {
  it('refuses password rules in config with 400 naming the field', async () => {
    const r = await rekey.api('POST', '/v1/secrets', { name: 'redis/bad', provider: 'redis-acl', config: { admin: 'env:REDIS_TARGET_ADMIN', username: user, rules: ['>hunter2'] } });
    expect(r.status).toBe(400);
    expect(r.body.error.details.issues.map((i: { path: string }) => i.path)).toContain('body.config.rules.0');
    expect(JSON.stringify(r.body)).not.toContain('hunter2');
  });

  it('old works before, new after, both during grace; after revocation the old password fails and old connections end', async () => {
    const created = await rekey.api('POST', '/v1/secrets', {
      name: 'redis/app',
      provider: 'redis-acl',
      config: { admin: 'env:REDIS_TARGET_ADMIN', username: user, rules: ['~app:*', '+@all'] },
      policy: { grace: '1h' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await waitFor(async () => (await rekey.api('GET', `/v1/rotations/${created.body.rotationId}`)).body.status === 'completed');
    const v1 = await current();
    expect(v1.username).toBe(user);
    expect(await loginError(v1)).toBeNull();
    const oldConnection = new Redis(inject('redisUrl'), { username: v1.username, password: v1.password, maxRetriesPerRequest: 0, retryStrategy: () => null });
    oldConnection.on('error', () => {});
    clients.push(oldConnection);
    await oldConnection.ping();

    await rotate({ reason: 'scheduled-like' }, ['revoking']);
    const v2 = await current();
    expect(v2.version).toBe(2);
    // A Redis user holds both passwords during grace: nobody is locked out.
    expect(await loginError(v2)).toBeNull();
    expect(await loginError(v1)).toBeNull();

    const emergency = await rotate({ reason: 'leak', emergency: true }, ['completed', 'failed']);
    expect(emergency.status).toBe('completed');
    const v3 = await current();
    expect(await loginError(v3)).toBeNull();
    expect((await loginError(v1))?.message).toMatch(/WRONGPASS/);
    expect((await loginError(v2))?.message).toMatch(/WRONGPASS/);
    // Only the current password is left, and only as its hash.
    const info = (await admin.call('ACL', 'GETUSER', user)) as unknown[];
    expect(info[info.indexOf('passwords') + 1]).toHaveLength(1);
    // The emergency ended connections older than the new version.
    expect(await oldConnection.ping().then(() => 'alive', () => 'dead')).toBe('dead');

    const logs = rekey.logs.text();
    for (const p of served) expect(logs.includes(p)).toBe(false);
  });
});
