import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ChainError,
  ChainErrorCode,
  ChainInvariantError,
  type ChainStore,
  type ChainState,
  type KvChainStore,
  MemoryKv,
  NO_PRIVATE_CHANGES,
  type PrivatePayload,
  applyBlock,
  baseOf,
  buildBlock,
  createMemoryChainStore,
  getList,
  exportSnapshot,
  genesisBlock,
  importSnapshot,
  openLevelChainStore,
  MAX_INCARNATION_CHARS,
  parseGenesis,
  privatePayloadKeys,
  signTransaction,
  toHex,
} from '../../node/chain/index.js';
import { CHAIN_ID, deterministicBlock, fixture, put, tx } from './helpers.js';

const f = fixture();
const [alice, bob] = f.accounts;
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'quorate-chainstore-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirCounter = 0;

interface Harness {
  open(): Promise<ChainStore>;
  /** A store over the same durable contents (the restart). */
  reopen(): Promise<ChainStore>;
}

const implementations: [string, () => Harness][] = [
  [
    'memory',
    () => {
      const kv = new MemoryKv();
      return { open: async () => createMemoryChainStore(kv), reopen: async () => createMemoryChainStore(kv) };
    },
  ],
  [
    'level',
    () => {
      const dir = path.join(tmpRoot, `db-${dirCounter++}`);
      return { open: () => openLevelChainStore(dir), reopen: () => openLevelChainStore(dir) };
    },
  ],
];

async function initStore(store: ChainStore): Promise<void> {
  const g = genesisBlock(f.genesis);
  await store.init(CHAIN_ID, g.block, g.state);
}

async function commitNext(
  store: ChainStore,
  chain: ChainState,
  appliedIndex: number,
  payloads = new Map<string, PrivatePayload>(),
  txs?: Parameters<typeof buildBlock>[3],
) {
  const block = txs
    ? buildBlock(chain.app, CHAIN_ID, baseOf(chain), txs, { raftId: 1, key: f.minters[0] }, 100_000 + appliedIndex, 1)
        .block
    : deterministicBlock(f, chain, chain.head.header.number + 1);
  const r = applyBlock(chain, block, payloads);
  if (r.kind !== 'applied') throw new Error(r.detail);
  await store.commitBlock(
    r.block,
    r.receipts,
    r.stateChanges,
    { entries: r.privateStateChanges, receipts: r.privateReceipts },
    appliedIndex,
  );
  chain.advance(r);
  return r;
}

function code(e: unknown): string {
  return e instanceof ChainError ? e.code : e instanceof ChainInvariantError ? 'invariant' : String(e);
}

