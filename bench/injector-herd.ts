/**
 * Herd: 10,000 injectors refetch after one rotation, twice in the same run —
 *   - with the event's refetch-spread hint honoured and the api coalescing concurrent reads,
 *   - without either (REKEY_REFETCH_SPREAD_MAX_MS=0, REKEY_COALESCE_VALUE_READS=false) —
 * reporting peak api requests per second, p50/p99 fetch latency, errors, and how many
 * PostgreSQL reads the fetches cost.
 *
 * Injectors are simulated at the fetch (already known to the api: one earlier fetch each): each has its own subscriber token and schedules its
 * GET /v1/secrets/{name}/value exactly as the SDK does (a uniform random delay within the
 * hint of the signed event, which one SSE listener here receives and verifies).
 *
 *   npm run bench:herd [-- --injectors 10000 --refetch-rate 1000]
 */
import { parseArgs } from 'node:util';
import { Agent, request } from 'node:http';
import { remoteEventKeys, verifyEvent } from '../services/injector/event-verifier.ts';
import { readSse } from '../services/injector/sse-reader.ts';
import { percentile, sleep, startBenchRekey } from './support/bench-rekey.ts';

const { values } = parseArgs({ options: { injectors: { type: 'string', default: '10000' }, 'refetch-rate': { type: 'string', default: '1000' } } });
const n = Number(values.injectors);
const refetchRate = values['refetch-rate'];

function get(url: string, token: string, agent: Agent): Promise<{ status: number; body: string }> {
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

async function herd(label: string, env: Record<string, string>) {
  const rekey = await startBenchRekey(env);
  // Each injector is its own client: no socket pool capping concurrency.
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  try {
    await rekey.api('POST', '/v1/secrets', { name: 'herd/key', provider: 'random', policy: { grace: '10m' } });
    while ((await rekey.api('GET', '/v1/secrets/herd/key')).currentVersion !== 1) await sleep(50);
    const subs = await rekey.subscribers(n, ['herd/']);
    const keys = remoteEventKeys(rekey.url);

    // One listener learns of the rotation the way every injector would.
    const abort = new AbortController();
    const res = await fetch(`${rekey.url}/v1/events`, { headers: { authorization: `Bearer ${subs[0]!.token}` }, signal: abort.signal });
    const eventSeen = (async () => {
      for await (const msg of readSse(res.body!)) {
        if (msg.event !== 'dev.rekey.secret.rotated') continue;
        const event = await verifyEvent(msg.data, keys);
        if (event?.data.version === 2) return event;
      }
      throw new Error('stream ended');
    })();
    // The injectors are already connected before the rotation (their tokens verified and
    // their subscriber rows cached by the api, as their SSE connections would have done):
    // one fetch each, 200 at a time. The herd below measures the refetch, not first contact.
    for (let i = 0; i < subs.length; i += 200) {
      await Promise.all(subs.slice(i, i + 200).map((s) => get(`${rekey.url}/v1/secrets/herd/key/value`, s.token, agent).catch(() => null)));
    }
    const fetchesBefore = await rekey.metric(/rekey_value_fetch_seconds_count\{outcome="ok"\} (\d+)/);
    const coalescedBefore = await rekey.metric(/rekey_value_fetch_coalesced_total (\d+)/);
    await rekey.api('POST', '/v1/secrets/herd/key/rotate', { reason: 'herd bench' });
    const event = await eventSeen;
    abort.abort();
    const spreadMs = event.data.refetchSpreadMs ?? 0;

    const starts: number[] = [];
    const latencies: number[] = [];
    let errors = 0;
    let stale = 0;
    const t0 = performance.now();
    await Promise.all(
      subs.map(async (s) => {
        await sleep(Math.random() * spreadMs);
        const started = performance.now();
        starts.push(started - t0);
        try {
          const r = await get(`${rekey.url}/v1/secrets/herd/key/value`, s.token, agent);
          const body = JSON.parse(r.body) as { version?: number };
          if (r.status !== 200) errors++;
          else if (body.version !== 2) stale++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - started);
      }),
    );
    const wallMs = performance.now() - t0;
    // Peak requests started in any one-second window (100 ms steps).
    starts.sort((a, b) => a - b);
    let peak = 0;
    for (let i = 0, j = 0; i < starts.length; i++) {
      while (starts[i]! - starts[j]! > 1000) j++;
      peak = Math.max(peak, i - j + 1);
    }
    latencies.sort((a, b) => a - b);
    const fetched = (await rekey.metric(/rekey_value_fetch_seconds_count\{outcome="ok"\} (\d+)/)) - fetchesBefore;
    const coalesced = (await rekey.metric(/rekey_value_fetch_coalesced_total (\d+)/)) - coalescedBefore;
    return {
      mode: label,
      injectors: n,
      refetchRatePerSecond: label.startsWith('spread') ? Number(refetchRate) : null,
      refetchSpreadMs: spreadMs,
      peakRequestsPerSecond: peak,
      fetchLatencyMs: { p50: Math.round(percentile(latencies, 50)), p99: Math.round(percentile(latencies, 99)), max: Math.round(latencies.at(-1)!) },
      errors,
      staleVersions: stale,
      wallMs: Math.round(wallMs),
      postgresValueReads: Math.max(0, fetched - coalesced),
    };
  } finally {
    agent.destroy();
    await rekey.stop();
  }
}

const withHint = await herd('spread-hint+coalescing', { REKEY_REFETCH_RATE: refetchRate });
const without = await herd('no-spread,no-coalescing', { REKEY_REFETCH_SPREAD_MAX_MS: '0', REKEY_COALESCE_VALUE_READS: 'false' });
process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'injector-herd',
      results: [withHint, without],
      ratios: {
        peakRequestsPerSecond: Number((withHint.peakRequestsPerSecond / without.peakRequestsPerSecond).toFixed(3)),
        p99FetchLatency: Number((withHint.fetchLatencyMs.p99 / without.fetchLatencyMs.p99).toFixed(3)),
        postgresValueReads: Number((withHint.postgresValueReads / Math.max(1, without.postgresValueReads)).toFixed(3)),
      },
    },
    null,
    2,
  )}\n`,
);
process.exit(0);
