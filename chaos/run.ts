/**
 * The chaos suite: `npm run chaos` runs every scenario, `npm run chaos -- NAME…` the named
 * ones, `npm run chaos -- --quick` the quick subset with smaller numbers. Each scenario
 * prints its verdict as JSON on stdout (progress goes to stderr); the exit code is 1 when
 * any invariant failed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChaosEnv } from './harness/chaos-env.ts';
import type { Scenario, ScenarioContext } from './harness/scenario.ts';
import { checkInvariants, type InvariantResult, type Verdict } from './harness/verdict.ts';
import { scenarios } from './scenarios/index.ts';

const write = (text: string) => process.stdout.write(`${text}\n`);
const note = (text: string) => process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${text}\n`);

async function runScenario(s: Scenario, quick: boolean): Promise<Verdict> {
  const t0 = Date.now();
  const invariants: InvariantResult[] = [];
  const figures: Record<string, unknown> = {};
  const errors: string[] = [];
  let env: ChaosEnv | null = null;
  let verdict: Verdict = {
    scenario: s.name, title: s.title, fault: s.fault, pass: false, durationMs: 0, invariants,
    counts: { accepted: 0, completed: 0, failed: 0, lost: 0, duplicated: 0, stuck: 0, lockedOut: 0 },
    worstTimeToRevokeMs: null, canaryInLogs: false, figures,
  };
  try {
    env = await ChaosEnv.create(s.name, { redis: s.redis });
    const ctx: ScenarioContext = {
      env,
      quick,
      figures,
      check: (name, pass, detail) => invariants.push({ name, pass, ...(detail !== undefined && { detail }) }),
      note: (m) => note(`${s.name}: ${m}`),
    };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`scenario timed out after ${s.timeoutMs(quick)} ms`)), s.timeoutMs(quick));
    });
    const outcome = await Promise.race([s.run(ctx), timeout]).finally(() => clearTimeout(timer));
    const checked = await checkInvariants(env, outcome.accepted, { requireCompleted: outcome.requireCompleted });
    verdict = { ...verdict, ...checked, invariants: [...checked.invariants, ...invariants] };
  } catch (err) {
    errors.push(err instanceof Error ? (err.stack ?? err.message) : String(err));
    invariants.push({ name: 'scenario ran to the end', pass: false });
  } finally {
    if (env) {
      // Stop the role processes before reading their logs for the record.
      errors.push(...(await env.cleanup()));
    }
  }
  verdict.durationMs = Date.now() - t0;
  verdict.pass = errors.length === 0 && verdict.invariants.length > 0 && verdict.invariants.every((i) => i.pass);
  if (errors.length) verdict.errors = errors;
  if (!verdict.pass && env) {
    const dir = join(tmpdir(), 'rekey-chaos-logs', `${s.name}-${Date.now()}`);
    mkdirSync(dir, { recursive: true });
    for (const p of env.processes) writeFileSync(join(dir, `${p.label}.log`), p.text());
    verdict.logs = dir;
  }
  return verdict;
}

async function main(argv: string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const names = argv.filter((a) => !a.startsWith('--'));
  const unknown = names.filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length) {
    process.stderr.write(`unknown scenario ${unknown.join(', ')}; scenarios are:\n${scenarios.map((s) => `  ${s.name}  ${s.title}`).join('\n')}\n`);
    return 2;
  }
  const selected = names.length ? scenarios.filter((s) => names.includes(s.name)) : scenarios.filter((s) => !quick || s.quick);
  const t0 = Date.now();
  const verdicts: Verdict[] = [];
  for (const s of selected) {
    note(`${s.name}: ${s.title}${quick ? ' (quick)' : ''}`);
    const v = await runScenario(s, quick);
    verdicts.push(v);
    write(JSON.stringify(v, null, 2));
    note(`${s.name}: ${v.pass ? 'PASS' : 'FAIL'} in ${(v.durationMs / 1000).toFixed(1)} s`);
  }
  const failed = verdicts.filter((v) => !v.pass).map((v) => v.scenario);
  write(JSON.stringify({ summary: { scenarios: verdicts.length, passed: verdicts.length - failed.length, failed, durationMs: Date.now() - t0, quick } }));
  return failed.length ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
