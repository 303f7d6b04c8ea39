import { apiEnv, parseEnv, schedulerEnv, workerEnv } from '../../shared/config.ts';
import { createRuntime, type Runtime } from '../../shared/runtime.ts';
import { startApi } from '../api/main.ts';
import { startNotifier } from '../notifier/main.ts';
import { startRotator } from '../rotator/main.ts';
import { startScheduler } from '../scheduler/main.ts';
import type { DestinationStream } from 'pino';

export const allRoles = ['api', 'scheduler', 'rotator', 'notifier'] as const;
export type Role = (typeof allRoles)[number];

const envOf: Record<Role, Parameters<typeof parseEnv>[0]> = {
  api: apiEnv,
  scheduler: schedulerEnv,
  rotator: workerEnv,
  notifier: workerEnv,
};

export function parseRoles(args: string[]): Role[] {
  if (args.length === 0 || args.includes('all')) return [...allRoles];
  const unknown = args.filter((a) => !(allRoles as readonly string[]).includes(a));
  if (unknown.length) throw new Error(`unknown role ${unknown.join(', ')}; roles are ${allRoles.join(', ')}`);
  return [...new Set(args)] as Role[];
}

/**
 * Starts the given roles in this process, sharing one runtime. Every role's
 * configuration is parsed before anything starts, so a bad variable stops the process
 * at once with the variable's name.
 */
export async function startRoles(
  roles: Role[],
  env: NodeJS.ProcessEnv = process.env,
  opts: { logDestination?: DestinationStream } = {},
): Promise<{ rt: Runtime; apiPort?: number }> {
  for (const role of roles) parseEnv(envOf[role], env);
  const rt = createRuntime(env, { name: `rekey-${roles.join('+')}`, logDestination: opts.logDestination });
  let apiPort: number | undefined;
  try {
    for (const role of roles) {
      if (role === 'api') apiPort = (await startApi(rt)).port;
      if (role === 'scheduler') await startScheduler(rt);
      if (role === 'rotator') await startRotator(rt);
      if (role === 'notifier') await startNotifier(rt);
    }
    const metricsPort = Number(env.METRICS_PORT ?? 0);
    if (!roles.includes('api') && metricsPort > 0) await serveMetrics(rt, metricsPort);
  } catch (err) {
    await rt.close().catch(() => {});
    throw err;
  }
  return { rt, apiPort };
}

/** Worker-only processes expose their own /metrics. */
async function serveMetrics(rt: Runtime, port: number): Promise<void> {
  const { createServer } = await import('node:http');
  const server = createServer(async (req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': rt.metrics.registry.contentType }).end(await rt.metrics.registry.metrics());
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  rt.defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
}
