import { Redis } from 'ioredis';
import type { ServerResponse } from 'node:http';
import { eventChannels } from '../../../shared/events/invalidation-event.ts';
import { coerceError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { PropagationMetrics } from '../../../shared/subscribers/propagation-metrics.ts';
import { subscriberChannels, type RedeliverMessage } from '../../../shared/subscribers/subscriber-channels.ts';
import { compareStreamIds, decodeEventPayload } from '../../../shared/subscribers/stream-ids.ts';

/** One stream entry as the hub hands it out. */
export interface HubEvent {
  streamId: string;
  type: string;
  secret: string;
  jws: string;
}

export interface SseClient {
  subscriberId: string | null;
  accepts(secret: string): boolean;
  res: ServerResponse;
  /** While replaying history, live events wait here (see attach). */
  buffer: HubEvent[] | null;
  lastSentId: string | null;
}

/** A client further behind than this many bytes is cut off; it reconnects and resumes from its last id. */
const maxBufferedBytes = 1 << 20;
const replayBatch = 1000;

/**
 * The api process's single view of the event log: ONE blocking XREAD loop on the Redis
 * stream and ONE pub/sub subscription for control messages, fanned out to every SSE
 * client of this process (SPEC: at scale injectors come through the api, not a Redis
 * connection each).
 *
 * Reading the stream rather than the pub/sub channel gives every event its stream id
 * (the SSE `id`, which clients resume from with Last-Event-ID) and loses nothing across
 * a Redis blip: the loop continues from the last id it read.
 */
export class EventHub {
  private readonly reader: Redis;
  private readonly control: Redis;
  private readonly clients = new Set<SseClient>();
  private readonly stream: string;
  private readonly channels: ReturnType<typeof subscriberChannels>;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private lastId = '$';
  /** rotationId → subscribers the `rotated` event was written to, flushed to `deliveries` in batches. */
  private readonly delivered = new Map<string, Set<string>>();

  constructor(
    private readonly deps: {
      redisUrl: string;
      prefix: string;
      log: Logger;
      metrics: PropagationMetrics;
      onRevoked: (subscriberId: string) => void;
      onDelivered: (rotationId: string, subscriberIds: string[]) => Promise<void>;
    },
  ) {
    this.stream = eventChannels(deps.prefix).stream;
    this.channels = subscriberChannels(deps.prefix);
    this.reader = new Redis(deps.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
    this.control = new Redis(deps.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
    this.reader.on('error', () => {});
    this.control.on('error', () => {});
  }

  async start(): Promise<void> {
    await Promise.all([this.reader.connect(), this.control.connect()]);
    // Where the live tail begins; history before it is served by replay.
    const last = await this.reader.xrevrange(this.stream, '+', '-', 'COUNT', 1);
    this.lastId = last[0]?.[0] ?? '0-0';
    await this.control.subscribe(this.channels.revoked, this.channels.redeliver);
    this.control.on('message', (channel, message) => this.onControl(channel, message));
    this.loop = this.tail();
  }

  get size(): number {
    return this.clients.size;
  }

  /**
   * Adds a client. With `lastEventId` it first replays what it missed from the stream,
   * buffering live events meanwhile so nothing is lost or sent twice at the seam. Returns
   * whether there is a gap (events trimmed or lost with Redis) that the client must
   * cover by re-reading current versions.
   */
  async attach(client: SseClient, lastEventId: string | null): Promise<{ gap: boolean }> {
    this.clients.add(client);
    if (lastEventId === null) return { gap: false };
    client.buffer = [];
    let gap = false;
    try {
      gap = await this.hasGap(lastEventId);
      let from = lastEventId;
      for (;;) {
        const batch = await this.reader.xrange(this.stream, `(${from}`, '+', 'COUNT', replayBatch);
        for (const [id, fields] of batch) this.sendTo(client, toEvent(id, fields), true);
        if (batch.length < replayBatch) break;
        from = batch.at(-1)![0];
      }
    } catch (err) {
      // Redis is away: tell the client to re-read versions when it can; live events follow once Redis is back.
      gap = true;
      this.deps.log.warn({ err: coerceError(err).message }, 'event replay failed');
    }
    const buffered = client.buffer ?? [];
    client.buffer = null;
    for (const e of buffered) this.sendTo(client, e, true);
    return { gap };
  }

  detach(client: SseClient): void {
    this.clients.delete(client);
  }

  /** Closes every stream of a revoked subscriber. */
  dropSubscriber(subscriberId: string): void {
    for (const c of this.clients) {
      if (c.subscriberId === subscriberId) {
        this.clients.delete(c);
        c.res.end();
      }
    }
  }

  connectedSubscribers(): string[] {
    return [...new Set([...this.clients].map((c) => c.subscriberId).filter((id): id is string => id !== null))];
  }

  async flushDelivered(): Promise<void> {
    const batches = [...this.delivered.entries()];
    this.delivered.clear();
    for (const [rotationId, ids] of batches) await this.deps.onDelivered(rotationId, [...ids]);
  }

  /** Ends every SSE response (before the HTTP server closes, which waits for open connections). */
  endClients(): void {
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.endClients();
    this.reader.disconnect();
    this.control.disconnect();
    await this.loop?.catch(() => {});
  }

  private async hasGap(lastEventId: string): Promise<boolean> {
    const info = (await this.reader.call('XINFO', 'STREAM', this.stream).catch(() => null)) as unknown[] | null;
    if (!info) return true; // the stream is gone (Redis lost its data)
    const field = (name: string) => info[info.indexOf(name) + 1] as string;
    const maxDeleted = field('max-deleted-entry-id') ?? '0-0';
    const lastGenerated = field('last-generated-id') ?? '0-0';
    // Entries after lastEventId were trimmed, or the stream was recreated behind the client's back.
    return compareStreamIds(lastEventId, maxDeleted) < 0 || compareStreamIds(lastEventId, lastGenerated) > 0;
  }

  private async tail(): Promise<void> {
    while (!this.stopped) {
      try {
        const res = (await this.reader.xread('COUNT', 1000, 'BLOCK', 5000, 'STREAMS', this.stream, this.lastId)) as [string, [string, string[]][]][] | null;
        for (const [, entries] of res ?? []) {
          for (const [id, fields] of entries) {
            this.lastId = id;
            const event = toEvent(id, fields);
            for (const c of this.clients) this.sendTo(c, event, false);
          }
        }
      } catch (err) {
        if (this.stopped) return;
        this.deps.log.warn({ err: coerceError(err).message }, 'event stream read failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private sendTo(client: SseClient, event: HubEvent, replaying: boolean): void {
    if (!client.accepts(event.secret)) return;
    if (client.buffer && !replaying) {
      client.buffer.push(event);
      return;
    }
    // The seam between replay and the live tail: never send an id twice or backwards.
    if (client.lastSentId && compareStreamIds(event.streamId, client.lastSentId) <= 0) return;
    client.lastSentId = event.streamId;
    this.write(client, `id: ${event.streamId}\nevent: ${event.type}\ndata: ${event.jws}\n\n`);
    if (client.subscriberId && event.type === 'dev.rekey.secret.rotated') this.noteDelivered(event.jws, client.subscriberId);
  }

  private write(client: SseClient, frame: string): void {
    if (client.res.writableLength > maxBufferedBytes) {
      this.deps.metrics.deliveries.inc({ channel: 'sse', outcome: 'dropped' });
      this.clients.delete(client);
      client.res.destroy();
      return;
    }
    client.res.write(frame);
    this.deps.metrics.deliveries.inc({ channel: 'sse', outcome: 'sent' });
  }

  private noteDelivered(jws: string, subscriberId: string): void {
    const rotationId = decodeEventPayload(jws)?.data?.rotationId;
    if (!rotationId) return;
    let set = this.delivered.get(rotationId);
    if (!set) this.delivered.set(rotationId, (set = new Set()));
    set.add(subscriberId);
  }

  private onControl(channel: string, message: string): void {
    if (channel === this.channels.revoked) {
      this.deps.onRevoked(message);
      this.dropSubscriber(message);
      return;
    }
    if (channel !== this.channels.redeliver) return;
    let msg: RedeliverMessage;
    try {
      msg = JSON.parse(message);
    } catch {
      return;
    }
    const wanted = new Set(msg.subscribers);
    const payload = decodeEventPayload(msg.jws);
    if (!payload) return;
    for (const c of this.clients) {
      if (!c.subscriberId || !wanted.has(c.subscriberId) || !c.accepts(payload.data.secret)) continue;
      // No `id:` line: a re-delivery must not move the client's resume point.
      this.write(c, `event: ${payload.type}\ndata: ${msg.jws}\n\n`);
      this.deps.metrics.deliveries.inc({ channel: 'sse', outcome: 'redelivered' });
    }
  }
}

function toEvent(id: string, fields: string[]): HubEvent {
  const get = (k: string) => fields[fields.indexOf(k) + 1] ?? '';
  return { streamId: id, type: get('type'), secret: get('secret'), jws: get('jws') };
}
