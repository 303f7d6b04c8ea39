import { randomBytes, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { z } from 'zod';
import type { SystemKeys } from './crypto/system-keys.ts';
import type { ValueCipher } from './crypto/value-cipher.ts';
import { appendAudit } from './db/audit-log.ts';
import { insertSubscriber, listSubscribers, revokeSubscriber, type SubscriberRow } from './db/subscriber-store.ts';
import { ConflictError, NotFoundError } from './errors.ts';
import { duration, parseDuration } from './policy/rotation-policy.ts';
import { parseInput } from './secret-admin.ts';
import { subscriberChannels } from './subscribers/subscriber-channels.ts';
import { scopeSchema } from './subscribers/subscriber-scope.ts';
import { issueSubscriberToken } from './subscribers/subscriber-token.ts';

export const createSubscriberSchema = z
  .object({
    name: z.string().min(1).max(100).regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, "letters, digits, '.', '_', ':', '-'"),
    scope: scopeSchema,
    /** Remote subscribers get events by signed webhook at this URL. */
    webhookUrl: z.url({ protocol: /^https?$/ }).max(2000).optional(),
    /** Token lifetime. */
    ttl: duration.default('90d'),
  })
  .strict();

export interface SubscriberAdminDeps {
  pool: pg.Pool;
  redis: Pick<Redis, 'publish'>;
  keys: SystemKeys;
  cipher: ValueCipher;
  prefix: string;
}

/** The webhook signing secret is sealed under this name, like a secret value. */
export const webhookSecretName = (subscriberId: string) => `subscriber:${subscriberId}:webhook`;

export function subscriberView(s: SubscriberRow) {
  return {
    id: s.id,
    name: s.name,
    scope: s.scope,
    webhookUrl: s.webhook_url,
    createdAt: s.created_at,
    tokenExpiresAt: s.token_expires_at,
    lastSeenAt: s.last_seen_at,
    revokedAt: s.revoked_at,
  };
}

/**
 * Registers a subscriber. Its token (and webhook secret) are returned here and only here:
 * rekey keeps the token's id, not the token.
 */
export async function createSubscriber(deps: SubscriberAdminDeps, input: unknown, actor: string) {
  const body = parseInput(createSubscriberSchema, input);
  const id = randomUUID();
  const tokenId = randomUUID();
  const expiresAt = new Date(Date.now() + parseDuration(body.ttl));
  const webhookSecret = body.webhookUrl ? `whsec_${randomBytes(32).toString('base64')}` : null;
  const row = await insertSubscriber(deps.pool, {
    id,
    name: body.name,
    scope: body.scope,
    tokenId,
    tokenExpiresAt: expiresAt,
    webhookUrl: body.webhookUrl ?? null,
    webhookSealed: webhookSecret ? deps.cipher.seal(webhookSecretName(id), 0, webhookSecret) : null,
  });
  if (!row) throw new ConflictError(`subscriber ${body.name} already exists`);
  const token = await issueSubscriberToken(deps.keys, { subscriberId: id, tokenId, scope: body.scope, expiresAt });
  await appendAudit(deps.pool, { actor, action: 'subscriber.create', target: body.name, outcome: 'ok', details: { subscriberId: id, scope: body.scope, webhook: !!body.webhookUrl } });
  return { ...subscriberView(row), token, ...(webhookSecret && { webhookSecret }) };
}

export async function listAllSubscribers(deps: Pick<SubscriberAdminDeps, 'pool'>, includeRevoked = false) {
  return (await listSubscribers(deps.pool, { includeRevoked })).map(subscriberView);
}

/** Revokes a subscriber; every api refuses its token from now on (and drops its event streams). */
export async function removeSubscriber(deps: Omit<SubscriberAdminDeps, 'keys' | 'cipher'>, idOrName: string, actor: string) {
  const row = await revokeSubscriber(deps.pool, idOrName);
  if (!row) throw new NotFoundError(`subscriber ${idOrName} not found`);
  await appendAudit(deps.pool, { actor, action: 'subscriber.revoke', target: row.name, outcome: 'ok', details: { subscriberId: row.id } });
  // Best effort: apis also re-read PostgreSQL within a few seconds (subscriber-auth's cache).
  await deps.redis.publish(subscriberChannels(deps.prefix).revoked, row.id).catch(() => {});
  return subscriberView(row);
}
