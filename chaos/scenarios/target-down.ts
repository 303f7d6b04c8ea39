import { sleep, TcpFaultProxy } from '../faults/index.ts';
import type { Scenario } from '../harness/scenario.ts';
import { requestRotations, waitForAllEnded } from '../harness/workload.ts';
import { PasswordPostgres } from '../../test/support/password-postgres.ts';

/**
 * Scenario 6. Secrets are passwords of real PostgreSQL roles (postgres-password,
 * alternating users) on a target cluster that checks SCRAM passwords. rekey reaches the
 * target through a fault proxy, which refuses connections and then blackholes them in
 * the middle of a storm of rotations. A rotation caught by the outage either fails
 * cleanly (its pending version discarded, the current password untouched) or completes
 * after the heal. Checked at the target itself, past the proxy: every secret's current
 * password logs in (nobody locked out) and no revoked password does.
 */
export const targetDown: Scenario = {
  name: 'target-down',
  title: 'Credential target down mid-rotation (refused, then blackholed)',
  fault: 'TCP proxy to the target PostgreSQL: refuse for 5 s, then blackhole for 5 s, mid-storm',
  invariant: 'no lockout (current password logs in at the target); clean failure or completion after heal; revoked passwords dead',
  // Run by name or in the full suite; the quick subset (CI) keeps to about 3 minutes.
  quick: false,
  timeoutMs: (quick) => (quick ? 150_000 : 300_000),
  async run({ env, quick, figures, check, note }) {
    const secrets = quick ? 15 : 40;
    const rounds = quick ? 3 : 4;
    const target = await PasswordPostgres.start();
    env.cleanups.push('target postgres', () => target.cleanup());
    const proxy = await TcpFaultProxy.start({ port: target.cluster.port });
    env.cleanups.push('target proxy', () => proxy.close());
    const roles = Array.from({ length: secrets }, (_, i) => [`app${i}_a`, `app${i}_b`] as [string, string]);
    await target.admin(async (c) => {
      for (const [a, b] of roles) await c.query(`CREATE ROLE ${a} NOLOGIN; CREATE ROLE ${b} NOLOGIN`);
    });
    const pipeline = await env.startPipeline({ TARGET_ADMIN_URL: proxy.via(target.adminUrl()) });
    const names = roles.map((_, i) => `target/db${i}`);
    for (const [i, name] of names.entries()) {
      const res = await env.api(pipeline.api, 'POST', '/v1/secrets', {
        name,
        provider: 'postgres-password',
        config: { strategy: 'alternating', roles: roles[i], admin: 'env:TARGET_ADMIN_URL' },
      });
      if (res.status !== 201) throw new Error(`creating ${name}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    if ((await waitForAllEnded(env, 60_000)) === null) throw new Error('first versions did not complete');
    note(`${secrets} role passwords at the target; storm of ${secrets * rounds} rotations`);

    let outage: Promise<void> | null = null;
    const requests = Array.from({ length: rounds }, () => names).flat();
    const outcome = await requestRotations(env, pipeline.api, requests, {
      concurrency: 4,
      perSecond: quick ? 6 : 10,
      onSent: (sent) => {
        if (sent !== Math.floor(requests.length / 4)) return;
        outage = (async () => {
          await proxy.refuse();
          note('target refuses connections');
          await sleep(5000);
          await proxy.blackhole();
          note('target blackholed');
          await sleep(5000);
          await proxy.pass();
          note('target healed');
        })();
      },
    });
    await outage;
    figures.drainAfterStormMs = await waitForAllEnded(env, quick ? 90_000 : 150_000);

    // At the target, not through the proxy: what a consumer would see.
    const { rows } = await env.pool.query<{ name: string; version: number; state: string; key_id: string | null; iv: Buffer; ciphertext: Buffer; tag: Buffer }>(
      `SELECT s.name, v.version, v.state, v.key_id, v.iv, v.ciphertext, v.tag FROM secret_versions v JOIN secrets s ON s.id = v.secret_id
       WHERE v.key_id IS NOT NULL AND v.state IN ('current', 'revoked')`,
    );
    const lockedOut: string[] = [];
    const staleAlive: string[] = [];
    const currentByRole = new Map<string, string>();
    for (const v of rows) {
      const login = JSON.parse(env.cipher.open(v.name, v.version, { keyId: v.key_id!, iv: v.iv, ciphertext: v.ciphertext, tag: v.tag })) as { username: string; password: string };
      if (v.state === 'current') currentByRole.set(login.username, login.password);
      const error = await target.loginError(login.username, login.password);
      if (v.state === 'current' && error) lockedOut.push(`${v.name} v${v.version}: ${error.message}`);
      if (v.state === 'revoked' && !error) staleAlive.push(`${v.name} v${v.version}`);
    }
    const failures = await env.pool.query<{ failed_step: string; n: number }>(
      `SELECT failed_step, count(*)::int AS n FROM rotations WHERE status = 'failed' GROUP BY failed_step`,
    );
    figures.failedByStep = Object.fromEntries(failures.rows.map((r) => [r.failed_step, r.n]));
    figures.proxyConnections = proxy.connections;
    check('no consumer locked out at the target: every current password logs in', lockedOut.length === 0, lockedOut.length ? lockedOut.slice(0, 3) : undefined);
    check('no revoked password still logs in at the target', staleAlive.length === 0, staleAlive.length ? staleAlive.slice(0, 3) : undefined);
    const hit = (await env.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rotations WHERE attempts > 1 OR status = 'failed'`)).rows[0]!.n;
    figures.rotationsRetriedOrFailed = hit;
    check('the outage hit rotations (retried or failed)', hit > 0, { hit });
    return { accepted: outcome.accepted, requireCompleted: false };
  },
};
