import type { CloudEvent } from '../events/invalidation-event.ts';

/** Orders Redis stream ids (`<ms>-<seq>`). */
export function compareStreamIds(a: string, b: string): number {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  const d = BigInt(am!) - BigInt(bm!);
  if (d !== 0n) return d < 0n ? -1 : 1;
  const e = BigInt(as) - BigInt(bs);
  return e === 0n ? 0 : e < 0n ? -1 : 1;
}

export const streamIdPattern = /^\d{1,20}-\d{1,20}$/;

/**
 * Reads the CloudEvent inside a compact JWS WITHOUT verifying it. Only for rekey's own
 * routing of events it signed itself; an injector must verify (see services/injector).
 */
export function decodeEventPayload(jws: string): CloudEvent | null {
  try {
    const part = jws.split('.')[1];
    return part ? (JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as CloudEvent) : null;
  } catch {
    return null;
  }
}
