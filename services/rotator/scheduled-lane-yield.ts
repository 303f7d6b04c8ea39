import type { Worker } from 'bullmq';

/**
 * Reserved capacity for the emergency lane (issue 4). The lanes already have separate
 * queues and workers, so an emergency job never waits in line behind scheduled ones; but
 * on a small machine scheduled jobs running alongside still slow every emergency step
 * (CPU, PostgreSQL). While this process works on emergency jobs, its scheduled-lane worker
 * takes no new jobs (those in flight finish); it resumes `holdMs` after the last emergency
 * job ended. Incidents come in bursts (a prefix, a SIEM firing several alerts), and the hold
 * keeps the lane quiet between the emergencies of one burst. Scheduled work only waits, it
 * is never dropped.
 *
 * pause/resume are applied in call order through one promise chain, so a quick
 * pause→resume pair cannot leave the worker paused.
 */
export class ScheduledLaneYield {
  private active = 0;
  private paused = false;
  private resumeTimer: NodeJS.Timeout | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly scheduledLane: Pick<Worker, 'pause' | 'resume'>,
    private readonly holdMs: number,
  ) {}

  async around<T>(work: () => Promise<T>): Promise<T> {
    this.active++;
    if (this.resumeTimer) {
      clearTimeout(this.resumeTimer);
      this.resumeTimer = null;
    }
    if (!this.paused) {
      this.paused = true;
      // Not awaited: the emergency job must not wait for the pause to take effect.
      this.then(() => this.scheduledLane.pause(true));
    }
    try {
      return await work();
    } finally {
      if (--this.active === 0) {
        this.resumeTimer = setTimeout(() => {
          this.resumeTimer = null;
          if (this.active > 0) return;
          this.paused = false;
          this.then(async () => this.scheduledLane.resume());
        }, this.holdMs);
        this.resumeTimer.unref();
      }
    }
  }

  private then(op: () => Promise<unknown>): void {
    this.chain = this.chain.then(op).catch(() => {});
  }
}
