import { describe, expect, it } from 'vitest';
import {
  type AppliedBlock,
  type Block,
  type BuiltBlock,
  ChainError,
  ChainErrorCode,
  LedgerApp,
  NoopReason,
  type Op,
  type PrivatePayload,
  StateRootMismatchError,
  ReceiptsRootMismatchError,
  applyBlock,
  baseOf,
  buildBlock,
  getBalance,
  getList,
  getNonce,
  getValue,
  payloadHashKey,
  privatePayloadKeys,
  signBlock,
  signTransaction,
  toHex,
  type Transaction,
  txRootOf,
  accountKeyFromSeed,
  ChainState,
  MemoryState,
  decodeTransaction,
  genesisBlock,
  parseGenesis,
  receiptsRoot,
} from '../../node/chain/index.js';
import { CHAIN_ID, fixture, put, seed, tx } from './helpers.js';

const app = new LedgerApp();
const f = fixture();
const [alice, bob, carol] = f.accounts;

let clockMs = 10_000;
function build(chain: ChainState, txs: Transaction[], minterIndex = 0) {
  clockMs += 10;
  return buildBlock(
    app,
    CHAIN_ID,
    baseOf(chain),
    txs,
    { raftId: minterIndex + 1, key: f.minters[minterIndex] },
    clockMs,
    1,
  );
}

function applied(
  chain: ChainState,
  block: Block,
  payloads = new Map<string, PrivatePayload>(),
  built?: BuiltBlock,
): AppliedBlock {
  const r = applyBlock(chain, block, payloads, built);
  if (r.kind !== 'applied') throw new Error(`expected applied, got noop: ${r.detail}`);
  chain.advance(r);
  return r;
}

/** Builds on `chain` and applies the block on `chain` and on every other given chain. */
function run(chains: ChainState[], txs: Transaction[]): AppliedBlock {
  const b = build(chains[0], txs).block;
  let first: AppliedBlock | undefined;
  for (const c of chains) {
    const r = applied(c, b);
    first ??= r;
  }
  return first!;
}

