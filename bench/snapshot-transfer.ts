// `node --import tsx bench/snapshot-transfer.ts [--mib N] [--window W] [--chunk-kib K]`: one
// streamed snapshot transfer (node/snapshot-transfer.ts) in isolation: a sender process (forked)
// serving a read view of N MiB of public state (a MemoryState chain, 14 KB random-hex values) and
// this process receiving it into a fresh LevelDB chain store and verifying its root, over two real
// Libp2pTransports on loopback (Noise, yamux), as between two nodes. Prints the transfer's MiB/s,
// its wall time and each side's CPU time. Figures are orders of magnitude on a shared machine,
// never asserted.

import '../node/polyfills.js';
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { pino } from 'pino';
import { Libp2pTransport } from '../p2p/libp2p-transport.js';
import {
  applyBlock,
  baseOf,
  buildBlock,
  genesisBlock,
  openLevelChainStore,
  openSnapshotView,
  signTransaction,
  type Transaction,
} from '../node/chain/index.js';
import { SystemClock, sleepMs } from '../node/clock.js';
import { silentLogger } from '../node/log.js';
import { CHANNEL_SNAPSHOT, SnapshotServer, fetchSnapshotFrom, type SnapshotMeta } from '../node/snapshot-transfer.js';
import { CHAIN_ID, fixture, put } from '../test/chain/helpers.js';

const clock = new SystemClock();
const MIB = 1024 * 1024;

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? dflt : Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`--${name} takes a positive integer`);
  return v;
}

function makeTransport(): Promise<Libp2pTransport> {
  return (async () => {
    const t = new Libp2pTransport({
      clock,
      privateKey: await generateKeyPair('Ed25519'),
      listenAddrs: ['/ip4/127.0.0.1/tcp/0'],
      logger: pino({ level: 'warn' }),
      // As node/process.ts sets them.
      limits: { maxMessageBytes: 64 * MIB, maxQueuedBytesPerPeer: 128 * MIB },
    });
    await t.start();
    return t;
  })();
}

interface Ready {
  peerId: string;
  addrs: string[];
  meta: { appliedRaftIndex: number; headNumber: number; headHash: number[]; stateRoot: number[] };
  mib: number;
  blocks: number;
  buildSeconds: number;
}

/** The forked sender: builds the state, serves it, reports its CPU time when told to stop. */
async function sender(): Promise<void> {
  const mib = arg('mib', 64);
  const window = arg('window', 8);
  const f = fixture();
  const chain = f.newChain();
  const nonces = f.accounts.map(() => 0);
  let written = 0;
  let blocks = 0;
  const t0 = Date.now();
  while (written < mib * MIB) {
    const txs: Transaction[] = [];
    for (let i = 0; i < 64 && written < mib * MIB; i++) {
      const a = i % f.accounts.length;
      const ops = [0, 1].map((j) => put(`s${blocks}/${i}/${j}`, randomBytes(7_000).toString('hex')));
      written += 28_000;
      txs.push(signTransaction({ chainId: CHAIN_ID, nonce: nonces[a]++, ops }, f.accounts[a]));
    }
    blocks++;
    const b = buildBlock(
      chain.app,
      CHAIN_ID,
      baseOf(chain),
      txs,
      { raftId: 1, key: f.minters[0] },
      1_000 + blocks * 1_000,
      1,
    ).block;
    const r = applyBlock(chain, b, new Map());
    if (r.kind !== 'applied') throw new Error(r.detail);
    chain.advance(r);
  }
  const t = await makeTransport();
  const server = new SnapshotServer({
    clock,
    logger: silentLogger(),
    isMember: () => true,
    maxConcurrentTransfers: 2,
    maxWindowChunks: window,
  });
  t.onRequest(CHANNEL_SNAPSHOT, (from, data) => server.handle(from, data));
  server.publish(openSnapshotView(chain, 1_000));
  let cpu0 = process.cpuUsage();
  process.on('message', (m: { peer?: { peerId: string; addrs: string[] }; start?: true; stop?: true }) => {
    // The transport only accepts known peers: the receiver's identity comes first.
    if (m.peer) t.setPeers([m.peer]);
    if (m.start) cpu0 = process.cpuUsage();
    if (m.stop) {
      const cpu = process.cpuUsage(cpu0);
      process.send!({ cpuSeconds: (cpu.user + cpu.system) / 1e6 }, () => {
        void server
          .close()
          .then(() => t.stop())
          .then(() => process.exit(0));
      });
    }
  });
  const ready: Ready = {
    peerId: t.localPeerId,
    addrs: t.listenAddrs().map(String),
    meta: {
      appliedRaftIndex: 1_000,
      headNumber: chain.head.header.number,
      headHash: [...chain.head.hash],
      stateRoot: [...chain.head.header.stateRoot],
    },
    mib: written / MIB,
    blocks,
    buildSeconds: (Date.now() - t0) / 1000,
  };
  process.send!(ready);
}

