import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, sleep, waitFor, type TestEnv } from './support/test-env.ts';
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

async function versionsOf(name: string) {
  const { rows } = await t.pool.query<{ version: number; state: string }>(
    `SELECT v.version, v.state FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = $1 ORDER BY v.version`,
    [name],
  );
  return rows;
}

async function rotationsOf(name: string) {
  const { rows } = await t.pool.query(
    `SELECT r.* FROM rotations r JOIN secrets s ON s.id = r.secret_id WHERE s.name = $1 ORDER BY r.triggered_at`,
    [name],
  );
  return rows;
}

describe('scheduled rotation', () => {
  it('rotates a 2-second policy at least 3 times in 10 seconds, with exactly one current version throughout', async () => {
    const created = await rekey.api('POST', '/v1/secrets', { name: 'sched/key', provider: 'random', policy: { interval: '2s' } });
    expect(created.status).toBe(201);
    let maxCurrent = 0;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const versions = await versionsOf('sched/key');
      maxCurrent = Math.max(maxCurrent, versions.filter((v) => v.state === 'current').length);
      await sleep(50);
    }
    const versions = await versionsOf('sched/key');
    // v1 is minted at creation; each scheduled rotation adds one.
    expect(versions.length).toBeGreaterThanOrEqual(4);
    expect(versions.map((v) => v.version)).toEqual(versions.map((_, i) => i + 1));
    expect(maxCurrent).toBe(1);
    const scheduled = (await rotationsOf('sched/key')).filter((r) => r.trigger === 'schedule' && r.status === 'completed');
    expect(scheduled.length).toBeGreaterThanOrEqual(3);
    for (const r of scheduled) expect(r.time_to_revoke_ms).toBeGreaterThanOrEqual(0);
  });
});

describe('concurrent manual rotations', () => {
  it('completes or coalesces all 50 concurrent requests, with gapless versions and one current', async () => {
    await rekey.api('POST', '/v1/secrets', { name: 'busy/key', provider: 'random' });
    await waitFor(async () => (await versionsOf('busy/key')).some((v) => v.state === 'current'), { what: 'version 1' });

    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) => rekey.api('POST', '/v1/secrets/busy/key/rotate', { reason: `load ${i}` })),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(202));
    const ids = [...new Set(responses.map((r) => r.body.rotationId as string))];
    const coalesced = responses.filter((r) => r.body.coalesced).length;
    // Every request either started a rotation or joined one that had not started yet.
    expect(ids.length + coalesced).toBe(50);

    await waitFor(async () => {
      const states = await Promise.all(ids.map(async (id) => (await rekey.api('GET', `/v1/rotations/${id}`)).body.status));
      return states.every((s) => s === 'completed');
    }, { what: 'all rotations completed', timeoutMs: 30_000 });

    const versions = await versionsOf('busy/key');
    expect(versions.map((v) => v.version)).toEqual(versions.map((_, i) => i + 1));
    expect(versions).toHaveLength(ids.length + 1);
    expect(versions.filter((v) => v.state === 'current')).toHaveLength(1);
    expect(versions.filter((v) => v.state === 'pending')).toHaveLength(0);
    expect(versions.at(-1)!.state).toBe('current');
  });
});

describe('rotation record', () => {
  it('shows step timings and time-to-revoke for a rotation', async () => {
    await rekey.api('POST', '/v1/secrets', { name: 'timed/key', provider: 'random', policy: { grace: '200ms' } });
    await waitFor(async () => (await versionsOf('timed/key')).length === 1);
    const { body } = await rekey.api('POST', '/v1/secrets/timed/key/rotate', { reason: 'timing' });
    const done = await waitFor(async () => {
      const r = await rekey.api('GET', `/v1/rotations/${body.rotationId}`);
      return r.body.status === 'completed' ? r.body : null;
    });
    expect(done.steps.map((s: { step: string }) => s.step)).toEqual(['queued', 'minting', 'setting', 'testing', 'activating', 'notifying', 'revoking']);
    expect(done.timeToRevokeMs).toBeGreaterThanOrEqual(200);
    // The API shows milliseconds; PostgreSQL computed from microseconds.
    expect(Math.abs(new Date(done.revokedAt).getTime() - new Date(done.triggeredAt).getTime() - done.timeToRevokeMs)).toBeLessThanOrEqual(1);
    expect(done.fromVersion).toBe(1);
    expect(done.toVersion).toBe(2);

    const metrics = await fetch(`${rekey.baseUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/rekey_time_to_revoke_seconds_count\{trigger="manual"\} [1-9]/);
    expect(metrics).toMatch(/rekey_rotations_total\{outcome="completed",trigger="manual",provider="random"\} [1-9]/);
    expect(metrics).toMatch(/rekey_queue_depth\{queue="rotations",state="waiting"\}/);
  });
});
