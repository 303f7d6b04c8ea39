import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { eventChannels, type CloudEvent } from '../../shared/events/invalidation-event.ts';
import { subscriberChannels, type RedeliverMessage } from '../../shared/subscribers/subscriber-channels.ts';
import { compareStreamIds } from '../../shared/subscribers/stream-ids.ts';
import { remoteEventKeys, verifyEvent, type EventKeySet } from './event-verifier.ts';
import { readSse } from './sse-reader.ts';

export interface HeldSecret {
  version: number;
  value: string;
  notAfter: string | null;
  fetchedAt: Date;
}

export interface SecretUpdate {
  secret: string;
  version: number;
  previousVersion: number | null;
  value: string;
}

export interface RekeyClientOptions {
  /** rekey api, e.g. http://rekey-api:8080 */
  url: string;
  /** Subscriber token (`rekey subscriber add`). */
  token: string;
  /** Secrets this client holds; each must be in the token's scope. */
  secrets: string[];
  /**
   * How events arrive. `sse` (default): the api's /v1/events stream, resumable. `redis`:
   * the pub/sub channel, for in-cluster injectors; at most once, so every (re)connect
   * re-reads current versions.
   * @defaultValue 'sse'
   */
  channel?: 'sse' | 'redis';
  redis?: { url: string; prefix: string };
  /** Runs with each new value before it is acked (the agent writes files and reloads here). */
  onUpdate?: (update: SecretUpdate) => Promise<void>;
  /** Verification keys; default: this api's /v1/jwks. Share one among many clients in one process. */
  keys?: EventKeySet;
  /** Resume point of a previous run. */
  lastEventId?: string | null;
  /** @defaultValue 200 */
  reconnectMinMs?: number;
  /** @defaultValue 5000 */
  reconnectMaxMs?: number;
  log?: { info(o: object, m: string): void; warn(o: object, m: string): void };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The in-process SDK, and the core of `rekey inject`.
 *
 * Holds the current value of each of its secrets in memory: `get(name)` never waits for
 * the network. On a verified `rotated` event it waits a random part of the event's
 * refetch-spread hint (so a fleet does not stampede the api), fetches the new value,
 * runs `onUpdate`, emits `rotated`, then acks. Anything unsigned, signed with another
 * key, or outside its secrets is ignored (and counted in `forged`).
 *
 * While rekey or Redis is unreachable it keeps serving the last good value and reports
 * how long it has not been able to confirm it is current (`status().stalenessMs`). After
 * a disconnect it resumes from its last event id; on a gap, or where it has no id, it
 * re-reads the current versions.
 */
export class RekeyClient extends EventEmitter {
  private readonly held = new Map<string, HeldSecret>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly seen = new Set<string>();
  private readonly keys: EventKeySet;
  private readonly subscriberId: string | null;
  private lastEventId: string | null;
  private connected = false;
  private lastConfirmedAt = 0;
  private closed = false;
  private abort: AbortController | null = null;
  private redisSub: Redis | null = null;
  private loop: Promise<void> | null = null;
  forged = 0;

  constructor(private readonly opts: RekeyClientOptions) {
    super();
    this.keys = opts.keys ?? remoteEventKeys(opts.url);
    this.lastEventId = opts.lastEventId ?? null;
    this.subscriberId = subjectOf(opts.token);
  }

  /** Connects and resolves once every secret holds a value (retrying until then). */
  async start(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.opts.channel === 'redis') this.startRedis();
    else this.loop = this.sseLoop();
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    while (this.held.size < this.opts.secrets.length) {
      if (this.closed) throw new Error('client closed');
      if (Date.now() > deadline) throw new Error(`could not fetch ${this.opts.secrets.filter((s) => !this.held.has(s)).join(', ')}`);
      await sleep(50);
    }
  }

  get(name: string): string {
    const h = this.held.get(name);
    if (!h) throw new Error(`secret ${name} is not held by this client`);
    return h.value;
  }

  version(name: string): number | null {
    return this.held.get(name)?.version ?? null;
  }

