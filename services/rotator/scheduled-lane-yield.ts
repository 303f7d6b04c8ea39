import type { Worker } from 'bullmq';

/**
 * Reserved capacity for the emergency lane (issue 4). The lanes already have separate
 * queues and workers, so an emergency job never waits in line behind scheduled ones; but
 * on a small machine scheduled jobs running alongside still slow every emergency step
 * (CPU, PostgreSQL). While this process works on at least one emergency job, its
 * scheduled-lane worker takes no new jobs (those in flight finish); it resumes when the
 * last emergency job ends. Scheduled work only waits, it is never dropped.
 *
 * pause/resume are applied in call order through one promise chain, so a quick
 * pause→resume pair cannot leave the worker paused.
 */
export class ScheduledLaneYield {
  private active = 0;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly scheduledLane: Pick<Worker, 'pause' | 'resume'>) {}

  async around<T>(work: () => Promise<T>): Promise<T> {
    // Not awaited: the emergency job must not wait for the pause to take effect.
    if (this.active++ === 0) this.then(() => this.scheduledLane.pause(true));
    try {
      return await work();
    } finally {
      if (--this.active === 0) this.then(async () => this.scheduledLane.resume());
    }
  }

  private then(op: () => Promise<unknown>): void {
    this.chain = this.chain.then(op).catch(() => {});
  }
}
