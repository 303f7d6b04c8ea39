import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { UnauthorizedError } from '../../shared/errors.ts';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Bearer-token check for admin routes; compares digests in constant time. */
export function adminAuth(adminToken: string, onRefused: (req: FastifyRequest) => void) {
  const expected = digest(adminToken);
  return async (req: FastifyRequest): Promise<void> => {
    const header = req.headers.authorization;
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!token || !timingSafeEqual(digest(token), expected)) {
      onRefused(req);
      throw new UnauthorizedError('missing or invalid admin bearer token');
    }
  };
}
