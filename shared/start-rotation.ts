import type { Logger } from './logger.ts';
import type { Queryable } from './db/pool.ts';
import { requestRotation, type RequestedRotation, type RotationRequest } from './db/rotation-store.ts';
import { jobIds, rotationQueueFor } from './queues/job-catalogue.ts';
import type { QueueClient } from './queues/queue-client.ts';
import { coerceError } from './errors.ts';

/**
 * Records a rotation in PostgreSQL, then enqueues it. The PostgreSQL row is the
 * acceptance: if Redis is down the enqueue is skipped and the scheduler's reconciler
 * enqueues the rotation once Redis answers again.
 */
export async function startRotation(
  deps: { db: Queryable; queues: Pick<QueueClient, 'enqueue'>; log: Logger },
  req: RotationRequest,
): Promise<RequestedRotation & { enqueued: boolean }> {
  const requested = await requestRotation(deps.db, req);
  const enqueued = await enqueueRotation(deps, requested.rotation.id, requested.rotation.emergency);
  return { ...requested, enqueued };
}

export async function enqueueRotation(
  deps: { queues: Pick<QueueClient, 'enqueue'>; log: Logger },
  rotationId: string,
  emergency: boolean,
): Promise<boolean> {
  try {
    await deps.queues.enqueue(rotationQueueFor(emergency), 'rotate', { rotationId }, { jobId: jobIds.rotate(rotationId) });
    return true;
  } catch (err) {
    deps.log.warn({ rotationId, err: coerceError(err).message }, 'rotation recorded but not enqueued; the reconciler will enqueue it');
    return false;
  }
}
