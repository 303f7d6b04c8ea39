import { randomInt } from 'node:crypto';
import { z } from 'zod';
import type { CredentialProvider } from '../provider.ts';

const alphabets = {
  alphanumeric: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
  hex: '0123456789abcdef',
  base64url: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_',
} as const;

const configSchema = z
  .object({
    length: z.number().int().min(16).max(1024).default(40),
    alphabet: z.union([z.enum(['alphanumeric', 'hex', 'base64url']), z.string().min(16).max(256)]).default('alphanumeric'),
    prefix: z.string().max(64).regex(/^[A-Za-z0-9_-]*$/).default(''),
  })
  .strict();

type RandomConfig = z.infer<typeof configSchema>;

/**
 * API keys, tokens and HMAC secrets. The stored version is the credential, so set, test
 * and revoke have nothing to do at a target; revocation is the version's state change.
 */
export const randomProvider: CredentialProvider<RandomConfig> = {
  type: 'random',
  configSchema,
  async mint({ config }) {
    const chars = config.alphabet in alphabets ? alphabets[config.alphabet as keyof typeof alphabets] : config.alphabet;
    let out = config.prefix;
    // randomInt is uniform (rejection sampling), so no alphabet bias.
    for (let i = 0; i < config.length; i++) out += chars[randomInt(chars.length)];
    return { value: out };
  },
  async set() {},
  async test() {},
  async revoke() {},
};
