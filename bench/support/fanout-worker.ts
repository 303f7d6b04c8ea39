/**
 * One process of fan-out subscribers (bench/injector-fanout.ts): runs SDK clients for the
 * tokens it is given, says `ready` on stdout, records when each client verified the event,
 * held the new value and had its ack answered, and prints those times when stdin closes.
 * Several of these keep each process well under its file-descriptor limit.
 */
import { readFileSync } from 'node:fs';
import { remoteEventKeys } from '../../services/injector/event-verifier.ts';
import { RekeyClient } from '../../services/injector/sdk.ts';

const [url, tokensFile, secret, version] = process.argv.slice(2) as [string, string, string, string];
const tokens = JSON.parse(readFileSync(tokensFile, 'utf8')) as string[];
const want = Number(version);
const keys = remoteEventKeys(url);
const clients: RekeyClient[] = [];
const phases = { received: [] as number[], fetched: [] as number[], acked: [] as number[] };
for (let i = 0; i < tokens.length; i += 250) {
  const batch = tokens.slice(i, i + 250).map((token) => new RekeyClient({ url, token, secrets: [secret], keys, reconnectMaxMs: 10_000 }));
  for (const c of batch) {
    c.on('event', (e: { type: string; data: { version: number } }) => e.type === 'dev.rekey.secret.rotated' && e.data.version === want && phases.received.push(Date.now()));
    c.on('rotated', (e: { version: number }) => e.version === want && phases.fetched.push(Date.now()));
    c.on('acked', (e: { version: number }) => e.version === want && phases.acked.push(Date.now()));
  }
  clients.push(...batch);
  await Promise.all(batch.map((c) => c.start({ timeoutMs: 180_000 })));
}
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('close', () => {
  const held = clients.filter((c) => c.version(secret) === want).length;
  // Exit only once the (large) line has left through the pipe.
  process.stdout.write(`${JSON.stringify({ held, ...phases })}\n`, () => process.exit(0));
});
