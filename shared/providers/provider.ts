import type { z } from 'zod';
import type { Logger } from '../logger.ts';

/**
 * One credential provider = one folder behind this interface, registered in
 * `registry.ts`. The rotator calls mint → set → test → (activate) → revoke; every method
 * must be idempotent, because a step is retried after a crash or a lost lock.
 *
 * Values pass through providers in memory only. Anything a provider returns in `public`
 * is stored in clear and may be shown by the API and in events: never put a secret there.
 */
export interface Credential {
  version: number;
  value: string;
  public: Record<string, unknown>;
}

export interface MintedCredential {
  value: string;
  public?: Record<string, unknown>;
}

export interface ProviderContext<C> {
  secretName: string;
  config: C;
  log: Logger;
  /** Resolves a configured reference (`env:VAR` or `file:/path`) to a connection string or credential. */
  resolveReference(ref: string): string;
}

export interface RevokeOptions {
  /** Also end sessions opened with the old credential where the target can (emergency default). */
  terminateSessions: boolean;
  /**
   * When the version that replaced `old` became current. Sessions a target opened before
   * this were opened with `old` (or older); targets that cannot tell which password a
   * session used (one password per role) end only those. Null: unknown, end them all.
   */
  supersededAt?: Date | null;
}

export interface CredentialProvider<C = unknown> {
  readonly type: string;
  /** Validates the non-secret configuration given when a secret is created. */
  readonly configSchema: z.ZodType<C>;
  /** Creates the next credential. `current` is the active one, if any (alternating strategies use it). */
  mint(ctx: ProviderContext<C>, next: { version: number }, current: Credential | null): Promise<MintedCredential>;
  /** Makes the target accept `next`; `current` must keep working until revoke. */
  set(ctx: ProviderContext<C>, next: Credential, current: Credential | null): Promise<void>;
  /** Proves `next` works at the target (logs in with it). Throws ProviderError if not. */
  test(ctx: ProviderContext<C>, next: Credential): Promise<void>;
  /** Makes `old` stop working at the target; succeeds if it is already dead. */
  revoke(ctx: ProviderContext<C>, old: Credential, opts: RevokeOptions): Promise<void>;
  /**
   * Undoes `set` for a version that failed before activation, so the target accepts
   * `current` again (a target with one password per account reverts to it). Best effort:
   * the rotator logs a failure here and still marks the rotation failed. Optional for
   * providers whose set leaves `current` untouched.
   */
  discard?(ctx: ProviderContext<C>, pending: Credential, current: Credential | null): Promise<void>;
}
