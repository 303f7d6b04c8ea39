import type { ChaosEnv } from './chaos-env.ts';

export interface InvariantResult {
  name: string;
  pass: boolean;
  detail?: unknown;
}

/** What every scenario prints: the invariants it checked and the counts behind them. */
export interface Verdict {
  scenario: string;
  title: string;
  fault: string;
  pass: boolean;
  durationMs: number;
  invariants: InvariantResult[];
  counts: { accepted: number; completed: number; failed: number; lost: number; duplicated: number; stuck: number; lockedOut: number };
  worstTimeToRevokeMs: number | null;
  canaryInLogs: boolean;
  figures: Record<string, unknown>;
  /** Where the role processes' logs were written, when the scenario failed. */
  logs?: string;
  errors?: string[];
}

/**
 * The checks every scenario runs against PostgreSQL (the source of truth) once the
 * pipeline has drained, whatever fault it injected (SPEC.md invariants 1, 2, 3, 5, 6):
 * - one current version per secret, matching secrets.current_version;
 * - version numbers gapless from 1 to latest_version;
 * - no `pending` version left, no rotation left unfinished;
 * - every accepted rotation ended (completed or failed), none lost;
 * - no rotation done twice: at most one version minted per rotation, at most one
 *   completion recorded per rotation, at most one event of each type;
 * - nobody locked out: every secret has a current version whose value opens;
 * - no secret value (every version we can open, plus planted ones) in any process's output;
 * - no role process exited without being told to.
 */
