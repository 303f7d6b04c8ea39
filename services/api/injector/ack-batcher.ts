import { recordAcks, type AckInput } from '../../../shared/db/ack-store.ts';
import type { Queryable } from '../../../shared/db/pool.ts';

interface Waiting {
  ack: AckInput;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Acks that arrive while a write is running are written together by the next one: a fleet
 * acking one rotation costs PostgreSQL a few statements, not thousands. At most one batch
 * is in flight; a request resolves only after its ack committed.
 */
export class AckBatcher {
  private queue: Waiting[] = [];
  private running = false;

  constructor(
    private readonly deps: { db: Queryable; maxBatch?: number; onClosed: (rotationIds: string[]) => Promise<void> },
  ) {}

  record(ack: AckInput): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ack, resolve, reject });
      if (!this.running) setImmediate(() => void this.drain());
      this.running = true;
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue.splice(0, this.deps.maxBatch ?? 2000);
      try {
        const { outcomes, closedRotations } = await recordAcks(this.deps.db, batch.map((w) => w.ack));
        // The acks are committed: answer them first, then see whether they completed a rotation.
        batch.forEach((w, i) => (outcomes[i] ? w.reject(outcomes[i]) : w.resolve()));
        if (closedRotations.length) await this.deps.onClosed(closedRotations).catch(() => {});
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.running = false;
  }
}
