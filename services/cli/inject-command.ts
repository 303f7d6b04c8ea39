import { parseArgs } from 'node:util';
import { z } from 'zod';
import { parseEnv } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/logger.ts';
import { referenceResolver } from '../../shared/runtime.ts';
import { InjectAgent } from '../injector/inject-agent.ts';

export const injectUsage = `  rekey inject --secret NAME [--secret NAME…] [--dir /run/secrets] [--exec CMD | --signal HUP --pid N]
               [--listen 127.0.0.1:9000] [--channel sse|redis]   (REKEY_URL, REKEY_TOKEN=env:…|file:…)`;

const injectEnv = {
  REKEY_URL: z.string().url().default('http://127.0.0.1:8080'),
  /** The subscriber token, or a reference to it: `env:NAME` or `file:/path`. */
  REKEY_TOKEN: z.string().min(1, 'set the subscriber token (or env:NAME / file:/path)'),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  REKEY_REDIS_PREFIX: z.string().default('rekey'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
};

/** `rekey inject`: runs the injector agent until SIGINT/SIGTERM. */
export async function runInject(args: string[], print: (s: string) => void): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      secret: { type: 'string', multiple: true },
      dir: { type: 'string' },
      exec: { type: 'string' },
      signal: { type: 'string' },
      pid: { type: 'string' },
      listen: { type: 'string' },
      channel: { type: 'string', default: 'sse' },
    },
  });
  const env = parseEnv(injectEnv);
  const secrets = values.secret ?? [];
  if (!secrets.length) throw new ConfigError('--secret: name at least one secret');
  if (!values.dir && !values.listen) throw new ConfigError('--dir or --listen: say where the values go');
  if (values.channel !== 'sse' && values.channel !== 'redis') throw new ConfigError('--channel: sse or redis');
  if (values.signal && !values.pid) throw new ConfigError('--pid: needed with --signal');
  const token = /^(env|file):/.test(env.REKEY_TOKEN) ? referenceResolver(process.env)(env.REKEY_TOKEN) : env.REKEY_TOKEN;
  let listen: { host: string; port: number } | undefined;
  if (values.listen) {
    const m = /^(.*):(\d+)$/.exec(values.listen);
    if (!m) throw new ConfigError('--listen: host:port');
    listen = { host: m[1] || '127.0.0.1', port: Number(m[2]) };
  }
  const log = createLogger({ level: env.LOG_LEVEL, name: 'rekey-inject' });
  const agent = new InjectAgent({
    client: { url: env.REKEY_URL, token, secrets, channel: values.channel, redis: { url: env.REDIS_URL, prefix: env.REKEY_REDIS_PREFIX } },
    dir: values.dir,
    exec: values.exec,
    signal: values.signal ? { name: (values.signal.startsWith('SIG') ? values.signal : `SIG${values.signal}`) as NodeJS.Signals, pid: Number(values.pid) } : undefined,
    listen,
    log,
  });
  const stopped = new Promise<void>((r) => {
    process.once('SIGINT', r);
    process.once('SIGTERM', r);
  });
  await Promise.race([agent.start(), stopped]);
  await stopped;
  await agent.close();
  print('injector stopped');
  return 0;
}
