// A NodeIo on in-memory edges for the unit tests of the node's wiring (parts.ts, raft-link.ts):
// the same stores and transport the in-process clusters use (test/node/harness.ts), and the chain
// fixture's genesis (test/chain/helpers.ts), so the blocks it builds apply here.

import { MemoryStorage } from '../../consensus/memory-storage.js';
import type { PeerTransport } from '../../p2p/transport.js';
import { createMemoryChainStore, LedgerApp, MemoryKv } from '../../node/chain/index.js';
import type { Clock } from '../../node/clock.js';
import { silentLogger, type Logger } from '../../node/log.js';
import type { MemberInfo } from '../../node/membership.js';
import { genesisMembership } from '../../node/node.js';
import { NodeState, type NodeIo } from '../../node/node-types.js';
import { resolveNodeOptions, type NodeOptions } from '../../node/options.js';
import type { NodeHost } from '../../node/parts.js';
import type { TxPool } from '../../node/chain/index.js';
import type { RaftViewChange } from '../../node/raft-link.js';
import type { Fixture } from '../chain/helpers.js';

/** Genesis member `raftId` (1-based) of the fixture, reachable at `peerId`. */
export function fixtureMember(f: Fixture, raftId: number, peerId: string): MemberInfo {
  return {
    raftId,
    name: `node-${raftId}`,
    peerId,
    p2pAddrs: [`/memory/node-${raftId}`],
    rpcUrl: `http://127.0.0.1:0/node-${raftId}`,
    tmUrl: `http://127.0.0.1:0/node-${raftId}/tm`,
    signingKey: Buffer.from(f.minters[raftId - 1].publicKeyRaw).toString('base64'),
    enclaveKeys: [],
  };
}

/** Node `self` of a cluster whose genesis members are `members` (one per fixture minter, in order). */
export function nodeIo(
  f: Fixture,
  members: readonly MemberInfo[],
  self: number,
  edges: { transport: PeerTransport; clock: Clock; logger?: Logger },
): { io: NodeIo; options: NodeOptions; storage: MemoryStorage } {
  const storage = new MemoryStorage();
  const io: NodeIo = {
    raftStorage: storage,
    chainStore: createMemoryChainStore(new MemoryKv()),
    transport: edges.transport,
    clock: edges.clock,
    logger: edges.logger ?? silentLogger(),
    app: new LedgerApp(),
    minterKey: f.minters[self - 1],
    accountKeys: [f.accounts[self - 1]],
    genesis: f.genesis,
    genesisMembership: genesisMembership(members),
    enclaveKeys: [`enclave-key-${self}`],
    incarnation: `inc-${self}`,
  };
  const options = resolveNodeOptions({
    raftId: self,
    nodeId: `node-${self}`,
    rpcUrl: `http://127.0.0.1:0/node-${self}`,
    tmUrl: `http://127.0.0.1:0/node-${self}/tm`,
    raft: { tickMs: 10, seed: self },
  });
  return { io, options, storage };
}

/** A NodeHost that records what the parts told it (the composition root's side, node.ts). */
export class RecordingHost implements NodeHost {
  readonly events: string[] = [];
  readonly changes: RaftViewChange[] = [];
  readonly failures: unknown[] = [];
  lifecycle = NodeState.Running;
  txPool: TxPool | undefined;
  refusal: Error | undefined;
  constructor(private readonly self: number) {}
  raftId(): number {
    return this.self;
  }
  state(): NodeState {
    return this.lifecycle;
  }
  pool(): TxPool {
    if (!this.txPool) throw new Error('no pool built in this test');
    return this.txPool;
  }
  fail(err: unknown): void {
    this.failures.push(err);
  }
  assertRunning(): void {
    if (this.refusal) throw this.refusal;
  }
  removed(): void {
    this.events.push('removed');
  }
  blockApplied(block: { header: { number: number } }, raftIndex: number, mine: boolean): void {
    this.events.push(`block ${block.header.number}@${raftIndex}${mine ? ' mine' : ''}`);
  }
  membershipChanged(): void {
    this.events.push('membership');
  }
  afterReady(change: RaftViewChange): void {
    this.changes.push(change);
  }
}
