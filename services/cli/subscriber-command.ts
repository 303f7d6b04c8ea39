import { parseArgs } from 'node:util';
import { SystemKeys } from '../../shared/crypto/system-keys.ts';
import type { Runtime } from '../../shared/runtime.ts';
import { createSubscriber, listAllSubscribers, removeSubscriber } from '../../shared/subscriber-admin.ts';

export const subscriberUsage = `  rekey subscriber add NAME --scope team-a/,other/name [--webhook URL] [--ttl 90d]   prints the token once
  rekey subscriber list [--all]      rekey subscriber rm NAME|ID`;

/** `rekey subscriber add|list|rm`: the same operations as /v1/subscribers. */
export async function runSubscriber(rt: Runtime, sub: string | undefined, args: string[], print: (s: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { scope: { type: 'string', multiple: true }, webhook: { type: 'string' }, ttl: { type: 'string' }, all: { type: 'boolean', default: false } },
  });
  const deps = { pool: rt.pool, redis: rt.redis, cipher: rt.cipher, prefix: rt.config.REKEY_REDIS_PREFIX };
  switch (sub) {
    case 'add': {
      const keys = await SystemKeys.load(rt.pool, rt.cipher);
      const scope = (values.scope ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
      const created = await createSubscriber({ ...deps, keys }, { name: positionals[0], scope, webhookUrl: values.webhook, ...(values.ttl && { ttl: values.ttl }) }, 'cli');
      print(JSON.stringify(created, null, 2));
      return 0;
    }
    case 'list':
      for (const s of await listAllSubscribers(deps, values.all)) {
        print(`${s.name}\t${s.id}\t${s.scope.join(',')}\t${s.webhookUrl ? 'webhook' : 'stream'}\tseen ${s.lastSeenAt?.toISOString() ?? 'never'}${s.revokedAt ? '\trevoked' : ''}`);
      }
      return 0;
    case 'rm': {
      const removed = await removeSubscriber(deps, positionals[0] ?? '', 'cli');
      print(`revoked ${removed.name}`);
      return 0;
    }
    default:
      print(subscriberUsage);
      return 2;
  }
}
