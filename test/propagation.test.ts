import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { remoteEventKeys } from '../services/injector/event-verifier.ts';
import { RekeyClient } from '../services/injector/sdk.ts';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';
import { startInject, type InjectProcess } from './support/inject-process.ts';

let t: TestEnv;
let rekey: InProcessRekey;
const clients: RekeyClient[] = [];
const injectors: InjectProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'rekey-prop-'));

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

async function addSubscriber(name: string, scope: string[]) {
  const res = await rekey.api('POST', '/v1/subscribers', { name, scope });
  expect(res.status).toBe(201);
  return res.body as { id: string; token: string };
}

describe('propagation to 200 subscribers', () => {
  it('203 subscribers (200 SDK clients, 3 rekey inject processes) hold and ack the new version; propagatedAt is set and the acked policy revokes early', async () => {
    // Grace is long; `revokeWhen: acked` must not wait for it once everyone holds the new version.
    const created = await rekey.api('POST', '/v1/secrets', { name: 'prop/key', provider: 'random', policy: { grace: '5m', revokeWhen: 'acked' } });
    expect(created.status).toBe(201);
    await waitFor(async () => (await rekey.api('GET', '/v1/secrets/prop/key')).body.currentVersion === 1, { what: 'v1' });

    const tokens = await Promise.all(Array.from({ length: 203 }, (_, i) => addSubscriber(`sub-${i}`, ['prop/'])));
    for (let i = 0; i < 3; i++) {
      // The first one also runs a reload command; it learns the version, never the value.
      const reload = i === 0 ? ['--exec', `echo "$REKEY_SECRET v$REKEY_VERSION" >> ${join(dir, 'reloads.log')}`] : [];
      injectors.push(startInject({ url: rekey.baseUrl, token: tokens[200 + i]!.token, args: ['--secret', 'prop/key', '--dir', join(dir, `i${i}`), ...reload] }));
    }
    const keys = remoteEventKeys(rekey.baseUrl);
    const rotatedEvents: number[] = [];
    for (let i = 0; i < 200; i++) {
      const c = new RekeyClient({ url: rekey.baseUrl, token: tokens[i]!.token, secrets: ['prop/key'], keys });
      c.on('rotated', (e: { version: number }) => rotatedEvents.push(e.version));
      clients.push(c);
    }
    await Promise.all(clients.map((c) => c.start()));
    const file = (i: number) => {
      try {
        return readFileSync(join(dir, `i${i}`, 'prop', 'key'), 'utf8');
      } catch {
        return null;
      }
    };
    const v1 = (await rekey.api('GET', '/v1/secrets/prop/key/value')).body.value as string;
    await waitFor(async () => [0, 1, 2].every((i) => file(i) === v1), { what: 'injector files at v1', timeoutMs: 60_000 });
    // Everyone is live (seen by the api) before the rotation snapshots who must ack.
    await waitFor(async () => Number((await t.pool.query(`SELECT count(*) FROM subscribers WHERE last_seen_at IS NOT NULL`)).rows[0].count) === 203, { what: 'all seen' });

    const { body } = await rekey.api('POST', '/v1/secrets/prop/key/rotate', { reason: 'propagation test' });
    let last: any = null;
    const done = await waitFor(async () => {
      const r = (last = (await rekey.api('GET', `/v1/rotations/${body.rotationId}`)).body);
      return r.propagatedAt && r.status === 'completed' ? r : null;
    }, { what: 'propagated and revoked', timeoutMs: 60_000 }).catch((err) => {
      // Say who is missing: a timeout alone does not tell a slow machine from a lost ack.
      const unacked = last?.deliveries?.filter((d: { ackedAt: string | null }) => !d.ackedAt).map((d: { subscriber: string }) => d.subscriber);
      const behind = clients.filter((c) => c.version('prop/key') !== 2).length;
      throw new Error(`${err.message}: status ${last?.status}, ${last?.deliveries?.length} deliveries, unacked ${JSON.stringify(unacked)}, sdk clients behind ${behind}`);
    });

    const v2 = (await rekey.api('GET', '/v1/secrets/prop/key/value')).body;
    expect(v2.version).toBe(2);
    expect(clients.every((c) => c.version('prop/key') === 2 && c.get('prop/key') === v2.value)).toBe(true);
    expect([0, 1, 2].every((i) => file(i) === v2.value)).toBe(true);
    expect(rotatedEvents.filter((v) => v === 2)).toHaveLength(200);
    // Reload ran for the rotation (not for the first value), before the ack.
    expect(readFileSync(join(dir, 'reloads.log'), 'utf8')).toBe('prop/key v2\n');
    expect(done.deliveries).toHaveLength(203);
    expect(done.deliveries.every((d: { ackedVersion: number; ackedAt: string }) => d.ackedVersion === 2 && d.ackedAt)).toBe(true);
    // Revoked on the acks, minutes before the grace deadline.
    expect(new Date(done.revokedAt).getTime()).toBeLessThan(new Date(done.revokeAfter).getTime() - 60_000);
    expect(new Date(done.propagatedAt).getTime()).toBeLessThanOrEqual(new Date(done.revokedAt).getTime());

    const metrics = await fetch(`${rekey.baseUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/rekey_propagation_seconds_count\{trigger="manual"\} 1/);
    expect(metrics).toMatch(/rekey_acks_total\{outcome="ok"\} [1-9]\d\d/);
    expect(metrics).toMatch(/rekey_deliveries_total\{channel="sse",outcome="sent"\} [1-9]\d\d/);
    expect(metrics).toMatch(/rekey_value_fetch_seconds_count\{outcome="ok"\} [1-9]/);
    // The value never reaches a log line.
    expect(rekey.logs.text()).not.toContain(v2.value);
    for (const i of injectors) expect(i.output()).not.toContain(v2.value);
  }, 180_000);
});
