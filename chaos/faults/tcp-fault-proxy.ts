import net from 'node:net';
import { freePort } from './reaper.ts';

/**
 * What the proxy does to traffic, switchable at any time:
 * - `pass`: forwards both ways.
 * - `latency`: forwards every chunk `ms` late, in order.
 * - `blackhole`: sockets stay open and nothing flows, like a partition where TCP keeps
 *   retransmitting; what was sent meanwhile is held and delivered on heal (the
 *   partitioned side's late writes arrive late, they are not lost).
 * - `reset`: every connection, open or new, is reset (RST).
 * - `refuse`: the listener closes (connects get ECONNREFUSED) and open connections are reset.
 */
export type ProxyMode = { mode: 'pass' } | { mode: 'latency'; ms: number } | { mode: 'blackhole' } | { mode: 'reset' } | { mode: 'refuse' };

interface Pipe {
  client: net.Socket;
  upstream: net.Socket;
  /** Chunks held during a blackhole, per direction. */
  held: { toUpstream: Buffer[]; toClient: Buffer[] };
}

/**
 * A TCP proxy on `node:net` placed between a service and Redis, PostgreSQL or a target.
 * Point the service at `proxy.url(...)`/`proxy.port` instead of the real port.
 */
export class TcpFaultProxy {
  private server: net.Server | null = null;
  private readonly pipes = new Set<Pipe>();
  private current: ProxyMode = { mode: 'pass' };
  /** Connections accepted since start, for tests and verdicts. */
  connections = 0;

  private constructor(
    readonly port: number,
    readonly upstream: { host: string; port: number },
  ) {}

  static async start(upstream: { host?: string; port: number }, port?: number): Promise<TcpFaultProxy> {
    const proxy = new TcpFaultProxy(port ?? (await freePort()), { host: upstream.host ?? '127.0.0.1', port: upstream.port });
    await proxy.listen();
    return proxy;
  }

  get mode(): ProxyMode {
    return this.current;
  }

  /** `url` with its port replaced by the proxy's. */
  via(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((client) => this.accept(client));
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        server.on('error', () => {});
        this.server = server;
        resolve();
      });
    });
  }

  private closeListener(): Promise<void> {
    const server = this.server;
    this.server = null;
    return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  private accept(client: net.Socket): void {
    this.connections++;
    if (this.current.mode === 'reset' || this.current.mode === 'refuse') return void client.resetAndDestroy();
    const upstream = net.connect(this.upstream);
    const pipe: Pipe = { client, upstream, held: { toUpstream: [], toClient: [] } };
    this.pipes.add(pipe);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const forward = (to: net.Socket, held: Buffer[]) => (chunk: Buffer) => {
      const m = this.current;
      if (m.mode === 'blackhole') return void held.push(chunk);
      if (m.mode === 'latency') return void setTimeout(() => to.destroyed || to.write(chunk), m.ms);
      if (!to.destroyed) to.write(chunk);
    };
    client.on('data', forward(upstream, pipe.held.toUpstream));
    upstream.on('data', forward(client, pipe.held.toClient));
    // A close on either side closes the other the same way: a reset stays a reset.
    const teardown = (other: net.Socket) => (hadError: boolean) => {
      this.pipes.delete(pipe);
      if (other.destroyed) return;
      if (hadError) other.resetAndDestroy();
      else other.end();
    };
    client.on('close', teardown(upstream));
    upstream.on('close', teardown(client));
    client.on('error', () => {});
    upstream.on('error', () => {});
  }

  /** Switches the mode; takes effect for open connections at once. */
  async set(mode: ProxyMode): Promise<void> {
    const before = this.current;
    this.current = mode;
    if (mode.mode === 'reset' || mode.mode === 'refuse') {
      for (const p of [...this.pipes]) {
        p.client.resetAndDestroy();
        p.upstream.resetAndDestroy();
      }
      this.pipes.clear();
    }
    if (mode.mode === 'refuse') await this.closeListener();
    else if (!this.server) await this.listen();
    if (before.mode === 'blackhole' && mode.mode !== 'blackhole') {
      for (const p of this.pipes) {
        for (const chunk of p.held.toUpstream.splice(0)) p.upstream.write(chunk);
        for (const chunk of p.held.toClient.splice(0)) p.client.write(chunk);
      }
    }
  }

  pass = () => this.set({ mode: 'pass' });
  latency = (ms: number) => this.set({ mode: 'latency', ms });
  blackhole = () => this.set({ mode: 'blackhole' });
  reset = () => this.set({ mode: 'reset' });
  refuse = () => this.set({ mode: 'refuse' });

  /** Open client connections right now. */
  get openConnections(): number {
    return this.pipes.size;
  }

  /** Closes the listener and every connection. Safe to call twice. */
  async close(): Promise<void> {
    for (const p of this.pipes) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pipes.clear();
    await this.closeListener();
  }
}