  entries(): [string, HeldSecret][] {
    return [...this.held.entries()];
  }

  status() {
    return {
      connected: this.connected,
      /** 0 while the event channel is up; else how long since this client last knew it was current. */
      stalenessMs: this.connected ? 0 : this.lastConfirmedAt ? Date.now() - this.lastConfirmedAt : null,
      lastEventId: this.lastEventId,
      secrets: Object.fromEntries([...this.held].map(([k, v]) => [k, { version: v.version, fetchedAt: v.fetchedAt }])),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort?.abort();
    this.redisSub?.disconnect();
    await this.loop?.catch(() => {});
    await Promise.allSettled([...this.chains.values()]);
  }

  // ---- channels -------------------------------------------------------------------

  private async sseLoop(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      const resumeFrom = this.lastEventId;
      this.abort = new AbortController();
      try {
        const res = await fetch(new URL('/v1/events', this.opts.url), {
          headers: { authorization: `Bearer ${this.opts.token}`, accept: 'text/event-stream', ...(resumeFrom && { 'last-event-id': resumeFrom }) },
          signal: this.abort.signal,
        });
        if (res.status !== 200 || !res.body) {
          await res.body?.cancel().catch(() => {});
          throw new Error(`event stream answered ${res.status}`);
        }
        let live = false;
        const onComment = (text: string) => {
          if (text === 'live' && !live) {
            live = true;
            failures = 0;
            this.setConnected(true);
            // Without a resume point the log cannot tell us what we missed: read the versions.
            if (resumeFrom === null) this.resyncAll();
          }
          if (this.connected) this.lastConfirmedAt = Date.now();
        };
        for await (const msg of readSse(res.body, onComment)) {
          if (msg.id && (!this.lastEventId || compareStreamIds(msg.id, this.lastEventId) > 0)) this.lastEventId = msg.id;
          if (msg.event === 'gap') this.resyncAll();
          else if (msg.event.startsWith('dev.rekey.')) void this.onSigned(msg.data);
        }
      } catch (err) {
        if (this.closed) break;
        this.opts.log?.warn({ err: (err as Error).message }, 'event stream disconnected');
      }
      this.setConnected(false);
      if (this.closed) break;
      failures++;
      const cap = Math.min(this.opts.reconnectMaxMs ?? 5000, (this.opts.reconnectMinMs ?? 200) * 2 ** Math.min(failures, 10));
      await sleep(Math.round(cap / 2 + Math.random() * (cap / 2)));
    }
  }

  private startRedis(): void {
    if (!this.opts.redis) throw new Error('channel redis needs the redis option');
    const { pubsub } = eventChannels(this.opts.redis.prefix);
    const { redeliver } = subscriberChannels(this.opts.redis.prefix);
    const sub = new Redis(this.opts.redis.url, { maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(5000, 100 * 2 ** Math.min(n, 6)) });
    this.redisSub = sub;
    sub.on('error', () => {});
    sub.on('ready', () => {
      void sub.subscribe(pubsub, redeliver).then(() => {
        this.setConnected(true);
        // Pub/sub is at most once: every (re)connect re-reads the current versions.
        this.resyncAll();
      });
    });
    sub.on('close', () => this.setConnected(false));
    sub.on('message', (channel: string, message: string) => {
      if (channel === pubsub) return void this.onSigned(message);
      try {
        const m = JSON.parse(message) as RedeliverMessage;
        if (this.subscriberId && m.subscribers.includes(this.subscriberId)) void this.onSigned(m.jws);
      } catch {}
    });
  }

  private setConnected(up: boolean): void {
    if (up === this.connected) return;
    this.connected = up;
    this.lastConfirmedAt = Date.now();
    this.emit(up ? 'connected' : 'disconnected');
  }

  // ---- events ---------------------------------------------------------------------

