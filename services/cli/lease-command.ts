import { parseArgs } from 'node:util';
import { createLease, renewLease, revokeLease, showLease } from '../../shared/leases/lease-service.ts';
import type { Runtime } from '../../shared/runtime.ts';

/** `rekey lease create NAME [--ttl 1h] | renew ID [--ttl 1h] | revoke ID | show ID` — dynamic credential leases. */
export async function runLease(rt: Runtime, sub: string | undefined, args: string[], print: (s: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ttl: { type: 'string' } } });
  const deps = { pool: rt.pool, log: rt.log, resolveReference: rt.resolveReference };
  const target = positionals[0] ?? '';
  const body = values.ttl ? { ttl: values.ttl } : {};
  const json = (v: unknown) => print(JSON.stringify(v, null, 2));
  switch (sub) {
    case 'create':
      // The password is shown once, to the person who asked for it; rekey does not keep it.
      json(await createLease(deps, target, body, 'cli'));
      return 0;
    case 'renew':
      json(await renewLease(deps, target, body, 'cli'));
      return 0;
    case 'revoke':
      await revokeLease(deps, target, 'cli');
      print(`revoked lease ${target}`);
      return 0;
    case 'show':
      json(await showLease(deps, target));
      return 0;
    default:
      print('usage: rekey lease create NAME [--ttl 1h] | renew ID [--ttl 1h] | revoke ID | show ID');
      return 2;
  }
}
