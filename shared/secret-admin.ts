import { z } from 'zod';
import type pg from 'pg';
import { withTransaction } from './db/pool.ts';
import { insertSecret, deleteSecret, findSecret, updateSecretPolicy } from './db/secret-store.ts';
import { appendAudit } from './db/audit-log.ts';
import type { RotationRow, SecretRow } from './db/rows.ts';
import { requestRotation } from './db/rotation-store.ts';
import { ConflictError, NotFoundError, ValidationError } from './errors.ts';
import type { Logger } from './logger.ts';
import { nextRotationAt, rotationPolicySchema } from './policy/rotation-policy.ts';
import { getProvider, providerTypes } from './providers/registry.ts';
import type { QueueClient } from './queues/queue-client.ts';
import { enqueueRotation, startRotation } from './start-rotation.ts';

const reservedLastSegments = new Set(['rotate', 'value', 'versions', 'leases']);

/** `team-a/payments-db`: lowercase segments joined by '/'; the last segment may not be an API verb. */
export const secretName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/, "lowercase letters, digits, '.', '_', '-' in '/'-separated segments")
  .refine((n) => !reservedLastSegments.has(n.split('/').pop()!), 'the last segment may not be rotate, value, versions or leases');

export const createSecretSchema = z
  .object({
    name: secretName,
    provider: z.string().refine((p) => providerTypes.includes(p), { message: `must be one of: ${providerTypes.join(', ')}` }),
    config: z.record(z.string(), z.unknown()).default({}),
    policy: rotationPolicySchema.default({ grace: '0s', terminateSessions: false }),
  })
  .strict();

export const updateSecretSchema = z.object({ policy: rotationPolicySchema }).strict();

export const rotateSchema = z
  .object({ reason: z.string().min(1).max(500), emergency: z.boolean().default(false) })
  .strict();

export interface AdminDeps {
  pool: pg.Pool;
  queues: Pick<QueueClient, 'enqueue'>;
  log: Logger;
}

function parse<T>(schema: z.ZodType<T>, input: unknown, where = 'body'): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({ path: [where, ...i.path.map(String)].join('.'), message: i.message }));
  throw new ValidationError(issues.map((i) => `${i.path}: ${i.message}`).join('; '), { issues });
}
export { parse as parseInput };

/**
 * Registers a secret and starts its first rotation, which mints version 1. The provider's
 * own schema checks `config`, so an unknown field or a wrong type is refused here, not
 * discovered at the first rotation.
 */
export async function createSecret(deps: AdminDeps, input: unknown, actor: string): Promise<{ secret: SecretRow; rotation: RotationRow }> {
  const body = parse(createSecretSchema, input);
  const provider = getProvider(body.provider)!;
  const config = parse(provider.configSchema, body.config, 'body.config') as Record<string, unknown>;
  const result = await withTransaction(deps.pool, async (c) => {
    const secret = await insertSecret(c, {
      name: body.name,
      provider: body.provider,
      config,
      policy: body.policy,
      nextRotationAt: nextRotationAt(body.policy, new Date()),
    });
    if (!secret) throw new ConflictError(`secret ${body.name} already exists`);
    const { rotation } = await requestRotation(c, { secretId: secret.id, trigger: 'initial', reason: 'first version', emergency: false });
    await appendAudit(c, { actor, action: 'secret.create', target: secret.name, outcome: 'ok', details: { provider: secret.provider, rotationId: rotation.id } });
    return { secret, rotation };
  });
  await enqueueRotation(deps, result.rotation.id, false);
  return result;
}

export async function updateSecret(deps: AdminDeps, name: string, input: unknown, actor: string): Promise<SecretRow> {
  const body = parse(updateSecretSchema, input);
  const secret = await updateSecretPolicy(deps.pool, name, body.policy, nextRotationAt(body.policy, new Date()));
  if (!secret) throw new NotFoundError(`secret ${name} not found`);
  await appendAudit(deps.pool, { actor, action: 'secret.update', target: name, outcome: 'ok', details: { policy: body.policy } });
  return secret;
}

export async function removeSecret(deps: AdminDeps, name: string, actor: string): Promise<void> {
  const deleted = await withTransaction(deps.pool, async (c) => {
    const secret = await deleteSecret(c, name);
    if (secret) await appendAudit(c, { actor, action: 'secret.delete', target: name, outcome: 'ok' });
    return secret;
  });
  if (!deleted) throw new NotFoundError(`secret ${name} not found`);
}

export async function rotateSecret(
  deps: AdminDeps,
  name: string,
  input: unknown,
  actor: string,
): Promise<{ rotationId: string; coalesced: boolean; enqueued: boolean }> {
  const body = parse(rotateSchema, input);
  const secret = await findSecret(deps.pool, name);
  if (!secret) throw new NotFoundError(`secret ${name} not found`);
  const started = await startRotation(
    { db: deps.pool, queues: deps.queues, log: deps.log },
    { secretId: secret.id, trigger: body.emergency ? 'emergency' : 'manual', reason: body.reason, emergency: body.emergency },
  );
  await appendAudit(deps.pool, {
    actor,
    action: body.emergency ? 'secret.rotate.emergency' : 'secret.rotate',
    target: name,
    outcome: 'ok',
    details: { rotationId: started.rotation.id, coalesced: started.coalesced, reason: body.reason },
  });
  return { rotationId: started.rotation.id, coalesced: started.coalesced, enqueued: started.enqueued };
}
