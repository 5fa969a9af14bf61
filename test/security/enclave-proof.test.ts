// A joiner must prove it holds the enclave keys it announces (issue 10 part 4): enclave public
// keys are public (every member's key directory lists them), so a node that copied another
// organisation's keys must not become the party they name. The proof itself (enclave/key-proof.ts):
// genuine answers verify; another key's, a replayed, a relayed or a tampered answer does not. Then
// in a cluster: a joiner without the private key is never proposed, however it answers; a genuine
// one is added.

import { afterEach, describe, expect, it } from 'vitest';
import {
  createKeyProofChallenge,
  generateBoxKeyPair,
  keyToBase64,
  MemoryKeyStore,
  NaclEnclave,
  verifyKeyProof,
  type BoxKeyPair,
  type KeyProof,
} from '../../enclave/index.js';
import { keyProofBinding, parseProveReply } from '../../node/admin.js';
import { generateMinterKey } from '../../node/chain/index.js';
import { CHANNEL_CTL } from '../../node/control.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { silentLogger } from '../../node/log.js';
import { TestCluster, testPeerId, waitFor } from '../node/harness.js';
import { watchProcessFaults } from './faults.js';

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const enclaveOf = (pairs: BoxKeyPair[]): Promise<NaclEnclave> => NaclEnclave.create(new MemoryKeyStore(pairs));

describe('enclave key proof', () => {
  const prover = 'prover-peer';
  const verifier = 'verifier-peer';

  it('verifies the holder of the key, for this challenge and these two peers only', async () => {
    const pair = generateBoxKeyPair();
    const enclave = await enclaveOf([pair]);
    const c = createKeyProofChallenge();
    const [proof] = await enclave.proveKeys(c.request, keyProofBinding(prover, verifier));
    expect(keyToBase64(proof.key)).toBe(keyToBase64(pair.publicKey));
    expect(verifyKeyProof(c, pair.publicKey, proof, keyProofBinding(prover, verifier))).toBe(true);
    // Bound to the two peers: an answer the real holder gave to another requester (a relay) fails.
    expect(verifyKeyProof(c, pair.publicKey, proof, keyProofBinding(prover, 'someone-else'))).toBe(false);
    expect(verifyKeyProof(c, pair.publicKey, proof, keyProofBinding('impostor', verifier))).toBe(false);
    // A replay: the same answer under a new challenge (new ephemeral key) never opens.
    expect(verifyKeyProof(createKeyProofChallenge(), pair.publicKey, proof, keyProofBinding(prover, verifier))).toBe(
      false,
    );
    // A flipped bit anywhere fails.
    for (const field of ['box', 'nonce'] as const) {
      const bad = { ...proof, [field]: Uint8Array.from(proof[field]) } as KeyProof;
      bad[field][3] ^= 1;
      expect(verifyKeyProof(c, pair.publicKey, bad, keyProofBinding(prover, verifier)), field).toBe(false);
    }
    // Wrong lengths are false, never a throw.
    expect(verifyKeyProof(c, pair.publicKey, { nonce: new Uint8Array(3), box: proof.box }, new Uint8Array())).toBe(
      false,
    );
  });

  it("another enclave's answer does not prove a key it only copied", async () => {
    const victim = generateBoxKeyPair();
    const impostor = await enclaveOf([generateBoxKeyPair()]);
    const c = createKeyProofChallenge();
    const [own] = await impostor.proveKeys(c.request, keyProofBinding(prover, verifier));
    expect(verifyKeyProof(c, victim.publicKey, own, keyProofBinding(prover, verifier))).toBe(false);
  });

  it('refuses malformed requests in the enclave and malformed replies in the member', async () => {
    const enclave = await enclaveOf([generateBoxKeyPair()]);
    await expect(
      enclave.proveKeys({ challenge: new Uint8Array(31), verifierKey: new Uint8Array(32) }, new Uint8Array()),
    ).rejects.toThrow(/challenge is 32 bytes/);
    const key = b64(generateBoxKeyPair().publicKey);
    const good = { key, nonce: b64(new Uint8Array(24)), box: b64(new Uint8Array(80)) };
    expect(parseProveReply({ proofs: [good] })).toHaveLength(1);
    for (const bad of [
      null,
      [],
      { proofs: 'x' },
      { proofs: [good], extra: 1 },
      { proofs: [{ ...good, box: b64(new Uint8Array(79)) }] },
      { proofs: [{ ...good, nonce: 'not base64!' }] },
      { proofs: [{ ...good, key: key.slice(0, -1) }] },
      { proofs: [{ ...good, more: 1 }] },
      { proofs: [null] },
      { proofs: Array.from({ length: 65 }, () => good) },
    ])
      expect(typeof parseProveReply(bad), JSON.stringify(bad)?.slice(0, 60)).toBe('string');
  });
});

// ---------------------------------------------------------------- in a cluster

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

type ProveAnswer = (from: string, req: { challenge: string; verifierKey: string }, self: string) => Promise<unknown>;

