import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type pg from 'pg';
import { findSubscribers, touchSubscribers } from '../../../shared/db/subscriber-store.ts';
import { ForbiddenError, UnauthorizedError } from '../../../shared/errors.ts';
import { inScope } from '../../../shared/subscribers/subscriber-scope.ts';
import { SubscriberTokenVerifier } from '../../../shared/subscribers/subscriber-token.ts';

export type Principal = { kind: 'admin' } | { kind: 'subscriber'; id: string; name: string; scope: string[] };

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** What a cached subscriber lookup holds: enough to decide, nothing secret. */
interface CachedSubscriber {
  at: number;
  live: { name: string; scope: string[]; tokenId: string | null } | null;
}

/**
 * Who is calling: the admin token, or a subscriber token. A subscriber token must verify
 * (subscriber-token.ts) AND name the live subscriber's current token id. That lookup is
 * cached for `cacheMs` and dropped at once when any rekey process publishes a revocation
 * (`forget`), so a revoked token stops working immediately on every api, and within
 * `cacheMs` even if that message was lost with Redis.
 */
export class SubscriberAuth {
  private readonly verifier: SubscriberTokenVerifier;
  private readonly cache = new Map<string, CachedSubscriber>();
  private readonly adminDigest: Buffer;
  private readonly seen = new Set<string>();
  private readonly touchedAt = new Map<string, number>();
  private flushing = false;
  private firstSightScheduled = false;
  private readonly pending = new Map<string, { resolve: (v: CachedSubscriber['live']) => void; reject: (e: unknown) => void }[]>();
  private flushScheduled = false;
  /** Tokens that verified, until they expire: the signature check is not redone on every request. */
  private readonly verified = new Map<string, { claims: { subscriberId: string; tokenId: string }; exp: number }>();

  constructor(
    private readonly deps: { pool: pg.Pool; adminToken: string; cacheMs: number; touchEveryMs: number; onRefused: (req: FastifyRequest) => void },
  ) {
    this.verifier = new SubscriberTokenVerifier(deps.pool);
    this.adminDigest = digest(deps.adminToken);
  }

  async authenticate(req: FastifyRequest): Promise<Principal> {
    try {
      return await this.principalOf(req.headers.authorization);
    } catch (err) {
      this.deps.onRefused(req);
      throw err;
    }
  }

  private async principalOf(header: string | undefined): Promise<Principal> {
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!token) throw new UnauthorizedError('missing bearer token');
    if (timingSafeEqual(digest(token), this.adminDigest)) return { kind: 'admin' };
    if (token.split('.').length !== 3) throw new UnauthorizedError('invalid bearer token');
    const claims = await this.verifiedClaims(token);
    const sub = await this.lookup(claims.subscriberId);
    if (!sub || sub.tokenId !== claims.tokenId) throw new UnauthorizedError('subscriber token was revoked');
    this.seen.add(claims.subscriberId);
    this.firstSight(claims.subscriberId);
    return { kind: 'subscriber', id: claims.subscriberId, name: sub.name, scope: sub.scope };
  }

  private async lookup(id: string): Promise<CachedSubscriber['live']> {
    const hit = this.cache.get(id);
    if (hit && Date.now() - hit.at < this.deps.cacheMs) return hit.live;
    return this.batched(id);
  }

  /**
   * Cache misses that arrive in the same tick share one query: a fleet reconnecting or
   * refetching at once costs PostgreSQL one round trip per ~1000 subscribers, not one each.
   */
  private batched(id: string): Promise<CachedSubscriber['live']> {
    let waiters = this.pending.get(id);
    if (!waiters) this.pending.set(id, (waiters = []));
    const promise = new Promise<CachedSubscriber['live']>((resolve, reject) => waiters!.push({ resolve, reject }));
    // One lookup query in flight at a time: misses arriving meanwhile wait for the next one.
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => void this.flushLookups());
    }
    return promise;
  }

  private async flushLookups(): Promise<void> {
    while (this.pending.size) await this.lookupBatch();
    this.flushScheduled = false;
  }

  private async lookupBatch(): Promise<void> {
    const batch = new Map(this.pending);
    this.pending.clear();
    const ids = [...batch.keys()];
    for (let i = 0; i < ids.length; i += 1000) {
      const chunk = ids.slice(i, i + 1000);
      try {
        const rows = await findSubscribers(this.deps.pool, chunk);
        const byId = new Map(rows.map((r) => [r.id, r]));
        if (this.cache.size > 100_000) this.cache.clear();
        for (const sid of chunk) {
          const row = byId.get(sid);
          const live = row && !row.revoked_at ? { name: row.name, scope: row.scope, tokenId: row.token_id } : null;
          this.cache.set(sid, { at: Date.now(), live });
          for (const w of batch.get(sid)!) w.resolve(live);
        }
      } catch (err) {
        for (const sid of chunk) for (const w of batch.get(sid)!) w.reject(err);
      }
    }
  }

  private async verifiedClaims(token: string) {
    const hit = this.verified.get(token);
    if (hit && hit.exp > Date.now()) return hit.claims;
    const claims = await this.verifier.verify(token);
    if (this.verified.size > 100_000) this.verified.clear();
    this.verified.set(token, { claims: { subscriberId: claims.subscriberId, tokenId: claims.tokenId }, exp: Math.min(claims.expiresAt, Date.now() + 10 * 60_000) });
    return claims;
  }

  /** A subscriber was revoked (here or on another process): re-read it on its next request. */
  forget(subscriberId: string): void {
    this.cache.delete(subscriberId);
  }

  /** Marks a subscriber as seen (it holds an open event stream). */
  markSeen(subscriberId: string): void {
    this.seen.add(subscriberId);
    this.firstSight(subscriberId);
  }

  /** Writes last_seen_at for everyone seen since the last flush, in one statement. */
  async flushSeen(): Promise<void> {
    if (!this.seen.size || this.flushing) return;
    const now = Date.now();
    // last_seen_at only has to stay inside the live window: rewrite each row a few times per window, not every second.
    const ids = [...this.seen].filter((id) => now - (this.touchedAt.get(id) ?? 0) >= this.deps.touchEveryMs);
    this.seen.clear();
    if (!ids.length) return;
    this.flushing = true;
    try {
      await touchSubscribers(this.deps.pool, ids);
      // Only a written touch counts: a failed one is retried on the next flush.
      if (this.touchedAt.size > 200_000) this.touchedAt.clear();
      for (const id of ids) this.touchedAt.set(id, now);
    } catch (err) {
      for (const id of ids) this.seen.add(id);
      throw err;
    } finally {
      this.flushing = false;
    }
  }

  /**
   * A subscriber this process has not recorded yet becomes live at once (a rotation right
   * after it connects must wait for its ack); the batch of the next tick carries it.
   */
  private firstSight(subscriberId: string): void {
    if (this.touchedAt.has(subscriberId) || this.firstSightScheduled) return;
    this.firstSightScheduled = true;
    setImmediate(() => {
      this.firstSightScheduled = false;
      this.flushSeen().catch(() => {});
    });
  }
}

/** Throws 403 unless the principal may read `secretName`. */
export function assertInScope(principal: Principal, secretName: string): void {
  if (principal.kind === 'admin') return;
  if (!inScope(principal.scope, secretName)) throw new ForbiddenError(`secret ${secretName} is outside this subscriber's scope`);
}

export function principalScope(principal: Principal): (name: string) => boolean {
  return principal.kind === 'admin' ? () => true : (name) => inScope(principal.scope, name);
}
