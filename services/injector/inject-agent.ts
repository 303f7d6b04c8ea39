import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { join, resolve, sep } from 'node:path';
import type { Logger } from '../../shared/logger.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { RekeyClient, type RekeyClientOptions, type SecretUpdate } from './sdk.ts';

export interface InjectAgentOptions {
  client: Omit<RekeyClientOptions, 'onUpdate' | 'log'>;
  /** Directory the values are written to (a tmpfs is recommended): `<dir>/<secret name>`. */
  dir?: string;
  /** Shell command run after a new value is written, before the ack. */
  exec?: string;
  /** Signal sent to `pid` after a new value is written, before the ack. */
  signal?: { name: NodeJS.Signals; pid: number };
  /** Serve values on this loopback address: GET /v1/secrets/{name}/value, GET /healthz. */
  listen?: { host: string; port: number };
  log: Logger;
  /** How often staleness is reported while disconnected. @defaultValue 10000 */
  staleReportMs?: number;
}

/**
 * `rekey inject`: the sidecar/agent. It holds its secrets through the SDK and, on every new
 * value, writes the file atomically, runs the reload command or signals the process, and
 * only then acks, so an ack means the consumer has been given the new value.
 */
export class InjectAgent {
  readonly client: RekeyClient;
  private server: Server | null = null;
  private staleTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: InjectAgentOptions) {
    this.client = new RekeyClient({ ...opts.client, onUpdate: (u) => this.apply(u), log: opts.log });
    this.client.on('disconnected', () => opts.log.warn({}, 'lost the event stream; serving the last good values'));
    this.client.on('connected', () => opts.log.info({}, 'event stream connected'));
  }

  pathOf(name: string): string {
    const root = resolve(this.opts.dir!);
    const path = resolve(join(root, ...name.split('/')));
    if (!path.startsWith(root + sep)) throw new Error(`secret name ${name} escapes the directory`);
    return path;
  }

  async start(): Promise<void> {
    if (this.opts.listen) await this.serve(this.opts.listen);
    await this.client.start({ timeoutMs: 60_000 });
    this.staleTimer = setInterval(() => {
      const s = this.client.status();
      if (!s.connected) this.opts.log.warn({ stalenessMs: s.stalenessMs }, 'values may be stale: rekey is unreachable');
    }, this.opts.staleReportMs ?? 10_000);
    this.staleTimer.unref();
    this.opts.log.info({ secrets: this.client.entries().map(([name, h]) => ({ name, version: h.version })) }, 'injector holds its secrets');
  }

  async close(): Promise<void> {
    if (this.staleTimer) clearInterval(this.staleTimer);
    await this.client.close();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private async apply(u: SecretUpdate): Promise<void> {
    if (this.opts.dir) await writeFileAtomic(this.pathOf(u.secret), u.value);
    // The first value of each secret is not a rotation: the consumer starts with it.
    if (u.previousVersion !== null) {
      if (this.opts.exec) await this.run(this.opts.exec, u);
      if (this.opts.signal) {
        try {
          process.kill(this.opts.signal.pid, this.opts.signal.name);
        } catch (err) {
          this.opts.log.warn({ pid: this.opts.signal.pid, err: (err as Error).message }, 'could not signal the process');
        }
      }
    }
    this.opts.log.info({ secretName: u.secret, version: u.version, previousVersion: u.previousVersion }, 'new value in place');
  }

  private run(command: string, u: SecretUpdate): Promise<void> {
    return new Promise((resolvePromise) => {
      // The value is never passed to the command: it reads the file. Only names and versions.
      const child = spawn(command, { shell: true, stdio: 'ignore', env: { ...process.env, REKEY_SECRET: u.secret, REKEY_VERSION: String(u.version) } });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', (err) => this.opts.log.warn({ err: err.message }, 'reload command failed to start'));
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code !== 0) this.opts.log.warn({ code }, 'reload command exited non-zero');
        resolvePromise();
      });
    });
  }

  private async serve(listen: { host: string; port: number }): Promise<void> {
    this.server = createServer((req, res) => {
      const url = (req.url ?? '/').split('?')[0]!;
      const status = this.client.status();
      if (url === '/healthz') {
        const ready = Object.keys(status.secrets).length > 0;
        return void res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(status));
      }
      const m = /^\/v1\/secrets\/(.+)\/value$/.exec(url);
      const entry = m ? this.client.entries().find(([name]) => name === m[1]) : undefined;
      if (!entry) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"not_found"}}');
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-rekey-staleness-ms': String(status.stalenessMs ?? '') });
      res.end(JSON.stringify({ version: entry[1].version, value: entry[1].value, notAfter: entry[1].notAfter, stalenessMs: status.stalenessMs }));
    });
    await new Promise<void>((r) => this.server!.listen(listen.port, listen.host, r));
    const address = this.server.address();
    this.opts.log.info({ port: typeof address === 'object' && address ? address.port : listen.port, host: listen.host }, 'serving values locally');
  }
}
