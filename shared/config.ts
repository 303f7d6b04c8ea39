import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { signingKeyOf } from './webhooks/standard-webhook.ts';

const webhookSecretsEnv = z
  .string()
  .optional()
  .transform((v) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean))
  .superRefine((secrets, ctx) => {
    secrets.forEach((s, i) => {
      try {
        signingKeyOf(s);
      } catch (err) {
        // Names the position, never the secret.
        ctx.addIssue({ code: 'custom', message: `entry ${i + 1}: ${(err as Error).message}` });
      }
    });
  });

/**
 * Configuration comes only from the environment. Each process composes the fragments it
 * needs into one zod object and parses it once at boot; a bad value throws a ConfigError
 * naming the variable, and the CLI prints it and exits.
 */
export const baseEnv = {
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  DATABASE_URL: z.string().url().default('postgres://127.0.0.1:5432/rekey'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Prefix for every Redis key rekey owns (queues, streams, channels). */
  REKEY_REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('rekey'),
  /** base64 of 32 random bytes. Unset: a development key is generated and saved, with a warning. */
  REKEY_MASTER_KEY: z.string().optional(),
  REKEY_DEV_KEY_FILE: z.string().default('.rekey/dev-master.key'),
  NODE_ENV: z.string().default('development'),
  /** PostgreSQL connections per process; size it to the process's worker concurrency. */
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(500).default(20),
};

export const apiEnv = {
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default('127.0.0.1'),
  REKEY_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters'),
  /**
   * Signing secrets for POST /v1/webhooks/emergency-rotation, comma-separated
   * (`whsec_<base64>` each, Standard Webhooks). List old and new while rotating the
   * webhook secret. Unset: the api starts, and refuses every webhook with 503.
   */
  REKEY_WEBHOOK_SECRETS: webhookSecretsEnv,
};

export const schedulerEnv = {
  /** How often the scheduler reads due policies. */
  SCHEDULER_TICK_MS: z.coerce.number().int().min(50).default(1000),
  /** Rate cap: most rotations the scheduler starts per tick (across all replicas, per tick each). */
  SCHEDULER_MAX_PER_TICK: z.coerce.number().int().min(1).default(500),
  /** How often the reconciler re-enqueues unfinished rotations from PostgreSQL. */
  RECONCILE_INTERVAL_MS: z.coerce.number().int().min(100).default(5000),
  /** How often expired dynamic-credential leases are dropped at their target. */
  LEASE_REAPER_INTERVAL_MS: z.coerce.number().int().min(50).default(1000),
};

export const workerEnv = {
  ROTATOR_CONCURRENCY: z.coerce.number().int().min(1).default(8),
  /** Workers reserved for the emergency lane. */
  ROTATOR_EMERGENCY_CONCURRENCY: z.coerce.number().int().min(1).default(4),
  /** After the last emergency job in a process, its scheduled lane stays paused this long (issue 4). */
  ROTATOR_EMERGENCY_HOLD_MS: z.coerce.number().int().min(0).max(60_000).default(1000),
  NOTIFIER_CONCURRENCY: z.coerce.number().int().min(1).default(16),
  /** BullMQ job lock; a crashed worker's job is taken over after about this long. */
  JOB_LOCK_MS: z.coerce.number().int().min(1000).default(10000),
  ROTATION_ATTEMPTS: z.coerce.number().int().min(1).default(5),
  ROTATION_BACKOFF_MS: z.coerce.number().int().min(1).default(1000),
  /** Serve /metrics on this port from worker-only processes (0 = off). */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(0),
};

export function parseEnv<S extends z.ZodRawShape>(
  shape: S,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<z.ZodObject<S>> {
  const result = z.object(shape).safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
}

export type BaseConfig = z.infer<z.ZodObject<typeof baseEnv>>;
