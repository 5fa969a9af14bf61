// Benchmarks of the chain layer (`npm run bench:chain`). Prints rates; asserts nothing (STYLE:
// performance is never asserted by timed unit tests). Numbers on a shared 2-core machine are
// orders of magnitude, not promises.
import '../polyfills.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ChainState,
  LedgerApp,
  MemoryState,
  NO_PRIVATE_CHANGES,
  TxPool,
  VerifiedTxCache,
  accountKeyFromSeed,
  applyBlock,
  baseOf,
  buildBlock,
  decodeBlock,
  decodeTransaction,
  encodeBlock,
  expandElement,
  genesisBlock,
  getNonce,
  openLevelChainStore,
  parseGenesis,
  signTransaction,
  toHex,
  verifyTransaction,
  type Transaction,
  type Block,
  type AppliedBlock,
  type KvChainStore,
} from './index.js';

const CHAIN_ID = 1337;
const BLOCK_TXS = 500;
const ACCOUNTS = 100;

function seed(n: number, tag: number): Uint8Array {
  const s = new Uint8Array(32);
  new DataView(s.buffer).setUint32(0, n);
  s[31] = tag;
  return s;
}

// Rates are given per wall-clock second and per CPU-second of this process (process.cpuUsage):
// on a shared, loaded machine the CPU rate is the better estimate of what one free core does.
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function report(label: string, count: number, wallMs: number, cpu: number, unit: string): void {
  const wall = (count / wallMs) * 1000;
  const perCpu = (count / Math.max(cpu, 0.001)) * 1000;
  console.log(
    `${label.padEnd(62)} ${wall.toFixed(0).padStart(8)} ${unit} wall ${perCpu.toFixed(0).padStart(8)} ${unit} cpu   (${count} in ${wallMs.toFixed(0)} ms)`,
  );
}

function rate(label: string, count: number, fn: () => void, unit = 'tx/s'): void {
  const start = process.hrtime.bigint();
  const c0 = cpuMs();
  fn();
  report(label, count, Number(process.hrtime.bigint() - start) / 1e6, cpuMs() - c0, unit);
}

async function rateAsync(label: string, count: number, fn: () => Promise<void>, unit = 'tx/s'): Promise<void> {
  const start = process.hrtime.bigint();
  const c0 = cpuMs();
  await fn();
  report(label, count, Number(process.hrtime.bigint() - start) / 1e6, cpuMs() - c0, unit);
}

/** Accumulates wall and CPU time over several timed sections. */
class Timer {
  wallMs = 0;
  cpuMs = 0;
  time<T>(fn: () => T): T {
    const start = process.hrtime.bigint();
    const c0 = cpuMs();
    const out = fn();
    this.wallMs += Number(process.hrtime.bigint() - start) / 1e6;
    this.cpuMs += cpuMs() - c0;
    return out;
  }
}

const accounts = Array.from({ length: ACCOUNTS }, (_, i) => accountKeyFromSeed(seed(i + 1, 1)));
const minter = accountKeyFromSeed(seed(1, 2), 'minter');
const genesis = parseGenesis({
  chainId: CHAIN_ID,
  alloc: Object.fromEntries(accounts.map((a) => [a.address, '1000000000'])),
  members: [{ raftId: 1, minterPublicKey: toHex(minter.publicKeyRaw) }],
});
const app = new LedgerApp();
const newChain = (cache = new VerifiedTxCache()): ChainState => {
  const g = genesisBlock(genesis);
  return new ChainState({
    chainId: CHAIN_ID,
    app,
    head: g.block,
    state: g.state,
    privateState: new MemoryState(),
    verifiedTxs: cache,
  });
};

/** A block's worth of typical transactions: transfers, puts and appends, 5 per account. */
function makeTxs(chain: ChainState, n: number, round: number): Transaction[] {
  const out: Transaction[] = [];
  for (let i = 0; i < n; i++) {
    const a = accounts[i % ACCOUNTS];
    const nonce = getNonce(chain.state, a.address) + Math.floor(i / ACCOUNTS);
    const ops =
      i % 3 === 0
        ? [{ type: 'transfer' as const, to: accounts[(i + 1) % ACCOUNTS].address, amount: 1n }]
        : i % 3 === 1
          ? [{ type: 'put' as const, key: `key-${i}`, value: `value-${round}-${i}` }]
          : [{ type: 'append' as const, key: `list-${i % 10}`, value: `item-${round}-${i}` }];
    out.push(signTransaction({ chainId: CHAIN_ID, nonce, ops }, a));
  }
  return out;
}

