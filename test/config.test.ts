import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { apiEnv, baseEnv, parseEnv, workerEnv } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';

describe('configuration', () => {
  it('applies the documented defaults', () => {
    const cfg = parseEnv(baseEnv, {});
    expect(cfg.REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(cfg.DATABASE_URL).toBe('postgres://127.0.0.1:5432/rekey');
  });

  it.each([
    [baseEnv, { REDIS_URL: 'not a url' }, 'REDIS_URL'],
    [baseEnv, { LOG_LEVEL: 'chatty' }, 'LOG_LEVEL'],
    [apiEnv, { PORT: 'eighty', REKEY_ADMIN_TOKEN: 'x'.repeat(20) }, 'PORT'],
    [apiEnv, {}, 'REKEY_ADMIN_TOKEN'],
    [workerEnv, { ROTATOR_CONCURRENCY: '0' }, 'ROTATOR_CONCURRENCY'],
  ] as const)('names the variable at fault (%#)', (shape, env, variable) => {
    expect(() => parseEnv(shape, env)).toThrow(ConfigError);
    expect(() => parseEnv(shape, env)).toThrow(variable);
  });

  it('stops `rekey start` with the variable name and a non-zero exit', () => {
    const result = spawnSync(process.execPath, ['services/cli/rekey.mjs', 'start', 'api'], {
      env: { PATH: process.env.PATH, REKEY_ADMIN_TOKEN: 'x'.repeat(20), PORT: 'eighty' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('PORT');
  });

  it('refuses a master key that is not 32 bytes, naming it', () => {
    const result = spawnSync(process.execPath, ['services/cli/rekey.mjs', 'start', 'rotator'], {
      env: { PATH: process.env.PATH, REKEY_MASTER_KEY: Buffer.from('short').toString('base64') },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('REKEY_MASTER_KEY');
  });
});
