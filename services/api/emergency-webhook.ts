import { createHash } from 'node:crypto';
import type pg from 'pg';
import { z } from 'zod';
import { appendAudit } from '../../shared/db/audit-log.ts';
import { withTransaction } from '../../shared/db/pool.ts';
import type { SecretRow } from '../../shared/db/rows.ts';
import { requestRotation } from '../../shared/db/rotation-store.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { QueueClient } from '../../shared/queues/queue-client.ts';
import { secretName } from '../../shared/secret-admin.ts';
import { enqueueRotation } from '../../shared/start-rotation.ts';

/** Most secrets one webhook may rotate; a prefix matching more is refused, not truncated. */
export const maxSecretsPerWebhook = 1000;

/**
 * The body names exactly one of: a secret, a list of secrets, or a name prefix (plain
 * string prefix: `team-a/` matches `team-a/db` but not `team-ab/db`; `team-a` matches
 * both). Unknown fields are ignored and never stored: a SIEM may put the leaked
 * credential itself in its alert, and it must not reach the database or the audit log.
 */
export const emergencyWebhookBody = z
  .object({
    secret: secretName.optional(),
    secrets: z.array(secretName).min(1).max(maxSecretsPerWebhook).optional(),
    prefix: z.string().min(1).max(200).regex(/^[a-z0-9][a-z0-9._/-]*$/, 'a secret name prefix').optional(),
    reason: z.string().trim().min(1).max(500),
  })
  .refine((b) => [b.secret, b.secrets, b.prefix].filter((s) => s !== undefined).length === 1, {
    message: 'name exactly one of secret, secrets or prefix',
  });
export type EmergencyWebhookBody = z.infer<typeof emergencyWebhookBody>;

export interface WebhookAnswerBody {
  webhookId: string;
  rotationIds: string[];
  rotations: { secret: string; rotationId: string; coalesced: boolean }[];
}

export interface WebhookAnswer {
  status: number;
  body: WebhookAnswerBody;
  /** `body` serialised exactly as first sent; repeats send these bytes again. */
  json: string;
  /** True when this delivery repeated an earlier one and started nothing. */
  replayed: boolean;
}

export interface EmergencyWebhookDeps {
  pool: pg.Pool;
  queues: Pick<QueueClient, 'enqueue'>;
  log: Logger;
}

export const selectorOf = (b: EmergencyWebhookBody) =>
  b.secret !== undefined ? { secret: b.secret } : b.secrets !== undefined ? { secrets: b.secrets } : { prefix: b.prefix! };

/** Deadlocks against the scheduler's tick (both insert queued rotations) are retried, not surfaced. */
const retryableCodes = new Set(['40P01', '40001']);

/**
 * Accepts a verified delivery exactly once per webhook-id.
 *
 * The delivery row, every rotation it starts, and the audit row commit in one
 * transaction, so a 202 means all of it is in PostgreSQL and a failure leaves none of it.
 * The delivery row is inserted first: a concurrent repeat's INSERT … ON CONFLICT waits on
 * the primary key until this transaction ends, then reads the stored answer. Enqueueing
 * happens after the commit and may fail (Redis down); the scheduler's reconciler enqueues
 * those rotations once Redis answers.
 */
export async function acceptEmergencyWebhook(
  deps: EmergencyWebhookDeps,
  delivery: { webhookId: string; rawBody: Buffer; body: EmergencyWebhookBody; receivedAt: Date },
): Promise<WebhookAnswer> {
  const bodySha256 = createHash('sha256').update(delivery.rawBody).digest('hex');
  for (let attempt = 1; ; attempt++) {
    try {
      const answer = await withTransaction(deps.pool, (c) => recordOnce(c, delivery, bodySha256));
      if (!answer.replayed) {
        for (const r of answer.body.rotations) await enqueueRotation(deps, r.rotationId, true);
        pruneOldDeliveries(deps);
      }
      return answer;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (attempt >= 5 || typeof code !== 'string' || !retryableCodes.has(code)) throw err;
    }
  }
}

