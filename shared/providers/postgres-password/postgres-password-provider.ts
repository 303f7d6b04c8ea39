import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { z } from 'zod';
import { FencedError, ProviderError } from '../../errors.ts';
import { credentialReference } from '../config-reference.ts';
import type { Credential, CredentialProvider, ProviderContext } from '../provider.ts';
import { ident, literal, loginAs, terminateRoleSessions, withAdmin } from '../postgres-target/postgres-target.ts';
import { scramSha256Verifier } from '../postgres-target/scram-verifier.ts';

const roleName = z.string().min(1).max(63);

const common = {
  /** Reference to the admin connection URL (a role with CREATEROLE, and pg_signal_backend to end sessions). */
  admin: credentialReference,
  /** Database the test login connects to. @defaultValue the admin URL's database */
  database: z.string().min(1).max(63).optional(),
  /** PBKDF2 iterations in the SCRAM verifier. @defaultValue 4096 (PostgreSQL's own default) */
  iterations: z.number().int().min(4096).max(100_000).default(4096),
};

const configSchema = z.discriminatedUnion('strategy', [
  z.object({ strategy: z.literal('single'), role: roleName, ...common }).strict(),
  z
    .object({ strategy: z.literal('alternating'), roles: z.tuple([roleName, roleName]), ...common })
    .strict()
    .refine((c) => c.roles[0] !== c.roles[1], { message: 'the two roles must differ', path: ['roles'] }),
]);
type PostgresPasswordConfig = z.infer<typeof configSchema>;

/** What a consumer receives as the value: everything it needs to log in. */
const loginSchema = z.object({ username: z.string(), password: z.string() });
type Login = z.infer<typeof loginSchema>;

const loginOf = (c: Credential): Login => loginSchema.parse(JSON.parse(c.value));

/**
 * The target-side fence. The rotator's fence stops a superseded worker's writes to rekey's
 * own database, but not a statement already on its way to the target: an emergency
 * rotation's password could be overwritten by a late `set` of the rotation it superseded,
 * leaving a password nobody holds. So every change to a role records, on the role itself
 * (its comment) and under an advisory lock, the version it was made for, and a change made
 * for an older version than the one recorded is refused: the late writer changes nothing.
 */
type RoleMark = { version: number; discarded: boolean } | null;
const markPattern = /^rekey:v(\d+)(:discarded)?$/;

