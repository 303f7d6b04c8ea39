import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { PrivatePostgres } from '../../chaos/faults/index.ts';

/**
 * A private PostgreSQL (chaos/faults) that checks passwords. The shared PostgreSQL trusts
 * every loopback login, so an old password "failing to log in" could never be observed
 * there: credential tests need a target that asks for SCRAM. The superuser (the harness
 * and rekey's admin connection) keeps trust so the fault tool can still probe it.
 * Optionally logs every statement to a file, to prove plaintext passwords never reach it.
 */
export class PasswordPostgres {
  private constructor(readonly cluster: PrivatePostgres) {}

  static async start(opts: { logStatements?: boolean } = {}): Promise<PasswordPostgres> {
    const cluster = await PrivatePostgres.start();
    const self = new PasswordPostgres(cluster);
    try {
      const superuser = decodeURIComponent(new URL(cluster.url()).username);
      writeFileSync(
        join(cluster.dataDir, 'pg_hba.conf'),
        `local all all trust\nhost all ${superuser} 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n`,
      );
      await self.admin(async (c) => {
        if (opts.logStatements) {
          await c.query(`ALTER SYSTEM SET logging_collector = on`);
          await c.query(`ALTER SYSTEM SET log_statement = 'all'`);
          await c.query(`ALTER SYSTEM SET log_directory = 'log'`);
        }
        await c.query('SELECT pg_reload_conf()');
      });
      // logging_collector takes effect only at start.
      if (opts.logStatements) {
        await cluster.stop();
        await cluster.start();
      }
    } catch (err) {
      await cluster.cleanup();
      throw err;
    }
    return self;
  }

  /** Superuser URL (trust): what rekey's admin reference resolves to in tests. */
  adminUrl(database = 'postgres'): string {
    return this.cluster.url(database);
  }

  async admin<T>(fn: (c: pg.Client) => Promise<T>, database = 'postgres'): Promise<T> {
    const c = new pg.Client({ connectionString: this.cluster.url(database), connectionTimeoutMillis: 3000 });
    c.on('error', () => {});
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => {});
    }
  }

  /** A fresh login as `user` with `password`; resolves to the error (or null if it logged in and ran a query). */
  async loginError(user: string, password: string, database = 'postgres'): Promise<Error | null> {
    const c = await this.connect(user, password, database).catch((err: Error) => err);
    if (c instanceof Error) return c;
    await c.end().catch(() => {});
    return null;
  }

  async connect(user: string, password: string, database = 'postgres'): Promise<pg.Client> {
    const url = new URL(this.cluster.url(database));
    url.username = encodeURIComponent(user);
    url.password = encodeURIComponent(password);
    const c = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 3000 });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.query('SELECT 1');
    } catch (err) {
      await c.end().catch(() => {});
      throw err;
    }
    return c;
  }

  /** Everything the server logged so far (with logStatements). */
  serverLog(): string {
    const dir = join(this.cluster.dataDir, 'log');
    if (!existsSync(dir)) return '';
    return readdirSync(dir)
      .map((f) => readFileSync(join(dir, f), 'utf8'))
      .join('\n');
  }

  cleanup(): Promise<void> {
    return this.cluster.cleanup();
  }
}
