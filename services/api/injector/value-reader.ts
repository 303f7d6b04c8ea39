import type pg from 'pg';
import type { ValueCipher } from '../../../shared/crypto/value-cipher.ts';
import type { VersionRow } from '../../../shared/db/rows.ts';
import { openCredential } from '../../../shared/db/version-store.ts';
import { NotFoundError } from '../../../shared/errors.ts';
import { graceMs, rotationPolicySchema } from '../../../shared/policy/rotation-policy.ts';

export interface CurrentValue {
  version: number;
  value: string;
  notAfter: Date | null;
}

interface Flight {
  running: boolean;
  /** Callers that arrived after the running read began; they share the next one. */
  pending: { promise: Promise<CurrentValue>; resolve: (v: CurrentValue) => void; reject: (e: unknown) => void } | null;
}

/**
 * Reads a secret's current value with at most one PostgreSQL read in flight per secret
 * per api process. When thousands of injectors fetch after one rotation, every request
 * that arrives while a read is running joins the NEXT read, which starts when that one
 * ends: a caller never gets a result read before it asked (so never a version older than
 * the event that sent it), and PostgreSQL sees about two reads per burst, not thousands.
 *
 * Values live here only for the length of a read; nothing is cached.
 */
export class CoalescingValueReader {
  private readonly flights = new Map<string, Flight>();

  constructor(
    private readonly deps: { pool: pg.Pool; cipher: ValueCipher; onCoalesced?: () => void; coalesce?: boolean },
  ) {}

  read(name: string): Promise<CurrentValue> {
    if (this.deps.coalesce === false) return this.load(name);
    let flight = this.flights.get(name);
    if (!flight) {
      flight = { running: false, pending: null };
      this.flights.set(name, flight);
    }
    if (flight.pending) {
      this.deps.onCoalesced?.();
      return flight.pending.promise;
    }
    let resolve!: (v: CurrentValue) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<CurrentValue>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    flight.pending = { promise, resolve, reject };
    if (!flight.running) this.launch(name, flight);
    return promise;
  }

  private launch(name: string, flight: Flight): void {
    const waiters = flight.pending!;
    flight.pending = null;
    flight.running = true;
    this.load(name)
      .then(waiters.resolve, waiters.reject)
      .finally(() => {
        flight.running = false;
        if (flight.pending) this.launch(name, flight);
        else this.flights.delete(name);
      });
  }

  private async load(name: string): Promise<CurrentValue> {
    const { rows } = await this.deps.pool.query<VersionRow & { policy: unknown; next_rotation_at: Date | null }>(
      `SELECT v.*, s.policy, s.next_rotation_at FROM secrets s
       JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.current_version
       WHERE s.name = $1 AND s.deleted_at IS NULL`,
      [name],
    );
    const row = rows[0];
    if (!row) throw new NotFoundError(`secret ${name} has no current version`);
    const cred = openCredential(this.deps.cipher, name, row);
    const policy = rotationPolicySchema.safeParse(row.policy);
    const notAfter = row.next_rotation_at ? new Date(row.next_rotation_at.getTime() + (policy.success ? graceMs(policy.data) : 0)) : null;
    return { version: cred.version, value: cred.value, notAfter };
  }
}
