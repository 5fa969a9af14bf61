import { Raft } from '../../consensus/raft.js';
import type { RaftConfig } from '../../consensus/config.js';
import { runSchedule, nodesForSeed } from './simulator.js';
import { SafetyChecker } from './checker.js';
let flag = false; let shown = 0;
class C extends Raft {
  protected override maybeCommit(): boolean {
    const mci = this.tracker.committed();
    if (!Number.isFinite(mci) || mci <= this.raftLog.committed) return false;
    if (this.raftLog.term(mci) !== this.term) { flag = true; }
    this.raftLog.commitTo(mci);
    return true;
  }
}
const orig = SafetyChecker.prototype.checkCommitSafety;
SafetyChecker.prototype.checkCommitSafety = function (voters) {
  if (flag && shown < 15) {
    shown++;
    const self = this as any;
    const c = self.committedIndex();
    console.log('bad commit', c, 'term', self.committedInTerm[c], voters.map((v: any) => { const t = self.tracks.get(v); return `${v}:(${self.lastIndexOf(v)},t${t.lastTerm}) has=${t.base >= c || self.digestAt(t, c) === self.committedPrefix[c]}`; }).join(' '));
  }
  flag = false;
  return orig.call(this, voters);
};
for (let s = 1; s <= 60; s++) {
  const r = runSchedule({ seed: s, nodes: nodesForSeed(s), deps: { createRaft: (c: RaftConfig) => new C(c) } });
}
