/**
 * Cleanups run last-in first-out, every one of them, even when an earlier one throws
 * (graphile-worker's releasers): a scenario that fails half-way still stops every
 * process and server it started.
 */
export class CleanupStack {
  private readonly stack: { what: string; fn: () => Promise<unknown> | unknown }[] = [];

  push(what: string, fn: () => Promise<unknown> | unknown): void {
    this.stack.push({ what, fn });
  }

  async runAll(): Promise<string[]> {
    const errors: string[] = [];
    while (this.stack.length) {
      const { what, fn } = this.stack.pop()!;
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return errors;
  }
}