describe.each(implementations)('ChainStore compliance: %s', (_name, makeHarness) => {
  it('initialises with genesis, and refuses a different chain on the same data', async () => {
    const h = makeHarness();
    const store = await h.open();
    expect(await store.head()).toBeUndefined();
    await initStore(store);
    const g = genesisBlock(f.genesis);
    expect(await store.head()).toEqual({ number: 0, hash: g.block.hash });
    expect(await store.appliedIndex()).toBe(0);
    expect((await store.getBlockByNumber(0))?.hashHex).toBe(g.block.hashHex);
    expect(await store.getBalance(alice.address)).toBe(1_000_000n);
    const { state } = await store.loadState();
    expect(toHex(state.root())).toBe(toHex(g.state.root()));
    await initStore(store); // same genesis: fine
    const other = genesisBlock(parseGenesis({ ...(f.genesisJson as object), chainId: 7 }));
    const err = await store.init(7, other.block, other.state).catch((e) => e);
    expect(code(err)).toBe(ChainErrorCode.StoreCorrupt);
    await store.close();
  });

  it('keeps the incarnations it is told across a restart, forgets on request, and refuses bad arguments', async () => {
    const h = makeHarness();
    const store = await h.open();
    await initStore(store);
    expect(await store.knownIncarnations()).toEqual(new Map());
    await store.rememberIncarnation(2, 'inc-two');
    await store.rememberIncarnation(300, 'inc-three-hundred');
    await store.rememberIncarnation(7, 'gone-soon');
    await store.rememberIncarnation(7, undefined);
    await store.close();
    const again = await h.reopen();
    expect(await again.knownIncarnations()).toEqual(
      new Map([
        [2, 'inc-two'],
        [300, 'inc-three-hundred'],
      ]),
    );
    const refused = (fn: () => Promise<void>) =>
      Promise.resolve()
        .then(fn)
        .then(
          () => 'accepted',
          (e: unknown) => code(e),
        );
    expect(await refused(() => again.rememberIncarnation(0, 'x'))).toBe('invariant');
    expect(await refused(() => again.rememberIncarnation(3, 'x'.repeat(MAX_INCARNATION_CHARS + 1)))).toBe('invariant');
    await again.close();
  });

  it('serves blocks, transactions, receipts and the latest state after commits', async () => {
    const h = makeHarness();
    const store = await h.open();
    await initStore(store);
    const chain = f.newChain();
    const t1 = tx(alice, 0, [
      put('k', 'v'),
      { type: 'append', key: 'L', value: 'a' },
      { type: 'transfer', to: bob.address, amount: 10n },
    ]);
    const t2 = tx(bob, 0, [{ type: 'cas', key: 'k', expect: 'nope', value: 'x' }]);
    const r1 = await commitNext(store, chain, 3, new Map(), [t1, t2]);
    const b1 = r1.block;
    expect((await store.head())?.number).toBe(1);
    expect(await store.appliedIndex()).toBe(3);
    expect((await store.getBlockByNumber(1))?.hashHex).toBe(b1.hashHex);
    expect((await store.getBlockByHash(b1.hash))?.header.number).toBe(1);
    expect(await store.getBlockByNumber(2)).toBeUndefined();
    expect(await store.getBlockByHash(new Uint8Array(32))).toBeUndefined();
    expect(await store.getTxLocation(t2.hash)).toEqual({ blockHash: b1.hash, blockNumber: 1, index: 1 });
    expect((await store.getTransaction(t1.hash))?.tx.hashHex).toBe(t1.hashHex);
    expect(await store.getReceipt(t1.hash)).toMatchObject({ status: 1 });
    expect(await store.getReceipt(t2.hash)).toMatchObject({ status: 0 });
    expect(await store.getTxLocation(new Uint8Array(32))).toBeUndefined();
    expect(await store.getValue('k')).toBe('v');
    expect(await store.getValue('absent')).toBeNull();
    expect(await store.getList('L')).toEqual(['a']);
    expect(await store.getBalance(bob.address)).toBe(1_000_010n);
    expect(await store.getNonce(alice.address)).toBe(1);
    expect(await store.getNonce(f.accounts[3].address)).toBe(0);

    // Private changes and receipts are stored alongside, in the same batch.
    const ptx = signTransaction(
      { chainId: CHAIN_ID, nonce: 1, ops: [], privatePayloadHash: new Uint8Array(64).fill(3) },
      alice,
    );
    const pb = buildBlock(
      chain.app,
      CHAIN_ID,
      baseOf(chain),
      [ptx],
      { raftId: 1, key: f.minters[0] },
      200_000,
      1,
    ).block;
    const payloads = new Map<string, PrivatePayload>([
      [privatePayloadKeys(pb)[0], { kind: 'party', ops: [put('secret', 's')] }],
    ]);
    await commitNext(store, chain, 4, payloads, [ptx]);
    expect(await store.getPrivateValue('secret')).toBe('s');
    expect(await store.getValue('secret')).toBeNull();
    expect(await store.getPrivateReceipt(ptx.hash)).toMatchObject({ status: 1, isPrivate: true });
    await store.close();
  });

  it('serves the state as of any past block (values, deletes, lists, balances, nonces, private)', async () => {
    const h = makeHarness();
    const store = await h.open();
    await initStore(store);
    const chain = f.newChain();
    await commitNext(store, chain, 2, new Map(), [
      tx(alice, 0, [
        put('k', 'v1'),
        { type: 'append', key: 'L', value: 'a' },
        { type: 'transfer', to: bob.address, amount: 5n },
      ]),
    ]);
    await commitNext(store, chain, 3, new Map(), [
      tx(alice, 1, [put('k', 'v2'), { type: 'append', key: 'L', value: 'b' }]),
    ]);
    await commitNext(store, chain, 4, new Map(), [tx(alice, 2, [{ type: 'delete', key: 'k' }])]);
    expect(await store.getValue('k', 0)).toBeNull();
    expect(await store.getValue('k', 1)).toBe('v1');
    expect(await store.getValue('k', 2)).toBe('v2');
    expect(await store.getValue('k', 3)).toBeNull();
    expect(await store.getValue('k')).toBeNull();
    expect(await store.getList('L', 0, 10, 1)).toEqual(['a']);
    expect(await store.getList('L', 0, 10, 3)).toEqual(['a', 'b']);
    expect(await store.getBalance(bob.address, 0)).toBe(1_000_000n);
    expect(await store.getBalance(bob.address, 1)).toBe(1_000_005n);
    expect(await store.getNonce(alice.address, 1)).toBe(1);
    expect(await store.getNonce(alice.address, 3)).toBe(3);
    // A block not committed yet is not answered with the latest state.
    expect(code(await store.getValue('k', 4).catch((e) => e))).toBe(ChainErrorCode.HistoryUnavailable);
    // The history survives a restart.
    await store.close();
    const again = await h.reopen();
    expect(await again.getValue('k', 2)).toBe('v2');
    await again.close();
  });

  it('recordNoop advances only the applied index; indexes and heights must move forward', async () => {
    const h = makeHarness();
    const store = await h.open();
    await initStore(store);
    const chain = f.newChain();
    await store.recordNoop(1);
    expect(await store.appliedIndex()).toBe(1);
    expect((await store.head())?.number).toBe(0);
    expect(code(await store.recordNoop(1).catch((e) => e))).toBe('invariant');
    const r = await commitNext(store, chain, 2);
    // The same block again (does not extend the head) and a stale index are programmer errors.
    expect(
      code(await store.commitBlock(r.block, r.receipts, r.stateChanges, NO_PRIVATE_CHANGES, 5).catch((e) => e)),
    ).toBe('invariant');
    const next = deterministicBlock(f, chain, 2);
    const r2 = applyBlock(chain, next, new Map());
    if (r2.kind !== 'applied') throw new Error('not applied');
    expect(
      code(await store.commitBlock(r2.block, r2.receipts, r2.stateChanges, NO_PRIVATE_CHANGES, 2).catch((e) => e)),
    ).toBe('invariant');
    await store.close();
  });

  it('reopens exactly where it was: head, applied index and the state (root checked)', async () => {
    const h = makeHarness();
    const store = await h.open();
    await initStore(store);
    const chain = f.newChain();
    for (let i = 1; i <= 5; i++) await commitNext(store, chain, i * 10);
    await store.recordNoop(51);
    await store.close();
    expect(code(await store.head().catch((e) => e))).toBe(ChainErrorCode.StoreIo);
    const again = await h.reopen();
    await initStore(again);
    expect(await again.head()).toEqual({ number: 5, hash: chain.head.hash });
    expect(await again.appliedIndex()).toBe(51);
    const { state } = await again.loadState();
    expect(toHex(state.root())).toBe(toHex(chain.state.root()));
    // The stored state, hashed again from scratch, is the state whose hash the store kept.
    const verified = await (again as KvChainStore).verifyStoredState();
    expect(verified).toEqual({ public: true, private: true, publicEntries: chain.state.size });
    expect(await again.getList('log')).toEqual(getList(chain.state, 'log'));
    expect((await again.getList('log')).length).toBe(5 * 3);
    await again.close();
  });

  it('keeps the membership record with the applied index, across a reopen and a snapshot install', async () => {
    const h = makeHarness();
    const store = await h.open();
    await initStore(store);
    expect(await store.membership()).toBeUndefined();
    await store.recordMembership(Uint8Array.of(1, 2, 3), 4);
    expect(await store.appliedIndex()).toBe(4);
    await store.recordMembership(Uint8Array.of(4), 4); // same index: a snapshot's record
    expect(code(await store.recordMembership(Uint8Array.of(5), 3).catch((e) => e))).toBe('invariant');
    await store.close();
    const again = await h.reopen();
    expect(Uint8Array.from((await again.membership())!)).toEqual(Uint8Array.of(4));
    const leader = f.newChain();
    await again.installSnapshot({
      ...(await importSnapshot(exportSnapshot(leader, 9, { includePrivate: false }), again)),
      membership: Uint8Array.of(9, 9),
    });
    expect(Uint8Array.from((await again.membership())!)).toEqual(Uint8Array.of(9, 9));
    expect(await again.appliedIndex()).toBe(9);
    await again.close();
  });

  it('installs a snapshot from a node that is ahead (public only; private state kept)', async () => {
    const leader = f.newChain();
    for (let n = 1; n <= 4; n++) {
      const r = applyBlock(leader, deterministicBlock(f, leader, n), new Map());
      if (r.kind !== 'applied') throw new Error('not applied');
      leader.advance(r);
    }
    const h = makeHarness();
    const store = await h.open();
    await initStore(store);
    const chain = f.newChain();
    const ptx = signTransaction(
      { chainId: CHAIN_ID, nonce: 0, ops: [], privatePayloadHash: new Uint8Array(64).fill(4) },
      f.accounts[3],
    );
    const pb = buildBlock(chain.app, CHAIN_ID, baseOf(chain), [ptx], { raftId: 1, key: f.minters[0] }, 300, 1).block;
    await commitNext(
      store,
      chain,
      1,
      new Map([[privatePayloadKeys(pb)[0], { kind: 'party', ops: [put('mine', 'yes')] }]]),
      [ptx],
    );
    const snap = await importSnapshot(exportSnapshot(leader, 40, { includePrivate: false }), store);
    await store.installSnapshot(snap);
    expect(await store.head()).toEqual({ number: 4, hash: leader.head.hash });
    expect(await store.appliedIndex()).toBe(40);
    const loaded = await store.loadState();
    expect(toHex(loaded.state.root())).toBe(toHex(leader.state.root()));
    expect(await store.getPrivateValue('mine')).toBe('yes');
    // The chain continues from the snapshot's head.
    const resumed = chain.reset(snap.head, loaded.state, loaded.privateState);
    await commitNext(store, resumed, 41);
    expect((await store.head())?.number).toBe(5);
    await store.close();
  });
});