async function recordOnce(
  c: pg.PoolClient,
  delivery: { webhookId: string; body: EmergencyWebhookBody; receivedAt: Date },
  bodySha256: string,
): Promise<WebhookAnswer> {
  const claimed = await c.query(
    `INSERT INTO webhook_deliveries (webhook_id, body_sha256, response_status, response_body)
     VALUES ($1, $2, 0, '') ON CONFLICT (webhook_id) DO NOTHING RETURNING webhook_id`,
    [delivery.webhookId, bodySha256],
  );
  if (!claimed.rows[0]) {
    // Read committed: this statement sees the first delivery's committed row.
    const { rows } = await c.query<{ body_sha256: string; response_status: number; response_body: string }>(
      'SELECT body_sha256, response_status, response_body FROM webhook_deliveries WHERE webhook_id = $1',
      [delivery.webhookId],
    );
    const first = rows[0]!;
    if (first.body_sha256 !== bodySha256) {
      throw new ConflictError(`webhook-id ${delivery.webhookId} was already used for a different body; nothing was started`, {
        reason: 'webhook_id_reused',
      });
    }
    return { status: first.response_status, body: JSON.parse(first.response_body), json: first.response_body, replayed: true };
  }

  const secrets = await selectSecrets(c, delivery.body);
  // One lock order (secret id) for every writer of queued rotations, so two webhooks with
  // overlapping lists cannot deadlock each other.
  secrets.sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  const rotations: WebhookAnswerBody['rotations'] = [];
  for (const s of secrets) {
    const { rotation, coalesced } = await requestRotation(c, {
      secretId: s.id,
      trigger: 'webhook',
      reason: delivery.body.reason,
      emergency: true,
      triggeredAt: delivery.receivedAt,
    });
    rotations.push({ secret: s.name, rotationId: rotation.id, coalesced });
  }
  rotations.sort((a, b) => (a.secret < b.secret ? -1 : 1));
  const body: WebhookAnswerBody = { webhookId: delivery.webhookId, rotationIds: rotations.map((r) => r.rotationId), rotations };
  const json = JSON.stringify(body);
  await c.query('UPDATE webhook_deliveries SET response_status = 202, response_body = $2 WHERE webhook_id = $1', [delivery.webhookId, json]);
  await appendAudit(c, {
    actor: 'webhook',
    action: 'webhook.emergency-rotation',
    target: delivery.webhookId,
    outcome: 'ok',
    details: { selector: selectorOf(delivery.body), reason: delivery.body.reason, rotations },
  });
  return { status: 202, body, json, replayed: false };
}

async function selectSecrets(c: pg.PoolClient, body: EmergencyWebhookBody): Promise<SecretRow[]> {
  if (body.prefix !== undefined) {
    const { rows } = await c.query<SecretRow>(
      'SELECT * FROM secrets WHERE deleted_at IS NULL AND starts_with(name, $1) ORDER BY name LIMIT $2',
      [body.prefix, maxSecretsPerWebhook + 1],
    );
    if (rows.length === 0) throw new NotFoundError(`no secret name starts with ${body.prefix}`, { reason: 'no_such_secret' });
    if (rows.length > maxSecretsPerWebhook) {
      throw new ValidationError(`body.prefix: matches more than ${maxSecretsPerWebhook} secrets; send narrower prefixes`, {
        issues: [{ path: 'body.prefix', message: `matches more than ${maxSecretsPerWebhook} secrets` }],
        reason: 'too_many_secrets',
      });
    }
    return rows;
  }
  const names = [...new Set(body.secret !== undefined ? [body.secret] : body.secrets!)];
  const { rows } = await c.query<SecretRow>('SELECT * FROM secrets WHERE deleted_at IS NULL AND name = ANY($1::text[])', [names]);
  const missing = names.filter((n) => !rows.some((r) => r.name === n));
  // All or nothing: a typo in one name must be visible, not silently skipped.
  if (missing.length) throw new NotFoundError(`unknown secret(s): ${missing.join(', ')}; nothing was started`, { missing, reason: 'no_such_secret' });
  return rows;
}

/** Delivery rows only matter inside the replay window; keep a day, then drop them. Best effort. */
function pruneOldDeliveries(deps: EmergencyWebhookDeps): void {
  if (Math.random() > 0.05) return;
  deps.pool
    .query(`DELETE FROM webhook_deliveries WHERE received_at < now() - interval '1 day'`)
    .catch((err) => deps.log.debug({ err: (err as Error).message }, 'could not prune old webhook deliveries'));
}
