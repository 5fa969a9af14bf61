// The control protocol (node/control.ts) between two in-memory transports: one reply per request,
// errors travel back as NodeErrors, and malformed or oversized requests are refused.

import { afterEach, describe, expect, it } from 'vitest';
import { CHANNEL_CTL, ControlChannel, MAX_CTL_BYTES, type ControlHandlers } from '../../node/control.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import type { MemoryTransport } from '../../p2p/memory-transport.js';
import { linkedPair } from './parts.js';

let stopAll: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stopAll) await s();
  stopAll = [];
});

async function setup(handlers: Partial<ControlHandlers>) {
  const { a, b } = await linkedPair();
  stopAll.push(
    () => a.stop(),
    () => b.stop(),
  );
  const refuse = () => {
    throw new NodeError(NodeErrorCode.Unavailable, 'not in this test');
  };
  new ControlChannel(b).serve({
    hello: refuse,
    ident: async () => refuse(),
    members: refuse,
    whoami: refuse,
    admin: async () => refuse(),
    ...handlers,
  });
  return { client: new ControlChannel(a), a, b };
}

describe('the control channel', () => {
  it('dispatches each request type to its handler, with the authenticated sender', async () => {
    const seen: string[] = [];
    const { client, a } = await setup({
      whoami: (from) => (seen.push(from), { raftId: 4 }),
      ident: async (from, raftId, incarnation) => ({ raftId: 2, incarnation: `${raftId}/${incarnation}` }),
    });
    expect(await client.request(await linkedPeer(a), { type: 'whoami' }, 1_000)).toEqual({ raftId: 4 });
    expect(seen).toEqual([a.localPeerId]);
    expect(await client.request(await linkedPeer(a), { type: 'ident', raftId: 5, incarnation: 'x' }, 1_000)).toEqual({
      raftId: 2,
      incarnation: '5/x',
    });
  });

  it("a handler's NodeError reaches the caller with its code and meta", async () => {
    const { client, a } = await setup({
      members: () => {
        throw new NodeError(NodeErrorCode.NotLeader, 'ask 3', { leader: 3 });
      },
    });
    const err = await client.request(await linkedPeer(a), { type: 'members' }, 1_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodeError);
    expect((err as NodeError).code).toBe(NodeErrorCode.NotLeader);
    expect((err as NodeError).meta).toEqual({ leader: 3 });
  });

  it('refuses an unknown type, a request that is not JSON, and one over MAX_CTL_BYTES', async () => {
    const { a } = await setup({});
    const peer = await linkedPeer(a);
    const raw = async (bytes: Uint8Array) =>
      JSON.parse(new TextDecoder().decode(await a.request(peer, CHANNEL_CTL, bytes, { timeoutMs: 1_000 }))) as {
        error?: { code: string; message: string };
      };
    const enc = (s: string) => new TextEncoder().encode(s);
    expect((await raw(enc('{"type":"nope"}'))).error?.code).toBe(NodeErrorCode.MembershipChangeInvalid);
    expect((await raw(enc('not json'))).error?.code).toBe(NodeErrorCode.Unavailable);
    const big = (await raw(new Uint8Array(MAX_CTL_BYTES + 1))).error;
    expect(big?.code).toBe(NodeErrorCode.MembershipChangeInvalid);
    expect(big?.message).toMatch(/too large/);
  });
});

/** The other end of a's link (the pair admits exactly one peer). */
async function linkedPeer(a: MemoryTransport): Promise<string> {
  for (let i = 0; i < 100 && a.connectedPeers().length === 0; i++) await new Promise((r) => setTimeout(r, 1));
  return a.connectedPeers()[0];
}
