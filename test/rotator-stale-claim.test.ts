import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RotationStateMachine } from '../services/rotator/rotation-state-machine.ts';
import { requestRotation } from '../shared/db/rotation-store.ts';
import { createRuntime, type Runtime } from '../shared/runtime.ts';
import { createSecret } from '../shared/secret-admin.ts';
import { createTestEnv, sleep, type TestEnv } from './support/test-env.ts';

// Regression (found by `npm run chaos -- rotator-partition`): a worker that read a rotation
// as `notifying`, then claimed it after the fence holder had already moved it to
// `revoking` and released the secret, took the secret's lock for a rotation that never
// releases it again. Every later rotation of that secret stayed `queued` forever.
let t: TestEnv;
let rt: Runtime;
let machine: RotationStateMachine;

beforeAll(async () => {
  t = await createTestEnv();
  rt = createRuntime(t.env, { name: 'stale-claim-test' });
  machine = new RotationStateMachine({ pool: rt.pool, cipher: rt.cipher, queues: rt.queues, metrics: rt.metrics, log: rt.log, resolveReference: rt.resolveReference });
});
afterAll(async () => {
  await rt?.close();
  await t?.cleanup();
});

describe('claiming a rotation another worker has just moved past notifying', () => {
  it('does not take the secret lock, and the next rotation of the secret can run', async () => {
    const deps = { pool: rt.pool, queues: rt.queues, log: rt.log };
    const { secret, rotation: first } = await createSecret(deps, { name: 'stale/claim', provider: 'random', policy: { grace: '1h' } }, 'test');
    expect(await machine.advance(first.id, { finalAttempt: false })).toBe('completed');
    const { rotation } = await requestRotation(rt.pool, { secretId: secret.id, trigger: 'manual', reason: 'test', emergency: false });
    // Grace 1h: the rotation activates, releases the lock and waits in `revoking`.
    expect(await machine.advance(rotation.id, { finalAttempt: false })).toBe('awaiting-revoke');

    // Put it back as it was a moment earlier, while its worker was notifying (holding the lock).
    await t.pool.query(`UPDATE rotations SET status = 'notifying' WHERE id = $1`, [rotation.id]);
    await t.pool.query(`UPDATE secrets SET active_rotation_id = $2 WHERE id = $1`, [secret.id, rotation.id]);

    // Hold the secret row, so the second worker reads `notifying` and then waits in its claim.
    const holder = await t.pool.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM secrets WHERE id = $1 FOR UPDATE', [secret.id]);
    const second = machine.advance(rotation.id, { finalAttempt: false }).then((o) => o, (e: Error) => `threw: ${e.message}`);
    await sleep(500);
    // Meanwhile the fence holder finishes notifying: into `revoking`, lock released.
    await holder.query(`UPDATE rotations SET status = 'revoking' WHERE id = $1`, [rotation.id]);
    await holder.query('UPDATE secrets SET active_rotation_id = NULL WHERE id = $1', [secret.id]);
    await holder.query('COMMIT');
    holder.release();

    expect(await second).toBe('awaiting-revoke');
    const after = await t.pool.query('SELECT active_rotation_id FROM secrets WHERE id = $1', [secret.id]);
    expect(after.rows[0].active_rotation_id).toBeNull();
    const { rotation: next } = await requestRotation(rt.pool, { secretId: secret.id, trigger: 'manual', reason: 'next', emergency: false });
    expect(await machine.advance(next.id, { finalAttempt: false })).not.toBe('busy');
  });
});
