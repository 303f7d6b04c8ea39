/**
 * The rotation state machine.
 *
 *   queued → minting → setting → testing → activating → notifying → revoking → completed
 *                 └──────────┴─────────┴───────────┴──────────────────┴────→ failed
 *
 * `status` names the step being worked on; `<step>_at` records when it began. Every step
 * persists its result and the next status in one transaction, so a job re-run after a
 * crash resumes at the first step whose result was not committed.
 *
 * Invariants this file keeps (SPEC.md):
 * - One rotation per secret holds the secret's lock (secrets.active_rotation_id) from
 *   claim to the end of notifying. Claiming bumps secrets.fence; every step's write runs
 *   in `fenced()`, which locks the secret row and checks lock and fence. A worker that lost
 *   its job (crash, partition longer than the job lock) therefore changes nothing: its
 *   late writes fail with FencedError.
 * - Version numbers come from secrets.latest_version under that lock: they only grow and
 *   never repeat. A partial unique index allows one `current` version per secret.
 * - The old credential keeps working until the new one is set and tested. A failure before
 *   activation discards the pending version (and, for providers with `discard`, undoes
 *   its set at the target) and leaves the current one in place.
 * - The lock is released once the rotation enters `revoking`, so a grace period does not
 *   block the next rotation. A secret keeps at most one `previous` version: a rotation that
 *   starts while one is still in grace revokes it first (like AWSPREVIOUS), which matters
 *   for alternating-user targets where the next rotation reuses that user.
 * - Revocation holds the old version's row lock while it calls the target, so a revoke
 *   and a newer rotation's retirement of the same version never interleave.
 * - An emergency rotation never waits behind a non-emergency one (issue 4). If a
 *   scheduled/manual rotation holds the lock before activation (minting … activating), the
 *   emergency claim supersedes it in the same transaction: the holder's pending version is
 *   discarded and shredded, the holder ends `failed` with "superseded by emergency rotation
 *   <id>", and the fence bump fences its worker (its next write throws FencedError). The old
 *   credential is still current, so nobody is locked out; the emergency rotation then mints
 *   its own version. A holder in `notifying` has already activated and releases the lock
 *   within one step, so the emergency waits for it (`busy`); another emergency is never
 *   superseded. A fenced worker's provider call already in flight at the target (a `set`)
 *   can still land there after the emergency's: a provider must refuse a set older than the
 *   target's (postgres-password records the version on the role and does); one that does not
 *   could see the late set overwrite the emergency's credential.
 */
