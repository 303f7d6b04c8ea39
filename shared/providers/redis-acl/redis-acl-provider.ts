import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { ProviderError, RekeyError } from '../../errors.ts';
import { credentialReference } from '../config-reference.ts';
import type { Credential, CredentialProvider, ProviderContext } from '../provider.ts';
import { targetFailure } from '../target-errors.ts';

/** ACL rules that touch passwords (or reset them) are rekey's job, never config. */
const passwordRule = /^([<>#!]|nopass$|resetpass$|reset$)/;

const configSchema = z
  .object({
    /** Reference to the admin connection URL (a user allowed ACL SETUSER/GETUSER and CLIENT). */
    admin: credentialReference,
    username: z.string().regex(/^[A-Za-z0-9_.:@-]{1,128}$/, 'letters, digits and _ . : @ - (1 to 128)'),
    /** Permission rules applied with every set, e.g. ["~app:*", "+@read"]. @defaultValue [] */
    rules: z
      .array(z.string().min(1).max(200).regex(/^\S+$/, 'one ACL rule without spaces').refine((r) => !passwordRule.test(r), 'password rules are managed by rekey'))
      .max(64)
      .default([]),
  })
  .strict();
type RedisAclConfig = z.infer<typeof configSchema>;

const loginSchema = z.object({ username: z.string(), password: z.string() });
const loginOf = (c: Credential) => loginSchema.parse(JSON.parse(c.value));
const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

const CONNECT_TIMEOUT_MS = 3000;

function connect(url: string): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: 10_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  redis.on('error', () => {});
  return redis;
}

async function withAdmin<T>(ctx: ProviderContext<RedisAclConfig>, action: string, fn: (r: Redis) => Promise<T>): Promise<T> {
  const url = ctx.resolveReference(ctx.config.admin);
  const redis = connect(url);
  try {
    await redis.connect();
    return await fn(redis);
  } catch (err) {
    if (err instanceof RekeyError) throw err;
    throw targetFailure(err, action, [url]);
  } finally {
    redis.disconnect();
  }
}

async function passwordHashes(redis: Redis, username: string): Promise<string[] | null> {
  const reply = (await redis.call('ACL', 'GETUSER', username)) as unknown[] | null;
  if (!reply) return null;
  const i = reply.indexOf('passwords');
  return i >= 0 ? (reply[i + 1] as string[]) : [];
}

async function removePassword(redis: Redis, username: string, password: string): Promise<boolean> {
  const hash = sha256(password);
  const hashes = await passwordHashes(redis, username);
  if (!hashes?.includes(hash)) return false;
  await redis.call('ACL', 'SETUSER', username, `!${hash}`);
  return true;
}

/**
 * A Redis ACL user's password. The value is JSON `{username, password}`.
 *
 * A Redis user may hold several passwords, so this provider is lockout-free: *set* adds
 * the new password beside the current one, and *revoke* removes the old one. Passwords go
 * to Redis only as SHA-256 hashes (`#<hash>`, `!<hash>`), so the plaintext is never in a
 * command Redis could log or echo back in an error.
 *
 * Redis does not record which password a connection authenticated with; ending sessions
 * kills the user's connections that are older than the new version (they can only have
 * used an older password).
 */
export const redisAclProvider: CredentialProvider<RedisAclConfig> = {
  type: 'redis-acl',
  configSchema,

  async mint({ config }) {
    const password = randomBytes(32).toString('base64url');
    return { value: JSON.stringify({ username: config.username, password }), public: { username: config.username } };
  },

  async set(ctx, next) {
    const { username, password } = loginOf(next);
    await withAdmin(ctx, `set password of ${username}`, (r) => r.call('ACL', 'SETUSER', username, 'on', `#${sha256(password)}`, ...ctx.config.rules));
  },

  async test(ctx, next) {
    const login = loginOf(next);
    const url = ctx.resolveReference(ctx.config.admin);
    // AUTH sent by hand rather than as a connect option: ioredis reports a refused
    // connect-time AUTH as a closed connection, which would read as "target down".
    const redis = connect(url);
    try {
      await redis.connect();
      await redis.call('AUTH', login.username, login.password);
      const who = await redis.call('ACL', 'WHOAMI').catch(() => null);
      const pong = await redis.ping();
      if (pong !== 'PONG') throw new ProviderError(`test login as ${login.username}: unexpected PING reply`);
      if (who !== null && who !== login.username) throw new ProviderError(`test login is ${String(who)}, expected ${login.username}`);
    } catch (err) {
      if (err instanceof RekeyError) throw err;
      throw targetFailure(err, `log in as ${login.username}`, [login.password, url]);
    } finally {
      redis.disconnect();
    }
  },

  async revoke(ctx, old, opts) {
    const { username, password } = loginOf(old);
    const ended = await withAdmin(ctx, `revoke a password of ${username}`, async (r) => {
      await removePassword(r, username, password);
      if (!opts.terminateSessions) return 0;
      // CLIENT LIST ages are whole seconds: round down, so a doubtful connection is ended, not kept.
      const maxAgeS = opts.supersededAt ? Math.max(0, Math.floor((Date.now() - opts.supersededAt.getTime()) / 1000)) : -1;
      const list = String(await r.call('CLIENT', 'LIST', 'TYPE', 'normal'));
      let n = 0;
      for (const line of list.split('\n')) {
        const fields = Object.fromEntries(line.trim().split(' ').map((kv) => kv.split('=', 2) as [string, string]));
        if (fields.user !== username || (maxAgeS >= 0 && Number(fields.age) < maxAgeS)) continue;
        n += Number(await r.call('CLIENT', 'KILL', 'ID', fields.id!));
      }
      return n;
    });
    if (ended) ctx.log.info({ user: username, sessions: ended }, 'ended connections older than the new version');
  },

  async discard(ctx, pending, current) {
    const { username, password } = loginOf(pending);
    if (current && loginOf(current).password === password) return;
    await withAdmin(ctx, `discard a password of ${username}`, (r) => removePassword(r, username, password));
  },
};
