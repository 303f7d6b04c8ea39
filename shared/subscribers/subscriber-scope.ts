import { z } from 'zod';

/**
 * A subscriber's scope: exact secret names (`team-a/db`) and prefixes ending in '/'
 * (`team-a/`). A name is in scope when it equals an entry or starts with a prefix entry.
 */
export const scopeEntry = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*\/?$/, "a secret name, or a prefix ending in '/'");

export const scopeSchema = z.array(scopeEntry).min(1).max(100);

export function inScope(scope: readonly string[], secretName: string): boolean {
  return scope.some((entry) => (entry.endsWith('/') ? secretName.startsWith(entry) : secretName === entry));
}
