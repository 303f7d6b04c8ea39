import type pg from 'pg';
import { ConflictError } from '../../errors.ts';
import { ident, literal, roleExists, terminateRoleSessions, withAdmin } from '../postgres-target/postgres-target.ts';
import { scramSha256Verifier } from '../postgres-target/scram-verifier.ts';

/**
 * The login roles behind dynamic PostgreSQL leases, at the target. A lease role is named
 * `<prefix><epoch>_<random>`: the epoch is the secret version it was issued under, so
 * revoking a version can find and drop every lease issued under it.
 */
export interface LeaseTarget {
  adminUrl: string;
  groupRole: string;
  iterations: number;
}

export const leaseRolePrefix = (usernamePrefix: string, epoch: string) => `${usernamePrefix}${epoch}_`;

/** A login role that expires at `validUntil` (PostgreSQL refuses logins after it) and inherits the group role's grants. */
export async function createLeaseRole(t: LeaseTarget, username: string, password: string, validUntil: Date): Promise<void> {
  const verifier = await scramSha256Verifier(password, t.iterations);
  await withAdmin(t.adminUrl, `create lease role ${username}`, [password, verifier], (c) =>
    c.query(
      `CREATE ROLE ${ident(username)} WITH LOGIN PASSWORD ${literal(verifier)} VALID UNTIL ${literal(validUntil.toISOString())} IN ROLE ${ident(t.groupRole)}`,
    ),
  );
}

export async function extendLeaseRole(t: LeaseTarget, username: string, validUntil: Date): Promise<void> {
  await withAdmin(t.adminUrl, `renew lease role ${username}`, [], async (c) => {
    if (!(await roleExists(c, username))) throw new ConflictError(`lease role ${username} no longer exists at the target`);
    await c.query(`ALTER ROLE ${ident(username)} VALID UNTIL ${literal(validUntil.toISOString())}`);
  });
}

async function dropOne(c: pg.PoolClient, username: string, groupRole: string): Promise<boolean> {
  if (!(await roleExists(c, username))) return false;
  // No new logins, then end the open ones, then drop. Whatever the lease created is handed
  // to the group role rather than blocking the drop.
  await c.query(`ALTER ROLE ${ident(username)} NOLOGIN`);
  await terminateRoleSessions(c, username, null);
  await c.query('BEGIN');
  try {
    // Only when the lease owns or was granted something here: REASSIGN OWNED needs more
    // than CREATEROLE (membership in the lease role), the plain drop does not.
    const { rows } = await c.query<{ owns: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_shdepend d JOIN pg_roles r ON d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid
         WHERE r.rolname = $1 AND d.deptype IN ('o', 'a')) AS owns`,
      [username],
    );
    if (rows[0]!.owns) {
      await c.query(`REASSIGN OWNED BY ${ident(username)} TO ${ident(groupRole)}`);
      await c.query(`DROP OWNED BY ${ident(username)}`);
    }
    await c.query(`DROP ROLE ${ident(username)}`);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
  return true;
}

/** Drops a lease role and ends its sessions; succeeds if it is already gone. */
export async function dropLeaseRole(t: LeaseTarget, username: string): Promise<boolean> {
  return withAdmin(t.adminUrl, `drop lease role ${username}`, [], (c) => dropOne(c, username, t.groupRole));
}

/** Drops every lease role whose name starts with `prefix`; returns how many there were. */
export async function dropLeaseRolesWithPrefix(t: LeaseTarget, prefix: string): Promise<number> {
  return withAdmin(t.adminUrl, `drop lease roles ${prefix}*`, [], async (c) => {
    const { rows } = await c.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)', [prefix]);
    let n = 0;
    for (const r of rows) if (await dropOne(c, r.rolname, t.groupRole)) n++;
    return n;
  });
}
