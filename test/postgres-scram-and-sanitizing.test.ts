import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { connectionConfig } from '../shared/db/pool.ts';
import { ProviderError, UnavailableError } from '../shared/errors.ts';
import { scramSha256Verifier } from '../shared/providers/postgres-target/scram-verifier.ts';
import { sanitizeTargetMessage, targetFailure } from '../shared/providers/target-errors.ts';

describe('SCRAM-SHA-256 verifier', () => {
  it('equals the verifier PostgreSQL itself stores for the same password and salt', async () => {
    // A throwaway role on the shared server (unique name, dropped after): PostgreSQL hashes
    // a plaintext password with a salt of its choosing; ours, given that salt, must match.
    const role = `rekey_t_scram_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(24).toString('base64url');
    const c = new pg.Client(connectionConfig(inject('databaseUrl')));
    await c.connect();
    try {
      await c.query(`SET password_encryption = 'scram-sha-256'`);
      await c.query(`CREATE ROLE ${role} PASSWORD '${password}'`);
      const stored = (await c.query<{ p: string }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [role])).rows[0]!.p;
      const [, iterations, salt] = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored)!;
      expect(await scramSha256Verifier(password, Number(iterations), Buffer.from(salt!, 'base64'))).toBe(stored);
    } finally {
      await c.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
      await c.end();
    }
  });

  it('refuses what SASLprep would change rather than store a verifier that never matches', async () => {
    await expect(scramSha256Verifier('pässword')).rejects.toThrow(/printable ASCII/);
  });
});

describe('target errors', () => {
  const verifier = 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy';
  const password = 'hunter2-hunter2';

  it('cuts secrets, verifiers, hashes, URL credentials and echoed statement fragments out of messages', () => {
    const text = sanitizeTargetMessage(
      `syntax error at or near "${verifier}" for ${password} via postgres://admin:adminpw@db:5432/x; ` +
        `ERR Error in ACL SETUSER modifier '#${'ab'.repeat(32)}': bad`,
      [password],
    );
    for (const leaked of [verifier, password, 'adminpw', 'ab'.repeat(32)]) expect(text).not.toContain(leaked);
    expect(text).toContain('postgres://[redacted]@db:5432/x');
  });

  it('maps an unreachable target to UnavailableError and a refusal to ProviderError, dropping the original error', () => {
    const down = targetFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'set password of app');
    expect(down).toBeInstanceOf(UnavailableError);
    expect(down.message).toBe('set password of app: target unreachable (ECONNREFUSED)');
    const refused = targetFailure(Object.assign(new Error(`role "x" does not exist ${password}`), { code: '42704' }), 'set password of x', [password]);
    expect(refused).toBeInstanceOf(ProviderError);
    expect(refused.message).toBe('set password of x: role "x" does not exist [redacted] [42704]');
    expect(refused.cause).toBeUndefined();
  });
});
