import { Redis } from 'ioredis';
import { compactVerify, createLocalJWKSet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventChannels } from '../shared/events/invalidation-event.ts';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';

let t: TestEnv;
let rekey: InProcessRekey;
let subscriber: Redis;
const received: string[] = [];

beforeAll(async () => {
  t = await createTestEnv();
  rekey = await startRekey(t);
  subscriber = new Redis(t.redisUrl);
  await subscriber.subscribe(eventChannels(t.prefix).pubsub);
  subscriber.on('message', (_channel, message) => received.push(message));
});
afterAll(async () => {
  subscriber?.disconnect();
  await rekey?.stop();
  await t?.cleanup();
});

describe('invalidation events', () => {
  it('publishes signed rotated and revoked CloudEvents to the stream and the channel, without the value', async () => {
    await rekey.api('POST', '/v1/secrets', { name: 'events/key', provider: 'random' });
    await waitFor(async () => (await rekey.api('GET', '/v1/secrets/events/key/value')).status === 200, { what: 'version 1' });
    const { body: before } = await rekey.api('GET', '/v1/secrets/events/key/value');
    const { body: rotation } = await rekey.api('POST', '/v1/secrets/events/key/rotate', { reason: 'events', emergency: true });

    const { stream } = eventChannels(t.prefix);
    const entries = await waitFor(async () => {
      const all = await t.redis.xrange(stream, '-', '+');
      const mine = all.filter(([, fields]) => fields[1]!.startsWith(rotation.rotationId));
      return mine.length === 2 ? mine : null;
    }, { what: 'rotated and revoked events in the stream' });

    const jwks = createLocalJWKSet(await fetch(`${rekey.baseUrl}/v1/jwks`).then((r) => r.json()));
    const events = [];
    for (const [, fields] of entries) {
      const jws = fields[fields.indexOf('jws') + 1]!;
      const { payload, protectedHeader } = await compactVerify(jws, jwks);
      expect(protectedHeader.typ).toBe('cloudevents+jws');
      events.push(JSON.parse(new TextDecoder().decode(payload)));
      expect(jws).not.toContain(before.value);
    }
    expect(events.map((e) => e.type)).toEqual(['dev.rekey.secret.rotated', 'dev.rekey.secret.revoked']);
    for (const e of events) {
      expect(e).toMatchObject({ specversion: '1.0', source: 'rekey', subject: 'events/key', datacontenttype: 'application/json' });
      expect(e.data).toMatchObject({ secret: 'events/key', version: 2, previousVersion: 1, rotationId: rotation.rotationId, emergency: true });
      expect(JSON.stringify(e)).not.toContain(before.value);
    }
    // The same signed events went out on the pub/sub channel.
    await waitFor(async () => entries.every(([, f]) => received.includes(f[f.indexOf('jws') + 1]!)), { what: 'pub/sub delivery' });
  });

  it('rejects an event signed by anyone else', async () => {
    const { generateKeyPair, CompactSign } = await import('jose');
    const { privateKey } = await generateKeyPair('EdDSA');
    const forged = await new CompactSign(new TextEncoder().encode('{"type":"dev.rekey.secret.rotated"}'))
      .setProtectedHeader({ alg: 'EdDSA', kid: 'rekey-forged' })
      .sign(privateKey);
    const jwks = createLocalJWKSet(await fetch(`${rekey.baseUrl}/v1/jwks`).then((r) => r.json()));
    await expect(compactVerify(forged, jwks)).rejects.toThrow();
  });
});
