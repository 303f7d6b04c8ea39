import { RekeyClient } from '../../services/injector/sdk.ts';
import { sleep, TcpFaultProxy } from '../faults/index.ts';
import type { Scenario } from '../harness/scenario.ts';
import { requestRotations, seedSecrets, waitForAllEnded } from '../harness/workload.ts';

const graceMs = 8000;

/**
 * Scenario 10. Injectors (the SDK, as `rekey inject` runs it) hold five secrets. A third
 * reach the api through a fault proxy that refuses connections while the secrets rotate;
 * a third ack slowly (their reload takes longer than the grace period); the rest are
 * healthy. Policy `revokeWhen: acked` with an 8 s grace: revocation may not wait for the
 * slow ones past the grace deadline, and the notifier must report them as stragglers.
 * After the heal every injector converges on the current versions (it resumes from its
 * last event id).
 */
export const injectorsDisconnected: Scenario = {
  name: 'injectors-disconnected',
  title: 'Injectors disconnected during rotations, and slow ackers',
  fault: 'fault proxy between a third of the injectors and the api refuses connections for 6 s while secrets rotate; a third take 12 s to ack (grace 8 s)',
  invariant: 'every injector converges after reconnect; revocation at the grace deadline, not later; stragglers reported',
  // Run by name or in the full suite; the quick subset (CI) keeps to about 3 minutes.
  quick: false,
  timeoutMs: (quick) => (quick ? 150_000 : 240_000),
  async run({ env, quick, figures, check, note }) {
    const perGroup = quick ? 4 : 10;
    const names = await seedSecrets(env, 5, { prefix: 'app', policy: { grace: `${graceMs / 1000}s`, revokeWhen: 'acked' } });
    const pipeline = await env.startPipeline({ REKEY_REDELIVER_MS: '1000' });
    const apiUrl = `http://127.0.0.1:${pipeline.api.apiPort}`;
    const proxy = await TcpFaultProxy.start({ port: pipeline.api.apiPort! });
    env.cleanups.push('api proxy', () => proxy.close());

    const groups = { healthy: [] as RekeyClient[], disconnected: [] as RekeyClient[], slow: [] as RekeyClient[] };
    for (const [group, list] of Object.entries(groups)) {
      for (let i = 0; i < perGroup; i++) {
        const sub = await env.api(pipeline.api, 'POST', '/v1/subscribers', { name: `${group}-${i}`, scope: ['app/'] });
        if (sub.status !== 201) throw new Error(`subscriber: ${sub.status} ${JSON.stringify(sub.body)}`);
        const client = new RekeyClient({
          url: group === 'disconnected' ? `http://127.0.0.1:${proxy.port}` : apiUrl,
          token: sub.body.token,
          secrets: names,
          reconnectMaxMs: 1000,
          ...(group === 'slow' && { onUpdate: () => sleep(graceMs + 4000) }),
        });
        env.cleanups.push(`injector ${group}-${i}`, () => client.close());
        list.push(client);
      }
    }
    const all = Object.values(groups).flat();
    await Promise.all(all.map((c) => c.start({ timeoutMs: 30_000 })));
    await sleep(1500); // every subscriber seen live, so each rotation waits for all of them
    note(`${all.length} injectors hold ${names.length} secrets; cutting ${perGroup} off and rotating`);

    await proxy.refuse();
    const outcome = await requestRotations(env, pipeline.api, names, { concurrency: 5 });
    await sleep(6000);
    await proxy.pass();
    const healedAt = Date.now();
    note('injectors reconnect');
    figures.drainMs = await waitForAllEnded(env, 60_000);

    const current = new Map((await env.pool.query<{ name: string; v: number }>(`SELECT name, current_version AS v FROM secrets`)).rows.map((r) => [r.name, r.v]));
    const behind = async () => all.filter((c) => names.some((n) => c.version(n) !== current.get(n)));
    const deadline = Date.now() + 30_000;
    while ((await behind()).length && Date.now() < deadline) await sleep(200);
    const stillBehind = (await behind()).length;
    figures.convergedAfterHealMs = stillBehind ? null : Date.now() - healedAt;
    check('every injector converged on the current versions after reconnect', stillBehind === 0, { stillBehind });

    const { rows } = await env.pool.query<{ id: string; held_ms: number }>(
      `SELECT id, round(extract(epoch FROM revoked_at - activated_at) * 1000)::int AS held_ms FROM rotations WHERE id = ANY($1::uuid[])`,
      [outcome.accepted],
    );
    const held = rows.map((r) => r.held_ms);
    figures.previousVersionHeldMs = { min: Math.min(...held), max: Math.max(...held) };
    // Slow ackers never ack within grace, so revocation waits for the deadline, and no longer.
    check('revocation at the grace deadline despite stragglers (not before, not much after)', held.every((ms) => ms >= graceMs - 500 && ms <= graceMs + 6000), { heldMs: held, graceMs });
    const reports = pipeline.notifier.lines.filter((l) => l.includes('previous version revoked while subscribers still held it')).map((l) => JSON.parse(l) as { rotationId: string; count: number });
    const reported = new Set(reports.filter((r) => r.count >= perGroup).map((r) => r.rotationId));
    figures.stragglersReported = reports.map((r) => r.count);
    check('each rotation reported its stragglers (at least the slow ackers)', outcome.accepted.every((id) => reported.has(id)), { reports: reports.length, rotations: outcome.accepted.length });
    return { accepted: outcome.accepted, requireCompleted: true };
  },
};
