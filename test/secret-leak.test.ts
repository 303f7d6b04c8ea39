import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { ValueCipher } from '../shared/crypto/value-cipher.ts';
import { parseMasterKey } from '../shared/crypto/master-key.ts';
import { connectionConfig } from '../shared/db/pool.ts';
import { openCredential } from '../shared/db/version-store.ts';
import type { VersionRow } from '../shared/db/rows.ts';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env.ts';
import { startRekey, type InProcessRekey } from './support/rekey-process.ts';

let t: TestEnv;
let rekey: InProcessRekey;

beforeAll(async () => {
  t = await createTestEnv({ LOG_LEVEL: 'trace' });
  rekey = await startRekey(t);
});
afterAll(async () => {
  await rekey?.stop();
  await t?.cleanup();
});

/** Every value stored under the test's prefix, whatever the key type (BullMQ jobs, streams, …). */
async function dumpRedis(redis: Redis, prefix: string): Promise<string> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      out.push(key);
      if (type === 'string') out.push((await redis.get(key)) ?? '');
      else if (type === 'hash') out.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'list') out.push(JSON.stringify(await redis.lrange(key, 0, -1)));
      else if (type === 'set') out.push(JSON.stringify(await redis.smembers(key)));
      else if (type === 'zset') out.push(JSON.stringify(await redis.zrange(key, 0, -1)));
      else if (type === 'stream') out.push(JSON.stringify(await redis.xrange(key, '-', '+')));
    }
  } while (cursor !== '0');
  return out.join('\n');
}

describe('secret values never leak', () => {
  it('finds no value in Redis, in any log line, or in plaintext in a dump of PostgreSQL', async () => {
    const names = ['leak/api-key', 'leak/signing-key'];
    await rekey.api('POST', '/v1/secrets', { name: names[0], provider: 'random', policy: { interval: '1s' } });
    await rekey.api('POST', '/v1/secrets', { name: names[1], provider: 'jwt-signing-key', policy: { interval: '1s' } });
    await rekey.api('POST', '/v1/secrets/leak/api-key/rotate', { reason: 'leak test', emergency: true });
    await waitFor(async () => {
      const { rows } = await t.pool.query(`SELECT count(*)::int AS n FROM rotations WHERE status = 'completed' AND trigger = 'schedule'`);
      return rows[0].n >= 4;
    }, { what: 'several scheduled rotations', timeoutMs: 30_000 });

    // The canaries: every value rekey minted, decrypted here with the test's master key.
    const cipher = new ValueCipher(parseMasterKey(t.env.REKEY_MASTER_KEY!));
    const { rows } = await t.pool.query<VersionRow & { name: string }>(
      `SELECT v.*, s.name FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE v.ciphertext IS NOT NULL`,
    );
    const canaries = rows.map((r) => openCredential(cipher, r.name, r).value);
    expect(canaries.length).toBeGreaterThanOrEqual(6);
    // For signing keys the private scalar `d` is the secret part of the value.
    const needles = canaries.flatMap((v) => (v.startsWith('{') ? [v, JSON.parse(v).d as string] : [v]));

    const redisDump = await dumpRedis(t.redis, t.prefix);
    expect(redisDump.length).toBeGreaterThan(0);
    const logs = rekey.logs.text();
    expect(logs).toContain('new version is current');
    const pgDump = execFileSync('pg_dump', ['--data-only', connectionConfig(t.databaseUrl).connectionString!], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    expect(pgDump).toContain('secret_versions');

    for (const needle of needles) {
      expect(redisDump.includes(needle), 'value found in Redis').toBe(false);
      expect(logs.includes(needle), 'value found in logs').toBe(false);
      expect(pgDump.includes(needle), 'value found in plaintext in PostgreSQL').toBe(false);
    }
  });

  it('does not open a value under another secret name or version (bound as associated data)', async () => {
    const { rows } = await t.pool.query<VersionRow & { name: string }>(
      `SELECT v.*, s.name FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE v.ciphertext IS NOT NULL LIMIT 1`,
    );
    const row = rows[0]!;
    const cipher = new ValueCipher(parseMasterKey(t.env.REKEY_MASTER_KEY!));
    expect(() => openCredential(cipher, row.name, row)).not.toThrow();
    expect(() => openCredential(cipher, `${row.name}-other`, row)).toThrow();
    expect(() => openCredential(cipher, row.name, { ...row, version: row.version + 1 })).toThrow();
  });
});