import type pg from 'pg';
import { withTransaction } from '../../shared/db/pool.ts';
import { findRotation } from '../../shared/db/rotation-store.ts';
import { findVersion, openCredential } from '../../shared/db/version-store.ts';
import type { RotationRow, SecretRow, VersionRow } from '../../shared/db/rows.ts';
import { appendAudit } from '../../shared/db/audit-log.ts';
import { recordEvent } from '../../shared/db/event-outbox.ts';
import { ackedEarlyRevoke } from '../../shared/db/propagation-store.ts';
import type { ValueCipher } from '../../shared/crypto/value-cipher.ts';
import { coerceError, FencedError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { Metrics } from '../../shared/metrics.ts';
import { getProvider } from '../../shared/providers/registry.ts';
import type { CredentialProvider, ProviderContext } from '../../shared/providers/provider.ts';
import { graceMs, rotationPolicySchema } from '../../shared/policy/rotation-policy.ts';
import { jobIds, rotationQueueFor, type EventType } from '../../shared/queues/job-catalogue.ts';
import type { QueueClient } from '../../shared/queues/queue-client.ts';

export type AdvanceOutcome =
  /** Nothing left to do: the rotation completed (now or earlier). */
  | 'completed'
  /** Activated; the old version is revoked when the grace period ends (a delayed job). */
  | 'awaiting-revoke'
  /** Another rotation of the same secret holds the lock; try again shortly. */
  | 'busy'
  /** Another worker took this rotation over; this one must stop. */
  | 'fenced'
  | 'failed';

export interface RotationStateMachineDeps {
  pool: pg.Pool;
  cipher: ValueCipher;
  queues: Pick<QueueClient, 'enqueue'>;
  metrics: Metrics;
  log: Logger;
  resolveReference: (ref: string) => string;
}

/** Steps during which the old version is still current and the new one only pending. */
const beforeActivation: readonly string[] = ['minting', 'setting', 'testing', 'activating'];
/** Statuses in which a rotation holds (or is about to take) its secret's lock. */
const lockHolding: readonly string[] = ['queued', ...beforeActivation, 'notifying'];

const errorText = (err: Error) => `${err.name}: ${err.message}`.slice(0, 500);

/** When the first version after `version` became current: sessions older than that used `version` or older. */
async function supersededAt(c: pg.PoolClient, secretId: string, version: number): Promise<Date | null> {
  const { rows } = await c.query<{ at: Date | null }>(
    'SELECT min(activated_at) AS at FROM secret_versions WHERE secret_id = $1 AND version > $2',
    [secretId, version],
  );
  return rows[0]?.at ?? null;
}

export class RotationStateMachine {
  constructor(private readonly deps: RotationStateMachineDeps) {}

  /**
   * Moves a rotation as far as it can go now. Throws on a retryable step failure unless
   * this is the final attempt, in which case the rotation is marked failed.
   */
  async advance(rotationId: string, opts: { finalAttempt: boolean }): Promise<AdvanceOutcome> {
    const found = await findRotation(this.deps.pool, rotationId);
    if (!found || found.status === 'completed') return 'completed';
    if (found.status === 'failed') return 'failed';
    const log = this.deps.log.child({ rotationId });
    if (found.status === 'revoking') return this.revokeWhenDue(found, log, opts.finalAttempt);

    const claimed = await this.claim(found);
    if (claimed === 'busy') return 'busy';
    // Another worker moved it on (to revoking, or done) since we read it: start over from its new status.
    if (claimed === 'moved-on') return this.advance(rotationId, opts);
    const { fence, secret } = claimed;
    let rotation = claimed.rotation;
    const provider = getProvider(secret.provider);
    const stepLog = log.child({ secretName: secret.name, provider: secret.provider });
    try {
      if (!provider) throw new Error(`unknown provider ${secret.provider}`);
      const ctx = this.context(secret, provider, stepLog);
      for (;;) {
        stepLog.debug({ step: rotation.status, fence }, 'rotation step');
        switch (rotation.status) {
          case 'minting':
            rotation = await this.mint(rotation, secret, fence, provider, ctx, stepLog);
            break;
          case 'setting':
            await provider.set(ctx, await this.credential(secret, rotation.to_version!), await this.credentialOrNull(secret, rotation.from_version));
            rotation = await this.transition(rotation, fence, 'testing');
            break;
          case 'testing':
            await provider.test(ctx, await this.credential(secret, rotation.to_version!));
            rotation = await this.transition(rotation, fence, 'activating');
            break;
          case 'activating':
            rotation = await this.activate(rotation, secret, fence);
            stepLog.info({ version: rotation.to_version, previousVersion: rotation.from_version }, 'new version is current');
            break;
          case 'notifying':
            rotation = await this.notify(rotation, secret, fence);
            if (rotation.status === 'completed') return 'completed';
            return this.revokeWhenDue(rotation, stepLog, opts.finalAttempt);
          default:
            throw new Error(`rotation ${rotation.id} is in unexpected status ${rotation.status}`);
        }
      }
    } catch (raw) {
      const err = coerceError(raw);
      if (err instanceof FencedError) {
        stepLog.warn({ step: rotation.status }, 'rotation lost its lock (taken over by another worker, superseded, or its secret deleted); stopping');
        return 'fenced';
      }
      this.deps.metrics.stepFailures.inc({ step: rotation.status, provider: secret.provider, final: String(opts.finalAttempt) });
      stepLog.warn({ step: rotation.status, err: errorText(err), finalAttempt: opts.finalAttempt }, 'rotation step failed');
      await this.deps.pool.query(`UPDATE rotations SET error = $2, updated_at = now() WHERE id = $1 AND status NOT IN ('completed', 'failed')`, [rotation.id, errorText(err)]).catch(() => {});
      if (!opts.finalAttempt) throw err;
      await this.fail(rotation, secret, fence, err, stepLog);
      return 'failed';
    }
  }

  private context<C>(secret: SecretRow, provider: CredentialProvider<C>, log: Logger): ProviderContext<C> {
    return {
      secretName: secret.name,
      config: provider.configSchema.parse(secret.config),
      log,
      resolveReference: this.deps.resolveReference,
    };
  }

  /** Takes the secret's rotation lock (or re-takes it after a crash) and bumps the fence. */
  private async claim(rotation: RotationRow): Promise<'busy' | 'moved-on' | { fence: string; rotation: RotationRow; secret: SecretRow }> {
    let superseded: RotationRow | null = null;
    const claimed = await withTransaction(this.deps.pool, async (c) => {
      const { rows } = await c.query<SecretRow>('SELECT * FROM secrets WHERE id = $1 FOR UPDATE', [rotation.secret_id]);
      const secret = rows[0]!;
      // Re-read the status under the lock. The worker that held the fence may have moved
      // this rotation past `notifying` (releasing the secret) after our read; locking the
      // secret for it now would leave the lock with a rotation that never releases it
      // again, and every later rotation of the secret `busy` forever (chaos/ rotator-partition).
      const now = await c.query<{ status: string }>('SELECT status FROM rotations WHERE id = $1 FOR UPDATE', [rotation.id]);
      if (!now.rows[0] || !lockHolding.includes(now.rows[0].status)) return 'moved-on';
      if (secret.active_rotation_id && secret.active_rotation_id !== rotation.id) {
        superseded = rotation.emergency ? await this.supersede(c, secret, rotation) : null;
        if (!superseded) return 'busy';
      }
      const locked = await c.query<SecretRow>(
        'UPDATE secrets SET active_rotation_id = $2, fence = fence + 1 WHERE id = $1 RETURNING *',
        [secret.id, rotation.id],
      );
      const updated = await c.query<RotationRow>(
        `UPDATE rotations SET fence = $2, attempts = attempts + 1, updated_at = now(),
           minting_at = CASE WHEN status = 'queued' THEN now() ELSE minting_at END,
           status = CASE WHEN status = 'queued' THEN 'minting' ELSE status END
         WHERE id = $1 RETURNING *`,
        [rotation.id, locked.rows[0]!.fence],
      );
      return { fence: locked.rows[0]!.fence, rotation: updated.rows[0]!, secret: locked.rows[0]! };
    });
    if (superseded && typeof claimed === 'object') {
      const holder: RotationRow = superseded;
      this.deps.log.warn({ rotationId: rotation.id, supersededRotationId: holder.id, step: holder.failed_step }, 'emergency rotation superseded an in-flight rotation');
      await this.publish(holder.id, 'dev.rekey.rotation.failed');
      await this.finished(holder, claimed.secret.provider, 'failed');
    }
    return claimed;
  }

  /**
   * Ends the non-emergency rotation holding the lock so `emergency` can take it (see the
   * docblock). Runs inside claim's transaction, under the secret row lock. Returns the
   * ended holder, or null if it must not be superseded.
   */
  private async supersede(c: pg.PoolClient, secret: SecretRow, emergency: RotationRow): Promise<RotationRow | null> {
    const { rows } = await c.query<RotationRow>('SELECT * FROM rotations WHERE id = $1 FOR UPDATE', [secret.active_rotation_id]);
    const holder = rows[0];
    if (!holder || holder.emergency || !beforeActivation.includes(holder.status)) return null;
    await this.discardPending(c, secret, holder);
    const ended = await c.query<RotationRow>(
      `UPDATE rotations SET status = 'failed', failed_step = status, error = $2, failed_at = now(), updated_at = now()
       WHERE id = $1 RETURNING *`,
      [holder.id, `superseded by emergency rotation ${emergency.id}`],
    );
    await recordEvent(c, 'dev.rekey.rotation.failed', ended.rows[0]!, secret.name);
    return ended.rows[0]!;
  }

  /** The pending version of a rotation that never activated: discarded, its value shredded. */
  private async discardPending(c: pg.PoolClient, secret: SecretRow, rotation: RotationRow): Promise<void> {
    if (!beforeActivation.includes(rotation.status) || rotation.to_version === null) return;
    await c.query(
      `UPDATE secret_versions SET state = 'revoked', revoked_at = now(), key_id = NULL, iv = NULL, ciphertext = NULL, tag = NULL
       WHERE secret_id = $1 AND version = $2 AND state = 'pending'`,
      [secret.id, rotation.to_version],
    );
  }

  /** Runs fn in a transaction that holds the secret row and proves we still own the rotation. */
  private fenced<T>(rotation: RotationRow, fence: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return withTransaction(this.deps.pool, async (c) => {
      const { rows } = await c.query<SecretRow>('SELECT active_rotation_id, fence FROM secrets WHERE id = $1 FOR UPDATE', [rotation.secret_id]);
      const s = rows[0];
      if (!s || s.active_rotation_id !== rotation.id || s.fence !== fence) {
        throw new FencedError(`rotation ${rotation.id} no longer holds fence ${fence}`);
      }
      return fn(c);
    });
  }

  /**
   * A step transition that writes nothing else: the same fence check as `fenced()`, in one
   * statement (one round trip instead of four; this is on every rotation's path).
   */
  private async transition(rotation: RotationRow, fence: string, status: 'setting' | 'testing' | 'activating'): Promise<RotationRow> {
    const column = `${status}_at` as const;
    const { rows } = await this.deps.pool.query<RotationRow>(
      `WITH owner AS (
         SELECT id FROM secrets WHERE id = $3 AND active_rotation_id = $1 AND fence = $4 FOR UPDATE
       )
       UPDATE rotations SET status = $2, ${column} = now(), updated_at = now()
       FROM owner WHERE rotations.id = $1 RETURNING rotations.*`,
      [rotation.id, status, rotation.secret_id, fence],
    );
    if (!rows[0]) throw new FencedError(`rotation ${rotation.id} no longer holds fence ${fence}`);
    return rows[0];
  }

  private async credential(secret: SecretRow, version: number) {
    const row = await findVersion(this.deps.pool, secret.id, version);
    if (!row) throw new Error(`version ${version} of secret ${secret.name} is missing`);
    return openCredential(this.deps.cipher, secret.name, row);
  }

  private async credentialOrNull(secret: SecretRow, version: number | null) {
    return version === null ? null : this.credential(secret, version);
  }

  private async mint(
    rotation: RotationRow,
    secret: SecretRow,
    fence: string,
    provider: CredentialProvider<any>,
    ctx: ProviderContext<any>,
    log: Logger,
  ): Promise<RotationRow> {
    await this.retirePrevious(rotation, secret, fence, provider, ctx, log);
    // A crash after the mint committed but before the status moved on cannot happen (one
    // transaction), but a re-run of a minted rotation must not mint twice.
    if (rotation.to_version !== null) return this.transition(rotation, fence, 'setting');
    const fresh = (await this.deps.pool.query<SecretRow>('SELECT * FROM secrets WHERE id = $1', [secret.id])).rows[0]!;
    const current = await this.credentialOrNull(secret, fresh.current_version);
    const version = fresh.latest_version + 1;
    const minted = await provider.mint(ctx, { version }, current);
    return this.fenced(rotation, fence, async (c) => {
      const sealed = this.deps.cipher.seal(secret.name, version, minted.value);
      await c.query(
        `INSERT INTO secret_versions (secret_id, version, state, key_id, iv, ciphertext, tag, public, rotation_id)
         VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8)`,
        [secret.id, version, sealed.keyId, sealed.iv, sealed.ciphertext, sealed.tag, minted.public ?? {}, rotation.id],
      );
      await c.query('UPDATE secrets SET latest_version = $2, updated_at = now() WHERE id = $1', [secret.id, version]);
      const { rows } = await c.query<RotationRow>(
        `UPDATE rotations SET to_version = $2, from_version = $3, status = 'setting', setting_at = now(), updated_at = now()
         WHERE id = $1 RETURNING *`,
        [rotation.id, version, fresh.current_version],
      );
      return rows[0]!;
    });
  }

  /** Revokes a version still in its grace period before a new rotation touches the target. */
  private async retirePrevious(
    rotation: RotationRow,
    secret: SecretRow,
    fence: string,
    provider: CredentialProvider<any>,
    ctx: ProviderContext<any>,
    log: Logger,
  ): Promise<void> {
    // Only the lock holder (us) creates `previous` versions, so an unlocked look is enough
    // to skip the locking transaction in the common case where none is left in grace.
    const inGrace = await this.deps.pool.query(`SELECT 1 FROM secret_versions WHERE secret_id = $1 AND state = 'previous' LIMIT 1`, [secret.id]);
    if (!inGrace.rowCount) return;
    const retired = await this.fenced(rotation, fence, async (c) => {
      const { rows } = await c.query<VersionRow>(
        `SELECT * FROM secret_versions WHERE secret_id = $1 AND state = 'previous' ORDER BY version FOR UPDATE`,
        [secret.id],
      );
      const done: RotationRow[] = [];
      for (const row of rows) {
        await provider.revoke(ctx, openCredential(this.deps.cipher, secret.name, row), {
          terminateSessions: this.terminateSessions(secret, rotation),
          supersededAt: await supersededAt(c, secret.id, row.version),
        });
        await c.query(`UPDATE secret_versions SET state = 'revoked', revoked_at = now() WHERE secret_id = $1 AND version = $2`, [secret.id, row.version]);
        done.push(...(await this.completeRevocation(c, secret, row.version)));
      }
      return done;
    });
    for (const r of retired) {
      log.info({ retiredRotationId: r.id, version: r.from_version }, 'revoked a version still in grace before rotating again');
      await this.afterRevocation(r, secret);
    }
  }

  private terminateSessions(secret: SecretRow, rotation: RotationRow): boolean {
    if (rotation.emergency) return true;
    const policy = rotationPolicySchema.safeParse(secret.policy);
    return policy.success ? policy.data.terminateSessions : false;
  }

  /** Swaps pending → current and records the `rotated` event, in one transaction. */
  private async activate(rotation: RotationRow, secret: SecretRow, fence: string): Promise<RotationRow> {
    const policy = rotationPolicySchema.parse(secret.policy);
    const revokeAfter = rotation.emergency ? new Date() : new Date(Date.now() + graceMs(policy));
    const activated = await this.fenced(rotation, fence, async (c) => {
      if (rotation.from_version !== null) {
        await c.query(
          `UPDATE secret_versions SET state = 'previous' WHERE secret_id = $1 AND version = $2 AND state = 'current'`,
          [secret.id, rotation.from_version],
        );
      }
      await c.query(
        `UPDATE secret_versions SET state = 'current', activated_at = now() WHERE secret_id = $1 AND version = $2 AND state = 'pending'`,
        [secret.id, rotation.to_version],
      );
      await c.query('UPDATE secrets SET current_version = $2, updated_at = now() WHERE id = $1', [secret.id, rotation.to_version]);
      const { rows } = await c.query<RotationRow>(
        `UPDATE rotations SET status = 'notifying', activated_at = now(), notifying_at = now(), updated_at = now(),
           revoke_after = CASE WHEN from_version IS NULL THEN NULL ELSE $2::timestamptz END
         WHERE id = $1 RETURNING *`,
        [rotation.id, revokeAfter],
      );
      await recordEvent(c, 'dev.rekey.secret.rotated', rows[0]!, secret.name);
      return rows[0]!;
    });
    const seconds = (activated.activated_at!.getTime() - activated.triggered_at.getTime()) / 1000;
    this.deps.metrics.rotationDuration.observe({ trigger: activated.trigger, provider: secret.provider }, seconds);
    return activated;
  }

  /**
   * Hands the `rotated` event (already in the outbox) to the notifier, then releases the
   * lock: into `revoking`, or done if there was no old version to revoke.
   */
  private async notify(rotation: RotationRow, secret: SecretRow, fence: string): Promise<RotationRow> {
    await this.publish(rotation.id, 'dev.rekey.secret.rotated');
    const done = await this.fenced(rotation, fence, async (c) => {
      const { rows } = await c.query<RotationRow>(
        rotation.from_version === null
          ? `UPDATE rotations SET status = 'completed', completed_at = now(), updated_at = now() WHERE id = $1 RETURNING *`
          : `UPDATE rotations SET status = 'revoking', revoking_at = now(), updated_at = now() WHERE id = $1 RETURNING *`,
        [rotation.id],
      );
      await c.query('UPDATE secrets SET active_rotation_id = NULL WHERE id = $1', [secret.id]);
      return rows[0]!;
    });
    if (done.status === 'completed') await this.finished(done, secret.provider, 'completed');
    return done;
  }

  private async revokeWhenDue(rotation: RotationRow, log: Logger, finalAttempt: boolean): Promise<AdvanceOutcome> {
    const dueIn = rotation.revoke_after ? rotation.revoke_after.getTime() - Date.now() : 0;
    // Policy `revokeWhen: acked`: every live subscriber holds the new version, so grace need not run out (issue 5).
    if (dueIn > 0 && !(await ackedEarlyRevoke(this.deps.pool, rotation.id))) {
      await this.deps.queues.enqueue(rotationQueueFor(rotation.emergency), 'revoke', { rotationId: rotation.id }, {
        jobId: jobIds.revoke(rotation.id),
        delay: dueIn,
      });
      log.info({ revokeAfter: rotation.revoke_after }, 'previous version stays valid through its grace period');
      return 'awaiting-revoke';
    }
    const secret = (await this.deps.pool.query<SecretRow>('SELECT * FROM secrets WHERE id = $1', [rotation.secret_id])).rows[0]!;
    try {
      const revoked = await this.revoke(rotation, secret, log);
      for (const r of revoked) await this.afterRevocation(r, secret);
      return 'completed';
    } catch (raw) {
      const err = coerceError(raw);
      this.deps.metrics.stepFailures.inc({ step: 'revoking', provider: secret.provider, final: String(finalAttempt) });
      log.warn({ step: 'revoking', err: errorText(err), finalAttempt }, 'revocation failed');
      if (!finalAttempt) throw err;
      await this.failRevocation(rotation, secret, err, log);
      return 'failed';
    }
  }

  private async revoke(rotation: RotationRow, secret: SecretRow, log: Logger): Promise<RotationRow[]> {
    const provider = getProvider(secret.provider);
    if (!provider) throw new Error(`unknown provider ${secret.provider}`);
    const ctx = this.context(secret, provider, log);
    return withTransaction(this.deps.pool, async (c) => {
      // Lock order (version row, then rotation rows) matches retirePrevious.
      const { rows } = await c.query<VersionRow>(
        'SELECT * FROM secret_versions WHERE secret_id = $1 AND version = $2 FOR UPDATE',
        [secret.id, rotation.from_version],
      );
      const old = rows[0];
      if (old && old.state === 'previous') {
        await provider.revoke(ctx, openCredential(this.deps.cipher, secret.name, old), {
          terminateSessions: this.terminateSessions(secret, rotation),
          supersededAt: await supersededAt(c, secret.id, old.version),
        });
        await c.query(`UPDATE secret_versions SET state = 'revoked', revoked_at = now() WHERE secret_id = $1 AND version = $2`, [secret.id, old.version]);
        log.info({ version: old.version }, 'old version revoked at its target');
      }
      return this.completeRevocation(c, secret, rotation.from_version!);
    });
  }

  /** Closes out every rotation waiting to revoke `version`, with its time-to-revoke and `revoked` event. */
  private async completeRevocation(c: pg.PoolClient, secret: SecretRow, version: number): Promise<RotationRow[]> {
    const { rows } = await c.query<RotationRow>(
      `UPDATE rotations r SET status = 'completed', revoked_at = v.revoked_at, completed_at = now(), updated_at = now(),
         time_to_revoke_ms = round(extract(epoch FROM v.revoked_at - r.triggered_at) * 1000)
       FROM secret_versions v
       WHERE r.secret_id = $1 AND r.from_version = $2 AND r.status = 'revoking'
         AND v.secret_id = r.secret_id AND v.version = r.from_version
       RETURNING r.*`,
      [secret.id, version],
    );
    for (const r of rows) await recordEvent(c, 'dev.rekey.secret.revoked', r, secret.name);
    return rows;
  }

  private async afterRevocation(rotation: RotationRow, secret: SecretRow): Promise<void> {
    if (rotation.time_to_revoke_ms !== null) {
      this.deps.metrics.timeToRevoke.observe({ trigger: rotation.trigger }, rotation.time_to_revoke_ms / 1000);
    }
    await this.publish(rotation.id, 'dev.rekey.secret.revoked');
    await this.finished(rotation, secret.provider, 'completed');
  }

  private async fail(rotation: RotationRow, secret: SecretRow, fence: string, err: Error, log: Logger): Promise<void> {
    let failed: RotationRow;
    try {
      failed = await this.fenced(rotation, fence, async (c) => {
        // Under the fence, so a worker that lost this rotation never undoes another's set.
        await this.discardAtTarget(rotation, secret, log);
        await this.discardPending(c, secret, rotation);
        await c.query('UPDATE secrets SET active_rotation_id = NULL WHERE id = $1', [secret.id]);
        const { rows } = await c.query<RotationRow>(
          `UPDATE rotations SET status = 'failed', failed_step = status, error = $2, failed_at = now(), updated_at = now()
           WHERE id = $1 RETURNING *`,
          [rotation.id, errorText(err)],
        );
        await recordEvent(c, 'dev.rekey.rotation.failed', rows[0]!, secret.name);
        return rows[0]!;
      });
    } catch (raw) {
      if (coerceError(raw) instanceof FencedError) return;
      throw raw;
    }
    log.error({ step: failed.failed_step, err: failed.error }, 'rotation failed; the current version stays in place');
    await this.publish(failed.id, 'dev.rekey.rotation.failed');
    await this.finished(failed, secret.provider, 'failed');
  }

  /**
   * Invariant 3 for targets with one password per account (postgres-password `single`):
   * once `set` may have run, a failure before activation puts the current credential back
   * at the target. Best effort — a target that is down cannot be told; the rotation is
   * marked failed either way and the error is logged.
   */
  private async discardAtTarget(rotation: RotationRow, secret: SecretRow, log: Logger): Promise<void> {
    const provider = getProvider(secret.provider);
    if (!provider?.discard || rotation.to_version === null || !['setting', 'testing', 'activating'].includes(rotation.status)) return;
    try {
      const pending = await this.credential(secret, rotation.to_version);
      await provider.discard(this.context(secret, provider, log), pending, await this.credentialOrNull(secret, rotation.from_version));
      log.info({ version: rotation.to_version }, 'discarded the pending credential at its target');
    } catch (raw) {
      log.error({ version: rotation.to_version, err: errorText(coerceError(raw)) }, 'could not discard the pending credential at its target');
    }
  }

  private async failRevocation(rotation: RotationRow, secret: SecretRow, err: Error, log: Logger): Promise<void> {
    const rows = await withTransaction(this.deps.pool, async (c) => {
      const { rows } = await c.query<RotationRow>(
        `UPDATE rotations SET status = 'failed', failed_step = 'revoking', error = $2, failed_at = now(), updated_at = now()
         WHERE id = $1 AND status = 'revoking' RETURNING *`,
        [rotation.id, errorText(err)],
      );
      if (rows[0]) await recordEvent(c, 'dev.rekey.rotation.failed', rows[0], secret.name);
      return rows;
    });
    if (!rows[0]) return;
    // The previous version stays `previous`; the next rotation of this secret retries its revocation.
    log.error({ step: 'revoking', err: rows[0].error }, 'revocation failed; the previous version is still valid at its target');
    await this.publish(rotation.id, 'dev.rekey.rotation.failed');
    await this.finished(rows[0], secret.provider, 'failed');
  }

  private async finished(rotation: RotationRow, provider: string, outcome: 'completed' | 'failed'): Promise<void> {
    this.deps.metrics.rotations.inc({ outcome, trigger: rotation.trigger, provider });
    await appendAudit(this.deps.pool, {
      actor: 'rotator',
      action: `rotation.${outcome}`,
      target: rotation.id,
      outcome: outcome === 'completed' ? 'ok' : 'failed',
      details: {
        secretId: rotation.secret_id,
        version: rotation.to_version,
        previousVersion: rotation.from_version,
        trigger: rotation.trigger,
        ...(outcome === 'failed' ? { step: rotation.failed_step, error: rotation.error } : { timeToRevokeMs: rotation.time_to_revoke_ms }),
      },
    });
  }

  /** Best effort: the event is already in the outbox, and the reconciler re-enqueues what this misses. */
  private async publish(rotationId: string, type: EventType): Promise<void> {
    try {
      await this.deps.queues.enqueue('notifications', 'publish', { rotationId, type }, { jobId: jobIds.publish(rotationId, type) });
    } catch (err) {
      this.deps.log.warn({ rotationId, type, err: errorText(coerceError(err)) }, 'could not enqueue event; the reconciler will');
    }
  }
}