console.log(
  `chain bench — node ${process.version}, ${os.cpus().length} cpus, load average ${os.loadavg()[0].toFixed(1)} (numbers shrink with load), block of ${BLOCK_TXS} txs, ${ACCOUNTS} accounts`,
);

const chain0 = newChain();
let txs: Transaction[] = [];
rate('sign (signTransaction: encode + keccak + Ed25519 sign)', 5_000, () => {
  txs = makeTxs(chain0, 5_000, 0);
});
rate('verify (Ed25519, cached KeyObject, no tx cache)', 3_000, () => {
  for (let i = 0; i < 3_000; i++) verifyTransaction(txs[i], CHAIN_ID);
});
rate('decode (strict decode + keccak hash)', 5_000, () => {
  for (const t of txs) decodeTransaction(t.encoded);
});
const sample = buildBlock(
  app,
  CHAIN_ID,
  baseOf(chain0),
  txs.slice(0, BLOCK_TXS),
  { raftId: 1, key: minter },
  1,
  1,
).block;
const encoded = encodeBlock(sample);
console.log(
  `  block of ${sample.transactions.length} txs = ${encoded.length} bytes (${(encoded.length / sample.transactions.length).toFixed(0)} B/tx)`,
);
rate('encode block (per tx)', 20 * BLOCK_TXS, () => {
  for (let i = 0; i < 20; i++) encodeBlock(sample);
});
rate('decode block (per tx)', 10 * BLOCK_TXS, () => {
  for (let i = 0; i < 10; i++) decodeBlock(encoded);
});
const k = new TextEncoder().encode('v/some-key');
const v = new TextEncoder().encode('some value of a typical size, forty bytes');
rate(
  'LtHash expand (SHAKE256 → 2 KiB, node:crypto)',
  20_000,
  () => {
    for (let i = 0; i < 20_000; i++) expandElement(k, v);
  },
  'elem/s',
);

// Build + apply as a cluster does it: the minter's pool verified each tx on entry (shared cache),
// followers either verified them on entry too (forwarded) or must verify on apply.
const ROUNDS = 6;
const minterChain = newChain();
const followerCold = newChain(new VerifiedTxCache(1)); // effectively no cache: verifies every tx
const followerWarm = newChain(); // saw every tx in its own pool first (forwarded by clients)
const pool = new TxPool({
  chainId: CHAIN_ID,
  app,
  nonceOf: (a) => getNonce(minterChain.state, a),
  verifiedTxs: minterChain.verifiedTxs,
});
const blocks: { block: Block; res: AppliedBlock }[] = [];
const poolT = new Timer();
const buildT = new Timer();
const applyMinterT = new Timer();
const applyWarmT = new Timer();
const applyColdT = new Timer();
for (let r = 0; r < ROUNDS; r++) {
  const batch = makeTxs(minterChain, BLOCK_TXS, r + 1);
  poolT.time(() => {
    for (const tx of batch) pool.add(tx);
  });
  const built = buildT.time(() =>
    buildBlock(
      app,
      CHAIN_ID,
      baseOf(minterChain),
      pool.take(BLOCK_TXS, 4 << 20),
      { raftId: 1, key: minter },
      1000 + r,
      1,
      {},
      minterChain.verifiedTxs,
    ),
  );
  if (built.block.transactions.length !== BLOCK_TXS)
    throw new Error(`built only ${built.block.transactions.length} txs`);
  const res = applyMinterT.time(() => {
    const out = applyBlock(minterChain, built.block, new Map(), built);
    if (out.kind !== 'applied') throw new Error(out.detail);
    minterChain.advance(out);
    pool.removeCommitted(built.block.transactions);
    return out;
  });
  const wire = decodeBlock(encodeBlock(built.block));
  applyColdT.time(() => {
    const out = applyBlock(followerCold, wire, new Map());
    if (out.kind !== 'applied') throw new Error(out.detail);
    followerCold.advance(out);
  });
  for (const tx of wire.transactions) followerWarm.verifiedTxs.add(tx.hashHex);
  applyWarmT.time(() => {
    const out = applyBlock(followerWarm, wire, new Map());
    if (out.kind !== 'applied') throw new Error(out.detail);
    followerWarm.advance(out);
  });
  blocks.push({ block: built.block, res });
}
const n = ROUNDS * BLOCK_TXS;
const show = (label: string, t: Timer): void => report(label, n, t.wallMs, t.cpuMs, 'tx/s');
show('pool.add (checks + Ed25519 verify once)', poolT);
show(`buildBlock ${BLOCK_TXS} txs (pre-verified, overlay + roots + sign)`, buildT);
show(`applyBlock ${BLOCK_TXS} txs by its minter (reuses the build)`, applyMinterT);
show(`applyBlock ${BLOCK_TXS} txs, follower, txs verified before (cache hit)`, applyWarmT);
show(`applyBlock ${BLOCK_TXS} txs, follower, verifying every tx (cache miss)`, applyColdT);
const total = new Timer();
total.wallMs = poolT.wallMs + buildT.wallMs + applyMinterT.wallMs;
total.cpuMs = poolT.cpuMs + buildT.cpuMs + applyMinterT.cpuMs;
show('minter path: pool.add + build + apply (one node)', total);

