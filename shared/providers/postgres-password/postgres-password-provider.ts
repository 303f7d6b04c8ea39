import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ProviderError } from '../../errors.ts';
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

async function setPassword(ctx: ProviderContext<PostgresPasswordConfig>, login: Login, opts: { enableLogin: boolean }): Promise<void> {
  const verifier = await scramSha256Verifier(login.password, ctx.config.iterations);
  await withAdmin(ctx.resolveReference(ctx.config.admin), `set password of ${login.username}`, [login.password, verifier], (c) =>
    c.query(`ALTER ROLE ${ident(login.username)} WITH ${opts.enableLogin ? 'LOGIN ' : ''}PASSWORD ${literal(verifier)}`),
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
    await setPassword(ctx, loginOf(next), { enableLogin: ctx.config.strategy === 'alternating' });
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
    const ended = await withAdmin(ctx.resolveReference(ctx.config.admin), `revoke ${username}`, [], async (c) => {
      if (alternating) await c.query(`ALTER ROLE ${ident(username)} WITH NOLOGIN PASSWORD NULL`);
      if (!opts.terminateSessions) return 0;
      return terminateRoleSessions(c, username, alternating ? null : (opts.supersededAt ?? null));
    });
    if (ended) ctx.log.info({ role: username, sessions: ended }, 'ended sessions opened with the revoked credential');
  },

  async discard(ctx, pending, current) {
    if (ctx.config.strategy === 'single') {
      // Put the old password back: consumers still hold it.
      if (current) await setPassword(ctx, loginOf(current), { enableLogin: false });
      return;
    }
    const { username } = loginOf(pending);
    if (current && loginOf(current).username === username) return;
    await withAdmin(ctx.resolveReference(ctx.config.admin), `discard ${username}`, [], (c) =>
      c.query(`ALTER ROLE ${ident(username)} WITH NOLOGIN PASSWORD NULL`),
    );
  },
};
