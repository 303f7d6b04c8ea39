/**
 * Herd: 10,000 injectors refetch after one rotation, twice in the same run —
 *   - with the event's refetch-spread hint honoured and the api coalescing concurrent reads,
 *   - without either (REKEY_REFETCH_SPREAD_MAX_MS=0, REKEY_COALESCE_VALUE_READS=false) —
 * reporting peak api requests per second, p50/p99 fetch latency, errors, and how many
 * PostgreSQL reads the fetches cost. The herd itself is bench/support/refetch-herd.ts
 * (shared with chaos scenario 9, which checks the same herd's invariants).
 *
 *   npm run bench:herd [-- --injectors 10000 --refetch-rate 1000]
 */
import { parseArgs } from 'node:util';
import { sleep, startBenchRekey } from './support/bench-rekey.ts';
import { refetchHerd } from './support/refetch-herd.ts';

const { values } = parseArgs({ options: { injectors: { type: 'string', default: '10000' }, 'refetch-rate': { type: 'string', default: '1000' } } });
const n = Number(values.injectors);
const refetchRate = values['refetch-rate'];

async function herd(label: string, env: Record<string, string>) {
  const rekey = await startBenchRekey(env);
  try {
    await rekey.api('POST', '/v1/secrets', { name: 'herd/key', provider: 'random', policy: { grace: '10m' } });
    while ((await rekey.api('GET', '/v1/secrets/herd/key')).currentVersion !== 1) await sleep(50);
    const subs = await rekey.subscribers(n, ['herd/']);
    const r = await refetchHerd({
      apiUrl: rekey.url,
      secret: 'herd/key',
      version: 2,
      tokens: subs.map((s) => s.token),
      rotate: async () => void (await rekey.api('POST', '/v1/secrets/herd/key/rotate', { reason: 'herd bench' })),
    });
    return {
      mode: label,
      injectors: n,
      refetchRatePerSecond: label.startsWith('spread') ? Number(refetchRate) : null,
      refetchSpreadMs: r.refetchSpreadMs,
      peakRequestsPerSecond: r.peakRequestsPerSecond,
      fetchLatencyMs: r.fetchLatencyMs,
      errors: r.errors,
      staleVersions: r.staleVersions,
      wallMs: r.wallMs,
      postgresValueReads: r.postgresValueReads,
    };
  } finally {
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
