import { z } from 'zod';

/**
 * Where a provider finds a target's admin connection: `env:VARIABLE` or `file:/path`,
 * resolved at each use by ProviderContext.resolveReference. A secret's config names the
 * reference, never the credential, so config stays non-secret (it is shown by the API).
 */
export const credentialReference = z
  .string()
  .regex(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:\/\S+)$/, 'must be a reference, env:VARIABLE or file:/absolute/path, never the credential itself');
