import Fastify, { type FastifyInstance, type FastifyError } from 'fastify';
import { coerceError, httpStatusOf, isUnavailable, RekeyError } from '../../shared/errors.ts';
import type { Runtime } from '../../shared/runtime.ts';
import { adminAuth } from './admin-auth.ts';
import { publicRoutes } from './routes/public-routes.ts';
import { rotationRoutes } from './routes/rotation-routes.ts';
import { secretRoutes } from './routes/secret-routes.ts';
import { webhookRoutes } from './routes/webhook-routes.ts';
import { StandardWebhookVerifier } from '../../shared/webhooks/standard-webhook.ts';
import { leaseRoutes } from './routes/lease-routes.ts';
import type { InjectorApi } from './injector/injector-api.ts';

export interface ApiDeps {
  rt: Pick<Runtime, 'pool' | 'queues' | 'redis' | 'cipher' | 'metrics' | 'log' | 'resolveReference'>;
  adminToken: string;
  /** Standard Webhooks signing secrets (`whsec_…`); none = the emergency webhook answers 503. */
  webhookSecrets?: readonly string[];
  /** Subscribers, value reads by subscriber token, acks and the event stream (issue 5). */
  injector?: InjectorApi;
}

/**
 * The api: admin routes behind the bearer token; public routes (JWKS, health, metrics)
 * without. Every error leaves as `{error: {code, message, details?}}`; input a client
 * sent never produces a 500, and a dependency that is down produces a 503.
 */
export function buildApi({ rt, adminToken, webhookSecrets = [], injector }: ApiDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 256 * 1024, return503OnClosing: true });

  app.setErrorHandler((raw: FastifyError | Error, req, reply) => {
    const err = coerceError(raw);
    const fastifyStatus = (raw as FastifyError).statusCode;
    let status = httpStatusOf(err);
    let code = err instanceof RekeyError ? err.code : 'internal';
    let message = err.message;
    if (!(err instanceof RekeyError) && fastifyStatus && fastifyStatus >= 400 && fastifyStatus < 500) {
      // fastify's own refusals: malformed JSON, wrong content type, body too large.
      status = fastifyStatus;
      code = 'invalid_request';
    } else if (status === 500 && isUnavailable(err)) {
      status = 503;
      code = 'unavailable';
      message = 'a dependency is unavailable; try again';
    }
    if (status >= 500) {
      rt.log.error({ err: err.message, method: req.method, url: req.routeOptions.url }, 'request failed');
      if (status === 500) message = 'internal error';
    }
    const details = err instanceof RekeyError ? err.details : undefined;
    return reply.status(status).send({ error: { code, message, ...(details !== undefined && { details }) } });
  });

  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );

  publicRoutes(app, rt);
  // Signed, not bearer-authenticated: outside the admin scope, with its own raw-body parser.
  webhookRoutes(app, { pool: rt.pool, queues: rt.queues, log: rt.log, metrics: rt.metrics, verifier: new StandardWebhookVerifier(webhookSecrets) });

  app.register(async (admin) => {
    const adminHook = adminAuth(adminToken, (req) => rt.metrics.httpUnauthorized.inc({ route: req.routeOptions.url ?? 'unknown' }));
    // GET /v1/secrets/{name}/value shares the admin wildcard route but also takes subscriber tokens.
    admin.addHook('preHandler', injector ? injector.adminOrValueReader(adminHook) : adminHook);
    const leases = { pool: rt.pool, log: rt.log, resolveReference: rt.resolveReference };
    secretRoutes(admin, { pool: rt.pool, queues: rt.queues, log: rt.log, cipher: rt.cipher, leases, readValue: injector?.readValue });
    leaseRoutes(admin, leases); // dynamic credential leases (postgres-dynamic)
    rotationRoutes(admin, { pool: rt.pool });
    injector?.adminRoutes(admin);
  });
  injector?.injectorRoutes(app);

  return app;
}