export async function checkInvariants(
  env: ChaosEnv,
  accepted: string[],
  opts: { requireCompleted?: boolean } = {},
): Promise<{ invariants: InvariantResult[]; counts: Verdict['counts']; worstTimeToRevokeMs: number | null; canaryInLogs: boolean }> {
  const q = async <T>(sql: string, params: unknown[] = []) => (await env.pool.query(sql, params)).rows as T[];
  const invariants: InvariantResult[] = [];
  const check = (name: string, pass: boolean, detail?: unknown) => invariants.push({ name, pass, ...(detail !== undefined && { detail }) });

  const twoCurrent = await q<{ name: string; n: number }>(
    `SELECT s.name, count(*)::int AS n FROM secret_versions v JOIN secrets s ON s.id = v.secret_id
     WHERE v.state = 'current' GROUP BY s.name HAVING count(*) > 1 LIMIT 5`,
  );
  const mismatched = await q<{ name: string }>(
    `SELECT s.name FROM secrets s LEFT JOIN secret_versions v ON v.secret_id = s.id AND v.state = 'current'
     WHERE s.deleted_at IS NULL AND s.current_version IS DISTINCT FROM v.version LIMIT 5`,
  );
  check('at most one current version per secret, and it is the one secrets.current_version names', twoCurrent.length === 0 && mismatched.length === 0, { twoCurrent, mismatched });

  const gaps = await q<{ name: string; versions: number; latest: number }>(
    `SELECT s.name, count(v.version)::int AS versions, s.latest_version AS latest FROM secrets s
     LEFT JOIN secret_versions v ON v.secret_id = s.id
     GROUP BY s.id HAVING count(v.version) <> s.latest_version OR coalesce(max(v.version), 0) <> s.latest_version LIMIT 5`,
  );
  check('version numbers are gapless from 1 to latest_version', gaps.length === 0, gaps.length ? gaps : undefined);

  const pending = await q<{ n: number }>(`SELECT count(*)::int AS n FROM secret_versions WHERE state = 'pending'`);
  const unfinished = await q<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM rotations WHERE status NOT IN ('completed', 'failed') GROUP BY status`,
  );
  const unpublished = await q<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE published_at IS NULL`);
  const stuck = pending[0]!.n + unfinished.reduce((a, r) => a + r.n, 0);
  check('no pending version and no unfinished rotation left', stuck === 0, stuck ? { pending: pending[0]!.n, unfinished } : undefined);
  check('every event in the outbox was published', unpublished[0]!.n === 0, unpublished[0]!.n ? { unpublished: unpublished[0]!.n } : undefined);

  const ended = await q<{ id: string; status: string }>(`SELECT id, status FROM rotations WHERE id = ANY($1::uuid[])`, [accepted]);
  const endedById = new Map(ended.map((r) => [r.id, r.status]));
  const lost = accepted.filter((id) => !['completed', 'failed'].includes(endedById.get(id) ?? 'missing'));
  const completed = accepted.filter((id) => endedById.get(id) === 'completed').length;
  const failed = accepted.filter((id) => endedById.get(id) === 'failed').length;
  check('every accepted rotation ended completed or failed (none lost)', lost.length === 0, lost.length ? { lost: lost.length, sample: lost.slice(0, 3) } : undefined);
  if (opts.requireCompleted) {
    const failures = await q<{ failed_step: string; error: string }>(
      `SELECT failed_step, error FROM rotations WHERE id = ANY($1::uuid[]) AND status = 'failed' LIMIT 3`,
      [accepted],
    );
    check('every accepted rotation completed', completed === accepted.length, completed === accepted.length ? undefined : { completed, failed, sample: failures });
  }

  const twiceMinted = await q<{ rotation_id: string; n: number }>(
    `SELECT rotation_id, count(*)::int AS n FROM secret_versions WHERE rotation_id IS NOT NULL GROUP BY rotation_id HAVING count(*) > 1 LIMIT 5`,
  );
  const twiceFinished = await q<{ target: string; n: number }>(
    `SELECT target, count(*)::int AS n FROM audit_events WHERE action IN ('rotation.completed', 'rotation.failed')
     GROUP BY target HAVING count(*) > 1 LIMIT 5`,
  );
  const finishedButNotEnded = await q<{ id: string; status: string }>(
    `SELECT r.id, r.status FROM rotations r JOIN audit_events a ON a.target = r.id::text AND a.action = 'rotation.completed'
     WHERE r.status <> 'completed' LIMIT 5`,
  );
  const duplicated = twiceMinted.length + twiceFinished.length + finishedButNotEnded.length;
  check('no rotation done twice (one version minted, one completion recorded)', duplicated === 0, duplicated ? { twiceMinted, twiceFinished, finishedButNotEnded } : undefined);

  const versions = await q<{ name: string; version: number; state: string; key_id: string | null; iv: Buffer; ciphertext: Buffer; tag: Buffer }>(
    `SELECT s.name, v.version, v.state, v.key_id, v.iv, v.ciphertext, v.tag FROM secret_versions v JOIN secrets s ON s.id = v.secret_id`,
  );
  const values = new Set(env.canaries);
  const openable = new Set<string>();
  for (const v of versions) {
    if (!v.key_id) continue;
    try {
      const value = env.cipher.open(v.name, v.version, { keyId: v.key_id, iv: v.iv, ciphertext: v.ciphertext, tag: v.tag });
      values.add(value);
      // A structured value ({username, password}) leaks by its secret part alone.
      for (const part of secretParts(value)) values.add(part);
      if (v.state === 'current') openable.add(v.name);
    } catch {}
  }
  const secrets = await q<{ name: string }>(`SELECT name FROM secrets WHERE deleted_at IS NULL AND latest_version > 0`);
  const lockedOut = secrets.filter((s) => !openable.has(s.name));
  check('no consumer locked out: every secret has a current version whose value opens', lockedOut.length === 0, lockedOut.length ? { lockedOut: lockedOut.length, sample: lockedOut.slice(0, 3).map((s) => s.name) } : undefined);

  const leaked = findValues(env.logs(), values);
  check('no secret value in any process output', leaked === 0, leaked ? { leakedValues: leaked } : undefined);

  const crashes = env.processes.flatMap((p) => p.unexpectedExits.map((e) => ({ process: p.label, ...e })));
  check('no role process crashed', crashes.length === 0, crashes.length ? crashes : undefined);

  const ttr = await q<{ worst: number | null }>(
    `SELECT max(time_to_revoke_ms)::int AS worst FROM rotations WHERE status = 'completed' AND trigger <> 'initial'`,
  );
  return {
    invariants,
    counts: { accepted: accepted.length, completed, failed, lost: lost.length, duplicated, stuck, lockedOut: lockedOut.length },
    worstTimeToRevokeMs: ttr[0]!.worst,
    canaryInLogs: leaked > 0,
  };
}

/** How many of `values` occur in `text`, by tokens (values are base64url/alphanumeric). */
function findValues(text: string, values: Set<string>): number {
  const seen = new Set<string>();
  for (const token of text.split(/[^A-Za-z0-9_-]+/)) {
    if (token.length >= 16 && values.has(token)) seen.add(token);
  }
  // A value embedded in a longer token (e.g. in a URL) is still a leak.
  if (seen.size === 0 && values.size <= 2000) for (const v of values) if (text.includes(v)) seen.add(v);
  return seen.size;
}

function secretParts(value: string): string[] {
  if (!value.startsWith('{')) return [];
  try {
    return Object.entries(JSON.parse(value) as Record<string, unknown>)
      .filter(([k, v]) => typeof v === 'string' && v.length >= 16 && !['username', 'kid', 'alg'].includes(k))
      .map(([, v]) => v as string);
  } catch {
    return [];
  }
}
