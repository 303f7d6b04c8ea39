import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forgetDir, forgetGroup, freePort, killGroup, trackDir, trackGroup, until } from './reaper.ts';

export interface PrivateRedisOptions {
  /** AOF persistence; without it a restart comes back empty. @defaultValue false */
  aof?: boolean;
  /** AOF fsync policy. @defaultValue 'everysec' (what docker-compose runs) */
  appendfsync?: 'always' | 'everysec' | 'no';
}

/**
 * A redis-server of the suite's own on a spare loopback port, in a temporary directory.
 * It is what chaos scenarios and tests SIGKILL and restart; the shared Redis on 6379 is
 * never touched. Restarts reuse the port and directory, so clients reconnect to the same
 * URL and an AOF restart finds its file.
 */
export class PrivateRedis {
  private child: ChildProcess | null = null;
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly opts: Required<PrivateRedisOptions>,
  ) {}

  static async start(opts: PrivateRedisOptions = {}): Promise<PrivateRedis> {
    const dir = mkdtempSync(join(tmpdir(), 'rekey-chaos-redis-'));
    trackDir(dir);
    const redis = new PrivateRedis(await freePort(), dir, { aof: false, appendfsync: 'everysec', ...opts });
    try {
      await redis.launch();
    } catch (err) {
      await redis.cleanup();
      throw err;
    }
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get running(): boolean {
    return this.child !== null;
  }

  private async launch(): Promise<void> {
    const args = [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--save', '', '--appendonly', this.opts.aof ? 'yes' : 'no', '--appendfsync', this.opts.appendfsync,
      '--maxmemory-policy', 'noeviction', '--daemonize', 'no', '--logfile', join(this.dir, 'redis.log'),
    ];
    const child = spawn('redis-server', args, { detached: true, stdio: 'ignore' });
    this.child = child;
    trackGroup(child.pid!);
    child.once('exit', () => {
      forgetGroup(child.pid!);
      if (this.child === child) this.child = null;
    });
    await until(() => this.ping(), `private redis-server on port ${this.port}`, 20_000);
  }

  /** True once the server answers PONG (not while it is still loading its AOF). */
  ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: this.port });
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(1000, () => done(false));
      socket.once('error', () => done(false));
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
    });
  }

  /** Sends one command (no arguments with spaces) and returns the raw reply. */
  command(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: this.port });
      socket.setTimeout(5000, () => {
        socket.destroy();
        reject(new Error(`redis ${args[0]} timed out`));
      });
      socket.once('error', reject);
      socket.once('connect', () => socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
      socket.once('data', (d) => {
        socket.destroy();
        resolve(d.toString());
      });
    });
  }

  /** `CLIENT PAUSE ms ALL`: every client's commands wait, connections stay open. */
  async pause(ms: number): Promise<void> {
    const reply = await this.command('CLIENT', 'PAUSE', String(ms), 'ALL');
    if (!reply.startsWith('+OK')) throw new Error(`CLIENT PAUSE failed: ${reply.trim()}`);
  }

  /** SIGKILL: no shutdown save, no AOF rewrite; what a crash or OOM kill does. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise((r) => child.once('exit', r));
    killGroup(child.pid!, 'SIGKILL');
    await exited;
  }

  /**
   * Starts the server again on the same port and directory. With `empty`, the directory
   * is wiped first: Redis comes back with no data at all, whatever its persistence.
   */
  async restart(opts: { empty?: boolean } = {}): Promise<void> {
    await this.kill();
    if (opts.empty) {
      for (const f of readdirSync(this.dir)) if (f !== 'redis.log') rmSync(join(this.dir, f), { recursive: true, force: true });
    }
    await this.launch();
  }

  /** Number of keys, for checking that a restart really came back empty (or not). */
  async dbsize(): Promise<number> {
    const reply = await this.command('DBSIZE');
    return Number(reply.slice(1));
  }

  /** Kills the server and removes its directory. Safe to call twice. */
  async cleanup(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    forgetDir(this.dir);
  }
}
