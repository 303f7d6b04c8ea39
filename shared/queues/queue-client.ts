import { Queue, Worker, UnrecoverableError, type Job, type JobsOptions, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { jobCatalogue, type JobName, type JobPayload, type QueueName } from './job-catalogue.ts';
import { coerceError, UnavailableError } from '../errors.ts';

export type JobHandlers<Q extends QueueName> = {
  [J in JobName<Q>]: (payload: JobPayload<Q, J>, job: Job, token: string | undefined) => Promise<void>;
};

export interface WorkerOptions {
  concurrency: number;
  lockDurationMs: number;
  /** Delay before retry n (1-based). */
  backoffMs?: (attemptsMade: number) => number;
}

/**
 * Full-jitter exponential backoff: a uniformly random delay below base·2^(n−1), capped.
 * Spreads retries of many rotations that failed together (a target outage) over time.
 */
export function jitteredBackoff(baseMs: number, capMs = 60_000) {
  return (attemptsMade: number) => Math.round(Math.random() * Math.min(capMs, baseMs * 2 ** Math.max(0, attemptsMade - 1)));
}

/**
 * Typed access to rekey's BullMQ queues: `enqueue` and `createWorker` over the job
 * catalogue. The producer connection does not queue commands while Redis is away, so a
 * caller learns at once that Redis is down (PostgreSQL stays the record; the scheduler's
 * reconciler enqueues later).
 */
export class QueueClient {
  private readonly producer: Redis;
  private readonly queues = new Map<QueueName, Queue>();
  private readonly workers: Worker[] = [];

  constructor(
    private readonly redisUrl: string,
    readonly prefix: string,
  ) {
    this.producer = new Redis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    this.producer.on('error', () => {});
  }

  queue(name: QueueName): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.producer, prefix: this.prefix });
      q.on('error', () => {});
      this.queues.set(name, q);
    }
    return q;
  }

  async enqueue<Q extends QueueName, J extends JobName<Q>>(
    queue: Q,
    job: J,
    payload: JobPayload<Q, J>,
    opts: JobsOptions & { jobId: string },
  ): Promise<void> {
    try {
      // A BullMQ Queue waits for the connection's 'ready' before its first command, so a
      // caller could hang for as long as Redis is away: refuse at once instead (issue 4:
      // the webhook's 202 must not wait on Redis). A job left unqueued is the reconciler's.
      if (!(await this.producerReady())) throw new Error('Redis is not connected');
      // Workers decide when an attempt is the last one (their own config); BullMQ only has to keep retrying.
      const added = this.queue(queue).add(job, payload, { removeOnComplete: true, removeOnFail: true, attempts: 100, backoff: { type: 'custom' }, ...opts });
      // A partitioned Redis (no RST) would hold the command forever; job ids are deterministic, so a late add is harmless.
      await Promise.race([added, new Promise((_, reject) => setTimeout(() => reject(new Error('Redis did not answer within 2s')), 2000).unref())]);
    } catch (err) {
      throw new UnavailableError(`could not enqueue ${queue}/${job}: ${coerceError(err).message}`);
    }
  }

  /** Ready now, or within a second while the first connection is still being made. */
  private async producerReady(): Promise<boolean> {
    const status = this.producer.status;
    if (status === 'ready') return true;
    if (status !== 'wait' && status !== 'connecting' && status !== 'connect') return false;
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.producer.off('ready', onReady);
        resolve(ok);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), 1000);
      this.producer.once('ready', onReady);
    });
  }

  createWorker<Q extends QueueName>(queue: Q, handlers: JobHandlers<Q>, opts: WorkerOptions): Worker {
    const schemas = jobCatalogue[queue] as Record<string, { safeParse(v: unknown): { success: boolean; data?: unknown; error?: { message: string } } }>;
    const connection: ConnectionOptions = { url: this.redisUrl, maxRetriesPerRequest: null } as ConnectionOptions;
    const worker = new Worker(
      queue,
      async (job, token) => {
        const schema = schemas[job.name];
        const handler = (handlers as Record<string, JobHandlers<Q>[JobName<Q>]>)[job.name];
        if (!schema || !handler) throw new UnrecoverableError(`no handler for job ${queue}/${job.name}`);
        const parsed = schema.safeParse(job.data);
        // A payload that does not parse will never parse: fail it now rather than retry.
        if (!parsed.success) throw new UnrecoverableError(`bad payload for ${queue}/${job.name}: ${parsed.error?.message}`);
        await handler(parsed.data as never, job, token);
      },
      {
        connection,
        prefix: this.prefix,
        concurrency: opts.concurrency,
        lockDuration: opts.lockDurationMs,
        stalledInterval: Math.max(1000, Math.floor(opts.lockDurationMs / 2)),
        // Crashes are expected (SIGKILL, OOM); a stalled rotation is resumed, never dropped.
        maxStalledCount: 1000,
        settings: opts.backoffMs ? { backoffStrategy: (attemptsMade: number) => opts.backoffMs!(attemptsMade) } : {},
      },
    );
    worker.on('error', () => {});
    this.workers.push(worker);
    return worker;
  }

  /** Workers first (they finish or release in-flight jobs), then queues, then the connection. */
  async close(): Promise<void> {
    const results = await Promise.allSettled(this.workers.map((w) => w.close()));
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    this.producer.disconnect();
    const failed = results.find((r) => r.status === 'rejected');
    if (failed && failed.status === 'rejected') throw failed.reason;
  }
}
