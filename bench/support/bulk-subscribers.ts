import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { SystemKeys } from '../../shared/crypto/system-keys.ts';
import type { ValueCipher } from '../../shared/crypto/value-cipher.ts';
import { issueSubscriberToken } from '../../shared/subscribers/subscriber-token.ts';

/**
 * Registers n subscribers in bulk (SQL, tokens signed here with rekey's own key), marked
 * live: registering 10,000 through the api would take longer than the herd itself. Shared by
 * the herd bench (bench/injector-herd.ts) and chaos scenario 9 (chaos/scenarios/renewal-herd.ts).
 */
export async function registerSubscribers(pool: pg.Pool, cipher: ValueCipher, n: number, scope: string[]): Promise<{ id: string; token: string }[]> {
  const keys = await SystemKeys.load(pool, cipher);
  const out: { id: string; token: string }[] = [];
  const expiresAt = new Date(Date.now() + 3_600_000);
  for (let i = 0; i < n; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({ id: randomUUID(), tokenId: randomUUID(), name: `bench-${i + j}` }));
    await pool.query(
      `INSERT INTO subscribers (id, name, scope, token_id, token_expires_at, last_seen_at)
       SELECT unnest($1::uuid[]), unnest($2::text[]), $3, unnest($4::uuid[]), $5, now()`,
      [batch.map((b) => b.id), batch.map((b) => b.name), scope, batch.map((b) => b.tokenId), expiresAt],
    );
    for (const b of batch) out.push({ id: b.id, token: await issueSubscriberToken(keys, { subscriberId: b.id, tokenId: b.tokenId, scope, expiresAt }) });
  }
  return out;
}
