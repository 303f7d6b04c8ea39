import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';

export interface InjectProcess {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Runs a real `rekey inject` child process; its log lines are kept for assertions. */
export function startInject(opts: { url: string; token: string; args: string[]; env?: Record<string, string> }): InjectProcess {
  const child = spawn('node', ['services/cli/rekey.mjs', 'inject', ...opts.args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, REKEY_URL: opts.url, REKEY_TOKEN: opts.token, LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: string[] = [];
  child.stdout!.on('data', (d) => out.push(String(d)));
  child.stderr!.on('data', (d) => out.push(String(d)));
  return {
    child,
    output: () => out.join(''),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/**
 * A loopback TCP proxy that can be cut (every connection dropped, new ones refused) and
 * restored on the same port: an injector "offline" without touching the shared Redis or
 * PostgreSQL.
 */
export class CuttableProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async up(): Promise<void> {
    const { Socket: NetSocket } = await import('node:net');
    this.server = createServer((client) => {
      const upstream = new NetSocket();
      upstream.connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    const address = this.server.address();
    this.port = typeof address === 'object' && address ? address.port : this.port;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}
