// Consensus scenarios 10, 11 (docs/correctness.md): linearizable reads (ReadIndex, thesis §6.4).

import { describe, expect, it } from 'vitest';
import { MessageType, RaftError, RaftErrorCode, Role } from '../../consensus/index.js';
import { bytes, id, Network, text } from './network.js';

describe('consensus scenarios: reads', () => {
  it('scenario 10: an old leader cut off in a minority never answers a read with a value older than a majority write', () => {
    const net = new Network({ voters: [1, 2, 3, 4, 5], seed: 10 });
    net.campaign(1);
    net.propose(1, 'x=1');
    // 1 and 2 are cut off from 3, 4, 5.
    for (const a of [1, 2]) for (const b of [3, 4, 5]) net.cut(a, b);
    net.node(1).readIndex(bytes('read-at-old-leader'));
    net.node(2).readIndex(bytes('read-at-old-follower'));
    net.stabilize();
    // The majority elects a leader and commits a newer write.
    net.tickAll(40);
    const newLeader = net.leader();
    expect([3, 4, 5]).toContain(newLeader);
    net.propose(newLeader, 'x=2');
    const writeIndex = net.node(newLeader).status().lastIndex;
    net.tickAll(20);
    // The old side never produced a read answer (no heartbeat quorum), however long it waits.
    expect(net.readStates.get(id(1))).toEqual([]);
    expect(net.readStates.get(id(2))).toEqual([]);
    net.recover();
    net.tickAll(10);
    // Stale requests died with the old leadership; nothing was answered below the write.
    for (const n of [1, 2])
      for (const rs of net.readStates.get(id(n))!) expect(rs.index).toBeGreaterThanOrEqual(writeIndex);
    // A new read, from a follower on the old side, forwards to the new leader and sees the write.
    net.node(1).readIndex(bytes('read-after-heal'));
    net.stabilize();
    const rs = net.readStates.get(id(1))!.find((r) => text(r.context) === 'read-after-heal');
    expect(rs).toBeDefined();
    expect(rs!.index).toBeGreaterThanOrEqual(writeIndex);
    expect(net.apps.get(id(1))!.appliedIndex).toBeGreaterThanOrEqual(rs!.index);
    expect(net.appliedData(1)).toEqual(['x=1', 'x=2']);
    expect(net.sentOf(MessageType.ReadIndexResp).some((m) => m.to === 1)).toBe(true);
  });

  it('scenario 11: a brand-new leader holds read requests until its own no-op has committed and been applied', () => {
    const net = new Network({ voters: [1, 2, 3], seed: 11 });
    net.campaign(1);
    net.propose(1, 'a');
    // Node 2 wins an election but its appends are held back: its no-op cannot commit.
    net.filter = (m) => !(m.from === 2 && m.type === MessageType.App);
    net.node(1).transferLeadership(id(2));
    net.stabilize();
    expect(net.role(2)).toBe(Role.Leader);
    const noopIndex = net.node(2).status().lastIndex;
    expect(net.commit(2)).toBeLessThan(noopIndex);
    net.node(2).readIndex(bytes('r1'));
    net.tickAll(5); // heartbeats go round, but the read is held
    expect(net.readStates.get(id(2))).toEqual([]);
    net.filter = undefined;
    net.tickAll(2);
    const rs = net.readStates.get(id(2))!;
    expect(rs.length).toBe(1);
    expect(text(rs[0].context)).toBe('r1');
    expect(rs[0].index).toBeGreaterThanOrEqual(noopIndex);
    // When the read state was handed out the no-op was committed; the application serves it once
    // it applied that far (the harness applies in the same Ready).
    expect(net.apps.get(id(2))!.appliedIndex).toBeGreaterThanOrEqual(rs[0].index);

    // A read with no leader known fails fast with a typed error.
    const lone = new Network({ voters: [1, 2, 3], seed: 12 });
    expect(() => lone.node(1).readIndex(bytes('r'))).toThrow(RaftError);
    try {
      lone.node(1).readIndex(bytes('r'));
    } catch (e) {
      expect((e as RaftError).code).toBe(RaftErrorCode.ReadIndexDropped);
    }
  });
});
