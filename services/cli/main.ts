import { parseArgs } from 'node:util';
import { baseEnv, parseEnv } from '../../shared/config.ts';
import { ensureDatabase } from '../../shared/db/ensure-database.ts';
import { createPool } from '../../shared/db/pool.ts';
import { migrate } from '../../shared/db/migrate.ts';
import { verifyAudit } from '../../shared/db/audit-log.ts';
import { findSecret, listSecrets } from '../../shared/db/secret-store.ts';
import { listVersions } from '../../shared/db/version-store.ts';
import { ConfigError, RekeyError, coerceError } from '../../shared/errors.ts';
import { createRuntime, type Runtime } from '../../shared/runtime.ts';
import { createSecret, removeSecret, rotateSecret } from '../../shared/secret-admin.ts';
import { secretView } from '../api/views.ts';
import { parseRoles, startRoles } from './start-roles.ts';
import { printStatus } from './status-command.ts';
import { runDemo } from './demo.ts';
import { runLease } from './lease-command.ts';
import { runSubscriber, subscriberUsage } from './subscriber-command.ts';
import { injectUsage, runInject } from './inject-command.ts';

const usage = `rekey — event-driven secret rotation

  rekey migrate                      create the database if needed and apply migrations
  rekey start [roles…]               run roles in this process: api scheduler rotator notifier (default: all)
  rekey secret add NAME --provider P [--config JSON] [--interval 15m | --cron EXPR] [--grace 1h] [--jitter 1m]
  rekey secret list [--prefix P]     rekey secret show NAME     rekey secret rm NAME
  rekey rotate NAME [--emergency] [--reason TEXT]
  rekey lease create NAME [--ttl 1h] | renew ID [--ttl 1h] | revoke ID | show ID   dynamic PostgreSQL leases
  rekey status [NAME]                recent rotations and time-to-revoke percentiles
${subscriberUsage}
${injectUsage}
  rekey audit verify                 check the audit log's hash chain
  rekey demo                         all roles against the local Redis and PostgreSQL, with demo secrets

Configuration comes from the environment: REDIS_URL, DATABASE_URL, REKEY_MASTER_KEY,
REKEY_ADMIN_TOKEN, LOG_LEVEL, PORT (see README).`;

const print = (text: string) => process.stdout.write(`${text}\n`);
const printJson = (value: unknown) => print(JSON.stringify(value, null, 2));

async function withRuntime<T>(fn: (rt: Runtime) => Promise<T>): Promise<T> {
  const rt = createRuntime(process.env, { name: 'rekey-cli' });
  try {
    return await fn(rt);
  } finally {
    await rt.close().catch(() => {});
  }
}

async function runMigrate(): Promise<void> {
  const cfg = parseEnv(baseEnv);
  if (await ensureDatabase(cfg.DATABASE_URL)) print(`created database ${new URL(cfg.DATABASE_URL).pathname.slice(1)}`);
  const pool = createPool(cfg.DATABASE_URL, { max: 1 });
  try {
    const result = await migrate(pool);
    print(result.applied.length ? `applied ${result.applied.join(', ')}` : 'database is up to date');
  } finally {
    await pool.end();
  }
}

async function runStart(args: string[]): Promise<number> {
  const { rt } = await startRoles(parseRoles(args));
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  rt.log.info('shutting down');
  await rt.close();
  return 0;
}

async function runSecret(sub: string | undefined, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      provider: { type: 'string' },
      config: { type: 'string' },
      interval: { type: 'string' },
      cron: { type: 'string' },
      grace: { type: 'string' },
      jitter: { type: 'string' },
      prefix: { type: 'string' },
    },
  });
  const name = positionals[0];
  return withRuntime(async (rt) => {
    const deps = { pool: rt.pool, queues: rt.queues, log: rt.log };
    switch (sub) {
      case 'add': {
        const policy = Object.fromEntries(
          Object.entries({ interval: values.interval, cron: values.cron, grace: values.grace, jitter: values.jitter }).filter(([, v]) => v !== undefined),
        );
        let config: unknown = {};
        try {
          config = values.config ? JSON.parse(values.config) : {};
        } catch {
          throw new ConfigError('--config: not valid JSON');
        }
        const { secret, rotation } = await createSecret(deps, { name, provider: values.provider, config, policy }, 'cli');
        printJson({ ...secretView(secret), rotationId: rotation.id });
        return 0;
      }
      case 'list':
        for (const s of await listSecrets(rt.pool, { prefix: values.prefix, limit: 1000 })) {
          print(`${s.name}\t${s.provider}\tv${s.current_version ?? '-'}\tnext ${s.next_rotation_at?.toISOString() ?? 'manual'}`);
        }
        return 0;
      case 'show': {
        const secret = name ? await findSecret(rt.pool, name) : null;
        if (!secret) throw new RekeyError(`secret ${name} not found`);
        printJson(secretView(secret, await listVersions(rt.pool, secret.id)));
        return 0;
      }
      case 'rm':
        await removeSecret(deps, name ?? '', 'cli');
        print(`deleted ${name}`);
        return 0;
      default:
        print(usage);
        return 2;
    }
  });
}

async function runRotate(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { emergency: { type: 'boolean', default: false }, reason: { type: 'string' } },
  });
  return withRuntime(async (rt) => {
    const reason = values.reason ?? (values.emergency ? 'emergency rotation from the CLI' : 'manual rotation from the CLI');
    const result = await rotateSecret({ pool: rt.pool, queues: rt.queues, log: rt.log }, positionals[0] ?? '', { reason, emergency: values.emergency }, 'cli');
    printJson(result);
    return 0;
  });
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'migrate':
        await runMigrate();
        return 0;
      case 'start':
        return await runStart(rest);
      case 'secret':
        return await runSecret(rest[0], rest.slice(1));
      case 'rotate':
        return await runRotate(rest);
      case 'lease':
        return await withRuntime((rt) => runLease(rt, rest[0], rest.slice(1), print));
      case 'subscriber':
        return await withRuntime((rt) => runSubscriber(rt, rest[0], rest.slice(1), print));
      case 'inject':
        return await runInject(rest, print);
      case 'status':
        return await withRuntime((rt) => printStatus(rt.pool, rest[0], print));
      case 'audit': {
        if (rest[0] !== 'verify') break;
        return await withRuntime(async (rt) => {
          const result = await verifyAudit(rt.pool);
          print(result.ok ? `audit log intact: ${result.rows} rows` : `audit log BROKEN at row ${result.brokenAt} (${result.rows} rows)`);
          return result.ok ? 0 : 1;
        });
      }
      case 'demo':
        return await runDemo(print);
    }
    print(usage);
    return command === undefined || command === 'help' || command === '--help' ? 0 : 2;
  } catch (raw) {
    const err = coerceError(raw);
    process.stderr.write(`rekey ${command}: ${err.message}\n`);
    const details = (err as RekeyError).details as { issues?: { path: string; message: string }[] } | undefined;
    for (const issue of details?.issues ?? []) process.stderr.write(`  ${issue.path}: ${issue.message}\n`);
    return err instanceof ConfigError ? 2 : 1;
  }
}
