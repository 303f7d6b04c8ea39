import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, sleep, waitFor, type TestEnv } from './support/test-env.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';

let t: TestEnv;
let rekey: InProcessRekey;
const children = new Set<ChildProcess>();

/** A real rotator process (`rekey start rotator`), so it can be SIGKILLed. */
function startRotatorProcess(): ChildProcess {
  const child = spawn(process.execPath, ['services/cli/rekey.mjs', 'start', 'rotator'], {
    env: { ...t.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

beforeAll(async () => {
  t = await createTestEnv();
  // Everything but the rotator runs in this process; the rotator runs (and dies) as a child.
  rekey = await startRekey(t, ['api', 'scheduler', 'notifier']);
});
afterAll(async () => {
  await Promise.all([...children].map(kill));
  await rekey?.stop();
  await t?.cleanup();
});

async function state(name: string) {
  const versions = (
    await t.pool.query<{ version: number; state: string }>(
      `SELECT v.version, v.state FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = $1 ORDER BY v.version`,
      [name],
    )
  ).rows;
  const rotations = (
    await t.pool.query<{ id: string; status: string; attempts: number; to_version: number | null }>(
      `SELECT r.id, r.status, r.attempts, r.to_version FROM rotations r JOIN secrets s ON s.id = r.secret_id WHERE s.name = $1 ORDER BY r.triggered_at`,
      [name],
    )
  ).rows;
  return { versions, rotations };
}

function expectConverged(s: Awaited<ReturnType<typeof state>>) {
  expect(s.rotations.every((r) => r.status === 'completed')).toBe(true);
  expect(s.versions.map((v) => v.version)).toEqual(s.versions.map((_, i) => i + 1));
  expect(s.versions.filter((v) => v.state === 'current')).toHaveLength(1);
  expect(s.versions.filter((v) => v.state === 'pending')).toHaveLength(0);
  // Each completed rotation produced exactly one version, and each version belongs to one rotation.
  const produced = s.rotations.map((r) => r.to_version);
  expect(new Set(produced).size).toBe(produced.length);
}

describe('rotator killed with SIGKILL mid-step', () => {
  it('completes the rotation exactly once after a restart', async () => {
    let rotator = startRotatorProcess();
    await rekey.api('POST', '/v1/secrets', { name: 'crash/held', provider: 'random' });
    // Wait for the first rotation to finish, not just for its version: the table lock below
    // would otherwise stall that rotation, which holds the secret's row, and the next claim behind it.
    await waitFor(async () => (await state('crash/held')).rotations[0]?.status === 'completed', { what: 'version 1', timeoutMs: 30_000 });

    // Hold the versions table so the rotator blocks inside its minting step, then kill it there.
    const blocker = await t.pool.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE secret_versions IN ACCESS EXCLUSIVE MODE');
    const { body } = await rekey.api('POST', '/v1/secrets/crash/held/rotate', { reason: 'crash test' });
    // (Only the rotations table may be read here: secret_versions is locked.)
    await waitFor(async () => (await t.pool.query('SELECT status FROM rotations WHERE id = $1', [body.rotationId])).rows[0]?.status === 'minting', {
      what: 'rotation to enter minting',
    });
    await sleep(200);
    await kill(rotator);
    await blocker.query('ROLLBACK');
    blocker.release();

    rotator = startRotatorProcess();
    const done = await waitFor(
      async () => {
        const s = await state('crash/held');
        return s.rotations.find((r) => r.id === body.rotationId)?.status === 'completed' ? s : null;
      },
      { what: 'rotation completed after restart', timeoutMs: 30_000 },
    );
    expectConverged(done);
    expect(done.versions).toHaveLength(2);
    // Claimed once by the killed worker and once more by its successor.
    expect(done.rotations.find((r) => r.id === body.rotationId)!.attempts).toBeGreaterThanOrEqual(2);
    await kill(rotator);
  }, 120_000);

  it('converges when the rotator is killed at random points of five rotations', async () => {
    let rotator = startRotatorProcess();
    await rekey.api('POST', '/v1/secrets', { name: 'crash/random', provider: 'jwt-signing-key' });
    await waitFor(async () => (await state('crash/random')).rotations[0]?.status === 'completed', { what: 'version 1', timeoutMs: 30_000 });
    for (let i = 0; i < 5; i++) {
      const { body } = await rekey.api('POST', '/v1/secrets/crash/random/rotate', { reason: `kill ${i}` });
      await sleep(Math.floor(Math.random() * 40));
      await kill(rotator);
      rotator = startRotatorProcess();
      await waitFor(
        async () => (await state('crash/random')).rotations.find((r) => r.id === body.rotationId)?.status === 'completed',
        { what: `rotation ${i} completed`, timeoutMs: 30_000 },
      );
    }
    const s = await state('crash/random');
    expectConverged(s);
    expect(s.versions).toHaveLength(6);
    await kill(rotator);
  }, 240_000); // each kill waits out a job lock and a process start, slow on a loaded machine
});
