import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactSign, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RekeyClient } from '../services/injector/sdk.ts';
import { createTestEnv, sleep, waitFor, type TestEnv } from './support/test-env.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';
import { CuttableProxy, startInject, type InjectProcess } from './support/inject-process.ts';
import { createServer } from 'node:net';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

let t: TestEnv;
let rekey: InProcessRekey;
const injectors: InjectProcess[] = [];
const clients: RekeyClient[] = [];
const dir = mkdtempSync(join(tmpdir(), 'rekey-inject-'));

beforeAll(async () => {
  t = await createTestEnv({ REKEY_REDELIVER_MS: '1000' });
  rekey = await startRekey(t);
});
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.allSettled(injectors.map((i) => i.stop()));
  await rekey?.stop();
  await t?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

async function secretWithSubscriber(name: string, config: Record<string, unknown> = {}) {
  expect((await rekey.api('POST', '/v1/secrets', { name, provider: 'random', config })).status).toBe(201);
  await waitFor(async () => (await rekey.api('GET', `/v1/secrets/${name}`)).body.currentVersion === 1, { what: `${name} v1` });
  const sub = await rekey.api('POST', '/v1/subscribers', { name: `for-${name.replace(/\//g, '-')}`, scope: [name] });
  expect(sub.status).toBe(201);
  return sub.body as { id: string; token: string };
}

async function rotateAndWait(name: string) {
  const { body } = await rekey.api('POST', `/v1/secrets/${name}/rotate`, { reason: 'test' });
  await waitFor(async () => ['completed', 'failed'].includes((await rekey.api('GET', `/v1/rotations/${body.rotationId}`)).body.status), { what: 'rotation done' });
  return body.rotationId as string;
}

const current = async (name: string) => (await rekey.api('GET', `/v1/secrets/${name}/value`)).body as { version: number; value: string };
const readOrNull = (p: string) => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
};

