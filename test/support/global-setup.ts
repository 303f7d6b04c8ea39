import net from 'node:net';
import type { TestProject } from 'vitest/node';

const answers = (url: string) =>
  new Promise<boolean>((resolve) => {
    const u = new URL(url);
    const socket = net.connect({ host: u.hostname, port: Number(u.port) }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
  });

/**
 * Tests run against REDIS_URL / DATABASE_URL (default: the local services). Only where
 * neither answers and a Docker engine exists do we start containers with testcontainers.
 */
export default async function setup(project: TestProject) {
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const databaseUrl = process.env.DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres';
  const stops: (() => Promise<unknown>)[] = [];
  if (!(await answers(redisUrl))) {
    const { GenericContainer } = await import('testcontainers');
    const redis = await new GenericContainer('redis:7').withExposedPorts(6379).start();
    process.env.REDIS_URL = `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`;
    stops.push(() => redis.stop());
  }
  if (!(await answers(databaseUrl))) {
    const { GenericContainer } = await import('testcontainers');
    const postgres = await new GenericContainer('postgres:16')
      .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
      .withExposedPorts(5432)
      .start();
    process.env.DATABASE_URL = `postgres://postgres@${postgres.getHost()}:${postgres.getMappedPort(5432)}/postgres`;
    stops.push(() => postgres.stop());
  }
  project.provide('redisUrl', process.env.REDIS_URL ?? redisUrl);
  project.provide('databaseUrl', process.env.DATABASE_URL ?? databaseUrl);
  return async () => {
    for (const stop of stops) await stop();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    databaseUrl: string;
  }
}
