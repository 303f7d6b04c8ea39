import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { markDelivered } from '../../../shared/db/ack-store.ts';
import { AckBatcher } from './ack-batcher.ts';
import { completePropagation } from '../../../shared/db/propagation-store.ts';
import { coerceError, ForbiddenError, httpStatusOf, ValidationError } from '../../../shared/errors.ts';
import { jobIds } from '../../../shared/queues/job-catalogue.ts';
import type { Runtime } from '../../../shared/runtime.ts';
import type { SystemKeys } from '../../../shared/crypto/system-keys.ts';
import { parseInput, secretName } from '../../../shared/secret-admin.ts';
import { createSubscriber, listAllSubscribers, removeSubscriber } from '../../../shared/subscriber-admin.ts';
import { propagationMetrics } from '../../../shared/subscribers/propagation-metrics.ts';
import { streamIdPattern } from '../../../shared/subscribers/stream-ids.ts';
import { EventHub, type SseClient } from './event-hub.ts';
import { assertInScope, principalScope, SubscriberAuth, type Principal } from './subscriber-auth.ts';
import { CoalescingValueReader, type CurrentValue } from './value-reader.ts';

export interface InjectorApiOptions {
  keys: SystemKeys;
  adminToken: string;
  redisUrl: string;
  prefix: string;
  liveMs: number;
  cacheMs: number;
  /** @defaultValue true */
  coalesceReads?: boolean;
}

export const ackBody = z.object({ secret: secretName, version: z.number().int().positive() }).strict();
const heartbeatMs = 15_000;

/**
 * The injector API (subscriber tokens): value fetch, acks, the SSE event stream; and the
 * admin subscriber routes. One EventHub per api process carries every SSE client.
 */
