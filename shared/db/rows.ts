/** Row shapes as node-postgres returns them (bigint columns arrive as strings). */
export interface SecretRow {
  id: string;
  name: string;
  provider: string;
  config: Record<string, unknown>;
  policy: Record<string, unknown>;
  next_rotation_at: Date | null;
  latest_version: number;
  current_version: number | null;
  active_rotation_id: string | null;
  fence: string;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

export type RotationStatus =
  | 'queued'
  | 'minting'
  | 'setting'
  | 'testing'
  | 'activating'
  | 'notifying'
  | 'revoking'
  | 'completed'
  | 'failed';

export const terminalStatuses: readonly RotationStatus[] = ['completed', 'failed'];

export type RotationTrigger = 'initial' | 'schedule' | 'manual' | 'emergency' | 'webhook';

export interface RotationRow {
  id: string;
  secret_id: string;
  trigger: RotationTrigger;
  reason: string | null;
  emergency: boolean;
  status: RotationStatus;
  failed_step: string | null;
  error: string | null;
  attempts: number;
  fence: string | null;
  from_version: number | null;
  to_version: number | null;
  triggered_at: Date;
  queued_at: Date;
  minting_at: Date | null;
  setting_at: Date | null;
  testing_at: Date | null;
  activating_at: Date | null;
  activated_at: Date | null;
  notifying_at: Date | null;
  revoking_at: Date | null;
  revoke_after: Date | null;
  revoked_at: Date | null;
  propagated_at: Date | null;
  completed_at: Date | null;
  failed_at: Date | null;
  time_to_revoke_ms: number | null;
  updated_at: Date;
}

export type VersionState = 'pending' | 'current' | 'previous' | 'revoked';

export interface VersionRow {
  secret_id: string;
  version: number;
  state: VersionState;
  key_id: string | null;
  iv: Buffer | null;
  ciphertext: Buffer | null;
  tag: Buffer | null;
  public: Record<string, unknown>;
  rotation_id: string | null;
  created_at: Date;
  activated_at: Date | null;
  revoked_at: Date | null;
}
