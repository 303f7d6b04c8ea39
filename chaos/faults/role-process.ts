import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { forgetGroup, killGroup, sleep, trackGroup } from './reaper.ts';

const cli = fileURLToPath(new URL('../../services/cli/rekey.mjs', import.meta.url));

/** What each role logs once it is up (services/<role>/main.ts). */
const readyMessage: Record<string, string> = {
  api: 'api listening',
  scheduler: 'scheduler started',
  rotator: 'rotator started',
  notifier: 'notifier started',
};

/**
 * A rekey role process (`node services/cli/rekey.mjs start ROLES…`) with its own
 * environment, in its own process group so a SIGKILL takes it down whole. Its stdout and
 * stderr are kept (every line), so a scenario can grep them for a canary and count
 * crashes. `restart()` starts the same roles again with the same environment.
 */
export class RoleProcess {
  private child: ChildProcess | null = null;
  /** Every line the process wrote, across restarts. */
  readonly lines: string[] = [];
  /** Exits that nobody asked for (not kill() or stop()): a crash. */
  unexpectedExits: { code: number | null; signal: NodeJS.Signals | null }[] = [];
  private expectingExit = false;
  apiPort: number | undefined;
  starts = 0;
  /** Running and past its start-up (every role logged that it is up). */
  ready = false;

  constructor(
    readonly roles: string[],
    readonly env: NodeJS.ProcessEnv,
    readonly label = roles.join('+'),
  ) {}

  static async start(roles: string[], env: NodeJS.ProcessEnv, label?: string): Promise<RoleProcess> {
    const p = new RoleProcess(roles, env, label);
    await p.start();
    return p;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }
  get running(): boolean {
    return this.child !== null;
  }

  /** Starts the roles and waits until each one logged that it is up. */
  async start(opts: { waitReady?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (this.child) return;
    const from = this.lines.length;
    const child = spawn(process.execPath, [cli, 'start', ...this.roles], {
      env: this.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.starts++;
    this.expectingExit = false;
    trackGroup(child.pid!);
    let partial = '';
    const collect = (d: Buffer) => {
      const parts = (partial + d.toString('utf8')).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) if (line) this.lines.push(line);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    child.once('exit', (code, signal) => {
      if (partial) this.lines.push(partial);
      forgetGroup(child.pid!);
      if (this.child === child) {
        this.child = null;
        this.ready = false;
      }
      if (!this.expectingExit) this.unexpectedExits.push({ code, signal });
    });
    if (opts.waitReady === false) return;
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    for (;;) {
      if (this.child !== child) throw new Error(`${this.label} exited during start: ${this.lines.slice(from).slice(-5).join(' | ')}`);
      const fresh = this.lines.slice(from);
      if (this.roles.every((r) => fresh.some((l) => l.includes(readyMessage[r] ?? `${r} started`)))) break;
      if (Date.now() > deadline) throw new Error(`${this.label} did not start within ${opts.timeoutMs ?? 60_000} ms`);
      await sleep(100);
    }
    this.ready = true;
    const listening = this.lines.slice(from).find((l) => l.includes(readyMessage.api!));
    if (listening) this.apiPort = JSON.parse(listening).port;
  }

  /** SIGKILL of the whole process group: no shutdown, in-flight jobs are abandoned. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** SIGTERM: the process shuts down gracefully (workers close, then connections). */
  async stop(timeoutMs = 15_000): Promise<void> {
    const child = this.child;
    if (!child) return;
    const timer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), timeoutMs);
    await this.signal('SIGTERM');
    clearTimeout(timer);
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.expectingExit = true;
    const exited = new Promise((r) => child.once('exit', r));
    if (signal === 'SIGKILL') killGroup(child.pid!, signal);
    else child.kill(signal);
    await exited;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  /** All output as one string, for canary greps. */
  text(): string {
    return this.lines.join('\n');
  }
}
