import type { EventType } from '../queues/job-catalogue.ts';

/** `data` of every rekey CloudEvent: ids and versions, never a value. */
export interface InvalidationData {
  secret: string;
  version: number | null;
  previousVersion: number | null;
  rotationId: string;
  emergency: boolean;
  revokeAt: string | null;
  /**
   * Injectors spread their value fetches uniformly over this many milliseconds after
   * learning of the rotation (no stampede). Set by the notifier when it signs the event.
   */
  refetchSpreadMs?: number;
}

export interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: EventType;
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: InvalidationData;
}

export const eventId = (rotationId: string, type: EventType) => `${rotationId}.${type.split('.').pop()}`;

export function buildEvent(type: EventType, data: InvalidationData, time: Date): CloudEvent {
  return {
    specversion: '1.0',
    id: eventId(data.rotationId, type),
    source: 'rekey',
    type,
    subject: data.secret,
    time: time.toISOString(),
    datacontenttype: 'application/json',
    data,
  };
}

/** JWS `typ` of a signed event: the payload is the CloudEvent JSON. */
export const signedEventType = 'cloudevents+jws';

/** Redis names the events go to, under the configured prefix. */
export const eventChannels = (prefix: string) => ({
  pubsub: `${prefix}:events`,
  stream: `${prefix}:events:stream`,
});