describe('ledger ops (docs/interface.md)', () => {
  it('transfer moves balance; a short balance fails with a reason and still uses the nonce', () => {
    const c = f.newChain();
    const r = run([c], [tx(alice, 0, [{ type: 'transfer', to: bob.address, amount: 400n }])]);
    expect(r.receipts[0]).toMatchObject({ status: 1, reason: '' });
    expect(getBalance(c.state, alice.address)).toBe(1_000_000n - 400n);
    expect(getBalance(c.state, bob.address)).toBe(1_000_000n + 400n);
    const r2 = run([c], [tx(alice, 1, [{ type: 'transfer', to: bob.address, amount: 10_000_000n }])]);
    expect(r2.receipts[0].status).toBe(0);
    expect(r2.receipts[0].reason).toMatch(/insufficient balance/);
    expect(getNonce(c.state, alice.address)).toBe(2);
    expect(getBalance(c.state, alice.address)).toBe(1_000_000n - 400n);
  });

  it('a transfer to oneself changes nothing but the nonce; an emptied account has no balance entry', () => {
    const c = f.newChain();
    run([c], [tx(alice, 0, [{ type: 'transfer', to: alice.address, amount: 5n }])]);
    expect(getBalance(c.state, alice.address)).toBe(1_000_000n);
    run([c], [tx(carol, 0, [{ type: 'transfer', to: bob.address, amount: 1_000_000n }])]);
    expect(c.state.get(`b/${carol.address}`)).toBeUndefined();
  });

  it('put, delete, cas (null = absent) and append', () => {
    const c = f.newChain();
    const r = run(
      [c],
      [
        tx(alice, 0, [put('k', 'v1')]),
        tx(alice, 1, [{ type: 'cas', key: 'k', expect: 'v1', value: 'v2' }]),
        tx(alice, 2, [{ type: 'cas', key: 'k', expect: 'v1', value: 'v3' }]),
        tx(alice, 3, [{ type: 'cas', key: 'new', expect: null, value: 'n' }]),
        tx(alice, 4, [{ type: 'cas', key: 'new', expect: null, value: 'again' }]),
        tx(alice, 5, [
          { type: 'append', key: 'L', value: 'a' },
          { type: 'append', key: 'L', value: 'b' },
        ]),
        tx(alice, 6, [{ type: 'delete', key: 'gone' }, put('gone', 'x'), { type: 'delete', key: 'gone' }]),
      ],
    );
    expect(r.receipts.map((x) => x.status)).toEqual([1, 1, 0, 1, 0, 1, 1]);
    expect(r.receipts[2].reason).toMatch(/cas failed.*holds "v2"/);
    expect(r.receipts[4].reason).toMatch(/holds "n", expected nothing/);
    expect(getValue(c.state, 'k')).toBe('v2');
    expect(getValue(c.state, 'new')).toBe('n');
    expect(getValue(c.state, 'gone')).toBeNull();
    expect(getList(c.state, 'L')).toEqual(['a', 'b']);
    // Values and lists are separate: a put on L leaves the list alone.
    run([c], [tx(alice, 7, [put('L', 'value'), { type: 'append', key: 'L', value: 'c' }])]);
    expect(getValue(c.state, 'L')).toBe('value');
    expect(getList(c.state, 'L')).toEqual(['a', 'b', 'c']);
  });

  it('ops are atomic: one failing op undoes the ones before it', () => {
    const c = f.newChain();
    const before = toHex(c.state.root());
    const ops: Op[] = [
      put('x', '1'),
      { type: 'append', key: 'L', value: 'a' },
      { type: 'transfer', to: bob.address, amount: 1n },
      { type: 'cas', key: 'x', expect: '2', value: '3' },
    ];
    const r = run([c], [tx(alice, 0, ops)]);
    expect(r.receipts[0].status).toBe(0);
    expect(r.receipts[0].reason).toMatch(/op 3: cas failed/);
    expect(getValue(c.state, 'x')).toBeNull();
    expect(getList(c.state, 'L')).toEqual([]);
    expect(getBalance(c.state, bob.address)).toBe(1_000_000n);
    // Only the nonce changed.
    expect(getNonce(c.state, alice.address)).toBe(1);
    expect(toHex(c.state.root())).not.toBe(before);
    expect([...r.stateChanges.keys()]).toEqual([`n/${alice.address}`]);
  });
});