async function main(): Promise<void> {
  const window = arg('window', 8);
  const chunkBytes = arg('chunk-kib', 1024) * 1024;
  const child = fork(fileURLToPath(import.meta.url), [...process.argv.slice(2), '--sender'], {
    execArgv: ['--import', 'tsx'],
  });
  const messages: unknown[] = [];
  const waiters: ((m: unknown) => void)[] = [];
  child.on('message', (m) => (waiters.length > 0 ? waiters.shift()!(m) : messages.push(m)));
  const nextMessage = <T>(): Promise<T> =>
    new Promise<T>((resolve) =>
      messages.length > 0 ? resolve(messages.shift() as T) : waiters.push((m) => resolve(m as T)),
    );
  const ready = await nextMessage<Ready>();
  console.log(
    `state: ${ready.mib.toFixed(1)} MiB of values in ${ready.blocks} blocks (built in ${ready.buildSeconds.toFixed(1)} s)`,
  );
  const receiver = await makeTransport();
  child.send({ peer: { peerId: receiver.localPeerId, addrs: receiver.listenAddrs().map(String) } });
  receiver.setPeers([{ peerId: ready.peerId, addrs: ready.addrs }]);
  while (receiver.connectedPeers().length !== 1) await sleepMs(clock, 5);
  const dir = await mkdtemp(join(tmpdir(), 'quorate-bench-snap-'));
  const store = await openLevelChainStore(join(dir, 'chain'));
  const f = fixture();
  const g = genesisBlock(f.genesis);
  await store.init(CHAIN_ID, g.block, g.state);
  const meta: SnapshotMeta = {
    appliedRaftIndex: ready.meta.appliedRaftIndex,
    headNumber: ready.meta.headNumber,
    headHash: Uint8Array.from(ready.meta.headHash),
    stateRoot: Uint8Array.from(ready.meta.stateRoot),
    membership: new Uint8Array(0),
  };
  const stats = { attempts: 0, chunksReceived: 0, bytesReceived: 0, refusals: 0 };
  child.send({ start: true });
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  const imported = await fetchSnapshotFrom(
    { transport: receiver, store, logger: silentLogger(), chunkBytes, windowChunks: window },
    ready.peerId,
    meta,
    undefined,
    new AbortController().signal,
    stats,
  );
  const wall = (performance.now() - w0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  child.send({ stop: true });
  const { cpuSeconds: senderCpu } = await nextMessage<{ cpuSeconds: number }>();
  const got = stats.bytesReceived / MIB;
  const receiverCpu = (cpu.user + cpu.system) / 1e6;
  console.log(
    `transfer: window ${window}, chunk ${chunkBytes / 1024} KiB: ${got.toFixed(1)} MiB in ${stats.chunksReceived} chunks, ` +
      `${wall.toFixed(2)} s = ${(got / wall).toFixed(1)} MiB/s; CPU sender ${senderCpu.toFixed(2)} s ` +
      `(${(got / senderCpu).toFixed(0)} MiB/CPU-s), receiver ${receiverCpu.toFixed(2)} s ` +
      `(${(got / receiverCpu).toFixed(0)} MiB/CPU-s); ${imported.staged?.entries} entries verified`,
  );
  await store.close();
  await receiver.stop();
  await rm(dir, { recursive: true, force: true });
}

await (process.argv.includes('--sender') ? sender() : main());