  private async onSigned(jws: string): Promise<void> {
    const event = await verifyEvent(jws, this.keys);
    if (!event) {
      this.forged++;
      this.emit('forged');
      this.opts.log?.warn({}, 'ignored an event that does not verify against rekey keys');
      return;
    }
    if (!this.opts.secrets.includes(event.data.secret)) return;
    this.emit('event', event);
    if (event.type === 'dev.rekey.secret.revoked') return void this.emit('revoked', event.data);
    if (event.type !== 'dev.rekey.secret.rotated' || event.data.version === null) return;
    const version = event.data.version;
    const held = this.held.get(event.data.secret);
    if (held && held.version >= version) {
      // A re-delivery or a replay: we hold it already; say so again.
      return void this.ack(event.data.secret, held.version);
    }
    if (this.seen.has(event.id)) return;
    this.seen.add(event.id);
    if (this.seen.size > 10_000) this.seen.clear();
    const spread = Math.max(0, Math.min(event.data.refetchSpreadMs ?? 0, 60_000));
    this.serialize(event.data.secret, async () => {
      if (spread) await sleep(Math.random() * spread);
      await this.refresh(event.data.secret, version, event);
    });
  }

  private resyncAll(): void {
    for (const name of this.opts.secrets) this.serialize(name, () => this.refresh(name, 0, null));
  }

  /** One refresh at a time per secret, in arrival order. */
  private serialize(name: string, fn: () => Promise<void>): void {
    const next = (this.chains.get(name) ?? Promise.resolve()).then(fn).catch((err) => {
      this.opts.log?.warn({ secretName: name, err: (err as Error).message }, 'refresh failed; keeping the last good value');
    });
    this.chains.set(name, next);
  }

  /** Fetches until it holds at least `minVersion`; a newer value is applied, then acked. */
  private async refresh(name: string, minVersion: number, event: CloudEvent | null): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      const held = this.held.get(name);
      if (held && held.version >= minVersion && minVersion > 0) return void (await this.ack(name, held.version));
      try {
        const res = await fetch(new URL(`/v1/secrets/${name}/value`, this.opts.url), { headers: { authorization: `Bearer ${this.opts.token}` } });
        if (res.status === 401 || res.status === 403 || res.status === 404) {
          await res.body?.cancel().catch(() => {});
          throw new Error(`value fetch for ${name} refused (${res.status})`);
        }
        if (res.status !== 200) throw new Error(`value fetch for ${name} answered ${res.status}`);
        const body = (await res.json()) as { version: number; value: string; notAfter: string | null };
        this.lastConfirmedAt = Date.now();
        const before = this.held.get(name);
        if (!before || body.version > before.version) {
          this.held.set(name, { version: body.version, value: body.value, notAfter: body.notAfter, fetchedAt: new Date() });
          const update: SecretUpdate = { secret: name, version: body.version, previousVersion: before?.version ?? null, value: body.value };
          await this.opts.onUpdate?.(update);
          this.emit('rotated', { secret: name, version: body.version, previousVersion: update.previousVersion, eventId: event?.id ?? null });
        }
        if (body.version >= minVersion) return void (await this.ack(name, Math.max(body.version, before?.version ?? 0)));
      } catch (err) {
        if ((err as Error).message.includes('refused')) throw err;
      }
      await sleep(Math.min(5000, 100 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2));
    }
  }

  private async ack(secret: string, version: number): Promise<void> {
    // Retried until answered (rekey may be away for a while); a newer version supersedes it.
    for (let attempt = 0; !this.closed; attempt++) {
      // A newer version arrived meanwhile: that one is acked instead.
      if ((this.held.get(secret)?.version ?? 0) > version) return;
      try {
        const res = await fetch(new URL('/v1/acks', this.opts.url), {
          method: 'POST',
          headers: { authorization: `Bearer ${this.opts.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ secret, version }),
        });
        await res.body?.cancel().catch(() => {});
        if (res.status === 202) return void this.emit('acked', { secret, version });
        if (res.status < 500) return;
      } catch {}
      await sleep(Math.min(5000, 100 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2));
    }
  }
}

/** The subscriber id (`sub`) of our own token, to recognise targeted re-deliveries. Not a verification. */
function subjectOf(token: string): string | null {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')).sub ?? null;
  } catch {
    return null;
  }
}
