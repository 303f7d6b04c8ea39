import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { findSecret, listSecrets } from '../../../shared/db/secret-store.ts';
import { findVersion, listVersions, openCredential } from '../../../shared/db/version-store.ts';
import { NotFoundError } from '../../../shared/errors.ts';
import { graceMs, rotationPolicySchema } from '../../../shared/policy/rotation-policy.ts';
import { createSecret, parseInput, removeSecret, rotateSecret, secretName, updateSecret, type AdminDeps } from '../../../shared/secret-admin.ts';
import type { ValueCipher } from '../../../shared/crypto/value-cipher.ts';
import { secretView } from '../views.ts';
import { createLease, type LeaseDeps } from '../../../shared/leases/lease-service.ts';

const listQuery = z
  .object({
    prefix: z.string().max(200).optional(),
    after: z.string().max(200).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

/**
 * Secret names contain '/', so routes take the rest of the path and split off a trailing
 * verb (`/rotate`, `/value`). Names may not end in those words (see secretName).
 */
function splitPath(path: string, verb?: string): string {
  const name = verb ? path.slice(0, -(verb.length + 1)) : path;
  parseInput(secretName, name, 'params.name');
  return name;
}

export function secretRoutes(
  app: FastifyInstance,
  deps: AdminDeps & { cipher: ValueCipher; leases?: LeaseDeps; readValue?: (req: FastifyRequest, name: string) => Promise<unknown> },
  actor = 'admin',
) {
  app.post('/v1/secrets', async (req, reply) => {
    const { secret, rotation } = await createSecret(deps, req.body, actor);
    return reply.status(201).send({ ...secretView(secret), rotationId: rotation.id });
  });

  app.get('/v1/secrets', async (req) => {
    const q = parseInput(listQuery, req.query, 'query');
    const rows = await listSecrets(deps.pool, q);
    return { secrets: rows.map((s) => secretView(s)), next: rows.length === q.limit ? rows.at(-1)!.name : null };
  });

  app.get('/v1/secrets/*', async (req) => {
    const path = (req.params as { '*': string })['*'];
    if (path.endsWith('/value')) {
      const name = splitPath(path, 'value');
      // Scope checks and coalescing of concurrent reads live in the injector api (issue 5).
      if (deps.readValue) return deps.readValue(req, name);
      const secret = await findSecret(deps.pool, name);
      if (!secret || secret.current_version === null) throw new NotFoundError(`secret ${name} has no current version`);
      const row = await findVersion(deps.pool, secret.id, secret.current_version);
      const cred = openCredential(deps.cipher, secret.name, row!);
      const policy = rotationPolicySchema.parse(secret.policy);
      const notAfter = secret.next_rotation_at ? new Date(secret.next_rotation_at.getTime() + graceMs(policy)) : null;
      return { version: cred.version, value: cred.value, notAfter };
    }
    const name = splitPath(path);
    const secret = await findSecret(deps.pool, name);
    if (!secret) throw new NotFoundError(`secret ${name} not found`);
    return secretView(secret, await listVersions(deps.pool, secret.id));
  });

  app.post('/v1/secrets/*', async (req, reply) => {
    const path = (req.params as { '*': string })['*'];
    if (path.endsWith('/leases') && deps.leases) {
      return reply.status(201).send(await createLease(deps.leases, splitPath(path, 'leases'), req.body, actor));
    }
    if (!path.endsWith('/rotate')) throw new NotFoundError(`no route POST /v1/secrets/${path}`);
    const result = await rotateSecret(deps, splitPath(path, 'rotate'), req.body, actor);
    return reply.status(202).send(result);
  });

  app.patch('/v1/secrets/*', async (req) => {
    const name = splitPath((req.params as { '*': string })['*']);
    return secretView(await updateSecret(deps, name, req.body, actor));
  });

  app.delete('/v1/secrets/*', async (req, reply) => {
    await removeSecret(deps, splitPath((req.params as { '*': string })['*']), actor);
    return reply.status(204).send();
  });
}
