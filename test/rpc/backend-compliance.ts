// The contract of NodeRpcBackend (node/rpc/backend.ts) as one suite, to be passed by every
// implementation: the FakeLedgerBackend test double (test/rpc/backend.test.ts) and the node's
// real backend (node/backend.ts, run by whoever wires a live node into a test).
//
// The suite assumes only what the interface promises: a submission is accepted before it
// commits, so results are polled with a deadline; a linearizable read after a receipt sees the
// write; ids, hashes and nonces are whatever the implementation makes them.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import type { CallContext, Hex, NodeRpcBackend, ReceiptView } from '../../node/rpc/backend.js';

export interface BackendUnderTest {
  readonly backend: NodeRpcBackend;
  /** An address the backend holds a key for, with a balance of at least 1000. */
  readonly fundedAccount: Hex;
  /**
   * Serves state (values, balances, nonces) at past block numbers, as docs/interface.md's
   * quorate_getValue(key, number) asks. An implementation without it answers NotFound for them.
   */
  readonly historicalState: boolean;
  /** Has a transaction manager (eth_getQuorumPayload answers "0x" when not a party, not PrivacyUnavailable). */
  readonly privacy: boolean;
  stop(): Promise<void>;
}

const UNKNOWN_HASH = `0x${'ee'.repeat(32)}`;
const FRESH_ADDRESS = `0x${'5e'.repeat(20)}`;
/** How long a committed transaction may take to show a receipt. */
const COMMIT_DEADLINE_MS = 20_000;

function ctx(): CallContext {
  return { signal: AbortSignal.timeout(COMMIT_DEADLINE_MS) };
}

