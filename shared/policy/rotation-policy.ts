import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';

const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const durationPattern = /^(\d+)(ms|s|m|h|d)$/;

export function parseDuration(text: string): number {
  const m = durationPattern.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  return Number(m[1]) * units[m[2] as keyof typeof units];
}

// zod runs refinements even after the pattern check failed, so they must not assume a match.
const msOrNaN = (s: string) => (durationPattern.test(s) ? parseDuration(s) : NaN);

/** A duration such as `500ms`, `30s`, `15m`, `24h`, `7d`. */
export const duration = z
  .string()
  .regex(durationPattern, 'must be a duration such as 30s, 15m, 24h or 7d')
  .refine((s) => !(msOrNaN(s) > 366 * units.d), 'must be at most 366d');

const cron = z.string().refine((expr) => {
  try {
    CronExpressionParser.parse(expr);
    return true;
  } catch {
    return false;
  }
}, 'must be a valid cron expression');

/**
 * When a secret rotates and how long its previous version lives on.
 * - `interval` or `cron` (not both; neither = manual rotation only)
 * - `jitter`: a random delay up to this long is added to each due time, so secrets
 *   created together do not all rotate in the same second
 * - `grace`: how long the previous version stays valid after a scheduled rotation
 *   (emergency rotations have none)
 * - `terminateSessions`: end sessions opened with a revoked credential where the target can
 * - `revokeWhen`: `grace` (default) waits out the grace period; `acked` revokes once every
 *   live subscriber acknowledged the new version, or when grace ends, whichever is first
 */
export const rotationPolicySchema = z
  .object({
    interval: duration.refine((s) => !(msOrNaN(s) < 1000), 'must be at least 1s').optional(),
    cron: cron.optional(),
    jitter: duration.optional(),
    grace: duration.default('0s'),
    terminateSessions: z.boolean().default(false),
    /** `acked`: revoke as soon as every live subscriber acked the new version, at the latest when grace ends. Default `grace`. */
    revokeWhen: z.enum(['grace', 'acked']).optional(),
  })
  .strict()
  .refine((p) => !(p.interval && p.cron), { message: 'give interval or cron, not both', path: ['cron'] });

export type RotationPolicy = z.infer<typeof rotationPolicySchema>;

export function nextRotationAt(policy: RotationPolicy, from: Date, random = Math.random): Date | null {
  let base: number;
  if (policy.interval) base = from.getTime() + parseDuration(policy.interval);
  else if (policy.cron) base = CronExpressionParser.parse(policy.cron, { currentDate: from }).next().getTime();
  else return null;
  const jitter = policy.jitter ? Math.floor(random() * parseDuration(policy.jitter)) : 0;
  return new Date(base + jitter);
}

export const graceMs = (policy: RotationPolicy) => parseDuration(policy.grace);
