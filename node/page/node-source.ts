// The cluster page's view of the node it runs in: a NodeSample from QuorateNode.status(), the
// p2p connections mapped to member raft ids, the private catch-up record, and the circuit
// breakers as the node publishes them in its `quorate_circuit_breaker_state` gauge (refreshed
// once a second by node/process.ts, so the page shows exactly what Prometheus scrapes).

import type { Clock } from '../clock.js';
import { CircuitStateValue, type NodeMetrics } from '../metrics.js';
import type { QuorateNode } from '../node.js';
import type { BreakerStateName, NodeSample, PageSource, ViewMemberInfo } from './cluster-view.js';

export function pageSourceFromNode(node: QuorateNode, metrics: NodeMetrics, clock: Clock): PageSource {
  return {
    async sample(): Promise<NodeSample> {
      const s = node.status();
      const members = node.membership?.members ?? [];
      const byPeerId = new Map(members.map((m) => [m.peerId, m.raftId]));
      const connectedTo = node.transport
        .connectedPeers()
        .map((p) => byPeerId.get(p))
        .filter((id): id is number => id !== undefined)
        .sort((a, b) => a - b);
      const catchUp = node.privateCatchUp();
      const self = members.find((m) => m.raftId === s.raftId);
      return {
        raftId: s.raftId,
        name: self?.name ?? `raft id ${s.raftId}`,
        role: s.role,
        term: s.term,
        leader: s.leader,
        commitIndex: s.commitIndex,
        appliedIndex: s.appliedIndex,
        head: s.head,
        voters: [...s.voters],
        learners: [...s.learners],
        joint: s.joint,
        connectedTo,
        privateCatchUp: catchUp
          ? {
              privateThrough: catchUp.privateThrough,
              blocksLeft: catchUp.blocksLeft,
              blocksToFetch: catchUp.blocksToFetch,
            }
          : null,
        breakers: await breakerStates(metrics),
        alarm: s.alarm ?? null,
        sampledAtMs: clock.wallMs(),
      };
    },
    members(): readonly ViewMemberInfo[] {
      const members = node.membership?.members ?? [];
      return members
        .map((m) => ({
          raftId: m.raftId,
          name: m.name,
          rpcUrl: m.rpcUrl,
          membership: node.roleOfMember(m.raftId) ?? ('verifier' as const),
        }))
        .sort((a, b) => a.raftId - b.raftId);
    },
    onBlock(listener) {
      return node.onBlock((e) =>
        listener({ txCount: e.block.transactions.length, timestampMs: e.block.header.timestampMs }),
      );
    },
  };
}

async function breakerStates(metrics: NodeMetrics): Promise<{ peer: string; state: BreakerStateName }[]> {
  const { values } = await metrics.circuitBreakerState.get();
  return values
    .map((v) => ({ peer: String(v.labels.peer ?? ''), state: breakerName(v.value) }))
    .sort((a, b) => a.peer.localeCompare(b.peer));
}

function breakerName(value: number): BreakerStateName {
  if (value === CircuitStateValue.Open) return 'open';
  if (value === CircuitStateValue.HalfOpen) return 'half-open';
  return 'closed';
}