describe('applyBlock', () => {
  it('two independent nodes applying the same blocks agree on every root', () => {
    const a = f.newChain();
    const b = f.newChain();
    for (let i = 0; i < 5; i++) {
      run(
        [a, b],
        [
          tx(alice, i, [put(`k${i}`, `v${i}`)]),
          tx(bob, i, [{ type: 'transfer', to: carol.address, amount: BigInt(i) }]),
        ],
      );
      expect(toHex(a.state.root())).toBe(toHex(b.state.root()));
      expect(a.head.hashHex).toBe(b.head.hashHex);
    }
    expect(toHex(a.state.root())).toBe(toHex(a.head.header.stateRoot));
  });

  it('a block whose parent is not the head is a no-op and returns its transactions', () => {
    const c = f.newChain();
    const t1 = tx(alice, 0, [put('a', '1')]);
    const t2 = tx(bob, 0, [put('b', '2')]);
    const first = build(c, [t1]);
    const rival = build(c, [t2], 1); // another minter built on the same head
    applied(c, first.block);
    const root = toHex(c.state.root());
    const r = applyBlock(c, rival.block, new Map(), rival); // its builder's shortcut does not apply either
    expect(r.kind).toBe('noop');
    if (r.kind !== 'noop') return;
    expect(r.reason).toBe(NoopReason.ParentNotHead);
    expect(r.returnedTxs.map((t) => t.hashHex)).toEqual([t2.hashHex]);
    expect(toHex(c.state.root())).toBe(root);
    // Re-applying the head itself is also a no-op (idempotent replay).
    expect(applyBlock(c, first.block, new Map()).kind).toBe('noop');
  });

  it('invalid blocks are no-ops on every node: unknown minter, bad signature, bad nonce, time going back', () => {
    const c = f.newChain();
    const stranger = accountKeyFromSeed(seed(99, 2), 'minter');
    const b1 = buildBlock(app, CHAIN_ID, baseOf(c), [tx(alice, 0, [])], { raftId: 9, key: stranger }, 20_000, 1).block;
    expect(applyBlock(c, b1, new Map())).toMatchObject({ kind: 'noop', reason: NoopReason.InvalidBlock });
    const b2 = buildBlock(app, CHAIN_ID, baseOf(c), [tx(alice, 0, [])], { raftId: 1, key: stranger }, 20_000, 1).block;
    expect(applyBlock(c, b2, new Map())).toMatchObject({ kind: 'noop', reason: NoopReason.InvalidBlock });
    // A replayed nonce: built by hand, since buildBlock refuses it.
    run([c], [tx(alice, 0, [put('a', '1')])]);
    const replay = [tx(alice, 0, [put('a', '2')])];
    const good = build(c, []).block;
    const forged = signBlock({ ...good.header, txRoot: txRootOf(replay) }, replay, f.minters[0]);
    const r = applyBlock(c, forged, new Map());
    expect(r).toMatchObject({ kind: 'noop', reason: NoopReason.InvalidBlock });
    expect(r.kind === 'noop' && r.detail).toMatch(/nonce 0, account .* expects 1/);
    const past = signBlock({ ...good.header, timestampMs: c.head.header.timestampMs - 1 }, [], f.minters[0]);
    expect(applyBlock(c, past, new Map())).toMatchObject({ kind: 'noop', reason: NoopReason.InvalidBlock });
    // A transaction for another chain makes the block invalid too.
    const foreign = [tx(bob, 0, [], CHAIN_ID + 1)];
    const f2 = signBlock({ ...good.header, txRoot: txRootOf(foreign) }, foreign, f.minters[0]);
    expect(applyBlock(c, f2, new Map())).toMatchObject({ kind: 'noop', reason: NoopReason.InvalidBlock });
  });

  it('a state root mismatch is a fatal typed error with both roots and the height', () => {
    const c = f.newChain();
    const good = build(c, [tx(alice, 0, [put('a', '1')])]).block;
    const wrongRoot = new Uint8Array(32).fill(7);
    const bad = signBlock({ ...good.header, stateRoot: wrongRoot }, good.transactions, f.minters[0]);
    let err: unknown;
    try {
      applyBlock(c, bad, new Map());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateRootMismatchError);
    const e = err as StateRootMismatchError;
    expect(e.code).toBe(ChainErrorCode.StateRootMismatch);
    expect(e.fatal).toBe(true);
    expect(e.height).toBe(1);
    expect(e.expectedRoot).toBe(toHex(wrongRoot));
    expect(e.actualRoot).toBe(toHex(good.header.stateRoot));
    expect(e.message).toMatch(/state root mismatch at block 1/);
    const badReceipts = signBlock({ ...good.header, receiptsRoot: receiptsRoot([]) }, good.transactions, f.minters[0]);
    expect(() => applyBlock(c, badReceipts, new Map())).toThrow(ReceiptsRootMismatchError);
    // Nothing was changed by the failed attempts.
    applied(c, good);
  });

  it('private transactions: missing payload throws, parties apply, others do not, public roots agree', () => {
    const party = f.newChain();
    const other = f.newChain();
    const payloadHash = new Uint8Array(64).fill(0x5a);
    const ptx = signTransaction(
      { chainId: CHAIN_ID, nonce: 0, ops: [], privatePayloadHash: payloadHash, privateFor: [new Uint8Array(32)] },
      alice,
    );
    const ptxFail = signTransaction(
      { chainId: CHAIN_ID, nonce: 1, ops: [], privatePayloadHash: new Uint8Array(64).fill(0x5b) },
      alice,
    );
    const built = build(party, [ptx, ptxFail, tx(bob, 0, [put('public', 'yes')])]);
    const keys = privatePayloadKeys(built.block);
    expect(keys).toEqual([payloadHashKey(payloadHash), payloadHashKey(new Uint8Array(64).fill(0x5b))]);
    let err: unknown;
    try {
      applyBlock(party, built.block, new Map([[keys[0], { kind: 'not-party' }]]));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ChainError);
    expect((err as ChainError).code).toBe(ChainErrorCode.PrivatePayloadMissing);
    expect((err as ChainError).meta.missing).toEqual([keys[1]]);

    const r1 = applied(
      party,
      built.block,
      new Map<string, PrivatePayload>([
        [keys[0], { kind: 'party', ops: [put('secret', 's1'), { type: 'append', key: 'pl', value: 'p' }] }],
        [keys[1], { kind: 'party', ops: [{ type: 'cas', key: 'secret', expect: 'nope', value: 'x' }] }],
      ]),
    );
    const r2 = applied(
      other,
      built.block,
      new Map<string, PrivatePayload>([
        [keys[0], { kind: 'not-party' }],
        [keys[1], { kind: 'not-party' }],
      ]),
    );
    expect(getValue(party.privateState, 'secret')).toBe('s1');
    expect(getList(party.privateState, 'pl')).toEqual(['p']);
    expect(getValue(other.privateState, 'secret')).toBeNull();
    expect(getValue(party.state, 'secret')).toBeNull(); // never in the public state
    expect(toHex(party.state.root())).toBe(toHex(other.state.root()));
    expect(r1.receipts.map((r) => [r.status, r.isPrivate])).toEqual([
      [1, true],
      [1, true],
      [1, false],
    ]);
    expect(r1.privateReceipts.get(ptx.hashHex)).toMatchObject({ status: 1 });
    expect(r1.privateReceipts.get(ptxFail.hashHex)).toMatchObject({ status: 0 });
    expect(r2.privateReceipts.size).toBe(0);
    // The nonce of a private tx is public: both nodes used it.
    expect(getNonce(other.state, alice.address)).toBe(2);
    // A transfer inside a private payload fails (balances are public).
    const ptx3 = signTransaction(
      { chainId: CHAIN_ID, nonce: 2, ops: [], privatePayloadHash: new Uint8Array(64).fill(1) },
      alice,
    );
    const b3 = build(party, [ptx3]).block;
    const r3 = applied(
      party,
      b3,
      new Map([
        [privatePayloadKeys(b3)[0], { kind: 'party', ops: [{ type: 'transfer', to: bob.address, amount: 1n }] }],
      ]),
    );
    expect(r3.privateReceipts.get(ptx3.hashHex)?.reason).toMatch(/not allowed in a private transaction/);
  });
});

