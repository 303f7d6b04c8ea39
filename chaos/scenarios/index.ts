import type { Scenario } from '../harness/scenario.ts';
import { redisKillAof } from './redis-kill-aof.ts';
import { redisRestartEmpty } from './redis-restart-empty.ts';
import { redisPause } from './redis-pause.ts';
import { rotatorPartition } from './rotator-partition.ts';
import { workerKillStorm } from './worker-kill-storm.ts';
import { postgresDown } from './postgres-down.ts';
import { rotationHerd } from './rotation-herd.ts';
import { targetDown } from './target-down.ts';
import { emergencyDuringRedisOutage } from './emergency-during-redis-outage.ts';
import { injectorsDisconnected } from './injectors-disconnected.ts';
import { renewalHerd } from './renewal-herd.ts';

/** Every scenario, in the order `npm run chaos` runs them. */
export const scenarios: Scenario[] = [redisKillAof, redisRestartEmpty, redisPause, rotatorPartition, workerKillStorm, postgresDown, targetDown, emergencyDuringRedisOutage, injectorsDisconnected, rotationHerd, renewalHerd];
