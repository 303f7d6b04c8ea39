import { Counter, Histogram } from 'prom-client';
import type { Metrics } from '../metrics.ts';

const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/**
 * Metrics of the subscriber side: deliveries, acks, propagation, value fetches. Kept out
 * of shared/metrics.ts so this concern stays in one file; registered on the process's
 * one registry, once (`propagationMetrics(metrics)` returns the same instance).
 */
export class PropagationMetrics {
  readonly deliveries: Counter<'channel' | 'outcome'>;
  readonly acks: Counter<'outcome'>;
  readonly propagation: Histogram<'trigger'>;
  readonly valueFetch: Histogram<'outcome'>;
  readonly valueFetchCoalesced: Counter;
  readonly stragglers: Counter<'trigger'>;
  readonly sseClients: Counter<'event'>;

  constructor(m: Metrics) {
    const registers = [m.registry];
    this.deliveries = new Counter({ name: 'rekey_deliveries_total', help: 'Event deliveries to subscribers, by channel (sse, pubsub, webhook) and outcome', labelNames: ['channel', 'outcome'], registers });
    this.acks = new Counter({ name: 'rekey_acks_total', help: 'Acknowledgements from subscribers, by outcome', labelNames: ['outcome'], registers });
    this.propagation = new Histogram({ name: 'rekey_propagation_seconds', help: 'From activation to the last live subscriber in scope acknowledging the new version', labelNames: ['trigger'], buckets, registers });
    this.valueFetch = new Histogram({ name: 'rekey_value_fetch_seconds', help: 'Injector value fetches (GET /v1/secrets/{name}/value), by outcome', labelNames: ['outcome'], buckets, registers });
    this.valueFetchCoalesced = new Counter({ name: 'rekey_value_fetch_coalesced_total', help: 'Value fetches served by joining a concurrent read of the same secret', registers });
    this.stragglers = new Counter({ name: 'rekey_stragglers_total', help: 'Subscribers that had not acknowledged the new version when the previous one was revoked', labelNames: ['trigger'], registers });
    this.sseClients = new Counter({ name: 'rekey_sse_connections_total', help: 'SSE event-stream connections opened and closed', labelNames: ['event'], registers });
  }
}

const instances = new WeakMap<Metrics, PropagationMetrics>();

export function propagationMetrics(m: Metrics): PropagationMetrics {
  let p = instances.get(m);
  if (!p) instances.set(m, (p = new PropagationMetrics(m)));
  return p;
}
