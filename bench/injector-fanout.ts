/**
 * Fan-out: from a rotation's activation to each subscriber's ack, p50/p99, for 1,000 and
 * 10,000 subscribers (SDK clients on the api's SSE stream, in this process; rekey in a
 * child process), beside a raw Redis pub/sub round trip to the same number of
 * subscribers (publish → every subscriber → an ack back to the publisher) measured in the
 * same run on a private redis-server.
 *
 * The refetch-spread hint is switched off here (REKEY_REFETCH_SPREAD_MAX_MS=0): this
 * measures the pipeline itself; bench/injector-herd.ts measures the spread.
 *
 *   npm run bench:fanout [-- --subscribers 1000,10000]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, percentile, sleep, startBenchRekey } from './support/bench-rekey.ts';

const { values } = parseArgs({ options: { subscribers: { type: 'string', default: '1000,10000' } } });
const sizes = values.subscribers.split(',').map(Number);

/** A raw pub/sub round trip: N subscriber sockets, one publish, each subscriber acks on a shared connection. */
async function redisRoundTrip(port: number, n: number): Promise<{ p50Ms: number; p99Ms: number; lastMs: number }> {
  const sockets: Socket[] = [];
  const ackConn = new Redis({ port, host: '127.0.0.1' });
  const ackSub = new Redis({ port, host: '127.0.0.1' });
  const latencies: number[] = [];
  let sentAt = 0;
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  await ackSub.subscribe('acks');
  ackSub.on('message', () => {
    latencies.push(performance.now() - sentAt);
    if (latencies.length === n) finish();
  });
  let subscribed = 0;
  let allSubscribed!: () => void;
  const ready = new Promise<void>((r) => (allSubscribed = r));
  for (let i = 0; i < n; i++) {
    const s = new Socket();
    let confirmed = false;
    s.on('data', (d) => {
      if (!confirmed) {
        confirmed = true;
        if (++subscribed === n) allSubscribed();
        if (!d.includes('message')) return;
      }
      // The subscriber got the message: ack it (a pipelined PUBLISH on the shared connection).
      void ackConn.publish('acks', String(i));
    });
    s.on('error', () => {});
    s.connect(port, '127.0.0.1', () => s.write('SUBSCRIBE fanout\r\n'));
    sockets.push(s);
    if (i % 500 === 499) await sleep(10);
  }
  await ready;
  const pub = new Redis({ port, host: '127.0.0.1' });
  sentAt = performance.now();
  await pub.publish('fanout', 'rotated');
  await done;
  for (const s of sockets) s.destroy();
  for (const c of [ackConn, ackSub, pub]) c.disconnect();
  latencies.sort((a, b) => a - b);
  return { p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)), lastMs: round(latencies.at(-1)!) };
}

