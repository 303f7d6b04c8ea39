import { Agent, request } from 'node:http';
import { remoteEventKeys, verifyEvent } from '../../services/injector/event-verifier.ts';
import { readSse } from '../../services/injector/sse-reader.ts';
import { percentile, sleep } from './bench-rekey.ts';

/**
 * The herd itself, shared by bench/injector-herd.ts and chaos scenario 9 (renewal-herd):
 * `tokens.length` injectors, already known to the api, refetch one secret after a rotation.
 *
 * Injectors are simulated at the fetch: each has its own subscriber token and schedules its
 * GET /v1/secrets/{name}/value exactly as the SDK does (a uniform random delay within the
 * hint of the signed event, which one SSE listener here receives and verifies).
 */
export interface RefetchHerdResult {
  refetchSpreadMs: number;
  /** Most requests started in any one-second window. */
  peakRequestsPerSecond: number;
  /** Requests over the whole herd (first start to last answer), per second. */
  meanRequestsPerSecond: number;
  fetchLatencyMs: { p50: number; p99: number; max: number };
  /** Injectors answered 200 with the new version. */
  converged: number;
  errors: number;
  /** Errors by HTTP status or network error code. */
  errorKinds: Record<string, number>;
  staleVersions: number;
  wallMs: number;
  /** Value fetches the api answered minus those that joined another's read. */
  postgresValueReads: number;
}

export function getWithToken(url: string, token: string, agent: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { authorization: `Bearer ${token}` }, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function metric(apiUrl: string, name: RegExp): Promise<number> {
  const text = await fetch(`${apiUrl}/metrics`).then((r) => r.text());
  return Number(name.exec(text)?.[1] ?? 0);
}

/**
 * Warms the api's view of every injector (one fetch each, 200 at a time, as their SSE
 * connections would have), calls `rotate`, waits for the signed event announcing
 * `version`, then lets every injector refetch within the event's spread hint.
 */
export async function refetchHerd(opts: { apiUrl: string; secret: string; version: number; tokens: string[]; rotate: () => Promise<void> }): Promise<RefetchHerdResult> {
  const { apiUrl, secret, version, tokens } = opts;
  const valueUrl = `${apiUrl}/v1/secrets/${secret}/value`;
  // Each injector is its own client: no socket pool capping concurrency.
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const abort = new AbortController();
  try {
    const keys = remoteEventKeys(apiUrl);
    // One listener learns of the rotation the way every injector would.
    const res = await fetch(`${apiUrl}/v1/events`, { headers: { authorization: `Bearer ${tokens[0]!}` }, signal: abort.signal });
    const eventSeen = (async () => {
      for await (const msg of readSse(res.body!)) {
        if (msg.event !== 'dev.rekey.secret.rotated') continue;
        const event = await verifyEvent(msg.data, keys);
        if (event?.data.secret === secret && event.data.version === version) return event;
      }
      throw new Error('stream ended');
    })();
    eventSeen.catch(() => {});
    // The herd below measures the refetch, not first contact.
    for (let i = 0; i < tokens.length; i += 200) {
      await Promise.all(tokens.slice(i, i + 200).map((t) => getWithToken(valueUrl, t, agent).catch(() => null)));
    }
    const fetchesBefore = await metric(apiUrl, /rekey_value_fetch_seconds_count\{outcome="ok"\} (\d+)/);
    const coalescedBefore = await metric(apiUrl, /rekey_value_fetch_coalesced_total (\d+)/);
    await opts.rotate();
    const event = await eventSeen;
    abort.abort();
    const spreadMs = event.data.refetchSpreadMs ?? 0;

    const starts: number[] = [];
    const latencies: number[] = [];
    let errors = 0;
    const errorKinds: Record<string, number> = {};
    const failed = (kind: string) => {
      errors++;
      errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
    };
    let stale = 0;
    let converged = 0;
    const t0 = performance.now();
    await Promise.all(
      tokens.map(async (token) => {
        await sleep(Math.random() * spreadMs);
        const started = performance.now();
        starts.push(started - t0);
        try {
          const r = await getWithToken(valueUrl, token, agent);
          const body = JSON.parse(r.body) as { version?: number };
          if (r.status !== 200) failed(String(r.status));
          else if (body.version !== version) stale++;
          else converged++;
        } catch (err) {
          failed((err as NodeJS.ErrnoException).code ?? (err as Error).message);
        }
        latencies.push(performance.now() - started);
      }),
    );
    const wallMs = performance.now() - t0;
    latencies.sort((a, b) => a - b);
    const fetched = (await metric(apiUrl, /rekey_value_fetch_seconds_count\{outcome="ok"\} (\d+)/)) - fetchesBefore;
    const coalesced = (await metric(apiUrl, /rekey_value_fetch_coalesced_total (\d+)/)) - coalescedBefore;
    return {
      refetchSpreadMs: spreadMs,
      peakRequestsPerSecond: peakPerSecond(starts),
      meanRequestsPerSecond: Math.round(tokens.length / Math.max(1, wallMs / 1000)),
      fetchLatencyMs: { p50: Math.round(percentile(latencies, 50)), p99: Math.round(percentile(latencies, 99)), max: Math.round(latencies.at(-1)!) },
      converged,
      errors,
      errorKinds,
      staleVersions: stale,
      wallMs: Math.round(wallMs),
      postgresValueReads: Math.max(0, fetched - coalesced),
    };
  } finally {
    abort.abort();
    agent.destroy();
  }
}

/** Most of `starts` (ms) in any one-second window. */
export function peakPerSecond(starts: number[]): number {
  const sorted = [...starts].sort((a, b) => a - b);
  let peak = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! > 1000) j++;
    peak = Math.max(peak, i - j + 1);
  }
  return peak;
}
