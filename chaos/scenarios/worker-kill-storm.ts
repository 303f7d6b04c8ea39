import { sleep, type RoleProcess } from '../faults/index.ts';
import type { Scenario } from '../harness/scenario.ts';
import { requestRotations, seedSecrets, waitForAllEnded } from '../harness/workload.ts';

/**
 * Scenario 4. A storm of rotations while a killer SIGKILLs a rotator or the notifier every
 * second or so and starts it again: jobs are abandoned mid-step (after a mint, between
 * activation and notify, mid-publish), locks expire, stalled jobs are re-run by whoever
 * is alive. Each step is idempotent and fenced, so everything converges to one outcome.
 */
export const workerKillStorm: Scenario = {
  name: 'worker-kill-storm',
  title: 'Rotator and notifier processes SIGKILLed repeatedly during a storm of rotations',
  fault: 'SIGKILL of a random rotator or the notifier every 0.7–2 s for the whole storm, each restarted 0.3 s later',
  invariant: 'nothing lost, nothing duplicated, no stuck pending version, every event published',
  quick: true,
  timeoutMs: (quick) => (quick ? 150_000 : 300_000),
  async run({ env, quick, figures, check, note }) {
    const total = quick ? 600 : 1500;
    const perSecond = quick ? 60 : 100;
    const names = await seedSecrets(env, quick ? 300 : 500);
    const requests = Array.from({ length: Math.ceil(total / names.length) }, () => names).flat().slice(0, total);
    const pipeline = await env.startPipeline();
    const victims: RoleProcess[] = [...pipeline.rotators, pipeline.notifier];
    let storming = true;
    let kills = 0;
    const restarts: Promise<void>[] = [];
    const restartErrors: string[] = [];
    const killer = (async () => {
      while (storming) {
        await sleep(700 + Math.random() * 1300);
        if (!storming) break;
        const victim = victims[Math.floor(Math.random() * victims.length)]!;
        if (!victim.ready) continue;
        await victim.kill();
        kills++;
        restarts.push(sleep(300).then(() => victim.start()).catch((err) => void restartErrors.push(String(err))));
      }
    })();
    note(`storm of ${total} rotations at ${perSecond}/s with kills`);
    const outcome = await requestRotations(env, pipeline.api, requests, { concurrency: 16, perSecond });
    storming = false;
    await killer;
    await Promise.all(restarts);
    for (const v of victims) if (!v.running) await v.start();
    note(`storm over after ${kills} kills; draining`);
    figures.kills = kills;
    check('every killed process started again', restartErrors.length === 0, restartErrors.length ? restartErrors.slice(0, 3) : undefined);
    figures.refused = outcome.refused;
    figures.drainAfterStormMs = await waitForAllEnded(env, quick ? 90_000 : 180_000);
    const resumed = (await env.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rotations WHERE attempts > 1`)).rows[0]!.n;
    figures.rotationsResumedAfterAKill = resumed;
    check('processes were killed with rotations mid-step', kills >= 3 && resumed > 0, { kills, resumed });
    return { accepted: outcome.accepted, requireCompleted: true };
  },
};
