// The one place the node layer reads the Raft core's live state (role, leader, term) outside a
// Ready: RaftNode.basicStatus(), etcd's cheap read-only status (no progress map). Owns nothing;
// may not mutate the core.

import { Role, type RaftNode } from '../consensus/index.js';

export interface RaftLiveStatus {
  readonly role: Role;
  /** The leader's raft id, 0 when none is known. */
  readonly leader: number;
  readonly term: number;
}

/** Cheap (no progress map is built): called on every Ready cycle and on every submitted transaction. */
export function raftLiveStatus(raft: RaftNode): RaftLiveStatus {
  const { hardState, softState } = raft.basicStatus();
  return { role: softState.role, leader: softState.leader, term: hardState.term };
}