describe('ChainStore recent-blocks cache', () => {
  it('holds at most blockCacheMaxBytes of decoded blocks, and serves older blocks from the store', async () => {
    const kv = new MemoryKv();
    // Room for about two blocks of three ~300-byte transactions (each counted twice, plus 1 KiB).
    const blockCacheMaxBytes = 6 * 1024;
    const store = createMemoryChainStore(kv, { blockCacheMaxBytes });
    await initStore(store);
    const chain = f.newChain();
    const blocks = [];
    for (let i = 0; i < 8; i++) {
      const txs = [0, 1, 2].map((j) => tx(f.accounts[j], i, [put(`k${i}/${j}`, 'v'.repeat(200))]));
      blocks.push((await commitNext(store, chain, 10 + i, new Map(), txs)).block);
      const stats = store.blockCacheStats();
      expect(stats.bytes).toBeLessThanOrEqual(blockCacheMaxBytes);
      expect(stats.blocks).toBeGreaterThan(0);
    }
    expect(store.blockCacheStats().blocks).toBeLessThan(8);
    for (const b of blocks) expect((await store.getBlockByNumber(b.header.number))?.hashHex).toBe(b.hashHex);
    await store.close();
    // 0 caches nothing, and every block is still served.
    const none = createMemoryChainStore(kv, { blockCacheMaxBytes: 0 });
    expect((await none.getBlockByNumber(blocks[7].header.number))?.hashHex).toBe(blocks[7].hashHex);
    expect(none.blockCacheStats()).toEqual({ blocks: 0, bytes: 0 });
    await none.close();
  });
});

