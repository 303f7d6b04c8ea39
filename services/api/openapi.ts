import { z } from 'zod';
import { ackBody } from './injector/injector-api.ts';
import { emergencyWebhookBody } from './emergency-webhook.ts';
import { leaseRequest } from '../../shared/leases/lease-service.ts';
import { createSecretSchema, rotateSchema, updateSecretSchema } from '../../shared/secret-admin.ts';
import { createSubscriberSchema } from '../../shared/subscriber-admin.ts';

type Auth = 'admin' | 'subscriber' | 'adminOrSubscriber' | 'webhook' | 'public';

interface Operation {
  method: 'get' | 'post' | 'patch' | 'delete';
  path: string;
  summary: string;
  auth: Auth;
  body?: z.ZodType;
  ok: number;
}

/**
 * Every route of the api, with the zod schema that validates its body: the document is
 * generated from the same schemas the handlers parse with, so it cannot drift from them.
 */
const operations: Operation[] = [
  { method: 'post', path: '/v1/secrets', summary: 'Register a secret; starts the rotation that mints version 1', auth: 'admin', body: createSecretSchema, ok: 201 },
  { method: 'get', path: '/v1/secrets', summary: 'List secrets (?prefix, ?after, ?limit)', auth: 'admin', ok: 200 },
  { method: 'get', path: '/v1/secrets/{name}', summary: 'Show a secret and its versions (no values)', auth: 'admin', ok: 200 },
  { method: 'patch', path: '/v1/secrets/{name}', summary: "Change a secret's rotation policy", auth: 'admin', body: updateSecretSchema, ok: 200 },
  { method: 'delete', path: '/v1/secrets/{name}', summary: 'Delete a secret; its stored values are shredded', auth: 'admin', ok: 204 },
  { method: 'post', path: '/v1/secrets/{name}/rotate', summary: 'Request a rotation → 202 {rotationId, coalesced}', auth: 'admin', body: rotateSchema, ok: 202 },
  { method: 'get', path: '/v1/secrets/{name}/value', summary: 'Current value → {version, value, notAfter}', auth: 'adminOrSubscriber', ok: 200 },
  { method: 'post', path: '/v1/secrets/{name}/leases', summary: 'postgres-dynamic: create a lease (a short-lived login role)', auth: 'admin', body: leaseRequest, ok: 201 },
  { method: 'get', path: '/v1/leases/{id}', summary: 'Show a lease', auth: 'admin', ok: 200 },
  { method: 'post', path: '/v1/leases/{id}/renew', summary: 'Renew a lease', auth: 'admin', body: leaseRequest, ok: 200 },
  { method: 'delete', path: '/v1/leases/{id}', summary: 'Revoke a lease: drop its role, end its sessions', auth: 'admin', ok: 204 },
  { method: 'get', path: '/v1/rotations', summary: 'List rotations (?secret, ?status, ?limit)', auth: 'admin', ok: 200 },
  { method: 'get', path: '/v1/rotations/{id}', summary: 'A rotation: status, step timings, deliveries and acks, timeToRevokeMs', auth: 'admin', ok: 200 },
  { method: 'post', path: '/v1/subscribers', summary: 'Register a subscriber; its token is returned once', auth: 'admin', body: createSubscriberSchema, ok: 201 },
  { method: 'get', path: '/v1/subscribers', summary: 'List subscribers', auth: 'admin', ok: 200 },
  { method: 'delete', path: '/v1/subscribers/{id}', summary: 'Revoke a subscriber; its token stops working at once', auth: 'admin', ok: 204 },
  { method: 'get', path: '/v1/audit', summary: 'The hash-chained audit log, newest first (?before, ?limit)', auth: 'admin', ok: 200 },
  { method: 'post', path: '/v1/acks', summary: 'Acknowledge the version an injector now holds', auth: 'subscriber', body: ackBody, ok: 202 },
  { method: 'get', path: '/v1/events', summary: 'Server-Sent Events in scope, resumable with Last-Event-ID', auth: 'subscriber', ok: 200 },
  { method: 'post', path: '/v1/webhooks/emergency-rotation', summary: 'Emergency rotation, signed per Standard Webhooks → 202 with rotation ids', auth: 'webhook', body: emergencyWebhookBody, ok: 202 },
  { method: 'get', path: '/v1/jwks', summary: "rekey's event-signing keys and jwt-signing-key secrets' current and in-grace public keys", auth: 'public', ok: 200 },
  { method: 'get', path: '/v1/openapi.json', summary: 'This document', auth: 'public', ok: 200 },
  { method: 'get', path: '/healthz', summary: 'The process is up', auth: 'public', ok: 200 },
  { method: 'get', path: '/readyz', summary: 'PostgreSQL and Redis answer (503 naming which does not)', auth: 'public', ok: 200 },
  { method: 'get', path: '/metrics', summary: 'Prometheus metrics', auth: 'public', ok: 200 },
];

const security: Record<Auth, object[] | undefined> = {
  admin: [{ adminToken: [] }],
  subscriber: [{ subscriberToken: [] }],
  adminOrSubscriber: [{ adminToken: [] }, { subscriberToken: [] }],
  webhook: [{ standardWebhook: [] }],
  public: [],
};

const errorResponse = {
  description: 'Error: `{error: {code, message, details?}}`; 400 details.issues name each bad field',
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
};

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const params = [...op.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string' },
      ...(name === 'name' && { description: "A secret name; it may contain '/' (team-a/payments-db)" }),
    }));
    paths[op.path] ??= {};
    paths[op.path]![op.method] = {
      summary: op.summary,
      security: security[op.auth],
      ...(params.length && { parameters: params }),
      ...(op.body && {
        requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(op.body, { io: 'input', unrepresentable: 'any' }) } } },
      }),
      responses: { [op.ok]: { description: 'OK' }, '4XX': errorResponse, '503': errorResponse },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'rekey', version: '1', description: 'Event-driven secret rotation: admin API, emergency webhook, injector API.' },
    paths,
    components: {
      securitySchemes: {
        adminToken: { type: 'http', scheme: 'bearer', description: 'REKEY_ADMIN_TOKEN' },
        subscriberToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Issued by POST /v1/subscribers' },
        standardWebhook: { type: 'apiKey', in: 'header', name: 'webhook-signature', description: 'Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature (v1,HMAC-SHA256)' },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} } } },
        },
      },
    },
  };
}