/** A joiner on a raw transport: answers `hello` with its description and `prove` as `answer` says. */
async function joiner(c: TestCluster, i: number, enclaveKeys: string[], answer: ProveAnswer) {
  const peerId = testPeerId(9, i);
  const t = c.network.createTransport(peerId, { logger: silentLogger() });
  await t.start();
  t.setPeers(c.nodes.map((h) => ({ peerId: h.peerId, addrs: [`/memory/${h.name}`] })));
  let proveAsked = 0;
  t.onRequest(CHANNEL_CTL, async (from, data) => {
    const req = JSON.parse(new TextDecoder().decode(data)) as { type: string; challenge: string; verifierKey: string };
    let out: unknown;
    if (req.type === 'hello')
      out = {
        ok: {
          name: `joiner-${i}`,
          peerId,
          p2pAddrs: [`/memory/joiner-${i}`],
          rpcUrl: `http://127.0.0.1:0/joiner-${i}`,
          tmUrl: `http://127.0.0.1:0/joiner-${i}/tm`,
          signingKey: b64(generateMinterKey().publicKeyRaw),
          enclaveKeys,
        },
      };
    else if (req.type === 'prove') {
      proveAsked++;
      out = { ok: await answer(from, req, peerId) };
    } else out = { error: { code: NodeErrorCode.Unavailable, message: 'not a member yet' } };
    return new TextEncoder().encode(JSON.stringify(out));
  });
  return { peerId, address: `/memory/joiner-${i}/p2p/${peerId}`, stop: () => t.stop(), asked: () => proveAsked };
}

/** What a real node's prover answers (MembershipAdmin.prove): its enclave's proofs, base64. */
async function answerWith(
  enclave: NaclEnclave,
  req: { challenge: string; verifierKey: string },
  binding: Uint8Array,
  relabel?: string,
): Promise<unknown> {
  const proofs = await enclave.proveKeys(
    { challenge: Buffer.from(req.challenge, 'base64'), verifierKey: Buffer.from(req.verifierKey, 'base64') },
    binding,
  );
  return { proofs: proofs.map((p) => ({ key: relabel ?? keyToBase64(p.key), nonce: b64(p.nonce), box: b64(p.box) })) };
}

describe('a joiner announcing enclave keys', () => {
  it('is refused without their private key (its own key relabelled, a replayed or a relayed answer); a genuine one is added', async () => {
    const faults = watchProcessFaults();
    try {
      cluster = new TestCluster({ nodes: 3 });
      await cluster.start();
      const leader = await cluster.waitForLeader();
      // The victim's enclave key: public information (any member's key directory lists it).
      const victimPair = generateBoxKeyPair();
      const victim = await enclaveOf([victimPair]);
      const copied = keyToBase64(victimPair.publicKey);
      const impostorEnclave = await enclaveOf([generateBoxKeyPair()]);

      // Recorded earlier: the genuine holder's answer to some member's challenge.
      const old = createKeyProofChallenge();
      const recorded = await answerWith(
        victim,
        { challenge: b64(old.request.challenge), verifierKey: b64(old.request.verifierKey) },
        keyProofBinding(testPeerId(9, 1), leader.peerId),
      );

      const attempts: [string, ProveAnswer][] = [
        [
          'its own enclave, answering under the copied key',
          (from, req, self) => answerWith(impostorEnclave, req, keyProofBinding(self, from), copied),
        ],
        ['a recorded answer of the genuine holder', async () => recorded],
        [
          // The impostor passes the challenge to the real holder, which binds its answer to the
          // impostor as requester (it sees the impostor's peer id) and to itself as prover.
          'the challenge relayed to the genuine holder',
          (_from, req, self) => answerWith(victim, req, keyProofBinding(testPeerId(9, 99), self)),
        ],
        ['no proofs at all', async () => ({ proofs: [] })],
        ['a malformed answer', async () => ({ proofs: [{ key: copied, nonce: 'x', box: 'y' }] })],
      ];
      let i = 1;
      for (const [what, answer] of attempts) {
        const j = await joiner(cluster, i++, [copied], answer);
        const err = await leader.node
          .addPeer(j.address, undefined, { enclavePublicKeys: [copied] })
          .catch((e: unknown) => e);
        expect(err, what).toBeInstanceOf(NodeError);
        expect((err as NodeError).code, `${what}: ${(err as Error).message}`).toBe(
          NodeErrorCode.MembershipChangeInvalid,
        );
        expect((err as Error).message, what).toMatch(/did not prove it holds its enclave keys/);
        expect(j.asked(), what).toBe(1);
        await j.stop();
      }
      // Nothing was proposed: every node still has its three members.
      for (const h of cluster.nodes) expect(h.node.membership.members).toHaveLength(3);

      // The genuine holder (no expected identity given: announcing keys is enough to be asked).
      const g = await joiner(cluster, 50, [copied], (from, req, self) =>
        answerWith(victim, req, keyProofBinding(self, from)),
      );
      const id = await leader.node.addLearner(g.address);
      expect(g.asked()).toBe(1);
      await waitFor(
        () =>
          cluster!.nodes.every(
            (h) => h.node.membership.members.find((m) => m.raftId === id)?.enclaveKeys[0] === copied,
          ),
        10_000,
        'the genuine joiner applied everywhere with its key',
      );
      await g.stop();
      faults.expectNone();
    } finally {
      faults.stop();
    }
  });
});
