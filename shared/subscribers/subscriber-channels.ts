/**
 * Redis pub/sub channels that carry subscriber control messages between rekey processes
 * (never a value, never a token).
 * - `revoked`: a subscriber id whose token must stop working now; every api drops its
 *   cached principal and closes that subscriber's event streams.
 * - `redeliver`: `{subscribers, jws}` — the notifier re-sends a signed event to stragglers;
 *   apis write it to those subscribers' SSE streams, in-cluster injectors check the list.
 */
export const subscriberChannels = (prefix: string) => ({
  revoked: `${prefix}:subscribers:revoked`,
  redeliver: `${prefix}:events:redeliver`,
});

export interface RedeliverMessage {
  subscribers: string[];
  jws: string;
  /** Redis stream id of the event, so an SSE client can resume after it. */
  streamId: string | null;
}
