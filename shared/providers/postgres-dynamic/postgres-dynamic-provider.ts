import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ProviderError } from '../../errors.ts';
import { duration, parseDuration } from '../../policy/rotation-policy.ts';
import { credentialReference } from '../config-reference.ts';
import type { Credential, CredentialProvider, ProviderContext } from '../provider.ts';
import { roleExists, withAdmin } from '../postgres-target/postgres-target.ts';
import { dropLeaseRolesWithPrefix, leaseRolePrefix, type LeaseTarget } from './lease-roles.ts';

const configSchema = z
  .object({
    /** Reference to the admin connection URL (a role with CREATEROLE, membership of the group role, pg_signal_backend). */
    admin: credentialReference,
    /** Every lease role is a member of this role and gets its grants. It must exist. */
    groupRole: z.string().min(1).max(63),
    /** Database leases are meant for (and REASSIGN OWNED runs in). @defaultValue the admin URL's database */
    database: z.string().min(1).max(63).optional(),
    /** @defaultValue 1h */
    defaultTtl: duration.default('1h'),
    /** No lease lives longer than this from its creation, renewals included. @defaultValue 24h */
    maxTtl: duration.default('24h'),
    /** @defaultValue rekey_ */
    usernamePrefix: z.string().regex(/^[a-z][a-z0-9_]{0,15}$/, 'lowercase letter, then up to 15 lowercase letters, digits or _').default('rekey_'),
    /** @defaultValue 4096 */
    iterations: z.number().int().min(4096).max(100_000).default(4096),
  })
  .strict()
  .refine((c) => parseDuration(c.defaultTtl) <= parseDuration(c.maxTtl), { message: 'must not exceed maxTtl', path: ['defaultTtl'] });
export type PostgresDynamicConfig = z.infer<typeof configSchema>;

export function leaseTarget(ctx: Pick<ProviderContext<PostgresDynamicConfig>, 'config' | 'resolveReference'>): LeaseTarget {
  return { adminUrl: ctx.resolveReference(ctx.config.admin), groupRole: ctx.config.groupRole, iterations: ctx.config.iterations };
}

export const epochOf = (c: Pick<Credential, 'public'>): string => {
  const epoch = c.public.epoch;
  if (typeof epoch !== 'string' || !/^[0-9a-f]{8}$/.test(epoch)) throw new ProviderError('version has no lease epoch');
  return epoch;
};

/**
 * Short-lived PostgreSQL login roles, one per lease (see shared/leases). Leases are not
 * versions: a consumer asks for one (`POST /v1/secrets/{name}/leases`) and gets its own
 * username and password, valid until the lease expires (`VALID UNTIL`) or is revoked.
 *
 * A version of this secret is a lease *epoch* (`public.epoch`): leases are issued under
 * the current version, and their role names carry its epoch. Rotating the secret starts
 * a new epoch; revoking the old version (after its grace period, at once in an
 * emergency) drops every lease role issued under it and ends their sessions. So an
 * emergency rotation of a dynamic secret kills every outstanding lease.
 *
 * The stored value is a random token nobody logs in with; lease passwords are returned
 * once and never stored.
 */
export const postgresDynamicProvider: CredentialProvider<PostgresDynamicConfig> = {
  type: 'postgres-dynamic',
  configSchema,

  async mint() {
    return { value: randomBytes(24).toString('base64url'), public: { epoch: randomBytes(4).toString('hex') } };
  },

  /** Nothing to change at the target; checks the group role leases will join. */
  async set(ctx) {
    const { groupRole } = ctx.config;
    await withAdmin(ctx.resolveReference(ctx.config.admin), 'check group role', [], async (c) => {
      if (!(await roleExists(c, groupRole))) throw new ProviderError(`group role ${groupRole} does not exist at the target`);
    });
  },

  /** The admin connection works and can create roles: what every lease needs. */
  async test(ctx) {
    await withAdmin(ctx.resolveReference(ctx.config.admin), 'check admin privileges', [], async (c) => {
      const { rows } = await c.query<{ ok: boolean }>('SELECT rolcreaterole OR rolsuper AS ok FROM pg_roles WHERE rolname = current_user');
      if (!rows[0]?.ok) throw new ProviderError('the admin role cannot create roles (needs CREATEROLE)');
    });
  },

  async revoke(ctx, old) {
    const dropped = await dropLeaseRolesWithPrefix(leaseTarget(ctx), leaseRolePrefix(ctx.config.usernamePrefix, epochOf(old)));
    if (dropped) ctx.log.info({ version: old.version, leases: dropped }, 'dropped the lease roles issued under the revoked version');
  },
};
