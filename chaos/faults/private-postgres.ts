import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { forgetDir, forgetGroup, freePort, killGroup, trackDir, trackGroup, until } from './reaper.ts';

/**
 * A PostgreSQL cluster of the suite's own: `initdb` into a temporary directory, trust
 * auth, a spare loopback port. Chaos scenarios and tests stop, SIGKILL and restart it;
 * the shared PostgreSQL on 5432 is never touched.
 *
 * PostgreSQL refuses to run as root, so when we are root the cluster runs as the
 * `postgres` OS user (spawn's uid/gid), and its superuser is named after us so that
 * rekey's default connection user works unchanged.
 *
 * fsync is off: a SIGKILLed postmaster loses nothing that reached the kernel, and the
 * suite only kills processes, never the machine.
 */
export class PrivatePostgres {
  private child: ChildProcess | null = null;
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly owner: { uid: number; gid: number } | null,
  ) {}

  static async start(): Promise<PrivatePostgres> {
    const base = mkdtempSync(join(tmpdir(), 'rekey-chaos-pg-'));
    trackDir(base);
    const owner = process.getuid?.() === 0 ? postgresUser() : null;
    if (owner) chownSync(base, owner.uid, owner.gid);
    const cluster = new PrivatePostgres(await freePort(), base, owner);
    try {
      await cluster.run('initdb', ['-D', cluster.dataDir, '-A', 'trust', '-U', superuser(), '--no-sync', '-E', 'UTF8', '--locale=C']);
      await cluster.launch();
    } catch (err) {
      await cluster.cleanup();
      throw err;
    }
    return cluster;
  }

  get dataDir(): string {
    return join(this.dir, 'data');
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get running(): boolean {
    return this.child !== null;
  }
  /** A connection URL for `database` on this cluster. */
  url(database = 'postgres'): string {
    return `postgres://${encodeURIComponent(superuser())}@127.0.0.1:${this.port}/${database}`;
  }

  private spawnOpts(): SpawnOptions {
    return { detached: true, stdio: ['ignore', 'ignore', 'pipe'], ...(this.owner && { uid: this.owner.uid, gid: this.owner.gid }), env: { PATH: process.env.PATH, LANG: 'C' } };
  }

  private run(cmd: string, args: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, this.spawnOpts());
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${stderr.slice(-500)}`))));
    });
  }

  private async launch(): Promise<void> {
    const args = [
      '-D', this.dataDir, '-p', String(this.port), '-k', this.dir, '-c', 'listen_addresses=127.0.0.1',
      '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200', '-c', 'shared_buffers=64MB',
    ];
    const child = spawn('postgres', args, this.spawnOpts());
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
    this.child = child;
    trackGroup(child.pid!);
    child.once('exit', () => {
      forgetGroup(child.pid!);
      if (this.child === child) this.child = null;
    });
    await until(async () => {
      if (!this.child) throw new Error(`postgres exited: ${stderr.slice(-500)}`);
      return this.accepts();
    }, `private postgres on port ${this.port}`, 30_000, 100);
  }

  /** True once a connection succeeds. */
  async accepts(): Promise<boolean> {
    const client = new pg.Client({ connectionString: this.url(), connectionTimeoutMillis: 1000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** Fast shutdown (SIGINT): sessions are terminated, the cluster stops cleanly. */
  async stop(): Promise<void> {
    await this.signal('SIGINT', false);
  }

  /** SIGKILL of the postmaster and every backend: crash recovery runs on the next start. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL', true);
  }

  private async signal(signal: NodeJS.Signals, group: boolean): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise((r) => child.once('exit', r));
    if (group) killGroup(child.pid!, signal);
    else child.kill(signal);
    await exited;
    // Backends of a killed postmaster exit on their own; make sure none keeps the shared memory.
    killGroup(child.pid!, 'SIGKILL');
  }

  /** Starts the cluster again on the same port and data directory. */
  async start(): Promise<void> {
    if (this.child) return;
    await this.launch();
  }

  /** Kills the cluster and removes its directory. Safe to call twice. */
  async cleanup(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    forgetDir(this.dir);
  }
}

function superuser(): string {
  return process.env.PGUSER || userInfo().username;
}

function postgresUser(): { uid: number; gid: number } {
  // `id` is simpler and more portable than parsing /etc/passwd by hand.
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  if (!Number.isInteger(uid) || uid <= 0) throw new Error('running as root needs a `postgres` OS user to run the private cluster');
  return { uid, gid };
}
