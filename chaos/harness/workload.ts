import { randomBytes } from 'node:crypto';
import type { RoleProcess } from '../faults/index.ts';
import { sleep } from '../faults/index.ts';
import type { ChaosEnv } from './chaos-env.ts';

/**
 * Registers `count` random-provider secrets with version 1 already current, straight into
 * PostgreSQL (sealed under the scenario's master key): seeding 10,000 secrets through the
 * pipeline would take longer than the scenario. Every planted value becomes a canary.
 */
export async function seedSecrets(
  env: ChaosEnv,
  count: number,
  opts: { prefix?: string; policy?: Record<string, unknown>; nextRotationAt?: (i: number) => Date | null } = {},
): Promise<string[]> {
  const prefix = opts.prefix ?? 'chaos';
  const names: string[] = [];
  for (let from = 0; from < count; from += 1000) {
    const batch = Array.from({ length: Math.min(1000, count - from) }, (_, k) => from + k);
    const rows = batch.map((i) => {
      const name = `${prefix}/s${String(i).padStart(5, '0')}`;
      const value = randomBytes(24).toString('base64url');
      env.canaries.add(value);
      const sealed = env.cipher.seal(name, 1, value);
      return { name, sealed, due: opts.nextRotationAt?.(i) ?? null };
    });
    await env.pool.query(
      `WITH s AS (
         INSERT INTO secrets (name, provider, config, policy, next_rotation_at, latest_version, current_version)
         SELECT n, 'random', '{}', $2::jsonb, d, 1, 1 FROM unnest($1::text[], $3::timestamptz[]) AS t(n, d)
         RETURNING id, name)
       INSERT INTO secret_versions (secret_id, version, state, key_id, iv, ciphertext, tag, activated_at)
       SELECT s.id, 1, 'current', $4, v.iv, v.ct, v.tag, now()
       FROM s JOIN unnest($1::text[], $5::bytea[], $6::bytea[], $7::bytea[]) AS v(n, iv, ct, tag) ON v.n = s.name`,
      [
        rows.map((r) => r.name),
        JSON.stringify(opts.policy ?? { grace: '0s' }),
        rows.map((r) => r.due),
        rows[0]!.sealed.keyId,
        rows.map((r) => r.sealed.iv),
        rows.map((r) => r.sealed.ciphertext),
        rows.map((r) => r.sealed.tag),
      ],
    );
    names.push(...rows.map((r) => r.name));
  }
  return names;
}

export interface RequestOutcome {
  /** Rotation ids the API accepted with 202: each must end completed or failed. */
  accepted: string[];
  /** Requests refused (status → count), e.g. 503 while PostgreSQL is down. Not accepted, so not owed. */
  refused: Record<string, number>;
}

/**
 * Asks the api to rotate each named secret, `concurrency` requests at a time, optionally
 * paced to `perSecond`. `onSent` sees the running count, so a scenario can inject its
 * fault with rotations in flight.
 */
export async function requestRotations(
  env: ChaosEnv,
  api: RoleProcess,
  names: string[],
  opts: { concurrency?: number; perSecond?: number; emergency?: boolean; onSent?: (sent: number) => void } = {},
): Promise<RequestOutcome> {
  const out: RequestOutcome = { accepted: [], refused: {} };
  let next = 0;
  const started = Date.now();
  const worker = async () => {
    while (next < names.length) {
      const i = next++;
      if (opts.perSecond) {
        const due = started + (i * 1000) / opts.perSecond;
        if (due > Date.now()) await sleep(due - Date.now());
      }
      try {
        const res = await env.api(api, 'POST', `/v1/secrets/${names[i]}/rotate`, { reason: 'chaos', emergency: opts.emergency ?? false });
        if (res.status === 202) out.accepted.push(res.body.rotationId);
        else out.refused[res.status] = (out.refused[res.status] ?? 0) + 1;
      } catch (err) {
        const key = (err as Error).name === 'TimeoutError' ? 'timeout' : 'network';
        out.refused[key] = (out.refused[key] ?? 0) + 1;
      }
      opts.onSent?.(i + 1);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 16 }, worker));
  out.accepted = [...new Set(out.accepted)];
  return out;
}

/** Counts rotations by status (all of them, or only the given ids). */
export async function statusCounts(env: ChaosEnv, ids?: string[]): Promise<Record<string, number>> {
  const { rows } = await env.pool.query<{ status: string; n: string }>(
    `SELECT status, count(*) AS n FROM rotations WHERE $1::uuid[] IS NULL OR id = ANY($1) GROUP BY status`,
    [ids ?? null],
  );
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/**
 * Waits until every rotation in PostgreSQL has ended (completed or failed) or the time is
 * up; returns how long that took, or null on timeout. Tolerates PostgreSQL being away.
 */
export async function waitForAllEnded(env: ChaosEnv, timeoutMs: number): Promise<number | null> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    try {
      const { rows } = await env.pool.query<{ n: string }>(`SELECT count(*) AS n FROM rotations WHERE status NOT IN ('completed', 'failed')`);
      const events = await env.pool.query<{ n: string }>(`SELECT count(*) AS n FROM events WHERE published_at IS NULL`);
      if (rows[0]!.n === '0' && events.rows[0]!.n === '0') return Date.now() - t0;
    } catch {}
    await sleep(250);
  }
  return null;
}
