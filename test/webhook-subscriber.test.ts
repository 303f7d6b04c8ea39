import { createServer, type Server } from 'node:http';
import { compactVerify, createRemoteJWKSet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StandardWebhookVerifier } from '../shared/webhooks/standard-webhook.ts';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';

let t: TestEnv;
let rekey: InProcessRekey;
let server: Server;

interface Received {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  at: number;
}
const received: Received[] = [];

beforeAll(async () => {
  t = await createTestEnv({ REKEY_WEBHOOK_BACKOFF_MS: '100' });
  rekey = await startRekey(t);
  // A remote subscriber that answers 500 to the first two deliveries of each message.
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const id = req.headers['webhook-id'];
      const status = received.filter((r) => r.headers['webhook-id'] === id).length < 2 ? 500 : 204;
      received.push({ status, headers: req.headers, body: Buffer.concat(chunks), at: Date.now() });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  await new Promise<void>((r) => server?.close(() => r()));
  await rekey?.stop();
  await t?.cleanup();
});

describe('webhook subscribers', () => {
  it('a webhook subscriber that answers 500 twice receives the event on a later attempt, correctly signed', async () => {
    const port = (server.address() as { port: number }).port;
    expect((await rekey.api('POST', '/v1/secrets', { name: 'remote/key', provider: 'random' })).status).toBe(201);
    await waitFor(async () => (await rekey.api('GET', '/v1/secrets/remote/key')).body.currentVersion === 1, { what: 'v1' });
    const sub = await rekey.api('POST', '/v1/subscribers', { name: 'remote', scope: ['remote/'], webhookUrl: `http://127.0.0.1:${port}/hooks/rekey` });
    expect(sub.status).toBe(201);
    expect(sub.body.webhookSecret).toMatch(/^whsec_/);
    // The secret is shown once.
    expect(JSON.stringify((await rekey.api('GET', '/v1/subscribers')).body)).not.toContain(sub.body.webhookSecret);

    const { body } = await rekey.api('POST', '/v1/secrets/remote/key/rotate', { reason: 'webhook test' });
    const ours = (r: Received) => {
      const e = JSON.parse(r.body.toString());
      return e.type === 'dev.rekey.secret.rotated' && e.data.rotationId === body.rotationId;
    };
    const delivered = await waitFor(async () => received.find((r) => r.status === 204 && ours(r)), { what: 'successful delivery', timeoutMs: 20_000 });
    const rotatedAttempts = received.filter(ours);
    expect(rotatedAttempts.map((r) => r.status).slice(0, 3)).toEqual([500, 500, 204]);
    // Retries reuse one webhook-id, so the receiver can deduplicate; backoff spaced them out.
    expect(new Set(rotatedAttempts.map((r) => r.headers['webhook-id'])).size).toBe(1);

    const verifier = new StandardWebhookVerifier([sub.body.webhookSecret]);
    expect(verifier.verify(delivered.headers, delivered.body)).toMatchObject({ ok: true });
    expect(new StandardWebhookVerifier([`whsec_${Buffer.alloc(32, 7).toString('base64')}`]).verify(delivered.headers, delivered.body).ok).toBe(false);
    const tampered = Buffer.from(delivered.body.toString().replace('remote/key', 'remote/kex'));
    expect(verifier.verify(delivered.headers, tampered).ok).toBe(false);

    const event = JSON.parse(delivered.body.toString());
    expect(event).toMatchObject({ specversion: '1.0', type: 'dev.rekey.secret.rotated', data: { secret: 'remote/key', version: 2, rotationId: body.rotationId } });
    // The embedded JWS verifies against /v1/jwks too; no value anywhere in the payload.
    const { payload } = await compactVerify(event.rekeyjws, createRemoteJWKSet(new URL('/v1/jwks', rekey.baseUrl)));
    expect(JSON.parse(new TextDecoder().decode(payload)).id).toBe(event.id);
    const value = (await rekey.api('GET', '/v1/secrets/remote/key/value')).body.value;
    expect(delivered.body.toString()).not.toContain(value);

    const rotation = (await rekey.api('GET', `/v1/rotations/${body.rotationId}`)).body;
    const d = rotation.deliveries.find((x: { subscriber: string }) => x.subscriber === 'remote');
    expect(d).toMatchObject({ channel: 'webhook', attempts: 3, lastError: null });
    expect(Date.parse(d.deliveredAt)).toBeGreaterThan(0);
    const metrics = await fetch(`${rekey.baseUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/rekey_deliveries_total\{channel="webhook",outcome="retried"\} [2-9]/);
    expect(metrics).toMatch(/rekey_deliveries_total\{channel="webhook",outcome="delivered"\} [1-9]/);
  });
});