async function receiptOf(b: NodeRpcBackend, hash: Hex): Promise<ReceiptView> {
  const deadline = Date.now() + COMMIT_DEADLINE_MS;
  for (;;) {
    const r = await b.getTransactionReceipt(hash, ctx());
    if (r !== null) return r;
    if (Date.now() > deadline) throw new Error(`no receipt for ${hash} within ${COMMIT_DEADLINE_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function expectNodeError(p: Promise<unknown>, code: NodeErrorCode): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NodeError);
  expect((err as NodeError).code).toBe(code);
}

export function backendComplianceSuite(name: string, setup: () => Promise<BackendUnderTest>): void {
  describe(`NodeRpcBackend compliance: ${name}`, () => {
    let t: BackendUnderTest;
    let b: NodeRpcBackend;
    beforeAll(async () => {
      t = await setup();
      b = t.backend;
    });
    afterAll(() => t.stop());

    it('describes its Raft state consistently', async () => {
      const [status, role, cluster] = await Promise.all([b.raftStatus(ctx()), b.raftRole(ctx()), b.raftCluster(ctx())]);
      expect(['leader', 'follower', 'candidate', 'learner']).toContain(status.role);
      expect(role).toBe(status.role);
      expect(status.appliedIndex).toBeLessThanOrEqual(status.commitIndex);
      expect([...status.voters, ...status.learners]).toContain(status.raftId);
      expect(cluster.map((m) => m.raftId)).toContain(status.raftId);
      if (status.leader !== null) {
        expect(status.voters).toContain(status.leader);
        expect(cluster.filter((m) => m.isLeader).map((m) => m.raftId)).toEqual([status.leader]);
        expect(cluster.find((m) => m.raftId === status.leader)?.nodeId).toBe(await b.raftLeader(ctx()));
      }
    });

    it('serves the chain: ids, genesis, head, and null for what does not exist', async () => {
      expect(await b.chainId(ctx())).toBeGreaterThan(0);
      expect(await b.networkId(ctx())).toBe(await b.chainId(ctx()));
      const head = await b.blockNumber(ctx());
      const genesis = await b.getBlockByNumber('earliest', ctx());
      expect(genesis?.number).toBe(0);
      expect((await b.getBlockByHash(genesis!.hash, ctx()))?.number).toBe(0);
      expect((await b.getBlockByNumber(0, ctx()))?.hash).toBe(genesis!.hash);
      expect((await b.getBlockByNumber('latest', ctx()))!.number).toBeGreaterThanOrEqual(head);
      expect(await b.getBlockByNumber(head + 1_000_000, ctx())).toBeNull();
      expect(await b.getBlockByHash(UNKNOWN_HASH, ctx())).toBeNull();
      expect(await b.getTransactionByHash(UNKNOWN_HASH, ctx())).toBeNull();
      expect(await b.getTransactionReceipt(UNKNOWN_HASH, ctx())).toBeNull();
      await expectNodeError(b.getBalance(FRESH_ADDRESS, head + 1_000_000, ctx()), NodeErrorCode.NotFound);
      expect(await b.getBalance(FRESH_ADDRESS, 'latest', ctx())).toBe(0n);
      expect(await b.getTransactionCount(FRESH_ADDRESS, 'latest', ctx())).toBe(0);
      if (t.privacy) expect((await b.getQuorumPayload(`0x${'00'.repeat(64)}`, ctx())).length).toBe(0);
      else await expectNodeError(b.getQuorumPayload(`0x${'00'.repeat(64)}`, ctx()), NodeErrorCode.PrivacyUnavailable);
      expect(await b.peerCount(ctx())).toBeGreaterThanOrEqual(0);
      expect(await b.accounts(ctx())).toContain(t.fundedAccount);
    });

    it('accepts a transaction, commits it, and a linearizable read then sees it', async () => {
      const from = t.fundedAccount;
      const nonceBefore = await b.getTransactionCount(from, 'latest', ctx());
      const key = `compliance-${Date.now()}`;
      const hash = await b.sendTransaction(
        {
          from,
          ops: [
            { type: 'put', key, value: 'v1' },
            { type: 'append', key: `${key}-list`, value: 'a' },
            { type: 'transfer', to: FRESH_ADDRESS, amount: '7' },
          ],
        },
        ctx(),
      );
      expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
      const receipt = await receiptOf(b, hash);
      expect(receipt).toMatchObject({ transactionHash: hash, from, status: true, isPrivate: false });
      expect(await b.getValue(key, 'linearizable', ctx())).toBe('v1');
      expect(await b.getList(`${key}-list`, 'linearizable', ctx())).toEqual(['a']);
      expect(await b.getBalance(FRESH_ADDRESS, 'latest', ctx())).toBe(7n);
      expect(await b.getTransactionCount(from, 'latest', ctx())).toBeGreaterThanOrEqual(nonceBefore + 1);
      if (t.historicalState) {
        expect(await b.getValue(key, receipt.blockNumber, ctx())).toBe('v1');
        expect(await b.getValue(key, receipt.blockNumber - 1, ctx())).toBeNull();
        expect(await b.getBalance(FRESH_ADDRESS, receipt.blockNumber, ctx())).toBe(7n);
        expect(await b.getTransactionCount(from, receipt.blockNumber, ctx())).toBe(nonceBefore + 1);
      } else {
        await expectNodeError(b.getValue(key, receipt.blockNumber - 1, ctx()), NodeErrorCode.NotFound);
      }
      const tx = await b.getTransactionByHash(hash, ctx());
      expect(tx).toMatchObject({
        hash,
        from,
        nonce: nonceBefore,
        blockHash: receipt.blockHash,
        blockNumber: receipt.blockNumber,
        transactionIndex: receipt.transactionIndex,
        isPrivate: false,
      });
      expect(tx?.ops).toEqual([
        { type: 'put', key, value: 'v1' },
        { type: 'append', key: `${key}-list`, value: 'a' },
        { type: 'transfer', to: FRESH_ADDRESS, amount: '7' },
      ]);
      const block = await b.getBlockByHash(receipt.blockHash, ctx());
      expect(block?.number).toBe(receipt.blockNumber);
      expect(block?.transactions.map((x) => x.hash)).toContain(hash);
    });

    it('records a failed transaction with status false and a reason, its nonce used and its ops undone', async () => {
      const from = t.fundedAccount;
      const key = `compliance-cas-${Date.now()}`;
      const nonceBefore = await b.getTransactionCount(from, 'latest', ctx());
      const hash = await b.sendTransaction(
        {
          from,
          ops: [
            { type: 'put', key, value: 'x' },
            { type: 'cas', key: `${key}-other`, expect: 'never', value: 'y' },
          ],
        },
        ctx(),
      );
      const receipt = await receiptOf(b, hash);
      expect(receipt.status).toBe(false);
      expect(typeof receipt.reason).toBe('string');
      expect(await b.getValue(key, 'linearizable', ctx())).toBeNull();
      if (t.historicalState)
        expect(await b.getTransactionCount(from, receipt.blockNumber, ctx())).toBe(nonceBefore + 1);
      else expect(await b.getTransactionCount(from, 'latest', ctx())).toBeGreaterThanOrEqual(nonceBefore + 1);
    });

    it('refuses to sign for an account it holds no key for', async () => {
      await expectNodeError(
        b.sendTransaction({ from: FRESH_ADDRESS, ops: [{ type: 'delete', key: 'k' }] }, ctx()),
        NodeErrorCode.TxUnknownAccount,
      );
    });

    it('reports health with its head and term', async () => {
      const h = await b.health(ctx());
      expect(h.ok).toBe(true);
      expect(h.head).toBeGreaterThanOrEqual(0);
      expect(h.term).toBeGreaterThanOrEqual(1);
      expect(h.role).toBe(await b.raftRole(ctx()));
    });
  });
}
