import type { RotationRow, SecretRow, VersionRow } from '../../shared/db/rows.ts';

const stepColumns = [
  ['queued', 'queued_at'],
  ['minting', 'minting_at'],
  ['setting', 'setting_at'],
  ['testing', 'testing_at'],
  ['activating', 'activating_at'],
  ['notifying', 'notifying_at'],
  ['revoking', 'revoking_at'],
] as const;

/** Each step with when it began and how long it took (until the next step began, or the end). */
export function stepTimings(r: RotationRow) {
  const ends = [...stepColumns.map(([, col]) => r[col]), r.revoked_at ?? r.completed_at ?? r.failed_at];
  return stepColumns.flatMap(([step, col], i) => {
    const startedAt = r[col];
    if (!startedAt) return [];
    const end = ends.slice(i + 1).find((d) => d instanceof Date) ?? null;
    return [{ step, startedAt, durationMs: end ? end.getTime() - startedAt.getTime() : null }];
  });
}

export function rotationView(r: RotationRow, secretName: string) {
  return {
    id: r.id,
    secret: secretName,
    trigger: r.trigger,
    reason: r.reason,
    emergency: r.emergency,
    status: r.status,
    failedStep: r.failed_step,
    error: r.error,
    attempts: r.attempts,
    fromVersion: r.from_version,
    toVersion: r.to_version,
    triggeredAt: r.triggered_at,
    activatedAt: r.activated_at,
    propagatedAt: r.propagated_at,
    revokeAfter: r.revoke_after,
    revokedAt: r.revoked_at,
    completedAt: r.completed_at,
    failedAt: r.failed_at,
    timeToRevokeMs: r.time_to_revoke_ms,
    steps: stepTimings(r),
  };
}

export function secretView(s: SecretRow, versions?: Omit<VersionRow, 'iv' | 'ciphertext' | 'tag'>[]) {
  return {
    name: s.name,
    provider: s.provider,
    config: s.config,
    policy: s.policy,
    currentVersion: s.current_version,
    latestVersion: s.latest_version,
    nextRotationAt: s.next_rotation_at,
    createdAt: s.created_at,
    updatedAt: s.updated_at,
    ...(versions && {
      versions: versions.map((v) => ({
        version: v.version,
        state: v.state,
        public: v.public,
        createdAt: v.created_at,
        activatedAt: v.activated_at,
        revokedAt: v.revoked_at,
      })),
    }),
  };
}
