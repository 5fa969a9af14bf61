// Membership administration (node/admin.ts): raft_addPeer's optional { rpcUrl, tmUrl,
// enclavePublicKeys } pin the identity the joiner must announce; a mismatch is refused before
// anything is proposed, a match is added. Unit checks of the comparison, then a real in-process cluster.

import { afterEach, describe, expect, it } from 'vitest';
import { checkExpectedIdentity } from '../../node/admin.js';
import type { SelfDescription } from '../../node/control.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { TestCluster, waitFor } from './harness.js';

const KEY_A = Buffer.alloc(32, 1).toString('base64');
const KEY_B = Buffer.alloc(32, 2).toString('base64');
const joiner: SelfDescription = {
  name: 'node-4',
  peerId: 'x',
  p2pAddrs: [],
  rpcUrl: 'http://10.0.0.4:8545',
  tmUrl: 'http://10.0.0.4:9101',
  signingKey: '',
  enclaveKeys: [KEY_A],
};

function refusal(expect_: Parameters<typeof checkExpectedIdentity>[1]): string | undefined {
  try {
    checkExpectedIdentity(joiner, expect_);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(NodeError);
    expect((err as NodeError).code).toBe(NodeErrorCode.MembershipChangeInvalid);
    return String((err as NodeError).meta.field);
  }
}

describe('the expected identity of a joiner', () => {
  it('accepts what the joiner announces (URLs compared after normalisation), refuses anything else by field', () => {
    expect(refusal(undefined)).toBeUndefined();
    expect(refusal({})).toBeUndefined();
    expect(
      refusal({ rpcUrl: 'http://10.0.0.4:8545/', tmUrl: 'http://10.0.0.4:9101', enclavePublicKeys: [KEY_A] }),
    ).toBe(undefined);
    expect(refusal({ rpcUrl: 'http://10.0.0.5:8545' })).toBe('rpcUrl');
    expect(refusal({ tmUrl: 'http://10.0.0.4:9999' })).toBe('tmUrl');
    expect(refusal({ enclavePublicKeys: [KEY_B] })).toBe('enclavePublicKeys');
    expect(refusal({ enclavePublicKeys: [KEY_A, KEY_B] })).toBe('enclavePublicKeys');
    expect(refusal({ enclavePublicKeys: [] })).toBe('enclavePublicKeys');
  });

  describe('in a cluster', () => {
    let cluster: TestCluster | undefined;
    afterEach(async () => {
      await cluster?.stop();
      cluster = undefined;
    });

    it('raft_addPeer with a wrong expected rpcUrl proposes nothing; with the right one the node is added', async () => {
      cluster = new TestCluster({ nodes: 3 });
      await cluster.start();
      const leader = await cluster.waitForLeader();
      const newcomer = await cluster.addJoiningNode();
      const before = leader.node.membership.nextRaftId;
      const err = await leader.node
        .addPeer(cluster.p2pAddress(newcomer), undefined, { rpcUrl: 'http://127.0.0.1:0/somebody-else' })
        .catch((e: unknown) => e);
      expect((err as NodeError).code).toBe(NodeErrorCode.MembershipChangeInvalid);
      expect(leader.node.membership.nextRaftId).toBe(before);
      const id = await leader.node.addPeer(cluster.p2pAddress(newcomer), undefined, {
        rpcUrl: `http://127.0.0.1:0/${newcomer.name}`,
        tmUrl: `http://127.0.0.1:0/${newcomer.name}/tm`,
        enclavePublicKeys: [],
      });
      expect(id).toBe(before);
      await waitFor(() => newcomer.node.status().raftId === id, 10_000, 'the newcomer to learn its id');
    });

    it('a malformed p2p address is refused with the validated parser’s reason', async () => {
      cluster = new TestCluster({ nodes: 1 });
      await cluster.start();
      const leader = await cluster.waitForLeader();
      const err = await leader.node.addPeer('/ip4/127.0.0.1/tcp/1/p2p/not-a-peer-id').catch((e: unknown) => e);
      expect((err as NodeError).code).toBe(NodeErrorCode.MembershipChangeInvalid);
      expect((err as NodeError).message).toMatch(/peer id is malformed/);
    });
  });
});
