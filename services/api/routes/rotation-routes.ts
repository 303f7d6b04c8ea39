import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type pg from 'pg';
import { findRotation, listRotations } from '../../../shared/db/rotation-store.ts';
import { findSecret } from '../../../shared/db/secret-store.ts';
import { listAudit } from '../../../shared/db/audit-log.ts';
import { NotFoundError } from '../../../shared/errors.ts';
import { parseInput } from '../../../shared/secret-admin.ts';
import { rotationView } from '../views.ts';
import { deliveriesOf } from '../../../shared/db/propagation-store.ts';

const statuses = ['queued', 'minting', 'setting', 'testing', 'activating', 'notifying', 'revoking', 'completed', 'failed'] as const;

const listQuery = z
  .object({
    secret: z.string().max(200).optional(),
    status: z.enum(statuses).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

const auditQuery = z
  .object({
    before: z.coerce.number().int().positive().optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

export function rotationRoutes(app: FastifyInstance, deps: { pool: pg.Pool }) {
  app.get('/v1/rotations/:id', async (req) => {
    const { id } = parseInput(z.object({ id: z.uuid() }), req.params, 'params');
    const rotation = await findRotation(deps.pool, id);
    if (!rotation) throw new NotFoundError(`rotation ${id} not found`);
    const name = (await deps.pool.query<{ name: string }>('SELECT name FROM secrets WHERE id = $1', [rotation.secret_id])).rows[0]!.name;
    // Per-subscriber delivery and ack state (issue 5).
    return { ...rotationView(rotation, name), deliveries: await deliveriesOf(deps.pool, rotation.id) };
  });

  app.get('/v1/rotations', async (req) => {
    const q = parseInput(listQuery, req.query, 'query');
    let secretId: string | undefined;
    if (q.secret) {
      const secret = await findSecret(deps.pool, q.secret);
      if (!secret) return { rotations: [] };
      secretId = secret.id;
    }
    const rows = await listRotations(deps.pool, { secretId, status: q.status, limit: q.limit });
    return { rotations: rows.map((r) => rotationView(r, r.secret_name)) };
  });

  app.get('/v1/audit', async (req) => {
    const q = parseInput(auditQuery, req.query, 'query');
    return { events: await listAudit(deps.pool, { limit: q.limit, beforeId: q.before?.toString() }) };
  });
}
