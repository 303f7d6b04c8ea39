import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { SystemKeys } from '../../../shared/crypto/system-keys.ts';
import { publishedJwks } from '../../../shared/db/version-store.ts';
import type { Metrics } from '../../../shared/metrics.ts';
import { jobCatalogue, type QueueName } from '../../../shared/queues/job-catalogue.ts';
import type { QueueClient } from '../../../shared/queues/queue-client.ts';
import { openApiDocument } from '../openapi.ts';

const withTimeout = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timed out')), ms).unref())]);

export function publicRoutes(app: FastifyInstance, deps: { pool: pg.Pool; redis: Redis; queues: QueueClient; metrics: Metrics }) {
  /** rekey's own event-signing keys, and every jwt-signing-key secret's current and in-grace public key. */
  app.get('/v1/jwks', async (_req, reply) => {
    const keys = [...(await SystemKeys.publicJwks(deps.pool)), ...(await publishedJwks(deps.pool))];
    // Short cache: a revoked key must leave verifiers' caches soon after it leaves this set.
    return reply.header('cache-control', 'public, max-age=5').send({ keys });
  });

  const openApi = openApiDocument();
  app.get('/v1/openapi.json', async () => openApi);

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const checks = await Promise.allSettled([
      withTimeout(deps.pool.query('SELECT 1'), 2000),
      withTimeout(deps.redis.ping(), 2000),
    ]);
    const [postgres, redis] = checks.map((c) => (c.status === 'fulfilled' ? 'ok' : 'unavailable'));
    const ready = postgres === 'ok' && redis === 'ok';
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not-ready', postgres, redis });
  });

  app.get('/metrics', async (_req, reply) => {
    await Promise.allSettled(
      (Object.keys(jobCatalogue) as QueueName[]).map(async (name) => {
        const counts = await withTimeout(deps.queues.queue(name).getJobCounts('waiting', 'active', 'delayed', 'failed'), 1000);
        for (const [state, n] of Object.entries(counts)) deps.metrics.queueDepth.set({ queue: name, state }, n);
      }),
    );
    return reply.header('content-type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
}
