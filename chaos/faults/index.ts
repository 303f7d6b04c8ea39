// The chaos fault tools, for scenarios (chaos/) and tests (test/) alike.
export { PrivateRedis, type PrivateRedisOptions } from './private-redis.ts';
export { PrivatePostgres } from './private-postgres.ts';
export { TcpFaultProxy, type ProxyMode } from './tcp-fault-proxy.ts';
export { RoleProcess } from './role-process.ts';
export { freePort, sleep, until } from './reaper.ts';
