// The receiving side of a streamed snapshot (node/snapshot-transfer.ts) refuses a stream whose
// state root does not match the head block, a truncated stream and an oversized chunk, with typed
// errors; the refusals are not fatal: the fetcher goes on to a member that sends the right state,
// and the live state of the receiver is untouched until it installs.

import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ChainError,
  ChainErrorCode,
  MIN_SNAPSHOT_CHUNK_BYTES,
  MemoryKv,
  createMemoryChainStore,
  genesisBlock,
  openSnapshotView,
  toHex,
  type ChainStore,
  type SnapshotView,
} from '../../node/chain/index.js';
import { SystemClock } from '../../node/clock.js';
import { silentLogger } from '../../node/log.js';
import { MemoryNetwork, type MemoryTransport } from '../../p2p/memory-transport.js';
import {
  CHANNEL_SNAPSHOT,
  SnapshotFetcher,
  SnapshotServer,
  SnapshotTransferError,
  SnapshotTransferErrorCode,
  fetchSnapshotFrom,
  type SnapshotMeta,
} from '../../node/snapshot-transfer.js';
import { TestCluster, waitFor, type HarnessNode } from './harness.js';

let cluster: TestCluster | undefined;
const transports: MemoryTransport[] = [];

afterEach(async () => {
  for (const t of transports.splice(0)) await t.stop();
  await cluster?.stop();
  cluster = undefined;
});

/** A sender that tampers with what a real view streams. */
function tampered(view: SnapshotView, edit: (chunks: Uint8Array[]) => Uint8Array[]): SnapshotView {
  return {
    ...view,
    stream: (options) =>
      (async function* () {
        const all: Uint8Array[] = [];
        for await (const c of view.stream(options)) all.push(c.slice());
        yield* edit(all);
      })(),
  };
}

async function setup(): Promise<{
  source: HarnessNode;
  view: SnapshotView;
  meta: SnapshotMeta;
  receiverStore: ChainStore;
  network: MemoryNetwork;
  serve: (name: string, view: SnapshotView) => Promise<void>;
  receiver: MemoryTransport;
  servers: SnapshotServer[];
}> {
  cluster = new TestCluster({ nodes: 1 });
  await cluster.start();
  const source = await cluster.waitForLeader();
  let last = '';
  for (let i = 0; i < 12; i++) {
    const ops = [0, 1, 2].map((j) => ({
      type: 'put' as const,
      key: `r${i}/${j}`,
      value: randomBytes(7_000).toString('hex'),
    }));
    last = await source.node.sendTransaction({ from: source.account.address, ops });
  }
  const txHash = Uint8Array.from(Buffer.from(last.slice(2), 'hex'));
  await waitFor(async () => (await source.node.store.getReceipt(txHash)) !== undefined, 10_000, 'the state written');
  const view = openSnapshotView(source.node.chainState, source.node.status().appliedIndex);
  const meta: SnapshotMeta = {
    appliedRaftIndex: view.appliedRaftIndex,
    headNumber: view.head.header.number,
    headHash: view.head.hash,
    stateRoot: view.head.header.stateRoot,
    membership: new Uint8Array(0),
  };
  const receiverStore = createMemoryChainStore(new MemoryKv());
  const g = genesisBlock(cluster.genesis);
  await receiverStore.init(cluster.genesis.chainId, g.block, g.state);
  const network = new MemoryNetwork(new SystemClock());
  const receiver = network.createTransport('receiver');
  transports.push(receiver);
  const names: string[] = [];
  const servers: SnapshotServer[] = [];
  const serve = async (name: string, v: SnapshotView): Promise<void> => {
    const t = network.createTransport(name);
    transports.push(t);
    const server = new SnapshotServer({
      clock: new SystemClock(),
      logger: silentLogger(),
      isMember: () => true,
      maxConcurrentTransfers: 2,
    });
    server.publish(v);
    servers.push(server);
    t.onRequest(CHANNEL_SNAPSHOT, (from, data) => server.handle(from, data));
    t.setPeers([{ peerId: 'receiver', addrs: [] }]);
    await t.start();
    names.push(name);
    receiver.setPeers(names.map((peerId) => ({ peerId, addrs: [] })));
  };
  await receiver.start();
  return { source, view, meta, receiverStore, network, serve, receiver, servers };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ChainError);
  expect((err as ChainError).code).toBe(ChainErrorCode.SnapshotInvalid);
  return String((err as ChainError).meta.reason);
}

