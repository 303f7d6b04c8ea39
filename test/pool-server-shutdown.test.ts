import { afterAll, describe, expect, it } from 'vitest';
import { PrivatePostgres } from '../chaos/faults/index.ts';
import { createPool, withTransaction } from '../shared/db/pool.ts';

// Regression (found by `npm run chaos -- postgres-down`): a PostgreSQL shutdown while a
// transaction held its client between two statements emitted an unhandled 'error' on the
// client and crashed every rotator. The transaction must fail; the process must not.
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

describe('withTransaction when the server shuts down mid-transaction', () => {
  it('rejects the transaction, does not crash, and works again once the server is back', async () => {
    const cluster = await PrivatePostgres.start();
    cleanups.push(() => cluster.cleanup());
    const pool = createPool(cluster.url(), { max: 2 });
    cleanups.push(() => pool.end());
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => void uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    cleanups.push(async () => void process.off('uncaughtException', onUncaught));

    let inside!: () => void;
    const holding = new Promise<void>((r) => (inside = r));
    let resume!: () => void;
    const stopped = new Promise<void>((r) => (resume = r));
    const tx = withTransaction(pool, async (c) => {
      await c.query('SELECT 1');
      inside();
      await stopped; // the server goes away while we hold the client, between statements
      await c.query('SELECT 1');
    });
    const outcome = tx.then(() => 'committed', (err: Error) => err.message);
    await holding;
    await cluster.stop();
    await new Promise((r) => setTimeout(r, 200)); // let the FATAL message arrive
    resume();
    expect(await outcome).not.toBe('committed');
    expect(uncaught).toEqual([]);

    await cluster.start();
    expect(await withTransaction(pool, async (c) => (await c.query('SELECT 2 AS x')).rows[0].x)).toBe(2);
  });
});
