import type { PrivateRedisOptions } from '../faults/index.ts';
import type { ChaosEnv } from './chaos-env.ts';
import type { InvariantResult } from './verdict.ts';

export interface ScenarioContext {
  env: ChaosEnv;
  /** The --quick run: fewer rotations, shorter faults. */
  quick: boolean;
  /** Measurements for the verdict and the README. */
  figures: Record<string, unknown>;
  /** A scenario-specific invariant, e.g. that the fault really happened while work was in flight. */
  check(name: string, pass: boolean, detail?: unknown): void;
  /** Progress, to stderr. */
  note(message: string): void;
}

export interface ScenarioOutcome {
  /** Rotation ids accepted with 202 during the scenario; each is owed an end. */
  accepted: string[];
  /** Whether every accepted rotation must have completed (not merely ended). */
  requireCompleted: boolean;
}

export interface Scenario {
  name: string;
  title: string;
  fault: string;
  invariant: string;
  /** Part of `npm run chaos -- --quick`. */
  quick: boolean;
  timeoutMs: (quick: boolean) => number;
  redis?: PrivateRedisOptions;
  run(ctx: ScenarioContext): Promise<ScenarioOutcome>;
  extraChecks?: InvariantResult[];
}