describe("genesis txSignatureCheck 'minter-only'", () => {
  it('followers trust the minter signature; the default rule no-ops the same block; the genesis hash differs', () => {
    const trusting = parseGenesis({ ...(f.genesisJson as object), txSignatureCheck: 'minter-only' });
    const g = genesisBlock(trusting);
    expect(g.block.hashHex).not.toBe(f.newChain().head.hashHex);
    const follower = new ChainState({
      chainId: CHAIN_ID,
      app,
      head: g.block,
      state: g.state,
      privateState: new MemoryState(),
      txSignatureCheck: trusting.txSignatureCheck,
    });
    // A transaction whose signature does not verify, in a block the minter signed by hand.
    const good = tx(alice, 0, [put('k', 'v')]);
    const sig = Uint8Array.from(good.signature);
    sig[5] ^= 1;
    const badBytes = Uint8Array.from(good.encoded);
    badBytes.set(sig, badBytes.length - 64);
    const bad = decodeTransaction(badBytes);
    const built = buildBlock(
      app,
      CHAIN_ID,
      baseOf(follower),
      [good],
      { raftId: 1, key: f.minters[0] },
      50_000,
      1,
    ).block;
    const receipts = receiptsRoot([{ txHash: bad.hash, status: 1, reason: '', isPrivate: false }]);
    const forged = signBlock({ ...built.header, txRoot: txRootOf([bad]), receiptsRoot: receipts }, [bad], f.minters[0]);
    expect(applyBlock(follower, forged, new Map()).kind).toBe('applied');
    const strict = new ChainState({
      chainId: CHAIN_ID,
      app,
      head: g.block,
      state: g.state,
      privateState: new MemoryState(),
    });
    expect(applyBlock(strict, forged, new Map())).toMatchObject({ kind: 'noop', reason: NoopReason.InvalidBlock });
    expect(() => parseGenesis({ ...(f.genesisJson as object), txSignatureCheck: 'nobody' })).toThrow(
      /txSignatureCheck/,
    );
  });
});

