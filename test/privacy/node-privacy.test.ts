// NodePrivacy's own rules, on two real NodePrivacy instances over the in-memory PeerTransport:
// "not a party" only when nothing says otherwise, typed errors for the node, the key directory
// following the membership, and the breaker gauge.

import { SystemClock } from '../../node/clock.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryKeyStore, NaclEnclave } from '../../enclave/index.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { silentLogger } from '../../node/log.js';
import type { MemberInfo, MembershipState } from '../../node/membership.js';
import { createNodeMetrics } from '../../node/metrics.js';
import { NodePrivacy } from '../../node/privacy.js';
import { privacyError } from '../../node/privacy-errors.js';
import { MemoryNetwork } from '../../p2p/memory-transport.js';
import type { MemoryTransport } from '../../p2p/memory-transport.js';
import { TxManagerError, TxManagerErrorCode } from '../../txmanager/index.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Party {
  readonly name: string;
  readonly privacy: NodePrivacy;
  readonly transport: MemoryTransport;
  readonly key: string;
}

async function parties(
  names: readonly string[],
  options: { resyncOnOpen?: boolean } = {},
): Promise<{ list: Party[]; membership: (include?: readonly string[]) => MembershipState }> {
  const network = new MemoryNetwork(new SystemClock());
  const dir = await mkdtemp(join(tmpdir(), 'quorate-nodeprivacy-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const list: Party[] = [];
  for (const name of names) {
    const transport = network.createTransport(`peer-${name}`);
    const enclave = await NaclEnclave.create(MemoryKeyStore.generate(1));
    const privacy = await NodePrivacy.open(
      { nodeId: name, dataDir: join(dir, name), deliveryMode: 'fail-fast', resyncOnOpen: options.resyncOnOpen },
      { peers: transport, logger: silentLogger(), enclave },
    );
    list.push({ name, privacy, transport, key: privacy.publicKeys()[0] });
    cleanups.push(async () => {
      await privacy.close();
      await transport.stop();
    });
  }
  for (const p of list) {
    p.transport.setPeers(list.filter((o) => o !== p).map((o) => ({ peerId: o.transport.localPeerId, addrs: [] })));
    await p.transport.start();
  }
  const member = (p: Party, i: number): MemberInfo => ({
    raftId: i + 1,
    name: p.name,
    peerId: p.transport.localPeerId,
    p2pAddrs: [],
    rpcUrl: 'http://127.0.0.1:1/',
    tmUrl: 'http://127.0.0.1:2/',
    signingKey: '',
    enclaveKeys: [p.key],
  });
  return {
    list,
    membership: (include = names) => ({
      members: list.filter((p) => include.includes(p.name)).map(member),
      nextRaftId: list.length + 1,
      removed: [],
    }),
  };
}

const expectNodeError = async (p: Promise<unknown>, code: NodeErrorCode): Promise<NodeError> => {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(NodeError);
  expect((e as NodeError).code).toBe(code);
  return e as NodeError;
};

describe('NodePrivacy', () => {
  it('sends to a member named by the membership, and a key outside it is TxUnknownRecipient', async () => {
    const {
      list: [a, b, c],
      membership,
    } = await parties(['a', 'b', 'c'], { resyncOnOpen: false });
    a.privacy.applyMembership(membership(['a', 'b']));
    b.privacy.applyMembership(membership(['a', 'b']));
    const hash = await a.privacy.send(new TextEncoder().encode('hello'), [b.key]);
    expect(hash).toHaveLength(64);
    expect(new TextDecoder().decode((await b.privacy.receive(hash))!)).toBe('hello');
    await expectNodeError(a.privacy.send(Uint8Array.from([1]), [c.key]), NodeErrorCode.TxUnknownRecipient);
    // c joins the membership: now it is reachable.
    a.privacy.applyMembership(membership());
    c.privacy.applyMembership(membership());
    const h2 = await a.privacy.send(Uint8Array.from([2]), [c.key]);
    expect(await c.privacy.receive(h2)).toEqual(Uint8Array.from([2]));
    expect(await b.privacy.receive(h2)).toBeNull();
  });

  it('a recipient that is down is PrivacyRecipientUnavailable naming it; the breaker gauge shows it', async () => {
    const {
      list: [a, b],
      membership,
    } = await parties(['a', 'b'], { resyncOnOpen: false });
    for (const p of [a, b]) p.privacy.applyMembership(membership());
    await b.transport.stop();
    const e = await expectNodeError(
      a.privacy.send(Uint8Array.from([1]), [b.key]),
      NodeErrorCode.PrivacyRecipientUnavailable,
    );
    expect(e.message).toContain('b');
    expect(e.meta.nodeIds).toEqual(['b']);
    const metrics = createNodeMetrics();
    a.privacy.exportMetrics(metrics);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/quorate_circuit_breaker_state\{peer="b"\} [0-2]/);
  });

  it('receive: null only when not a party; a copy owed to one of our keys, or an unfinished resync, is an error', async () => {
    const {
      list: [a, b, c],
      membership,
    } = await parties(['a', 'b', 'c'], { resyncOnOpen: false });
    for (const p of [a, b, c]) p.privacy.applyMembership(membership());
    const hash = await a.privacy.send(Uint8Array.from([7]), [b.key]);
    expect(await c.privacy.receive(hash)).toBeNull();
    // The transaction says c is a recipient but c holds nothing: "could not tell", never null.
    const cKey = Uint8Array.from(Buffer.from(c.key, 'base64'));
    await expectNodeError(c.privacy.receive(hash, [cKey]), NodeErrorCode.PrivacyUnavailable);
    // b holds it whatever privateFor says.
    expect(await b.privacy.receive(hash, [Uint8Array.from(Buffer.from(b.key, 'base64'))])).toEqual(
      Uint8Array.from([7]),
    );
    await expectNodeError(c.privacy.receive(new Uint8Array(10)), NodeErrorCode.PrivacyUnavailable);
    await c.privacy.close();
    await expectNodeError(c.privacy.receive(hash), NodeErrorCode.PrivacyUnavailable);
  });

  it('a node that missed a payload fetches it at start-up (resync), answering "could not tell" until then', async () => {
    const {
      list: [a, b],
      membership,
    } = await parties(['a', 'b']);
    // b does not know the membership yet (a node still starting): it refuses a's push, but a
    // stored the whole payload, b's box included, before pushing.
    a.privacy.applyMembership(membership());
    await expectNodeError(a.privacy.send(Uint8Array.from([5]), [b.key]), NodeErrorCode.PrivacyRecipientUnavailable);
    const [stored] = await a.privacy.payloadStore.scan(null, 10);
    const hash = Uint8Array.from(Buffer.from(stored.hash, 'base64'));
    // Before its resync, b cannot say "not a party".
    await expectNodeError(b.privacy.receive(hash), NodeErrorCode.PrivacyUnavailable);
    b.privacy.applyMembership(membership());
    await b.privacy.resynced();
    expect(await b.privacy.receive(hash)).toEqual(Uint8Array.from([5]));
  });

  it("maps the TM's refusals to the node's codes", () => {
    const cases: Array<[TxManagerErrorCode, NodeErrorCode]> = [
      [TxManagerErrorCode.RecipientUnavailable, NodeErrorCode.PrivacyRecipientUnavailable],
      [TxManagerErrorCode.RecipientRejected, NodeErrorCode.PrivacyRecipientUnavailable],
      [TxManagerErrorCode.UnknownRecipientKey, NodeErrorCode.TxUnknownRecipient],
      [TxManagerErrorCode.PayloadTooLarge, NodeErrorCode.TxTooLarge],
      [TxManagerErrorCode.InvalidRequest, NodeErrorCode.TxMalformed],
      [TxManagerErrorCode.StorageFailure, NodeErrorCode.PrivacyUnavailable],
      [TxManagerErrorCode.QueueFull, NodeErrorCode.PrivacyUnavailable],
    ];
    for (const [tm, node] of cases) {
      const mapped = privacyError(new TxManagerError(tm, 'x', { nodeIds: ['n1'] }));
      expect(mapped).toBeInstanceOf(NodeError);
      expect((mapped as NodeError).code).toBe(node);
    }
    const other = new Error('a programmer error');
    expect(privacyError(other)).toBe(other);
  });
});
