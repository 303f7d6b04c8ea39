import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../errors.ts';
import type { Logger } from '../logger.ts';

export interface MasterKey {
  /** Short fingerprint stored beside every ciphertext, so the key can be rotated later. */
  readonly id: string;
  readonly bytes: Buffer;
}

/** A master key from its base64 text; `variable` names where it came from in the error. */
export function parseMasterKey(raw: string, variable = 'REKEY_MASTER_KEY'): MasterKey {
  const bytes = Buffer.from(raw.trim(), 'base64');
  if (bytes.length !== 32) {
    throw new ConfigError(`${variable}: must be base64 of exactly 32 bytes (got ${bytes.length})`);
  }
  return { id: createHash('sha256').update(bytes).digest('hex').slice(0, 12), bytes };
}

/**
 * REKEY_MASTER_KEY, or outside production a development key generated once and saved to
 * REKEY_DEV_KEY_FILE. The development key is announced with a warning at every start:
 * values encrypted under a key that sits beside the data are not protected at rest.
 */
export function loadMasterKey(
  cfg: { REKEY_MASTER_KEY?: string | undefined; REKEY_DEV_KEY_FILE: string; NODE_ENV: string },
  log: Logger,
): MasterKey {
  if (cfg.REKEY_MASTER_KEY) return parseMasterKey(cfg.REKEY_MASTER_KEY, 'REKEY_MASTER_KEY');
  if (cfg.NODE_ENV === 'production') {
    throw new ConfigError('REKEY_MASTER_KEY: required when NODE_ENV=production');
  }
  const file = cfg.REKEY_DEV_KEY_FILE;
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
  }
  log.warn(
    { keyFile: file },
    'REKEY_MASTER_KEY is not set: using a development master key from a local file. Do not use this in production.',
  );
  return parseMasterKey(readFileSync(file, 'utf8'), `REKEY_DEV_KEY_FILE (${file})`);
}
