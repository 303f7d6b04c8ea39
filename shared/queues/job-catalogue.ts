import { z } from 'zod';

/**
 * Every queue and job rekey runs, with the schema of its payload. Payloads carry ids,
 * never values: a job names a rotation, and the worker reads the rest from PostgreSQL.
 *
 * Emergency rotations have a lane of their own (`rotations-emergency`) with its own
 * workers, so a backlog of scheduled work never delays them.
 */
const rotationRef = z.object({ rotationId: z.uuid() }).strict();

export const eventTypes = ['dev.rekey.secret.rotated', 'dev.rekey.secret.revoked', 'dev.rekey.rotation.failed'] as const;
export type EventType = (typeof eventTypes)[number];

export const jobCatalogue = {
  rotations: { rotate: rotationRef, revoke: rotationRef },
  'rotations-emergency': { rotate: rotationRef, revoke: rotationRef },
  notifications: {
    publish: z.object({ rotationId: z.uuid(), type: z.enum(eventTypes) }).strict(),
    // Every live subscriber acked: observe propagation, and revoke early where policy says so.
    propagated: rotationRef,
  },
  // Signed webhooks to remote subscribers, retried with jittered backoff (issue 5).
  webhooks: {
    deliver: z.object({ subscriberId: z.uuid(), eventId: z.string().min(1).max(200) }).strict(),
  },
} as const;

export type Catalogue = typeof jobCatalogue;
export type QueueName = keyof Catalogue;
export type JobName<Q extends QueueName> = keyof Catalogue[Q] & string;
export type JobPayload<Q extends QueueName, J extends JobName<Q>> = Catalogue[Q][J] extends z.ZodType<infer T> ? T : never;

export type RotationQueue = 'rotations' | 'rotations-emergency';
export const rotationQueueFor = (emergency: boolean): RotationQueue => (emergency ? 'rotations-emergency' : 'rotations');

/** Deterministic job ids: re-enqueueing the same work (a repeated tick, a reconcile) is a no-op. */
export const jobIds = {
  rotate: (rotationId: string) => `rotate-${rotationId}`,
  revoke: (rotationId: string) => `revoke-${rotationId}`,
  publish: (rotationId: string, type: EventType) => `publish-${rotationId}-${type.split('.').pop()}`,
  propagated: (rotationId: string) => `propagated-${rotationId}`,
  webhook: (eventId: string, subscriberId: string) => `webhook-${eventId}-${subscriberId}`,
};
