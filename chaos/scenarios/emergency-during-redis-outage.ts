import { randomBytes } from 'node:crypto';
import { sleep } from '../faults/index.ts';
import type { Scenario } from '../harness/scenario.ts';
import { seedSecrets, waitForAllEnded } from '../harness/workload.ts';
import { deliver, newSigningSecret } from '../../test/support/webhook-sender.ts';

/**
 * Scenario 7. Redis is SIGKILLed; while it is gone, a SIEM fires signed emergency
 * webhooks (each delivered twice with the same webhook-id, as a retrying sender does).
 * A 202 must mean the rotation is in PostgreSQL, whatever Redis is doing; with
 * PostgreSQL down too, nothing may be accepted. Redis comes back empty, and the reconciler
 * brings every accepted emergency rotation to completion, revoking the old version at once.
 */
export const emergencyDuringRedisOutage: Scenario = {
  name: 'emergency-during-redis-outage',
  title: 'Emergency webhooks during a Redis outage (and a PostgreSQL one)',
  fault: 'SIGKILL of redis-server; webhooks arrive while it is down (then also with PostgreSQL stopped); Redis restarts empty',
  invariant: 'accepted (202) only when durable in PostgreSQL; idempotent on webhook-id; every accepted rotation completed after heal',
  // Run by name or in the full suite; the quick subset (CI) keeps to about 3 minutes.
  quick: false,
  timeoutMs: (quick) => (quick ? 120_000 : 240_000),
  async run({ env, quick, figures, check, note }) {
    const count = quick ? 60 : 300;
    const signing = newSigningSecret();
    const names = await seedSecrets(env, count, { prefix: 'leak' });
    const spare = await seedSecrets(env, 10, { prefix: 'spare' });
    const pipeline = await env.startPipeline({ REKEY_WEBHOOK_SECRETS: signing });
    const baseUrl = `http://127.0.0.1:${pipeline.api.apiPort}`;
    const send = (id: string, body: unknown) => deliver(baseUrl, { id, secrets: [signing], body: JSON.stringify(body) });

    await env.redis.kill();
    const redisDownAt = Date.now();
    note(`redis SIGKILLed; firing ${count} emergency webhooks, each twice`);
    const accepted: string[] = [];
    const notDurable: string[] = [];
    const notIdempotent: string[] = [];
    const refused: Record<string, number> = {};
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < names.length) {
          const name = names[next++]!;
          const id = `msg_${randomBytes(8).toString('hex')}`;
          const first = await send(id, { secret: name, reason: 'credential seen in a public paste' });
          if (first.status !== 202) {
            refused[first.status] = (refused[first.status] ?? 0) + 1;
            continue;
          }
          const ids: string[] = first.body.rotationIds;
          const { rows } = await env.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rotations WHERE id = ANY($1::uuid[]) AND emergency`, [ids]);
          if (rows[0]!.n !== ids.length) notDurable.push(id);
          const again = await send(id, { secret: name, reason: 'credential seen in a public paste' });
          if (again.status !== 202 || JSON.stringify(again.body.rotationIds) !== JSON.stringify(ids)) notIdempotent.push(id);
          accepted.push(...ids);
        }
      }),
    );
    check('every webhook was accepted while Redis was down', Object.keys(refused).length === 0, Object.keys(refused).length ? refused : undefined);
    check('every 202 was already durable in PostgreSQL', notDurable.length === 0, notDurable.length ? notDurable.slice(0, 3) : undefined);
    check('a repeated delivery (same webhook-id) started nothing new', notIdempotent.length === 0, notIdempotent.length ? notIdempotent.slice(0, 3) : undefined);

    await env.postgres.stop();
    const whileBothDown = await Promise.all(spare.map((name) => send(`msg_${randomBytes(8).toString('hex')}`, { secret: name, reason: 'both down' }).then((r) => r.status, () => 0)));
    await env.postgres.start();
    const spareRotations = (await env.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM rotations r JOIN secrets s ON s.id = r.secret_id WHERE starts_with(s.name, 'spare/')`,
    )).rows[0]!.n;
    figures.statusesWithPostgresDown = whileBothDown;
    check('with PostgreSQL down too, nothing was accepted or recorded', whileBothDown.every((s) => s !== 202) && spareRotations === 0, { statuses: whileBothDown, recorded: spareRotations });

    await sleep(Math.max(0, 3000 - (Date.now() - redisDownAt)));
    await env.redis.restart({ empty: true });
    const healedAt = Date.now();
    note('redis back (empty)');
    figures.drainAfterHealMs = await waitForAllEnded(env, quick ? 60_000 : 120_000);
    const { rows } = await env.pool.query<{ worst: number | null; p50: number | null; not_immediate: number }>(
      `SELECT max(extract(epoch FROM revoked_at) * 1000 - $2)::int AS worst,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM revoked_at) * 1000 - $2)::int AS p50,
              count(*) FILTER (WHERE revoke_after > activated_at + interval '1 second')::int AS not_immediate
       FROM rotations WHERE id = ANY($1::uuid[])`,
      [accepted, healedAt],
    );
    figures.revokedAfterHealMs = { p50: rows[0]!.p50, worst: rows[0]!.worst };
    check('emergency rotations revoke the old version at once (no grace)', rows[0]!.not_immediate === 0, { notImmediate: rows[0]!.not_immediate });
    return { accepted, requireCompleted: true };
  },
};
