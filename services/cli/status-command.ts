import type pg from 'pg';
import { findSecret } from '../../shared/db/secret-store.ts';
import { listRotations } from '../../shared/db/rotation-store.ts';

/** `rekey status [NAME]`: the latest rotations, then time-to-revoke percentiles by trigger over the last day. */
export async function printStatus(pool: pg.Pool, name: string | undefined, print: (s: string) => void): Promise<number> {
  let secretId: string | undefined;
  if (name) {
    const secret = await findSecret(pool, name);
    if (!secret) {
      print(`secret ${name} not found`);
      return 1;
    }
    secretId = secret.id;
  }
  const rotations = await listRotations(pool, { secretId, limit: 20 });
  print('ROTATION                              SECRET                    TRIGGER    STATUS      VERSION  TIME-TO-REVOKE');
  for (const r of rotations) {
    const version = r.to_version === null ? '-' : `${r.from_version ?? '∅'}→${r.to_version}`;
    const ttr = r.time_to_revoke_ms === null ? '-' : `${r.time_to_revoke_ms} ms`;
    print(`${r.id}  ${r.secret_name.padEnd(24)}  ${r.trigger.padEnd(9)}  ${r.status.padEnd(10)}  ${version.padEnd(7)}  ${ttr}`);
  }
  const { rows } = await pool.query<{ trigger: string; n: string; p50: number; p90: number; p99: number; max: number }>(
    `SELECT trigger, count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY time_to_revoke_ms) AS p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY time_to_revoke_ms) AS p90,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY time_to_revoke_ms) AS p99,
       max(time_to_revoke_ms) AS max
     FROM rotations
     WHERE time_to_revoke_ms IS NOT NULL AND triggered_at > now() - interval '1 day' AND ($1::bigint IS NULL OR secret_id = $1)
     GROUP BY trigger ORDER BY trigger`,
    [secretId ?? null],
  );
  print('');
  print('TIME-TO-REVOKE (last 24h)  TRIGGER    COUNT    p50 ms    p90 ms    p99 ms    max ms');
  for (const r of rows) {
    const f = (v: number) => String(Math.round(v)).padStart(8);
    print(`                            ${r.trigger.padEnd(9)}  ${r.n.padStart(5)}  ${f(r.p50)}  ${f(r.p90)}  ${f(r.p99)}  ${f(r.max)}`);
  }
  return 0;
}
