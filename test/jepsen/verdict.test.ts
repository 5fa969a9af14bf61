// The run's verdict (report.ts runVerdict): PASS needs every checker to pass AND every requested fault
// kind to have taken effect; a violation is FAIL whatever else happened; anything unproven is
// INCONCLUSIVE. The report page, results.json and the exit codes follow it.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HistoryOp } from '../../node/jepsen/history.js';
import {
  VERDICT_EXIT_CODES,
  faultTallyText,
  renderReport,
  runVerdict,
  writeReport,
  type CheckerVerdict,
  type FaultTally,
} from '../../node/jepsen/report.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const pass = (name: string): CheckerVerdict => ({ name, valid: true });
const both: FaultTally = {
  requested: ['partition', 'kill'],
  injected: { partition: 2, kill: 1, pause: 0, membership: 0 },
};
const noKill: FaultTally = {
  requested: ['partition', 'kill'],
  injected: { partition: 2, kill: 0, pause: 0, membership: 0 },
};
const noFaults: FaultTally = {
  requested: ['partition', 'kill'],
  injected: { partition: 0, kill: 0, pause: 0, membership: 0 },
};

describe('runVerdict', () => {
  it('PASS only when every checker passed and every requested kind was injected', () => {
    expect(runVerdict([pass('chain'), pass('bank')], both)).toEqual({ verdict: 'PASS', reasons: [] });
    // Kinds that were injected but not requested do not matter; requested ones with none do.
    expect(runVerdict([pass('chain')], { requested: ['partition'], injected: { partition: 1, kill: 0 } }).verdict).toBe(
      'PASS',
    );
  });

  it('INCONCLUSIVE when a requested kind injected nothing (the issue-9 run: checkers passed, 0 faults)', () => {
    expect(runVerdict([pass('chain')], noKill)).toEqual({
      verdict: 'INCONCLUSIVE',
      reasons: ['no kill fault was injected'],
    });
    expect(runVerdict([pass('chain')], noFaults).reasons).toEqual([
      'no partition fault was injected',
      'no kill fault was injected',
    ]);
    // A kind missing from the tally counts as none.
    expect(runVerdict([pass('chain')], { requested: ['pause'], injected: {} }).verdict).toBe('INCONCLUSIVE');
  });

  it('INCONCLUSIVE when a checker could not decide, with every reason listed', () => {
    const r = runVerdict([pass('chain'), { name: 'list-append', valid: 'unknown' }], noKill);
    expect(r).toEqual({
      verdict: 'INCONCLUSIVE',
      reasons: ['checker list-append could not decide', 'no kill fault was injected'],
    });
  });

  it('FAIL when a checker failed, even if the faults were missing: a violation is a violation', () => {
    const r = runVerdict([pass('chain'), { name: 'bank', valid: false }, { name: 'x', valid: 'unknown' }], noFaults);
    expect(r).toEqual({ verdict: 'FAIL', reasons: ['checker bank failed'] });
    expect(runVerdict([], both).verdict).toBe('FAIL'); // nothing was shown to be valid
  });

  it('without a fault tally, rests on the checkers alone', () => {
    expect(runVerdict([pass('a')]).verdict).toBe('PASS');
    expect(runVerdict([{ name: 'a', valid: 'unknown' }]).verdict).toBe('INCONCLUSIVE');
  });

  it('maps to distinct exit codes: 0 only for PASS, and not 2 (usage errors)', () => {
    expect(VERDICT_EXIT_CODES.PASS).toBe(0);
    expect(VERDICT_EXIT_CODES.FAIL).toBe(1);
    expect(VERDICT_EXIT_CODES.INCONCLUSIVE).not.toBe(0);
    expect(new Set([...Object.values(VERDICT_EXIT_CODES), 2]).size).toBe(4);
  });
});

describe('the report shows the verdict', () => {
  const history: HistoryOp[] = [
    { index: 0, type: 'invoke', process: 0, f: 'put', value: { key: 'k', value: 'v' }, timeNs: 0 },
    { index: 1, type: 'ok', process: 0, f: 'put', value: { key: 'k', value: 'v' }, timeNs: 5_000_000 },
  ];

  it('an inconclusive run says INCONCLUSIVE, why, and the fault tally — never ALL CHECKERS PASSED', () => {
    const html = renderReport({ history, checkers: [pass('chain')], faults: noKill });
    expect(html).toContain('data-verdict="INCONCLUSIVE" id="overall">INCONCLUSIVE</span>');
    expect(html).not.toContain('ALL CHECKERS PASSED');
    expect(html).toContain('<li>no kill fault was injected</li>');
    expect(html).toContain('Faults injected, by requested kind: partition 2, kill 0');
    expect(faultTallyText(noKill)).toBe('partition 2, kill 0');
  });

  it('a passing run with its faults says ALL CHECKERS PASSED and lists no reasons', () => {
    const html = renderReport({ history, checkers: [pass('chain')], faults: both });
    expect(html).toContain('data-verdict="PASS" id="overall">ALL CHECKERS PASSED');
    expect(html).not.toContain('class="reasons"');
    expect(html).toContain('partition 2, kill 1');
  });

  it('results.json carries the verdict, its reasons and the tally; writeReport returns them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qrt-verdict-'));
    dirs.push(dir);
    const out = await writeReport(dir, { history, checkers: [pass('chain')], faults: noKill, meta: { seed: 5 } });
    expect(out).toMatchObject({ valid: true, verdict: 'INCONCLUSIVE', reasons: ['no kill fault was injected'] });
    const results = JSON.parse(await readFile(out.resultsPath, 'utf8'));
    expect(results).toMatchObject({
      verdict: 'INCONCLUSIVE',
      verdictReasons: ['no kill fault was injected'],
      valid: true,
      faults: noKill,
    });
    expect(await readFile(out.reportPath, 'utf8')).toContain('>INCONCLUSIVE<');
  });
});
