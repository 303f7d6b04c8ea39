import net from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { PrivatePostgres, PrivateRedis, RoleProcess, TcpFaultProxy } from '../chaos/faults/index.ts';
import { createTestEnv, type TestEnv } from './support/test-env.ts';

// The chaos suite's fault tools, each proved to do what it says, so a scenario that
// passes under a fault really had the fault.
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

describe('PrivateRedis', () => {
  it('keeps data across SIGKILL with AOF, comes back empty without, and pauses clients', async () => {
    const aof = await PrivateRedis.start({ aof: true, appendfsync: 'always' });
    cleanups.push(() => aof.cleanup());
    const plain = await PrivateRedis.start();
    cleanups.push(() => plain.cleanup());
    expect(aof.port).not.toBe(6379);

    for (const r of [aof, plain]) expect(await r.command('SET', 'k', 'v')).toBe('+OK\r\n');
    const pid = aof.pid;
    await aof.restart();
    await plain.restart();
    expect(aof.pid).not.toBe(pid);
    expect(await aof.dbsize()).toBe(1);
    expect(await plain.dbsize()).toBe(0);
    await aof.restart({ empty: true });
    expect(await aof.dbsize()).toBe(0);

    const client = new Redis(plain.url);
    cleanups.push(async () => client.disconnect());
    await plain.pause(400);
    const t0 = Date.now();
    await client.set('after-pause', '1');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);

    await plain.kill();
    expect(await plain.ping()).toBe(false);
  });
});

describe('PrivatePostgres', () => {
  it('starts with trust auth on a spare port, survives SIGKILL with its data, and stops', async () => {
    const cluster = await PrivatePostgres.start();
    cleanups.push(() => cluster.cleanup());
    expect(cluster.port).not.toBe(5432);
    const query = async (sql: string) => {
      const c = new pg.Client({ connectionString: cluster.url() });
      await c.connect();
      try {
        return (await c.query(sql)).rows;
      } finally {
        await c.end();
      }
    };
    await query('CREATE TABLE t (x int); INSERT INTO t VALUES (42)');
    await cluster.kill();
    expect(await cluster.accepts()).toBe(false);
    await cluster.start();
    expect(await query('SELECT x FROM t')).toEqual([{ x: 42 }]);
    await cluster.stop();
    expect(cluster.running).toBe(false);
    expect(await cluster.accepts()).toBe(false);
  });
});

describe('TcpFaultProxy', () => {
  const roundTrip = (socket: net.Socket, text: string, timeoutMs: number) =>
    new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => {
        socket.off('data', onData);
        resolve(null);
      }, timeoutMs);
      const onData = (d: Buffer) => {
        clearTimeout(timer);
        resolve(d.toString());
      };
      socket.once('data', onData);
      socket.write(text);
    });
  const connect = (port: number) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
      s.once('error', reject);
    });

  it('passes, delays, blackholes (then delivers), resets and refuses, switchable at runtime', async () => {
    const echo = net.createServer((s) => s.on('error', () => {}).pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => echo.close(r)));
    const proxy = await TcpFaultProxy.start({ port: (echo.address() as net.AddressInfo).port });
    cleanups.push(() => proxy.close());

    const s = await connect(proxy.port);
    expect(await roundTrip(s, 'a', 2000)).toBe('a');

    await proxy.latency(300);
    const t0 = Date.now();
    expect(await roundTrip(s, 'b', 3000)).toBe('b');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550);

    await proxy.blackhole();
    const late = roundTrip(s, 'c', 3000);
    await new Promise((r) => setTimeout(r, 400));
    expect(s.destroyed).toBe(false);
    await proxy.pass();
    expect(await late).toBe('c');

    await proxy.reset();
    const error = await new Promise<string>((resolve) => {
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.once('close', () => resolve('closed'));
    });
    expect(['ECONNRESET', 'closed']).toContain(error);

    await proxy.refuse();
    await expect(connect(proxy.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await proxy.pass();
    expect(await roundTrip(await connect(proxy.port), 'd', 2000)).toBe('d');
  });
});

describe('RoleProcess', () => {
  let t: TestEnv;
  it('spawns a rotator role process, and SIGKILL takes it down without counting as a crash', async () => {
    t = await createTestEnv();
    cleanups.push(() => t.cleanup());
    const rotator = await RoleProcess.start(['rotator'], t.env);
    cleanups.push(() => rotator.kill());
    expect(rotator.running).toBe(true);
    const pid = rotator.pid!;
    await rotator.kill();
    expect(rotator.running).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
    expect(rotator.unexpectedExits).toEqual([]);
    expect(rotator.text()).toContain('rotator started');
  });
});
