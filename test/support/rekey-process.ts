import { startRoles, type Role } from '../../services/cli/start-roles.ts';
import type { Runtime } from '../../shared/runtime.ts';
import { LogCapture, type TestEnv } from './test-env.ts';

export interface InProcessRekey {
  rt: Runtime;
  logs: LogCapture;
  baseUrl: string;
  /** Admin call to the api; returns status and parsed JSON body. */
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/** Starts rekey roles in this test process against the test's database and Redis prefix. */
export async function startRekey(t: TestEnv, roles: Role[] = ['api', 'scheduler', 'rotator', 'notifier'], extraEnv: Record<string, string> = {}): Promise<InProcessRekey> {
  const logs = new LogCapture();
  const { rt, apiPort } = await startRoles(roles, { ...t.env, ...extraEnv }, { logDestination: logs });
  const baseUrl = `http://127.0.0.1:${apiPort}`;
  return {
    rt,
    logs,
    baseUrl,
    async api(method, path, body, headers = {}) {
      const res = await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${t.adminToken}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {}
      return { status: res.status, body: parsed };
    },
    stop: () => rt.close(),
  };
}
