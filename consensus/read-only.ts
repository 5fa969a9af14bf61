// Linearizable reads without writing to the log (Raft thesis §6.4, "Processing read-only queries
// more efficiently"; etcd-io/raft read_only.go, safe mode only). The leader records its commit
// index as the read index, confirms it is still the leader by a heartbeat round acknowledged by a
// quorum, and only then answers; the reader serves once its state machine applied the read index.

import type { LogIndex, Message, RaftId } from './types.js';

export interface ReadIndexStatus {
  /** The read request: `from` is who asked (the leader itself for a local read). */
  readonly req: Message;
  /** The leader's commit index when the request arrived. */
  readonly index: LogIndex;
  /** Who acknowledged the heartbeat carrying this request's context (the leader counts itself). */
  readonly acks: Map<RaftId, boolean>;
}

/** Read contexts are compared as byte strings; a binary string is a cheap map key without Buffer. */
export function contextKey(ctx: Uint8Array): string {
  let s = '';
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]);
  return s;
}

export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  /** Request contexts in arrival order: acknowledging one confirms every earlier one too. */
  private queue: string[] = [];

  /** How many reads wait for a heartbeat quorum (bounded by RaftConfig.maxPendingReadIndexRequests). */
  get size(): number {
    return this.queue.length;
  }

  addRequest(index: LogIndex, req: Message, ctx: Uint8Array): void {
    const key = contextKey(ctx);
    if (this.pending.has(key)) return;
    this.pending.set(key, { req, index, acks: new Map() });
    this.queue.push(key);
  }

  /** Records that `id` acknowledged a heartbeat carrying `ctx`; returns the acks so far. */
  recvAck(id: RaftId, ctx: Uint8Array): Map<RaftId, boolean> | undefined {
    const rs = this.pending.get(contextKey(ctx));
    if (!rs) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /** Dequeues the request with `ctx` and every request before it (they are confirmed too). */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = contextKey(ctx);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const done = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of done) {
      const rs = this.pending.get(k);
      if (rs) out.push(rs);
      this.pending.delete(k);
    }
    return out;
  }

  /** The context of the most recent pending read, sent with every heartbeat so acks keep flowing. */
  lastPendingRequestCtx(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    const rs = this.pending.get(this.queue[this.queue.length - 1]);
    return rs?.req.context;
  }
}