describe('snapshot receiver refusals', () => {
  it('refuses a wrong state root, a truncated stream and an oversized chunk; then takes the state from an honest member', async () => {
    const { view, meta, receiverStore, serve, receiver, servers } = await setup();
    const liveRoot = toHex((await receiverStore.loadState()).state.root());
    // Last byte of the first entries chunk is inside a value: the state differs, the framing does not.
    await serve(
      'flipped',
      tampered(view, (all) => {
        const i = all.findIndex((c) => c[0] === 2);
        all[i][all[i].length - 1] ^= 1;
        return all;
      }),
    );
    await serve(
      'cut',
      tampered(view, (all) => all.slice(0, -1)),
    );
    await serve(
      'fat',
      tampered(view, (all) => {
        const i = all.findIndex((c) => c[0] === 2);
        const big = new Uint8Array(MIN_SNAPSHOT_CHUNK_BYTES + 1);
        big.set(all[i]);
        all[i] = big;
        return all;
      }),
    );
    await serve('honest', view);
    await waitFor(() => receiver.connectedPeers().length === 4, 5_000, 'the receiver connected');

    const deps = {
      transport: receiver,
      store: receiverStore,
      logger: silentLogger(),
      chunkBytes: MIN_SNAPSHOT_CHUNK_BYTES,
    };
    const stats = { attempts: 0, chunksReceived: 0, bytesReceived: 0, refusals: 0 };
    const signal = new AbortController().signal;
    expect(await refusal(fetchSnapshotFrom(deps, 'flipped', meta, undefined, signal, stats))).toBe('root-mismatch');
    expect(await refusal(fetchSnapshotFrom(deps, 'cut', meta, undefined, signal, stats))).toBe('truncated');
    // The truncated import kept its progress: with the head known, the next transfer starts after
    // the last key written, and carries only the header, the head block's pieces and the trailer.
    const resumed = { attempts: 0, chunksReceived: 0, bytesReceived: 0, refusals: 0 };
    const staged = await fetchSnapshotFrom(deps, 'honest', meta, view.head, signal, resumed);
    expect(toHex(staged.staged!.lanes.root())).toBe(toHex(view.head.header.stateRoot));
    expect(servers[3].stats.transfersResumed).toBe(1);
    // A full stream is `cut`'s plus its trailer; the resumed one has no entries chunk at all.
    expect(resumed.chunksReceived).toBeLessThan(servers[1].stats.chunksSent);
    expect(await refusal(fetchSnapshotFrom(deps, 'fat', meta, undefined, signal, stats))).toBe('chunk-too-large');
    expect(stats.refusals).toBe(3);
    // Nothing was switched to: the live state is still genesis.
    expect(toHex((await receiverStore.loadState()).state.root())).toBe(liveRoot);

    // A member that never had the snapshot answers "gone", typed.
    const wrong = { ...meta, appliedRaftIndex: meta.appliedRaftIndex + 1000 };
    const gone = await fetchSnapshotFrom(deps, 'honest', wrong, undefined, signal, stats).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(SnapshotTransferError);
    expect((gone as SnapshotTransferError).code).toBe(SnapshotTransferErrorCode.Gone);

    // The fetcher is not stopped by the bad members: it goes on to the honest one.
    const fetcher = new SnapshotFetcher({
      ...deps,
      clock: new SystemClock(),
      candidates: () => ['flipped', 'cut', 'fat', 'honest'],
    });
    const imported = await fetcher.fetch(meta, undefined, signal);
    // The fetcher's import resumed from what the truncated stream wrote: entries at keys already
    // written are skipped, so the tampered member's flipped value was never used; the root checks.
    expect(fetcher.stats.attempts).toBe(1);
    expect(imported.head.hashHex).toBe(view.head.hashHex);
    expect(toHex(imported.staged!.lanes.root())).toBe(toHex(view.head.header.stateRoot));
    await receiverStore.installSnapshot({ ...imported, membership: new Uint8Array(0) });
    expect(toHex((await receiverStore.loadState()).state.root())).toBe(toHex(view.head.header.stateRoot));
    await view.close();
  }, 60_000);
});
