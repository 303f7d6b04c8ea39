import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../shared/db/migrate.ts';
import { appendAudit, verifyAudit } from '../shared/db/audit-log.ts';
import { createTestEnv, type TestEnv } from './support/test-env.ts';

let t: TestEnv;
beforeAll(async () => {
  t = await createTestEnv();
});
afterAll(async () => {
  await t?.cleanup();
});

describe('migrations', () => {
  it('are idempotent: a second run applies nothing', async () => {
    const again = await migrate(t.pool);
    expect(again.applied).toEqual([]);
    expect(again.alreadyApplied).toBeGreaterThanOrEqual(1);
  });

  it('enforce one current version per secret in the database itself', async () => {
    const { rows } = await t.pool.query(`INSERT INTO secrets (name, provider) VALUES ('db/one-current', 'random') RETURNING id`);
    const id = rows[0].id;
    await t.pool.query(`INSERT INTO secret_versions (secret_id, version, state) VALUES ($1, 1, 'current')`, [id]);
    await expect(t.pool.query(`INSERT INTO secret_versions (secret_id, version, state) VALUES ($1, 2, 'current')`, [id])).rejects.toThrow(/secret_versions_one_current/);
  });
});

describe('audit log', () => {
  it('verifies an intact hash chain and finds the row that was tampered with', async () => {
    for (let i = 0; i < 5; i++) {
      await appendAudit(t.pool, { actor: 'test', action: 'probe', target: `t${i}`, outcome: 'ok', details: { n: i, nested: { b: 1, a: 2 } } });
    }
    const intact = await verifyAudit(t.pool);
    expect(intact.ok).toBe(true);
    expect(intact.rows).toBeGreaterThanOrEqual(5);

    const { rows } = await t.pool.query(`SELECT id FROM audit_events WHERE target = 't2'`);
    await t.pool.query(`UPDATE audit_events SET outcome = 'refused' WHERE id = $1`, [rows[0].id]);
    const broken = await verifyAudit(t.pool);
    expect(broken.ok).toBe(false);
    expect(broken.brokenAt).toBe(rows[0].id);
  });
});