describe('buildBlock', () => {
  it('builds on its own unapplied blocks (speculative overlay); another node applies them in order', () => {
    const minter = f.newChain();
    const follower = f.newChain();
    let base = baseOf(minter);
    const builds: BuiltBlock[] = [];
    for (let i = 0; i < 3; i++) {
      const b = buildBlock(
        app,
        CHAIN_ID,
        base,
        [tx(alice, i, [{ type: 'append', key: 'L', value: String(i) }])],
        { raftId: 1, key: f.minters[0] },
        30_000 + i,
        2,
      );
      expect(b.deferred).toEqual([]);
      builds.push(b);
      base = b.next;
    }
    const blocks = builds.map((b) => b.block);
    for (const b of blocks) applied(follower, b);
    // The minter reuses what it built (no second execution); the result must be the same.
    for (const b of builds) {
      const r = applied(minter, b.block, new Map(), b);
      expect(r.overlay).toBe(b.state);
      expect(toHex(minter.state.root())).toBe(toHex(b.block.header.stateRoot));
    }
    expect(toHex(minter.state.root())).toBe(toHex(follower.state.root()));
    expect(getList(follower.state, 'L')).toEqual(['0', '1', '2']);
    expect(toHex(follower.state.root())).toBe(toHex(blocks[2].header.stateRoot));
    expect(minter.head.hashHex).toBe(blocks[2].hashHex);
    // The overlay of the last block now sits directly on the committed state (no chain kept alive).
    expect(builds[2].state.parent).toBe(minter.state);
    // Its own block with a private transaction: the public part is reused, the private part runs.
    const ptx = signTransaction(
      { chainId: CHAIN_ID, nonce: 3, ops: [], privatePayloadHash: new Uint8Array(64).fill(2) },
      alice,
    );
    const pb = buildBlock(app, CHAIN_ID, baseOf(minter), [ptx], { raftId: 1, key: f.minters[0] }, 40_000, 2);
    const payloads = new Map<string, PrivatePayload>([
      [privatePayloadKeys(pb.block)[0], { kind: 'party', ops: [put('p', '1')] }],
    ]);
    expect(() => applyBlock(minter, pb.block, new Map(), pb)).toThrow(/private payload/);
    const pr = applied(minter, pb.block, payloads, pb);
    applied(follower, pb.block, payloads);
    expect(pr.privateReceipts.get(ptx.hashHex)?.status).toBe(1);
    expect(getValue(minter.privateState, 'p')).toBe('1');
    expect(toHex(minter.state.root())).toBe(toHex(follower.state.root()));
  });

  it('defers nonce gaps and what does not fit; rejects stale nonces and bad signatures', () => {
    const c = f.newChain();
    run([c], [tx(alice, 0, [])]);
    const stale = tx(alice, 0, [put('x', 'y')]);
    const gap = tx(bob, 5, []);
    const badSig = tx(carol, 0, []);
    const sig = Uint8Array.from(badSig.signature);
    sig[0] ^= 1;
    const forged = {
      ...badSig,
      signature: sig,
      encoded: Uint8Array.from([...badSig.encoded.subarray(0, badSig.encoded.length - 64), ...sig]),
    };
    const ok = [tx(alice, 1, []), tx(alice, 2, []), tx(alice, 3, [])];
    const b = buildBlock(
      app,
      CHAIN_ID,
      baseOf(c),
      [stale, gap, forged, ...ok],
      { raftId: 1, key: f.minters[0] },
      40_000,
      1,
      { maxTxs: 2 },
    );
    expect(b.block.transactions.map((t) => t.nonce)).toEqual([1, 2]);
    expect(b.deferred.map((t) => t.hashHex).sort()).toEqual([gap.hashHex, ok[2].hashHex].sort());
    expect(b.rejected.map((r) => r.error.code).sort()).toEqual(
      [ChainErrorCode.NonceTooLow, ChainErrorCode.TxBadSignature].sort(),
    );
  });

  it('never lets the timestamp go back', () => {
    const c = f.newChain();
    const b = buildBlock(app, CHAIN_ID, baseOf(c), [], { raftId: 1, key: f.minters[0] }, 5, 1);
    expect(b.block.header.timestampMs).toBe(c.head.header.timestampMs);
    applied(c, b.block);
  });
});
