import { rmSync } from 'node:fs';
import net from 'node:net';

/**
 * Last line of defence for fault tools: whatever a scenario or test forgot (or could not
 * reach because it crashed), the process's exit kills every child process group we
 * started and removes every temporary directory we made. Normal cleanup still runs
 * first, through each tool's own `cleanup()`.
 */
const groups = new Set<number>();
const dirs = new Set<string>();
let installed = false;

function reapAll(): void {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {}
  }
  groups.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.once('exit', reapAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      reapAll();
      process.exit(130);
    });
  }
}

/** Tracks a child started with `detached: true` (its own process group) until `forgetGroup`. */
export function trackGroup(pid: number): void {
  install();
  groups.add(pid);
}
export function forgetGroup(pid: number): void {
  groups.delete(pid);
}
export function trackDir(dir: string): void {
  install();
  dirs.add(dir);
}
export function forgetDir(dir: string): void {
  dirs.delete(dir);
}

/** SIGKILLs a whole process group (a postmaster and its backends, a role and its children). */
export function killGroup(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-pid, signal);
  } catch {}
}

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until fn returns truthy; throws naming `what` when the time is up. */
export async function until<T>(fn: () => Promise<T | null | undefined | false>, what: string, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    await sleep(intervalMs);
  }
}