describe('ChainStore atomicity', () => {
  it('one commit is one write batch (memory twin counts them)', async () => {
    const kv = new MemoryKv();
    const store = createMemoryChainStore(kv);
    await initStore(store);
    const chain = f.newChain();
    const before = kv.batchesWritten;
    await commitNext(store, chain, 1);
    expect(kv.batchesWritten).toBe(before + 1);
    await store.recordNoop(2);
    expect(kv.batchesWritten).toBe(before + 2);
  });

  it('loadState refuses a stored state hash that does not match the head block; a full check finds a tampered value', async () => {
    const kv = new MemoryKv();
    const store = createMemoryChainStore(kv);
    await initStore(store);
    await commitNext(store, f.newChain(), 1);
    // Startup reads the stored hash (O(1)), not the whole state: a value changed on disk behind
    // the store's back is found by verifyStoredState (one streaming pass), or by the state root
    // check of the first block that touches it.
    let b = kv.batch();
    b.put(Uint8Array.from([0x53, ...new TextEncoder().encode('v/k0')]), new TextEncoder().encode('tampered'));
    await b.write(true);
    expect(await createMemoryChainStore(kv).verifyStoredState()).toMatchObject({ public: false, private: true });
    b = kv.batch();
    b.put(Uint8Array.from([0x4d, ...new TextEncoder().encode('stateHash')]), new Uint8Array(2048).fill(1));
    await b.write(true);
    const reopened = createMemoryChainStore(kv);
    const err = await reopened.loadState().catch((e) => e);
    expect(code(err)).toBe(ChainErrorCode.StoreCorrupt);
    expect(String(err.message)).toMatch(/does not match head block 1/);
  });

  it('a writer SIGKILLed at random moments always leaves the LevelDB store at a block boundary', async () => {
    const writer = path.join(import.meta.dirname, 'fixtures', 'chain-writer.ts');
    // Seeded kill points (in acknowledged commits), so a failure reproduces.
    const killAfter = [3, 17];
    for (const [round, k] of killAfter.entries()) {
      const dir = path.join(tmpRoot, `kill-${round}`);
      let lastAck = 0;
      for (let restart = 0; restart < 2; restart++) {
        const child = spawn(process.execPath, ['--import', 'tsx', writer, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += String(d)));
        const target = lastAck + k;
        await new Promise<void>((resolve, reject) => {
          const guard = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`writer made no progress to commit ${target}: ${stderr}`));
          }, 45_000);
          child.on('exit', () => clearTimeout(guard));
          let buf = '';
          child.stdout.on('data', (d) => {
            buf += String(d);
            const lines = buf.split('\n');
            buf = lines.pop() ?? '';
            for (const line of lines) {
              const m = /^committed (\d+) (\d+)$/.exec(line);
              if (m) lastAck = Number(m[1]);
            }
            if (lastAck >= target) {
              child.kill('SIGKILL');
              resolve();
            }
          });
          child.on('exit', (c, sig) =>
            sig === 'SIGKILL' ? resolve() : reject(new Error(`writer exited ${c}: ${stderr}`)),
          );
        });
        await new Promise((r) =>
          child.exitCode !== null || child.signalCode !== null ? r(null) : child.on('exit', r),
        );
        const store = await openLevelChainStore(dir);
        const head = await store.head();
        const applied = await store.appliedIndex();
        // Everything acknowledged is there; the applied index matches the head (block n at index 2n,
        // or the no-op at 2n+1 that precedes block n+1).
        expect(head!.number).toBeGreaterThanOrEqual(lastAck);
        expect([2 * head!.number, 2 * head!.number + 1]).toContain(applied);
        // The state matches the head's root (loadState checks) and a fresh replay of the workload.
        const { state } = await store.loadState();
        const replay = f.newChain();
        for (let n = 1; n <= head!.number; n++) {
          const r = applyBlock(replay, deterministicBlock(f, replay, n), new Map());
          if (r.kind !== 'applied') throw new Error('replay failed');
          replay.advance(r);
        }
        expect(replay.head.hashHex).toBe(toHex(head!.hash));
        expect(toHex(state.root())).toBe(toHex(replay.state.root()));
        for (let n = 1; n <= head!.number; n++) expect(await store.getBlockByNumber(n)).toBeDefined();
        expect(await store.getBlockByNumber(head!.number + 1)).toBeUndefined();
        lastAck = head!.number;
        await store.close();
      }
    }
  });
});
