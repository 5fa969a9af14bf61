// The node's public types: what it is given (NodeIo), its lifecycle (NodeState), and what it
// reports (NodeStatus, CommittedBlockEvent). Types only, so that embedders and the node's parts
// can name them without importing the composition root (node/node.ts).

import type { WritableStorage } from '../consensus/index.js';
import type { PeerTransport } from '../p2p/transport.js';
import type { AccountKey, Application, Block, ChainStore, GenesisConfig } from './chain/index.js';
import type { MembershipStore } from './apply.js';
import type { Clock } from './clock.js';
import type { Logger } from './log.js';
import type { MembershipState } from './membership.js';
import type { BootstrapPeer } from './peers.js';
import type { PrivacyProvider } from './privacy-provider.js';

/** What the node is given from outside: its IO edges and its keys. */
export interface NodeIo {
  readonly raftStorage: WritableStorage;
  readonly chainStore: ChainStore & MembershipStore;
  readonly transport: PeerTransport;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly app: Application;
  /** Signs the blocks this node mints. */
  readonly minterKey: AccountKey;
  /** Accounts this node signs for (quorate_sendTransaction). */
  readonly accountKeys: readonly AccountKey[];
  readonly genesis: GenesisConfig;
  /** The genesis membership (ids 1..N), used when the store has none yet. */
  readonly genesisMembership: MembershipState;
  /** This node's enclave public keys (base64), announced when it joins. */
  readonly enclaveKeys: readonly string[];
  readonly privacy?: PrivacyProvider;
  /**
   * Members to reach before this node knows the current membership (a node started with --join:
   * whom to ask for its id, and whose Raft traffic to accept until it has caught up). The
   * replicated membership always takes precedence.
   */
  readonly bootstrapPeers?: readonly BootstrapPeer[];
  /** Per peer id, addresses this node dials instead of the membership's (NAT, proxies, fault injection). */
  readonly addressOverrides?: ReadonlyMap<string, readonly string[]>;
  /** Made when this node's Raft log directory was created (LevelRaftStorage identity): see peers.ts. */
  readonly incarnation: string;
  /** Persists the id a joining node is given, so a restart keeps it. */
  readonly persistRaftId?: (raftId: number) => Promise<void>;
  /** Called once when the node must stop (divergence, storage failure). */
  readonly onFatal?: (err: unknown) => void;
}

/**
 * The node's lifecycle, one state at a time:
 *   Created ─start()─► Starting (loading; a --join node: waiting for its raft id) ─Raft runs─► Running
 *   Running ─this node removed from the membership─► Removed
 *   any but Stopped ─fatal error─► Failed;   any ─stop()─► Stopped
 */
export enum NodeState {
  Created = 'created',
  Starting = 'starting',
  Running = 'running',
  Removed = 'removed',
  Failed = 'failed',
  Stopped = 'stopped',
}

export type NodeRole = 'leader' | 'follower' | 'candidate' | 'learner';

export interface NodeStatus {
  readonly raftId: number;
  readonly state: NodeState;
  readonly term: number;
  readonly role: NodeRole;
  readonly leader: number | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  readonly joint: boolean;
  readonly head: number;
  readonly peers: number;
  /** Set while the node cannot make progress on its own (private payloads unknown, removed, stopped). */
  readonly alarm?: string;
}

export interface CommittedBlockEvent {
  readonly block: Block;
  readonly raftIndex: number;
}
