import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { appendAudit } from '../../../shared/db/audit-log.ts';
import { coerceError, httpStatusOf, isUnavailable, RekeyError, UnauthorizedError, UnavailableError, ValidationError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { Metrics } from '../../../shared/metrics.ts';
import type { QueueClient } from '../../../shared/queues/queue-client.ts';
import { parseInput } from '../../../shared/secret-admin.ts';
import type { StandardWebhookVerifier, WebhookRefusal } from '../../../shared/webhooks/standard-webhook.ts';
import { acceptEmergencyWebhook, emergencyWebhookBody, selectorOf } from '../emergency-webhook.ts';

export interface WebhookRouteDeps {
  pool: pg.Pool;
  queues: Pick<QueueClient, 'enqueue'>;
  log: Logger;
  metrics: Metrics;
  verifier: StandardWebhookVerifier;
}

const route = '/v1/webhooks/emergency-rotation';

const refusalMessages: Record<WebhookRefusal, string> = {
  missing_headers: 'webhook-id, webhook-timestamp and webhook-signature are required',
  malformed_headers: 'webhook-id, webhook-timestamp or webhook-signature is malformed',
  timestamp_too_old: 'webhook-timestamp is more than 5 minutes in the past',
  timestamp_too_new: 'webhook-timestamp is more than 5 minutes in the future',
  bad_signature: 'no webhook-signature matches a configured signing secret',
};

/** The id header as sent, if it is a plausible id; used only to correlate audit rows. */
const claimedId = (req: FastifyRequest) => {
  const id = req.headers['webhook-id'];
  return typeof id === 'string' && /^[\x21-\x7e]{1,256}$/.test(id) ? id : null;
};

/**
 * POST /v1/webhooks/emergency-rotation, signed per Standard Webhooks (see
 * shared/webhooks/standard-webhook.ts). Lives in its own plugin scope because it needs the
 * raw request bytes: the signature covers them exactly, so the scope's only body parser
 * hands the handler a Buffer, whatever the content type.
 *
 * Every call leaves one audit row: accepted (with the rotations, in the same transaction),
 * replayed, or refused/failed with the reason. Never the body's other fields or the
 * signature.
 */
export function webhookRoutes(app: FastifyInstance, deps: WebhookRouteDeps) {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

    // Refusals of any kind — ours, or fastify's own (body too large) — end here once.
    scope.addHook('onError', async (req, _reply, raw) => {
      const err = coerceError(raw);
      const fastifyStatus = (raw as FastifyError).statusCode;
      const status = err instanceof RekeyError ? httpStatusOf(err) : fastifyStatus && fastifyStatus < 500 ? fastifyStatus : isUnavailable(err) ? 503 : 500;
      const details = err instanceof RekeyError ? (err.details as { reason?: string } | undefined) : undefined;
      const reason = details?.reason ?? (err instanceof RekeyError ? err.code : status < 500 ? 'invalid_request' : isUnavailable(err) ? 'unavailable' : 'internal');
      deps.metrics.webhookRequests.inc({ outcome: reason });
      if (status === 401) deps.metrics.httpUnauthorized.inc({ route });
      // Best effort: with PostgreSQL down this fails too, and the answer is already a 503.
      await appendAudit(deps.pool, {
        actor: 'webhook',
        action: 'webhook.emergency-rotation',
        target: claimedId(req),
        outcome: status < 500 ? 'refused' : 'failed',
        details: { reason, status },
      }).catch((auditErr) => deps.log.warn({ err: coerceError(auditErr).message, reason }, 'could not audit a refused webhook'));
    });

    scope.post(route, async (req, reply) => {
      const receivedAt = new Date();
      if (!deps.verifier.configured) {
        throw new UnavailableError('the emergency webhook is not configured: set REKEY_WEBHOOK_SECRETS', { reason: 'not_configured' });
      }
      const rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const verified = deps.verifier.verify(req.headers, rawBody, receivedAt.getTime());
      if (!verified.ok) throw new UnauthorizedError(refusalMessages[verified.reason], { reason: verified.reason });

      let json: unknown;
      try {
        json = JSON.parse(rawBody.toString('utf8'));
      } catch {
        throw new ValidationError('body: must be JSON', { issues: [{ path: 'body', message: 'must be JSON' }], reason: 'invalid_json' });
      }
      const body = parseInput(emergencyWebhookBody, json, 'body');
      const answer = await acceptEmergencyWebhook(
        { pool: deps.pool, queues: deps.queues, log: deps.log },
        { webhookId: verified.id, rawBody, body, receivedAt },
      );
      deps.metrics.webhookRequests.inc({ outcome: answer.replayed ? 'replayed' : 'accepted' });
      if (answer.replayed) {
        reply.header('idempotent-replayed', 'true');
        await appendAudit(deps.pool, {
          actor: 'webhook',
          action: 'webhook.emergency-rotation.replayed',
          target: verified.id,
          outcome: 'ok',
          details: { selector: selectorOf(body), rotationIds: answer.body.rotationIds },
        }).catch((err) => deps.log.warn({ err: coerceError(err).message }, 'could not audit a replayed webhook'));
      } else {
        deps.log.info({ webhookId: verified.id, rotationIds: answer.body.rotationIds }, 'emergency webhook accepted');
      }
      return reply.status(answer.status).header('content-type', 'application/json; charset=utf-8').send(answer.json);
    });
  });
}
