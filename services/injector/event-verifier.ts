import { compactVerify, createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import type { CloudEvent } from '../../shared/events/invalidation-event.ts';
import { signedEventType } from '../../shared/events/invalidation-event.ts';
import { eventTypes } from '../../shared/queues/job-catalogue.ts';

export type EventKeySet = JWTVerifyGetKey;

/** rekey's published keys, fetched from /v1/jwks and refetched (rate limited) for an unknown kid. */
export function remoteEventKeys(baseUrl: string): EventKeySet {
  return createRemoteJWKSet(new URL('/v1/jwks', baseUrl), { cooldownDuration: 5_000, cacheMaxAge: 10 * 60_000 }) as EventKeySet;
}

/**
 * Verifies a signed invalidation event (compact JWS, EdDSA only, typ cloudevents+jws) and
 * returns its CloudEvent; null for anything forged, unsigned, or malformed. An injector
 * acts only on what this returns.
 */
export async function verifyEvent(jws: string, keys: EventKeySet): Promise<CloudEvent | null> {
  try {
    const { payload, protectedHeader } = await compactVerify(jws, keys as Parameters<typeof compactVerify>[1], { algorithms: ['EdDSA'] });
    if (protectedHeader.typ !== signedEventType) return null;
    const event = JSON.parse(new TextDecoder().decode(payload)) as CloudEvent;
    if (event?.specversion !== '1.0' || !(eventTypes as readonly string[]).includes(event.type) || typeof event.data?.secret !== 'string') return null;
    return event;
  } catch {
    return null;
  }
}