describe('rekey inject', () => {
  it('writes the file 0600 and holds the latest version within seconds of reconnecting after missing 3 rotations', async () => {
    const { token } = await secretWithSubscriber('offline/key');
    const proxy = new CuttableProxy({ host: '127.0.0.1', port: Number(new URL(rekey.baseUrl).port) });
    await proxy.up();
    const localPort = await freePort();
    const inj = startInject({ url: `http://127.0.0.1:${proxy.port}`, token, args: ['--secret', 'offline/key', '--dir', join(dir, 'offline'), '--listen', `127.0.0.1:${localPort}`] });
    injectors.push(inj);
    const file = join(dir, 'offline', 'offline', 'key');
    const v1 = await current('offline/key');
    await waitFor(async () => readOrNull(file) === v1.value, { what: 'file at v1', timeoutMs: 60_000 });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // A first rotation while connected gives the injector a resume point (an event id).
    await rotateAndWait('offline/key');
    await waitFor(async () => readOrNull(file) === (await current('offline/key')).value, { what: 'file at v2' });

    await proxy.cut();
    for (let i = 0; i < 3; i++) await rotateAndWait('offline/key');
    const latest = await current('offline/key');
    expect(latest.version).toBe(5);
    await sleep(500);
    // Offline: it keeps serving the last good value, and says how stale it may be.
    const held = readOrNull(file)!;
    expect(held).not.toBe(latest.value);
    expect(held.length).toBe(40);
    const local = await (await fetch(`http://127.0.0.1:${localPort}/v1/secrets/offline/key/value`)).json();
    expect(local).toMatchObject({ version: 2, value: held });
    expect(local.stalenessMs).toBeGreaterThan(0);
    const health = await (await fetch(`http://127.0.0.1:${localPort}/healthz`)).json();
    expect(health.connected).toBe(false);

    await proxy.up();
    const reconnectedAt = Date.now();
    await waitFor(async () => readOrNull(file) === latest.value, { what: 'file at v5 after reconnect', timeoutMs: 20_000 });
    expect(Date.now() - reconnectedAt).toBeLessThan(15_000);
    // It resumed from its last event id (the api replayed what it missed).
    await waitFor(async () => (await t.pool.query(`SELECT 1 FROM deliveries d JOIN rotations r ON r.id = d.rotation_id JOIN secrets s ON s.id = r.secret_id WHERE s.name = 'offline/key' AND r.to_version = 5 AND d.acked_version = 5`)).rowCount, { what: 'ack of v5', timeoutMs: 40_000 }).catch(async (err) => {
      const { rows } = await t.pool.query(`SELECT r.to_version, d.* FROM deliveries d JOIN rotations r ON r.id = d.rotation_id JOIN secrets s ON s.id = r.secret_id WHERE s.name = 'offline/key' ORDER BY r.to_version`);
      const acks = await t.pool.query(`SELECT * FROM subscriber_acks`);
      throw new Error(`${err.message}: ${JSON.stringify(rows)} acks ${JSON.stringify(acks.rows)} ${inj.output().slice(-3000)}`);
    });
    await proxy.cut();
  });

  it('ignores forged events on the Redis channel (wrong key, no signature, alg none) and still acts on real ones', async () => {
    const { token } = await secretWithSubscriber('forged/key');
    const inj = startInject({ url: rekey.baseUrl, token, args: ['--secret', 'forged/key', '--dir', join(dir, 'forged'), '--channel', 'redis'], env: { REDIS_URL: t.redisUrl, REKEY_REDIS_PREFIX: t.prefix } });
    injectors.push(inj);
    const sdk = new RekeyClient({ url: rekey.baseUrl, token, secrets: ['forged/key'], channel: 'redis', redis: { url: t.redisUrl, prefix: t.prefix } });
    clients.push(sdk);
    await sdk.start();
    const file = join(dir, 'forged', 'forged', 'key');
    const v1 = await current('forged/key');
    await waitFor(async () => readOrNull(file) === v1.value, { what: 'file at v1', timeoutMs: 60_000 });
    await sleep(300);
    const fetchesBefore = await valueFetches();
    const mtimeBefore = statSync(file).mtimeMs;

    const { keys } = (await (await fetch(`${rekey.baseUrl}/v1/jwks`)).json()) as { keys: { kid: string }[] };
    const event = {
      specversion: '1.0', id: 'forged-1.rotated', source: 'rekey', type: 'dev.rekey.secret.rotated', subject: 'forged/key', time: new Date().toISOString(), datacontenttype: 'application/json',
      data: { secret: 'forged/key', version: 2, previousVersion: 1, rotationId: '00000000-0000-4000-8000-000000000000', emergency: true, revokeAt: null, refetchSpreadMs: 0 },
    };
    const attacker = await generateKeyPair('EdDSA');
    const payload = new TextEncoder().encode(JSON.stringify(event));
    const wrongKey = await new CompactSign(payload).setProtectedHeader({ alg: 'EdDSA', kid: keys[0]!.kid, typ: 'cloudevents+jws' }).sign(attacker.privateKey);
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'cloudevents+jws' })).toString('base64url')}.${Buffer.from(payload).toString('base64url')}.`;
    for (const forged of [wrongKey, JSON.stringify(event), none]) await t.redis.publish(`${t.prefix}:events`, forged);
    await waitFor(async () => sdk.forged === 3, { what: 'sdk saw 3 forged events' });
    await sleep(1000);
    // Nothing happened: no fetch at the api (a naive injector would refetch), same file, same version.
    expect(await valueFetches()).toBe(fetchesBefore);
    expect(statSync(file).mtimeMs).toBe(mtimeBefore);
    expect(sdk.version('forged/key')).toBe(1);
    expect(inj.output()).toContain('does not verify');

    // A real rotation still gets through the same channel.
    await rotateAndWait('forged/key');
    const v2 = await current('forged/key');
    await waitFor(async () => readOrNull(file) === v2.value && sdk.version('forged/key') === 2, { what: 'real event applied' });
  });

  it('a reader looping on the injected file during 50 rotations never sees a partial or empty file', async () => {
    const { token } = await secretWithSubscriber('atomic/key', { length: 1024, alphabet: 'hex' });
    const inj = startInject({ url: rekey.baseUrl, token, args: ['--secret', 'atomic/key', '--dir', join(dir, 'atomic')] });
    injectors.push(inj);
    const file = join(dir, 'atomic', 'atomic', 'key');
    await waitFor(async () => readOrNull(file)?.length === 1024, { what: 'file at v1', timeoutMs: 60_000 });
    const reader = spawn('node', ['test/support/file-reader.mjs', file, '^[0-9a-f]{1024}$'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    reader.stdout.on('data', (d) => (out += d));
    try {
      for (let i = 0; i < 50; i++) await rotateAndWait('atomic/key');
      const last = await current('atomic/key');
      expect(last.version).toBe(51);
      await waitFor(async () => readOrNull(file) === last.value, { what: 'file at v51' });
    } finally {
      reader.stdin.end();
    }
    await new Promise((r) => reader.once('exit', r));
    const seen = JSON.parse(out) as { reads: number; missing: number; bad: number; distinct: number };
    expect(seen.reads).toBeGreaterThan(1000);
    expect(seen.missing).toBe(0);
    expect(seen.bad).toBe(0);
    // The reader really watched the file change (not one value the whole time).
    expect(seen.distinct).toBeGreaterThan(10);
  });
});

async function valueFetches(): Promise<number> {
  const text = await fetch(`${rekey.baseUrl}/metrics`).then((r) => r.text());
  return Number(/rekey_value_fetch_seconds_count\{outcome="ok"\} (\d+)/.exec(text)?.[1] ?? 0);
}
