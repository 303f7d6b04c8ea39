import type { Scenario } from '../harness/scenario.ts';
import { redisKillAof } from './redis-kill-aof.ts';
import { redisRestartEmpty } from './redis-restart-empty.ts';
import { rotatorPartition } from './rotator-partition.ts';

/** Every scenario, in the order `npm run chaos` runs them. */
export const scenarios: Scenario[] = [redisKillAof, redisRestartEmpty, rotatorPartition];
