import { z } from 'zod';

/** Environment for the subscriber side (api injector routes, notifier propagation). */
export const subscriberEnv = {
  /** A subscriber counts towards propagation while it was seen (stream open, fetch, ack) this recently. */
  REKEY_SUBSCRIBER_LIVE_MS: z.coerce.number().int().min(1000).default(60_000),
  /** How long an api trusts its cached view of a subscriber when no revocation message arrives. */
  REKEY_SUBSCRIBER_CACHE_MS: z.coerce.number().int().min(0).default(5_000),
  /** Re-deliver to a subscriber that has not acked after this long; also the tracker's sweep interval. */
  REKEY_REDELIVER_MS: z.coerce.number().int().min(100).default(5_000),
  REKEY_REDELIVER_MAX_ATTEMPTS: z.coerce.number().int().min(1).default(20),
  /** Value fetches per second the fleet should spread a refetch over (sets the event's refetchSpreadMs hint). */
  REKEY_REFETCH_RATE: z.coerce.number().int().min(1).default(1_000),
  REKEY_REFETCH_SPREAD_MAX_MS: z.coerce.number().int().min(0).default(10_000),
  /** Emergency rotations revoke at once: their refetch spread is capped much lower. */
  REKEY_REFETCH_SPREAD_EMERGENCY_MAX_MS: z.coerce.number().int().min(0).default(500),
  /** Concurrent value reads of one secret share one PostgreSQL read. Off only to measure the herd without it (bench/). */
  REKEY_COALESCE_VALUE_READS: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  REKEY_WEBHOOK_ATTEMPTS: z.coerce.number().int().min(1).default(10),
  REKEY_WEBHOOK_BACKOFF_MS: z.coerce.number().int().min(1).default(1_000),
  REKEY_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).default(5_000),
};

/** SQL: is text $name in the scope array column `s.scope`? (same rule as subscriber-scope.ts inScope). */
export const scopeMatchSql = (nameParam: string) =>
  `EXISTS (SELECT 1 FROM unnest(s.scope) e WHERE e = ${nameParam} OR (right(e, 1) = '/' AND starts_with(${nameParam}, e)))`;
