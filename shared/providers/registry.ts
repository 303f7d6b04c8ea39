import type { CredentialProvider } from './provider.ts';
import { randomProvider } from './random/random-provider.ts';
import { jwtSigningKeyProvider } from './jwt-signing-key/jwt-signing-key-provider.ts';
import { postgresPasswordProvider } from './postgres-password/postgres-password-provider.ts';
import { postgresDynamicProvider } from './postgres-dynamic/postgres-dynamic-provider.ts';
import { redisAclProvider } from './redis-acl/redis-acl-provider.ts';

/** Every credential provider rekey knows, by type. Adding a provider = one folder + one line here. */
export const providers: Readonly<Record<string, CredentialProvider<any>>> = {
  [randomProvider.type]: randomProvider,
  [jwtSigningKeyProvider.type]: jwtSigningKeyProvider,
  [postgresPasswordProvider.type]: postgresPasswordProvider,
  [postgresDynamicProvider.type]: postgresDynamicProvider,
  [redisAclProvider.type]: redisAclProvider,
};

export const providerTypes = Object.keys(providers);

export function getProvider(type: string): CredentialProvider<any> | undefined {
  return Object.hasOwn(providers, type) ? providers[type] : undefined;
}
