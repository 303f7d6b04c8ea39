import { describe, expect, it } from 'vitest';
import { ScheduledLaneYield } from '../services/rotator/scheduled-lane-yield.ts';

/** A stand-in for the BullMQ worker that records what the yield asked of it. */
function lane() {
  const calls: string[] = [];
  let paused = false;
  return {
    calls,
    get paused() {
      return paused;
    },
    async pause() {
      await new Promise((r) => setTimeout(r, 5));
      paused = true;
      calls.push('pause');
    },
    resume() {
      paused = false;
      calls.push('resume');
    },
  };
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ScheduledLaneYield', () => {
  it('pauses the scheduled lane once while emergency jobs overlap, and resumes after the last', async () => {
    const w = lane();
    const y = new ScheduledLaneYield(w, 20);
    await Promise.all([y.around(() => tick(20)), y.around(() => tick(30)), y.around(() => tick(10))]);
    // Another emergency within the hold keeps the lane paused: no resume/pause flapping.
    await tick(5);
    await y.around(() => tick(5));
    expect(w.paused).toBe(true);
    await tick(60);
    expect(w.calls).toEqual(['pause', 'resume']);
    expect(w.paused).toBe(false);
  });

  it('never ends paused, even when a job ends before its pause took effect', async () => {
    const w = lane();
    const y = new ScheduledLaneYield(w, 20);
    for (let i = 0; i < 20; i++) await y.around(async () => {});
    await tick(200);
    expect(w.paused).toBe(false);
    expect(w.calls.at(-1)).toBe('resume');
  });

  it('resumes when the emergency job throws', async () => {
    const w = lane();
    const y = new ScheduledLaneYield(w, 20);
    await expect(y.around(async () => { throw new Error('step failed'); })).rejects.toThrow('step failed');
    await tick(20);
    expect(w.paused).toBe(false);
  });
});
