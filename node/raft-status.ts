// The one place the node layer reads the Raft core's live state (role, leader, term) outside a
// Ready. Today that is RaftNode.inner, documented "for tests"; when consensus/ offers a cheap
// read-only status, only this function changes. Owns nothing; may not mutate the core.

import { Role, type RaftNode } from '../consensus/index.js';

export interface RaftLiveStatus {
  readonly role: Role;
  /** The leader's raft id, 0 when none is known. */
  readonly leader: number;
  readonly term: number;
}

/** Cheap (no progress map is built): called on every Ready cycle and on every submitted transaction. */
export function raftLiveStatus(raft: RaftNode): RaftLiveStatus {
  const core = raft.inner;
  return { role: core.state, leader: core.lead, term: core.term };
}