export function createInjectorApi(rt: Pick<Runtime, 'pool' | 'queues' | 'redis' | 'cipher' | 'metrics' | 'log'>, opts: InjectorApiOptions) {
  const metrics = propagationMetrics(rt.metrics);
  const auth = new SubscriberAuth({
    pool: rt.pool,
    adminToken: opts.adminToken,
    cacheMs: opts.cacheMs,
    touchEveryMs: Math.max(500, Math.floor(opts.liveMs / 4)),
    onRefused: (req) => rt.metrics.httpUnauthorized.inc({ route: req.routeOptions.url ?? 'unknown' }),
  });
  const values = new CoalescingValueReader({ pool: rt.pool, cipher: rt.cipher, onCoalesced: () => metrics.valueFetchCoalesced.inc(), coalesce: opts.coalesceReads });
  const hub = new EventHub({
    redisUrl: opts.redisUrl,
    prefix: opts.prefix,
    log: rt.log.child({ role: 'api', component: 'event-hub' }),
    metrics,
    onRevoked: (id) => auth.forget(id),
    onDelivered: (rotationId, ids) => markDelivered(rt.pool, rotationId, ids),
  });
  const acks = new AckBatcher({
    db: rt.pool,
    // After the acks committed: the last of concurrent batches sees all the others.
    onClosed: async (rotationIds) => {
      for (const r of await completePropagation(rt.pool, rotationIds, opts.liveMs)) {
        await rt.queues.enqueue('notifications', 'propagated', { rotationId: r.id }, { jobId: jobIds.propagated(r.id) }).catch(() => {
          // The notifier's sweep observes it; only an early revoke waits for grace meanwhile.
        });
      }
    },
  });
  const principals = new WeakMap<FastifyRequest, Principal>();
  let timer: NodeJS.Timeout | null = null;

  const adminDeps = { pool: rt.pool, redis: rt.redis, keys: opts.keys, cipher: rt.cipher, prefix: opts.prefix };

  return {
    async start() {
      await hub.start();
      // Batched bookkeeping: who is connected (last_seen_at), which SSE writes delivered a rotation.
      timer = setInterval(() => {
        for (const id of hub.connectedSubscribers()) auth.markSeen(id);
        Promise.all([auth.flushSeen(), hub.flushDelivered()]).catch((err) => rt.log.warn({ err: coerceError(err).message }, 'subscriber bookkeeping failed'));
      }, 1000);
    },
    async stop() {
      if (timer) clearInterval(timer);
      await hub.stop();
      await Promise.allSettled([auth.flushSeen(), hub.flushDelivered()]);
    },

    /** preHandler for the admin scope: value reads also accept subscriber tokens. */
    adminOrValueReader(adminHook: (req: FastifyRequest) => Promise<void>) {
      return async (req: FastifyRequest) => {
        if (req.method === 'GET' && req.url.split('?')[0]!.endsWith('/value') && req.url.startsWith('/v1/secrets/')) {
          principals.set(req, await auth.authenticate(req));
          return;
        }
        await adminHook(req);
      };
    },

    /** GET /v1/secrets/{name}/value for admin and in-scope subscribers; concurrent reads coalesce. */
    async readValue(req: FastifyRequest, name: string): Promise<CurrentValue> {
      const principal = principals.get(req) ?? { kind: 'admin' as const };
      const end = metrics.valueFetch.startTimer();
      try {
        assertInScope(principal, name);
        const value = await values.read(name);
        end({ outcome: 'ok' });
        return value;
      } catch (raw) {
        const status = httpStatusOf(coerceError(raw));
        end({ outcome: status === 403 ? 'forbidden' : status === 404 ? 'not_found' : status < 500 ? 'refused' : 'error' });
        throw raw;
      }
    },

    adminRoutes(app: FastifyInstance) {
      app.post('/v1/subscribers', async (req, reply) => reply.status(201).send(await createSubscriber(adminDeps, req.body, 'admin')));
      app.get('/v1/subscribers', async (req) => {
        const q = parseInput(z.object({ includeRevoked: z.enum(['true', 'false']).optional() }).strict(), req.query, 'query');
        return { subscribers: await listAllSubscribers(adminDeps, q.includeRevoked === 'true') };
      });
      app.delete('/v1/subscribers/:id', async (req, reply) => {
        const { id } = parseInput(z.object({ id: z.string().min(1).max(100) }), req.params, 'params');
        const removed = await removeSubscriber(adminDeps, id, 'admin');
        // This process learns at once, whatever happens to the Redis message.
        auth.forget(removed.id);
        hub.dropSubscriber(removed.id);
        return reply.status(204).send();
      });
    },

    injectorRoutes(app: FastifyInstance) {
      app.addHook('preClose', async () => hub.endClients());
      app.post('/v1/acks', async (req, reply) => {
        const principal = await auth.authenticate(req);
        if (principal.kind !== 'subscriber') throw new ForbiddenError('acks come from subscriber tokens');
        const body = parseInput(ackBody, req.body);
        assertInScope(principal, body.secret);
        try {
          await acks.record({ subscriberId: principal.id, secret: body.secret, version: body.version });
        } catch (err) {
          metrics.acks.inc({ outcome: 'refused' });
          throw err;
        }
        metrics.acks.inc({ outcome: 'ok' });
        return reply.status(202).send({ secret: body.secret, version: body.version });
      });

      app.get('/v1/events', async (req, reply) => {
        const principal = await auth.authenticate(req);
        const header = req.headers['last-event-id'];
        const lastEventId = (typeof header === 'string' && header) || (req.query as { lastEventId?: string }).lastEventId || null;
        if (lastEventId !== null && !streamIdPattern.test(lastEventId)) {
          throw new ValidationError('headers.last-event-id: must be a stream id such as 1700000000000-0', { issues: [{ path: 'headers.last-event-id', message: 'must be a stream id' }] });
        }
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
        res.write(': connected\n\n');
        const client: SseClient = {
          subscriberId: principal.kind === 'subscriber' ? principal.id : null,
          accepts: principalScope(principal),
          res,
          buffer: null,
          lastSentId: lastEventId,
        };
        if (client.subscriberId) auth.markSeen(client.subscriberId);
        metrics.sseClients.inc({ event: 'opened' });
        const heartbeat = setInterval(() => res.write(': keepalive\n\n'), heartbeatMs);
        req.raw.on('close', () => {
          clearInterval(heartbeat);
          hub.detach(client);
          metrics.sseClients.inc({ event: 'closed' });
        });
        const { gap } = await hub.attach(client, lastEventId);
        // The client cannot catch up from the log: it must re-read the current versions.
        if (gap) res.write(`event: gap\ndata: {}\n\n`);
        res.write(': live\n\n');
      });
    },
  };
}

export type InjectorApi = ReturnType<typeof createInjectorApi>;