async function changeRole(
  ctx: ProviderContext<PostgresPasswordConfig>,
  role: string,
  action: string,
  secrets: readonly string[],
  allowed: (mark: RoleMark) => boolean,
  newMark: string | null,
  change: (c: pg.PoolClient) => Promise<unknown>,
): Promise<void> {
  await withAdmin(ctx.resolveReference(ctx.config.admin), action, secrets, async (c) => {
    await c.query('BEGIN');
    try {
      await c.query(`SELECT pg_advisory_xact_lock(hashtext('rekey-role:' || $1))`, [role]);
      const { rows } = await c.query<{ mark: string | null }>(`SELECT shobj_description(oid, 'pg_authid') AS mark FROM pg_roles WHERE rolname = $1`, [role]);
      const m = markPattern.exec(rows[0]?.mark ?? '');
      const mark: RoleMark = m ? { version: Number(m[1]), discarded: m[2] !== undefined } : null;
      if (!allowed(mark)) throw new FencedError(`${action}: role ${role} already belongs to version ${mark?.version}; refusing a stale change`);
      await change(c);
      if (newMark) await c.query(`COMMENT ON ROLE ${ident(role)} IS ${literal(newMark)}`);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
}

async function setPassword(ctx: ProviderContext<PostgresPasswordConfig>, cred: Credential, opts: { enableLogin: boolean }): Promise<void> {
  const login = loginOf(cred);
  const verifier = await scramSha256Verifier(login.password, ctx.config.iterations);
  await changeRole(
    ctx,
    login.username,
    `set password of ${login.username}`,
    [login.password, verifier],
    // A retried set of the same version is fine; after its discard, or once a newer version was set, it is not.
    (mark) => !mark || mark.version < cred.version || (mark.version === cred.version && !mark.discarded),
    `rekey:v${cred.version}`,
    (c) => c.query(`ALTER ROLE ${ident(login.username)} WITH ${opts.enableLogin ? 'LOGIN ' : ''}PASSWORD ${literal(verifier)}`),
  );
}

/**
 * A PostgreSQL role's password. The value is JSON `{username, password}`; `public.username`
 * names the role a version belongs to.
 *
 * The password reaches the server only as a SCRAM-SHA-256 verifier computed here, so
 * the plaintext is in no server log. *test* logs in with the new credential.
 *
 * Strategies:
 * - `alternating` (AWS "alternating users"): two roles with the same grants. Each
 *   rotation sets a new password on the role that is not current, tests it, and only
 *   then is it served; the current role is untouched, so consumers are never locked out.
 *   Revoking the old version makes its role NOLOGIN with no password (no login under any
 *   auth method) and, by policy, ends its sessions. The rotator revokes a version still in
 *   grace before the next rotation reuses its role.
 * - `single`: one role, and PostgreSQL keeps one password per role. So `single` is NOT
 *   lockout-free during the set→activate window: from `set` until consumers fetch the new
 *   value, new logins with the old password fail (open sessions continue). If the
 *   rotation fails before activation, `discard` puts the old password back. Use
 *   `alternating` where new connections must never fail.
 *
 * Ending sessions: for `alternating` every session of the old role; for `single`, the
 * sessions of the role that began before the new version became current.
 *
 * rekey owns the comment of the roles it rotates: it records the version that last
 * changed the role there (`rekey:v7`), the target-side fence described at changeRole.
 */
export const postgresPasswordProvider: CredentialProvider<PostgresPasswordConfig> = {
  type: 'postgres-password',
  configSchema,

  async mint({ config }, _next, current) {
    let username: string;
    if (config.strategy === 'single') username = config.role;
    else username = current?.public.username === config.roles[0] ? config.roles[1] : config.roles[0];
    const password = randomBytes(32).toString('base64url');
    return { value: JSON.stringify({ username, password }), public: { username } };
  },

  async set(ctx, next) {
    await setPassword(ctx, next, { enableLogin: ctx.config.strategy === 'alternating' });
  },

  async test(ctx, next) {
    const login = loginOf(next);
    const user = await loginAs(ctx.resolveReference(ctx.config.admin), ctx.config.database, login.username, login.password);
    if (user !== login.username) throw new ProviderError(`test login returned current_user ${user}, expected ${login.username}`);
  },

  async revoke(ctx, old, opts) {
    const { username } = loginOf(old);
    const alternating = ctx.config.strategy === 'alternating';
    // single: the set already replaced the only password, so the old one fails to log in.
    if (!alternating && !opts.terminateSessions) return;
    if (alternating) {
      // Once a newer version owns the role again, the old password is already gone: leave it.
      await changeRole(ctx, username, `revoke ${username}`, [], (mark) => !mark || mark.version <= old.version, null, (c) =>
        c.query(`ALTER ROLE ${ident(username)} WITH NOLOGIN PASSWORD NULL`),
      ).catch((err) => {
        if (!(err instanceof FencedError)) throw err;
      });
    }
    if (!opts.terminateSessions) return;
    const ended = await withAdmin(ctx.resolveReference(ctx.config.admin), `end sessions of ${username}`, [], (c) =>
      terminateRoleSessions(c, username, alternating ? null : (opts.supersededAt ?? null)),
    );
    if (ended) ctx.log.info({ role: username, sessions: ended }, 'ended sessions opened with the revoked credential');
  },

  async discard(ctx, pending, current) {
    const { username } = loginOf(pending);
    // Undo only our own change: if a newer version owns the role, leave it alone.
    const ours = (mark: RoleMark) => !mark || mark.version <= pending.version;
    const discarded = `rekey:v${pending.version}:discarded`;
    if (ctx.config.strategy === 'single') {
      // Put the old password back: consumers still hold it.
      if (!current) return;
      const old = loginOf(current);
      const verifier = await scramSha256Verifier(old.password, ctx.config.iterations);
      await changeRole(ctx, username, `restore password of ${username}`, [old.password, verifier], ours, discarded, (c) =>
        c.query(`ALTER ROLE ${ident(username)} WITH PASSWORD ${literal(verifier)}`),
      );
      return;
    }
    if (current && loginOf(current).username === username) return;
    await changeRole(ctx, username, `discard ${username}`, [], ours, discarded, (c) =>
      c.query(`ALTER ROLE ${ident(username)} WITH NOLOGIN PASSWORD NULL`),
    );
  },
};
