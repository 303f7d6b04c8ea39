import { apiEnv, parseEnv } from '../../shared/config.ts';
import { SystemKeys } from '../../shared/crypto/system-keys.ts';
import type { Runtime } from '../../shared/runtime.ts';
import { buildApi } from './server.ts';
import { createInjectorApi } from './injector/injector-api.ts';
import { subscriberEnv } from '../../shared/subscribers/subscriber-config.ts';

export async function startApi(rt: Runtime): Promise<{ port: number }> {
  const cfg = parseEnv(apiEnv, rt.env);
  // Make sure the event-signing key exists before /v1/jwks is asked for it.
  const keys = await SystemKeys.load(rt.pool, rt.cipher);
  const sub = parseEnv(subscriberEnv, rt.env);
  const injector = createInjectorApi(rt, {
    keys,
    adminToken: cfg.REKEY_ADMIN_TOKEN,
    redisUrl: rt.config.REDIS_URL,
    prefix: rt.config.REKEY_REDIS_PREFIX,
    liveMs: sub.REKEY_SUBSCRIBER_LIVE_MS,
    cacheMs: sub.REKEY_SUBSCRIBER_CACHE_MS,
    coalesceReads: sub.REKEY_COALESCE_VALUE_READS,
  });
  await injector.start();
  rt.defer(() => injector.stop());
  const app = buildApi({ rt, adminToken: cfg.REKEY_ADMIN_TOKEN, webhookSecrets: cfg.REKEY_WEBHOOK_SECRETS, injector });
  await app.listen({ port: cfg.PORT, host: cfg.HOST });
  rt.defer(() => app.close());
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : cfg.PORT;
  rt.log.info({ role: 'api', port, host: cfg.HOST, webhookSigningSecrets: cfg.REKEY_WEBHOOK_SECRETS.length }, 'api listening');
  if (cfg.REKEY_WEBHOOK_SECRETS.length === 0) rt.log.warn('REKEY_WEBHOOK_SECRETS is not set: the emergency webhook refuses every delivery (503)');
  return { port };
}
