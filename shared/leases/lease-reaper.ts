import { withTransaction } from '../db/pool.ts';
import { coerceError } from '../errors.ts';
import { endLease, type LeaseDeps } from './lease-service.ts';
import { lockLeasesToReap } from './lease-store.ts';

/**
 * Ends leases nobody revoked: expired ones (PostgreSQL already refuses their logins
 * after VALID UNTIL, but their role and open sessions live on until dropped), and those
 * issued under a revoked version. Run on a tick by the scheduler role; one failing lease
 * (target down) is logged with its error and retried on the next tick.
 */
export async function reapLeases(deps: LeaseDeps, limit = 100): Promise<{ reaped: number; failed: number }> {
  return withTransaction(deps.pool, async (c) => {
    let reaped = 0;
    let failed = 0;
    for (const l of await lockLeasesToReap(c, limit)) {
      try {
        await endLease(deps, c, l, l.version_revoked ? 'version revoked' : 'expired');
        reaped++;
      } catch (err) {
        failed++;
        deps.log.warn({ leaseId: l.id, err: coerceError(err).message }, 'could not end a lease; retrying on the next tick');
      }
    }
    if (reaped) deps.log.info({ reaped }, 'reaped leases');
    return { reaped, failed };
  });
}
