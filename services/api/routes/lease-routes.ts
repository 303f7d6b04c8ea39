import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { renewLease, revokeLease, showLease, type LeaseDeps } from '../../../shared/leases/lease-service.ts';
import { parseInput } from '../../../shared/secret-admin.ts';

const leaseParams = z.object({ id: z.uuid() });

/** Dynamic credential leases by id. Issuing one is `POST /v1/secrets/{name}/leases` (secret-routes). */
export function leaseRoutes(app: FastifyInstance, deps: LeaseDeps, actor = 'admin') {
  app.get('/v1/leases/:id', async (req) => showLease(deps, parseInput(leaseParams, req.params, 'params').id));

  app.post('/v1/leases/:id/renew', async (req) => renewLease(deps, parseInput(leaseParams, req.params, 'params').id, req.body, actor));

  app.delete('/v1/leases/:id', async (req, reply) => {
    await revokeLease(deps, parseInput(leaseParams, req.params, 'params').id, actor);
    return reply.status(204).send();
  });
}
