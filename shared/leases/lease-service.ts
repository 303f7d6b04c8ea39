import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { z } from 'zod';
import { appendAudit } from '../db/audit-log.ts';
import { withTransaction } from '../db/pool.ts';
import { findSecret } from '../db/secret-store.ts';
import { findVersion } from '../db/version-store.ts';
import { coerceError, ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { duration, parseDuration } from '../policy/rotation-policy.ts';
import { createLeaseRole, dropLeaseRole, extendLeaseRole, leaseRolePrefix } from '../providers/postgres-dynamic/lease-roles.ts';
import { epochOf, leaseTarget, postgresDynamicProvider, type PostgresDynamicConfig } from '../providers/postgres-dynamic/postgres-dynamic-provider.ts';
import { parseInput } from '../secret-admin.ts';
import { findLease, insertLease, leaseView, markLeaseRevoked, recordLeaseError, setLeaseExpiry, type LeaseRow } from './lease-store.ts';

export interface LeaseDeps {
  pool: pg.Pool;
  log: Logger;
  resolveReference: (ref: string) => string;
}

export const leaseRequest = z.object({ ttl: duration.optional() }).strict();

const errorText = (err: unknown) => {
  const e = coerceError(err);
  return `${e.name}: ${e.message}`.slice(0, 500);
};

function targetOf(deps: LeaseDeps, config: unknown) {
  const parsed = postgresDynamicProvider.configSchema.parse(config) as PostgresDynamicConfig;
  return { config: parsed, target: leaseTarget({ config: parsed, resolveReference: deps.resolveReference }) };
}

function ttlMs(requested: string | undefined, config: PostgresDynamicConfig): number {
  const ms = parseDuration(requested ?? config.defaultTtl);
  if (ms > parseDuration(config.maxTtl)) throw new ValidationError(`body.ttl: must be at most ${config.maxTtl}`, { issues: [{ path: 'body.ttl', message: `must be at most ${config.maxTtl}` }] });
  return ms;
}

/**
 * Issues a lease: a new login role at the target, valid for the ttl, in the configured
 * group role. The row is written first, so a crash before the role exists leaves
 * something the reaper cleans up. The password is returned here once and never stored.
 */
export async function createLease(deps: LeaseDeps, secretName: string, input: unknown, actor: string) {
  const body = parseInput(leaseRequest, input ?? {});
  const secret = await findSecret(deps.pool, secretName);
  if (!secret) throw new NotFoundError(`secret ${secretName} not found`);
  if (secret.provider !== postgresDynamicProvider.type) throw new ConflictError(`secret ${secretName} does not issue leases (provider ${secret.provider})`);
  if (secret.current_version === null) throw new ConflictError(`secret ${secretName} has no current version yet`);
  const version = await findVersion(deps.pool, secret.id, secret.current_version);
  const { config, target } = targetOf(deps, secret.config);
  const ttl = ttlMs(body.ttl, config);
  const now = Date.now();
  const expiresAt = new Date(now + ttl);
  const username = `${leaseRolePrefix(config.usernamePrefix, epochOf(version!))}${randomBytes(6).toString('hex')}`;
  const password = randomBytes(32).toString('base64url');
  const id = await insertLease(deps.pool, { secretId: secret.id, version: secret.current_version, username, expiresAt, maxExpiresAt: new Date(now + parseDuration(config.maxTtl)) });
  try {
    await createLeaseRole(target, username, password, expiresAt);
  } catch (err) {
    await markLeaseRevoked(deps.pool, id, 'create failed', errorText(err)).catch(() => {});
    await dropLeaseRole(target, username).catch(() => {});
    throw err;
  }
  await appendAudit(deps.pool, { actor, action: 'lease.create', target: secretName, outcome: 'ok', details: { leaseId: id, username, version: secret.current_version } });
  deps.log.info({ secret: secretName, leaseId: id, username, expiresAt }, 'lease issued');
  return { leaseId: id, secret: secretName, version: secret.current_version, username, password, expiresAt };
}

/** Extends a live lease by its ttl from now, never past its maximum lifetime. */
export async function renewLease(deps: LeaseDeps, leaseId: string, input: unknown, actor: string) {
  const body = parseInput(leaseRequest, input ?? {});
  const lease = await withTransaction(deps.pool, async (c) => {
    const l = await liveLease(c, leaseId);
    const { config, target } = targetOf(deps, l.secret_config);
    const expiresAt = new Date(Math.min(Date.now() + ttlMs(body.ttl, config), l.max_expires_at.getTime()));
    await extendLeaseRole(target, l.username, expiresAt);
    await setLeaseExpiry(c, l.id, expiresAt);
    await appendAudit(c, { actor, action: 'lease.renew', target: l.secret_name, outcome: 'ok', details: { leaseId: l.id, expiresAt: expiresAt.toISOString() } });
    return { ...l, expires_at: expiresAt, renewed_at: new Date() };
  });
  return leaseView(lease);
}

/** Ends a lease now: drops its role and ends its sessions. Revoking a revoked lease is a no-op. */
export async function revokeLease(deps: LeaseDeps, leaseId: string, actor: string): Promise<void> {
  await withTransaction(deps.pool, async (c) => {
    const l = await findLease(c, leaseId, { forUpdate: true });
    if (!l) throw new NotFoundError(`lease ${leaseId} not found`);
    if (l.revoked_at) return;
    await endLease(deps, c, l, 'revoked');
    await appendAudit(c, { actor, action: 'lease.revoke', target: l.secret_name, outcome: 'ok', details: { leaseId: l.id, username: l.username } });
  });
}

export async function showLease(deps: Pick<LeaseDeps, 'pool'>, leaseId: string) {
  const l = await findLease(deps.pool, leaseId);
  if (!l) throw new NotFoundError(`lease ${leaseId} not found`);
  return leaseView(l);
}

/** Drops the lease's role at the target and records why; on failure records the error and rethrows. */
export async function endLease(deps: LeaseDeps, c: pg.PoolClient, l: LeaseRow, reason: string): Promise<void> {
  try {
    await dropLeaseRole(targetOf(deps, l.secret_config).target, l.username);
  } catch (err) {
    // On the same connection: the row is locked by this transaction.
    await recordLeaseError(c, l.id, errorText(err)).catch(() => {});
    throw err;
  }
  await markLeaseRevoked(c, l.id, reason);
}

async function liveLease(c: pg.PoolClient, id: string): Promise<LeaseRow> {
  const l = await findLease(c, id, { forUpdate: true });
  if (!l) throw new NotFoundError(`lease ${id} not found`);
  if (l.revoked_at) throw new ConflictError(`lease ${id} was revoked (${l.revoke_reason})`);
  if (l.expires_at.getTime() <= Date.now()) throw new ConflictError(`lease ${id} has expired`);
  return l;
}
