import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { PrivatePostgres, PrivateRedis } from '../chaos/faults/index.ts';
import { createPool } from '../shared/db/pool.ts';
import { ensureDatabase } from '../shared/db/ensure-database.ts';
import { migrate } from '../shared/db/migrate.ts';
import { createTestEnv, sleep, waitFor, type TestEnv } from './support/test-env.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';
import { deliver, newSigningSecret } from './support/webhook-sender.ts';

/**
 * Durable acceptance (issue 4): a 202 means the rotation is in PostgreSQL. Both faults run
 * against private servers of this file's own (chaos/faults), never the shared ones.
 */
const signing = newSigningSecret();
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

describe('Redis down at acceptance', () => {
  it('answers 202 from PostgreSQL alone, and the rotation completes once Redis is back (empty)', async () => {
    const redis = await PrivateRedis.start();
    cleanups.push(() => redis.cleanup());
    const t: TestEnv = await createTestEnv({ REDIS_URL: redis.url, REKEY_WEBHOOK_SECRETS: signing });
    cleanups.push(() => t.cleanup());
    const rekey: InProcessRekey = await startRekey(t);
    cleanups.push(() => rekey.stop());

    expect((await rekey.api('POST', '/v1/secrets', { name: 'dur/redis', provider: 'random' })).status).toBe(201);
    await waitFor(async () => (await rekey.api('GET', '/v1/secrets/dur/redis')).body.currentVersion === 1, { what: 'v1' });

    await redis.kill();
    const started = Date.now();
    const r = await deliver(rekey.baseUrl, { secrets: [signing], body: JSON.stringify({ secret: 'dur/redis', reason: 'leak while redis is down' }) });
    // The enqueue fails fast (no offline queue), it does not hang the request.
    expect(Date.now() - started).toBeLessThan(3000);
    expect(r.status).toBe(202);
    const [rotationId] = r.body.rotationIds;
    const recorded = await t.pool.query(`SELECT status, emergency, trigger FROM rotations WHERE id = $1`, [rotationId]);
    expect(recorded.rows[0]).toEqual({ status: 'queued', emergency: true, trigger: 'webhook' });

    await sleep(1500);
    expect((await rekey.api('GET', `/v1/rotations/${rotationId}`)).body.status).toBe('queued');

    // Back, with no data at all: only PostgreSQL remembers the rotation; the reconciler re-enqueues it.
    await redis.restart({ empty: true });
    const done = await waitFor(async () => {
      const x = await rekey.api('GET', `/v1/rotations/${rotationId}`);
      return x.body.status === 'completed' ? x.body : null;
    }, { what: 'rotation to complete after Redis is back', timeoutMs: 30_000 });
    expect(done.toVersion).toBe(2);
    expect(done.timeToRevokeMs).toBeGreaterThan(1500);
    const versions = (await rekey.api('GET', '/v1/secrets/dur/redis')).body.versions.map((v: { state: string }) => v.state);
    expect(versions).toEqual(['revoked', 'current']);
  });
});

describe('PostgreSQL down at acceptance', () => {
  it('answers 503 and records nothing; the same webhook-id is accepted once PostgreSQL is back', async () => {
    const cluster = await PrivatePostgres.start();
    cleanups.push(() => cluster.cleanup());
    const databaseUrl = cluster.url(`rekey_pg_${randomBytes(4).toString('hex')}`);
    await ensureDatabase(databaseUrl);
    const pool = createPool(databaseUrl, { max: 2 });
    cleanups.push(() => pool.end());
    await migrate(pool);

    const t: TestEnv = await createTestEnv();
    cleanups.push(() => t.cleanup());
    const rekey = await startRekey(t, ['api'], { DATABASE_URL: databaseUrl, REKEY_WEBHOOK_SECRETS: signing });
    cleanups.push(() => rekey.stop());
    expect((await rekey.api('POST', '/v1/secrets', { name: 'dur/pg', provider: 'random' })).status).toBe(201);

    await cluster.stop();
    const id = `msg_${randomBytes(8).toString('hex')}`;
    const payload = JSON.stringify({ secret: 'dur/pg', reason: 'leak while postgres is down' });
    const timestamp = Math.floor(Date.now() / 1000);
    const refused = await deliver(rekey.baseUrl, { id, timestamp, secrets: [signing], body: payload });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('unavailable');

    await cluster.start();
    const rows = async (sql: string) => (await pool.query(sql)).rows;
    await waitFor(() => cluster.accepts(), { what: 'postgres back' });
    expect(await rows(`SELECT * FROM webhook_deliveries`)).toEqual([]);
    expect(await rows(`SELECT * FROM rotations WHERE trigger = 'webhook'`)).toEqual([]);

    // Nothing half-recorded means the sender's retry (same id, same body) is a first delivery.
    const retried = await waitFor(async () => {
      const x = await deliver(rekey.baseUrl, { id, timestamp, secrets: [signing], body: payload });
      return x.status === 503 ? null : x;
    }, { what: 'api to reconnect', timeoutMs: 15_000, intervalMs: 200 });
    expect(retried.status).toBe(202);
    expect(await rows(`SELECT status FROM rotations WHERE trigger = 'webhook'`)).toEqual([{ status: 'queued' }]);
    expect((await rows(`SELECT count(*)::int AS n FROM webhook_deliveries`))[0].n).toBe(1);
  });
});