async function rekeyFanout(n: number) {
  // Two api replicas past 5,000 subscribers: one api process holding 10,000 SSE sockets plus
  // their fetches exceeds this machine's 20,000 file descriptors per process.
  const rekey = await startBenchRekey({ REKEY_REFETCH_SPREAD_MAX_MS: '0', REKEY_REFETCH_SPREAD_EMERGENCY_MAX_MS: '0' }, { apiReplicas: n > 5000 ? 2 : 1 });
  const dir = mkdtempSync(join(tmpdir(), 'rekey-fanout-'));
  const workers: ChildProcess[] = [];
  try {
    await rekey.api('POST', '/v1/secrets', { name: 'fanout/key', provider: 'random', policy: { grace: '10m' } });
    while ((await rekey.api('GET', '/v1/secrets/fanout/key')).currentVersion !== 1) await sleep(50);
    const subs = await rekey.subscribers(n, ['fanout/']);
    // Subscribers in several processes: each holds an SSE socket and fetch sockets per client.
    const perWorker = 1000;
    const connectStarted = performance.now();
    const outputs: Promise<string>[] = [];
    const seen: string[] = [];
    for (let i = 0; i < n; i += perWorker) {
      const file = join(dir, `tokens-${i}.json`);
      writeFileSync(file, JSON.stringify(subs.slice(i, i + perWorker).map((s) => s.token)), { mode: 0o600 });
      const apiUrl = rekey.urls[(i / perWorker) % rekey.urls.length]!;
      const w = spawn('node', ['--import', 'tsx', 'bench/support/fanout-worker.ts', apiUrl, file, 'fanout/key', '2'], { stdio: ['pipe', 'pipe', 'inherit'] });
      process.once('exit', () => w.kill('SIGKILL'));
      workers.push(w);
      const k = seen.push('') - 1;
      outputs.push(
        new Promise((resolve) => {
          w.stdout!.on('data', (d) => (seen[k] += d));
          w.once('exit', () => resolve(seen[k]!));
        }),
      );
    }
    while (!seen.every((o) => o.includes('ready'))) {
      if (workers.some((w) => w.exitCode !== null)) throw new Error('a subscriber process exited');
      await sleep(200);
    }
    const connectSeconds = (performance.now() - connectStarted) / 1000;
    await sleep(3000); // last_seen flushed for everyone; startup acks settled
    const rotation = await rekey.api('POST', '/v1/secrets/fanout/key/rotate', { reason: 'bench' });
    const deadline = Date.now() + 300_000;
    let r: any;
    while (!(r = (await rekey.pool.query('SELECT * FROM rotations WHERE id = $1', [rotation.rotationId])).rows[0])?.propagated_at) {
      if (Date.now() > deadline) throw new Error('propagation did not complete');
      await sleep(100);
    }
    const { rows } = await rekey.pool.query(
      `SELECT count(*)::int AS n,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99, max(ms) AS max
       FROM (SELECT extract(epoch FROM d.acked_at - r.activated_at) * 1000 AS ms FROM deliveries d JOIN rotations r ON r.id = d.rotation_id WHERE r.id = $1) t`,
      [rotation.rotationId],
    );
    const published = (await rekey.pool.query(`SELECT published_at FROM events WHERE rotation_id = $1 AND type = 'dev.rekey.secret.rotated'`, [rotation.rotationId])).rows[0].published_at as Date;
    for (const w of workers) w.stdin!.end();
    const reports = (await Promise.all(outputs)).map((o) => JSON.parse(o.split('\n').filter((l) => l.startsWith('{')).pop()!));
    const merged = { received: reports.flatMap((x) => x.received), fetched: reports.flatMap((x) => x.fetched), acked: reports.flatMap((x) => x.acked) };
    const at = (xs: number[], p: number) => round(percentile([...xs].sort((a, b) => a - b), p) - r.activated_at.getTime());
    return {
      subscribers: n,
      subscriberProcesses: workers.length,
      apiReplicas: rekey.urls.length,
      acked: rows[0].n,
      holdingNewVersion: reports.reduce((a, x) => a + x.held, 0),
      activationToAckMs: { p50: round(rows[0].p50), p99: round(rows[0].p99), max: round(rows[0].max) },
      activationToEventPublishedMs: round(published.getTime() - r.activated_at.getTime()),
      clientPhasesFromActivationMs: Object.fromEntries(Object.entries(merged).map(([k, xs]) => [k, { p50: at(xs, 50), p99: at(xs, 99) }])),
      activationToPropagatedMs: round(r.propagated_at.getTime() - r.activated_at.getTime()),
      connectSeconds: round(connectSeconds),
    };
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await rekey.stop();
  }
}

const round = (x: number) => Math.round(x * 10) / 10;

const redisPort = await freePort();
process.setMaxListeners(100);
// process.exit runs the 'exit' hooks that kill every child (rekey, subscriber processes, redis).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(1));
const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxclients', '19000'], { stdio: 'ignore' });
process.once('exit', () => redis.kill('SIGKILL'));
try {
  await sleep(300);
  const results = [];
  for (const n of sizes) {
    const baseline = await redisRoundTrip(redisPort, n);
    const rekey = await rekeyFanout(n);
    results.push({ ...rekey, baselineRedisPubSubRoundTripMs: baseline, ratioP99ToBaseline: round(rekey.activationToAckMs.p99 / baseline.p99Ms) });
    process.stderr.write(`${JSON.stringify(results.at(-1))}\n`); // progress, in case a larger size fails
  }
  process.stdout.write(`${JSON.stringify({ bench: 'injector-fanout', results }, null, 2)}\n`);
} finally {
  redis.kill('SIGKILL');
}
process.exit(0);
