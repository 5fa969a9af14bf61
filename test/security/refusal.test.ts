// A member cannot stop another on its own word (issue 10 part 4): `refused` (an ident answer
// telling a node its identity is not welcome) stops a node only when a majority of the members
// say so, or its own applied log removed it. And a control reply a joiner relies on (`whoami`) is
// checked before use: a malformed or impossible one is logged with its reason and ignored.
// Real nodes in process; one genesis member is a raw transport that lies.

import { afterEach, describe, expect, it } from 'vitest';
import { CHANNEL_CTL } from '../../node/control.js';
import { createLogger, silentLogger } from '../../node/log.js';
import { NodeState } from '../../node/node-types.js';
import { refusalQuorum } from '../../node/peers.js';
import { TestCluster, commitOnAll, waitFor, type HarnessNode } from '../node/harness.js';
import { watchProcessFaults } from './faults.js';

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));

let cluster: TestCluster | undefined;
let running: HarnessNode[] = [];
afterEach(async () => {
  await Promise.all(running.map((h) => h.node.stop()));
  running = [];
  cluster = undefined;
});

describe('refusalQuorum', () => {
  it('is a majority of the members, at most every other member: one liar never suffices from 3 members up', () => {
    expect(refusalQuorum(1, 0)).toBe(1);
    expect(refusalQuorum(2, 1)).toBe(1);
    expect(refusalQuorum(3, 2)).toBe(2);
    expect(refusalQuorum(4, 3)).toBe(3);
    expect(refusalQuorum(5, 4)).toBe(3);
    expect(refusalQuorum(7, 6)).toBe(4);
  });
});

describe('one lying member', () => {
  it('cannot stop a node with a forged `refused`, nor give a joiner a malformed or taken id; a real removal still stops a node', async () => {
    const faults = watchProcessFaults();
    try {
      const lines: Array<Record<string, unknown>> = [];
      cluster = new TestCluster({
        nodes: 4,
        logger: (name) =>
          createLogger({
            level: 'warn',
            base: { nodeId: name },
            destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
          }),
      });
      running = cluster.nodes.slice(0, 3);
      await Promise.all(running.map((h) => h.node.start()));
      // node-4 is the liar: a genesis member (its word counts as a member's) that answers every
      // ident with a well-formed refusal, and whoami with rotating malformed or taken ids.
      const liar = cluster.nodes[3];
      const t = cluster.network.createTransport(liar.peerId, { logger: silentLogger() });
      const whoamiLies = [
        { raftId: 'x' },
        { raftId: -1 },
        { raftId: 2 ** 40 },
        { raftId: 5, extra: 1 },
        7,
        { raftId: 2 },
      ];
      let whoamiAsked = 0;
      t.onRequest(CHANNEL_CTL, async (_from, data) => {
        const req = JSON.parse(new TextDecoder().decode(data)) as { type?: string };
        if (req.type === 'ident')
          return enc({ ok: { raftId: 4, incarnation: 'inc-liar', refused: 'you were removed (forged)' } });
        if (req.type === 'whoami') return enc({ ok: whoamiLies[whoamiAsked++ % whoamiLies.length] });
        return enc({ ok: null });
      });
      await t.start();
      t.setPeers(running.map((h) => ({ peerId: h.peerId, addrs: [`/memory/${h.name}`] })));

      let leader = await cluster.waitForLeader(running, 15_000);
      await commitOnAll(running, leader, 'before');
      // Every honest node heard the forged refusal (it identifies node-4 on connect) and logged it.
      await waitFor(
        () =>
          running.every((h) =>
            lines.some((l) => l.nodeId === h.name && String(l.msg).startsWith('a member says this node is refused')),
          ),
        10_000,
        'every honest node told it is refused',
      );
      for (const h of running) expect(h.node.lifecycle, h.name).toBe(NodeState.Running);

      // A joiner asks every member whoami, the liar among them: its answers are refused with a
      // logged reason, and the joiner takes the id the cluster gives it.
      const joiner = await cluster.addJoiningNode();
      running.push(joiner);
      t.setPeers([...running].map((h) => ({ peerId: h.peerId, addrs: [`/memory/${h.name}`] })));
      await waitFor(() => whoamiAsked >= whoamiLies.length, 10_000, 'the joiner to ask the liar whoami');
      const id = await leader.node.addLearner(cluster.p2pAddress(joiner));
      await waitFor(() => joiner.node.lifecycle === NodeState.Running, 10_000, 'the joiner to run');
      expect(joiner.node.status().raftId).toBe(id);
      const reasons = lines
        .filter((l) => l.nodeId === joiner.name && l.msg === 'a peer answered whoami malformed; ignored')
        .map((l) => String(l.reason));
      expect(reasons.join(' | ')).toMatch(/raftId must be null or an integer/);
      expect(reasons.join(' | ')).toMatch(/wants exactly the field raftId/);
      expect(reasons.join(' | ')).toMatch(/raft id 2 is member node-2's here/);

      leader = await cluster.waitForLeader(running.slice(0, 3), 15_000);
      await commitOnAll(running, leader, 'after-lies');
      for (const h of running) expect(h.node.lifecycle, h.name).toBe(NodeState.Running);

      // A real removal, committed in the node's own log, still stops it.
      const victim = running.slice(0, 3).find((h) => h !== leader)!;
      await leader.node.removePeer(victim.raftId);
      await waitFor(() => victim.node.lifecycle === NodeState.Removed, 10_000, 'the removed node to stop');
      await t.stop();
      faults.expectNone();
    } finally {
      faults.stop();
    }
  });
});
