// The simulator proves something only if its checks can fail. Each deliberately broken variant of
// the Raft state machine (test/sim/variants.ts) must be caught — with a violation of the right
// kind — within a bounded number of seeds. The seeds are deterministic, so the seed that catches a
// variant only moves when the core's behaviour changes; the bounds leave a wide margin.

import { describe, expect, it } from 'vitest';
import { BROKEN_VARIANTS } from './variants.js';
import { formatFailure, runSchedule, type SimOptions, type SimResult } from './simulator.js';

function firstViolation(
  variant: string,
  options: Omit<SimOptions, 'seed' | 'deps' | 'variant'>,
  maxSeeds: number,
): SimResult | undefined {
  const v = BROKEN_VARIANTS[variant]!;
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = runSchedule({ ...options, seed, deps: v.deps, variant });
    if (r.failure !== undefined) return r;
  }
  return undefined;
}

describe('the simulator catches deliberately broken cores', () => {
  it("commit-by-counting (Figure 8): an earlier term's entry committed by counting replicas", () => {
    // Churn schedules (leaders deposed often, a new leader sometimes cut off at once) make the
    // Figure 8 interleaving common: about 3 in 100 three-node seeds at the time of writing.
    const r = firstViolation('commit-by-counting', { nodes: 3, profile: 'churn' }, 600);
    expect(r, 'no violation in 600 seeds').toBeDefined();
    expect(BROKEN_VARIANTS['commit-by-counting']!.expected, formatFailure(r!)).toContain(r!.failure!.kind);
    expect(r!.failure!.command).toContain('--variant commit-by-counting');
  });

  it('vote-without-log-check: votes granted without the election restriction (§5.4.1)', () => {
    const r = firstViolation('vote-without-log-check', { nodes: 5 }, 200);
    expect(r, 'no violation in 200 seeds').toBeDefined();
    expect(BROKEN_VARIANTS['vote-without-log-check']!.expected, formatFailure(r!)).toContain(r!.failure!.kind);
  });

  it('unconfirmed-read: a leader answers ReadIndex without confirming its leadership (§6.4)', () => {
    const r = firstViolation('unconfirmed-read', { nodes: 5 }, 200);
    expect(r, 'no violation in 200 seeds').toBeDefined();
    expect(BROKEN_VARIANTS['unconfirmed-read']!.expected, formatFailure(r!)).toContain(r!.failure!.kind);
  });

  it('forgetful-voter: a follower that does not persist its vote', () => {
    const r = firstViolation('forgetful-voter', { nodes: 3 }, 50);
    expect(r, 'no violation in 50 seeds').toBeDefined();
    expect(BROKEN_VARIANTS['forgetful-voter']!.expected, formatFailure(r!)).toContain(r!.failure!.kind);
  });

  it('the same seeds pass with the real core (the failures come from the broken rule)', () => {
    for (const [nodes, profile] of [
      [3, 'churn'],
      [5, 'mixed'],
    ] as const) {
      for (let seed = 1; seed <= 20; seed++) {
        const r = runSchedule({ seed, nodes, profile });
        expect(r.failure, r.failure && formatFailure(r)).toBeUndefined();
      }
    }
  });

  it('a violation report names the seed, the reproduce command and the last events', () => {
    const r = firstViolation('forgetful-voter', { nodes: 3 }, 50)!;
    const text = formatFailure(r);
    expect(text).toContain(`seed ${r.seed}`);
    expect(text).toContain(`npm run sim -- --seed ${r.seed} --nodes 3 --variant forgetful-voter`);
    expect(r.failure!.events.length).toBeGreaterThan(10);
    expect(r.failure!.events.length).toBeLessThanOrEqual(50);
  });
});
