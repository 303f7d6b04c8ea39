import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const durationBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/**
 * rekey's Prometheus metrics. One instance per process (all roles of a process share
 * it). Labels are bounded enums — never a secret's value, and never a secret's name
 * where cardinality could explode without an operator choosing it.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly rotations = new Counter({
    name: 'rekey_rotations_total',
    help: 'Rotations that ended, by outcome and trigger',
    labelNames: ['outcome', 'trigger', 'provider'] as const,
    registers: [this.registry],
  });
  readonly rotationDuration = new Histogram({
    name: 'rekey_rotation_duration_seconds',
    help: 'From trigger to activation of the new version',
    labelNames: ['trigger', 'provider'] as const,
    buckets: durationBuckets,
    registers: [this.registry],
  });
  readonly timeToRevoke = new Histogram({
    name: 'rekey_time_to_revoke_seconds',
    help: 'From trigger to the old credential verified dead at its target',
    labelNames: ['trigger'] as const,
    buckets: durationBuckets,
    registers: [this.registry],
  });
  readonly stepFailures = new Counter({
    name: 'rekey_rotation_step_failures_total',
    help: 'Failed attempts of a rotation step (retried or final)',
    labelNames: ['step', 'provider', 'final'] as const,
    registers: [this.registry],
  });
  readonly eventsPublished = new Counter({
    name: 'rekey_events_published_total',
    help: 'Invalidation events published, by type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'rekey_queue_depth',
    help: 'Jobs per queue and state',
    labelNames: ['queue', 'state'] as const,
    registers: [this.registry],
  });
  readonly overdueSecrets = new Gauge({
    name: 'rekey_secrets_overdue',
    help: 'Secrets past their due rotation time by more than one scheduler tick (rotation compliance)',
    registers: [this.registry],
  });
  readonly httpUnauthorized = new Counter({
    name: 'rekey_http_unauthorized_total',
    help: 'Requests refused for authentication or authorization',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  /** Emergency webhook deliveries by outcome: accepted, replayed, or the refusal reason (a fixed set). */
  readonly webhookRequests = new Counter({
    name: 'rekey_webhook_requests_total',
    help: 'Emergency webhook deliveries, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'rekey_process_' });
  }
}
