import { registerSubscribers } from '../../bench/support/bulk-subscribers.ts';
import { refetchHerd, type RefetchHerdResult } from '../../bench/support/refetch-herd.ts';
import type { Scenario } from '../harness/scenario.ts';
import { seedSecrets, waitForAllEnded } from '../harness/workload.ts';

interface HerdArm {
  label: string;
  spread: boolean;
  coalescing: boolean;
  overrides: Record<string, string>;
}

/**
 * Scenario 9. Every injector of a secret learns of its rotation from the same event and
 * refetches. The event's refetchSpreadMs hint (live subscribers ÷ REKEY_REFETCH_RATE)
 * spreads the refetches, and the api serves concurrent reads of one secret from one
 * PostgreSQL read, so api and PostgreSQL load stay bounded however many injectors there
 * are. The same herd runs again with both off, to show what they prevent and that the herd
 * really is a herd.
 *
 * Coalescing is checked on its own arm (coalescing on, no spread): a well-spread herd
 * seldom has two reads of one secret in flight at once, so there it saves few reads (measured:
 * 851 PostgreSQL reads for 1,000 injectors at 100/s); its PostgreSQL load is bounded by the
 * refetch rate instead. Coalescing is what bounds PostgreSQL when a herd arrives at once
 * (an emergency rotation's short spread, injectors ignoring the hint). The herd itself is bench/support/refetch-herd.ts (shared with
 * `npm run bench:herd`); the api and notifier restart between the arms with the arm's settings.
 */
export const renewalHerd: Scenario = {
  name: 'renewal-herd',
  title: 'Renewal herd: injectors told of a rotation at once, with spread and coalescing vs without',
  fault: 'every injector (10,000; quick 1,000) refetches on the same rotation event; with the refetch-spread hint and api read coalescing; with coalescing only (REKEY_REFETCH_SPREAD_MAX_MS=0); with neither (also REKEY_COALESCE_VALUE_READS=false)',
  invariant: 'every injector converges on the new version with no error; with spread and coalescing, api requests/s stay at the refetch rate (plus tolerance) and a herd arriving at once costs PostgreSQL far fewer value reads than injectors (coalescing)',
  // Run by name or in the full suite; the quick subset (CI) keeps to about 3 minutes.
  quick: false,
  timeoutMs: (quick) => (quick ? 180_000 : 900_000),
  async run({ env, quick, figures, check, note }) {
    const injectors = quick ? 1000 : 10_000;
    const refetchRate = quick ? 100 : 1000;
    // A uniform random delay is not a pacer: a one-second window of a uniform spread holds
    // `rate` requests give or take √rate, and the busiest of the spread's windows sits a few
    // of those above; 10 % more for timers firing late on a loaded machine.
    const allowedPeak = Math.ceil(refetchRate * 1.1 + 4 * Math.sqrt(refetchRate));
    // "Far fewer": at most one read in four. With one read in flight per secret, reads come
    // to about the herd's duration ÷ one read's time, not to the injectors: 6–81 for 10,000
    // measured, but 43–135 for the quick 1,000, which this (loaded) process takes ~1 s to send.
    const allowedReads = Math.floor(injectors / 4);
    const arms: HerdArm[] = [
      { label: 'spread+coalescing', spread: true, coalescing: true, overrides: { REKEY_REFETCH_RATE: String(refetchRate) } },
      { label: 'coalescing only', spread: false, coalescing: true, overrides: { REKEY_REFETCH_SPREAD_MAX_MS: '0' } },
      { label: 'no spread, no coalescing', spread: false, coalescing: false, overrides: { REKEY_REFETCH_SPREAD_MAX_MS: '0', REKEY_COALESCE_VALUE_READS: 'false' } },
    ];
    // As the bench: the api trusts its view of each injector for the whole herd.
    const common = { REKEY_SUBSCRIBER_CACHE_MS: '60000', REKEY_REDELIVER_MS: '2000' };
    const secrets = await seedSecrets(env, arms.length, { prefix: 'herd', policy: { grace: '2s' } });
    await env.start(['rotator'], common, 'rotator');

    const accepted: string[] = [];
    const results: (RefetchHerdResult & { arm: string })[] = [];
    let tokens: string[] = [];
    for (const [i, arm] of arms.entries()) {
      const overrides = { ...common, ...arm.overrides };
      const [api, notifier] = await Promise.all([env.start(['api'], overrides, `api (${arm.label})`), env.start(['notifier'], overrides, `notifier (${arm.label})`)]);
      // Rekey's signing key exists once an api has started; one set of injectors for both arms.
      if (!tokens.length) tokens = (await registerSubscribers(env.pool, env.cipher, injectors, ['herd/'])).map((s) => s.token);
      note(`${arm.label}: ${injectors} injectors refetch ${secrets[i]}`);
      const r = await refetchHerd({
        apiUrl: `http://127.0.0.1:${api.apiPort}`,
        secret: secrets[i]!,
        version: 2,
        tokens,
        rotate: async () => {
          const res = await env.api(api, 'POST', `/v1/secrets/${secrets[i]}/rotate`, { reason: 'renewal herd' });
          if (res.status !== 202) throw new Error(`rotate: ${res.status} ${JSON.stringify(res.body)}`);
          accepted.push(res.body.rotationId);
        },
      });
      // The rotation ends after its 2 s grace; the notifier publishes its last events.
      const drainMs = await waitForAllEnded(env, 60_000);
      await Promise.all([api.stop(), notifier.stop()]);
      const result = { arm: arm.label, ...r, peakToMean: Number((r.peakRequestsPerSecond / Math.max(1, r.meanRequestsPerSecond)).toFixed(2)), drainMs };
      results.push(result);
      note(JSON.stringify(result));

      if (arm.spread) {
        // What rekey promises, with its defaults. The other arms are the comparison: their
        // errors (at 10,000 with neither, most requests) are reported, not failed.
        check(`${arm.label}: every injector converged on the new version (200, version 2)`, r.converged === injectors, { converged: r.converged, injectors, stale: r.staleVersions });
        check(`${arm.label}: no errors`, r.errors === 0, { errors: r.errors, kinds: r.errorKinds });
        check(`${arm.label}: peak api requests/s within the refetch rate (${refetchRate}/s + tolerance)`, r.peakRequestsPerSecond <= allowedPeak, { peak: r.peakRequestsPerSecond, allowed: allowedPeak, spreadMs: r.refetchSpreadMs });
      } else {
        // Otherwise the comparison proves nothing: without the hint the herd must stampede.
        check(`${arm.label}: the herd really stampedes (peak above the bound)`, r.peakRequestsPerSecond > allowedPeak, { peak: r.peakRequestsPerSecond, bound: allowedPeak });
      }
      if (arm.coalescing && !arm.spread) {
        check(`${arm.label}: PostgreSQL value reads far fewer than injectors (at most 1 in 4)`, r.postgresValueReads <= allowedReads, { reads: r.postgresValueReads, allowed: allowedReads, injectors });
      }
    }
    figures.injectors = injectors;
    figures.refetchRatePerSecond = refetchRate;
    figures.allowedPeakPerSecond = allowedPeak;
    figures.runs = results;
    return { accepted, requireCompleted: true };
  },
};