// Durable commit of those blocks to LevelDB (one synced chained batch per block).
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quorate-chain-bench-'));
try {
  const store = await openLevelChainStore(dir);
  const g = genesisBlock(genesis);
  await store.init(CHAIN_ID, g.block, g.state);
  await rateAsync(`store.commitBlock ${BLOCK_TXS} txs (one synced batch per block)`, n, async () => {
    let idx = 1;
    for (const { block, res } of blocks)
      await store.commitBlock(block, res.receipts, res.stateChanges, NO_PRIVATE_CHANGES, idx++);
  });
  await store.close();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

// The node's own path on a durable store: the state the store hands out (loadState), then for
// each block built on it: build, apply (reusing the build), one synced commit, advance. Then a
// follower applying the same blocks from the wire on its own store. This is what `quorate`
// does per block; it is the figure to compare before/after a change of the state's storage.
const nodeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'quorate-chain-bench-node-'));
try {
  const g = genesisBlock(genesis);
  const open = async (sub: string): Promise<{ store: KvChainStore; chain: ChainState }> => {
    const store = await openLevelChainStore(path.join(nodeDir, sub));
    await store.init(CHAIN_ID, g.block, g.state);
    const { state, privateState } = await store.loadState();
    return { store, chain: new ChainState({ chainId: CHAIN_ID, app, head: g.block, state, privateState }) };
  };
  const m = await open('minter');
  const fo = await open('follower');
  const NODE_ROUNDS = 8;
  const mintT = new Timer();
  const followT = new Timer();
  for (let r = 0; r < NODE_ROUNDS; r++) {
    const batch = makeTxs(m.chain, BLOCK_TXS, r + 100);
    for (const t of batch) m.chain.verifiedTxs.add(t.hashHex);
    const t0 = performance.now();
    const c0 = cpuMs();
    const built = buildBlock(
      app,
      CHAIN_ID,
      baseOf(m.chain),
      batch,
      { raftId: 1, key: minter },
      5000 + r,
      1,
      {},
      m.chain.verifiedTxs,
    );
    const out = applyBlock(m.chain, built.block, new Map(), built);
    if (out.kind !== 'applied') throw new Error(out.detail);
    await m.store.commitBlock(built.block, out.receipts, out.stateChanges, NO_PRIVATE_CHANGES, r + 1);
    m.chain.advance(out);
    mintT.wallMs += performance.now() - t0;
    mintT.cpuMs += cpuMs() - c0;
    const wire = decodeBlock(encodeBlock(built.block));
    for (const t of wire.transactions) fo.chain.verifiedTxs.add(t.hashHex);
    const t1 = performance.now();
    const c1 = cpuMs();
    const fout = applyBlock(fo.chain, wire, new Map());
    if (fout.kind !== 'applied') throw new Error(fout.detail);
    await fo.store.commitBlock(wire, fout.receipts, fout.stateChanges, NO_PRIVATE_CHANGES, r + 1);
    fo.chain.advance(fout);
    followT.wallMs += performance.now() - t1;
    followT.cpuMs += cpuMs() - c1;
  }
  const nn = NODE_ROUNDS * BLOCK_TXS;
  report('node path, minter: build + apply + synced commit + advance', nn, mintT.wallMs, mintT.cpuMs, 'tx/s');
  report('node path, follower: apply + synced commit + advance', nn, followT.wallMs, followT.cpuMs, 'tx/s');
  await m.store.close();
  await fo.store.close();
} finally {
  fs.rmSync(nodeDir, { recursive: true, force: true });
}
