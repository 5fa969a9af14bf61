// The auction example from one command: `npm run example:auction` (or
// `node --import tsx examples/auction/run.ts [dir] [base port]`).
//
// It writes a 3-node cluster folder (initCluster, into a fresh temporary folder unless one is
// given), starts the three nodes in this one process with the embedding entry (`startNode`) and
// the auction application (./app.ts), each with real IO on loopback (LevelDB, libp2p, JSON-RPC).
// The seller (node 1's account) opens an auction; the accounts of nodes 2 and 3 bid through their
// own nodes; some transactions fail by the application's rules (failed receipts), one is refused
// as malformed (a typed error). Node 3 follows the chain with `for await` over its blocks. Each
// node then answers a linearizable read and a read at an earlier block, the outcome is printed as
// every node sees it, and one AbortController stops all three.
//
// The last line on stdout is `auction-result <JSON>`, what test/embed/example.test.ts checks.

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  NodeError,
  initCluster,
  silentLogger,
  startNode,
  type Address,
  type Block,
  type EmbeddedNode,
  type Op,
} from '../../node/index.js';
import { AuctionApp, auctionKey, auctionOp, parseAuction, type Auction, type AuctionTx } from './app.js';

/** How long the cluster may take to elect a leader known to all three. */
const LEADER_WAIT_MS = 30_000;
const POLL_INTERVAL_MS = 50;
/** Default first port: RPC on base..base+2, p2p on base+3.., the transaction managers on base+6.. */
const DEFAULT_BASE_PORT = 47_300;

export interface AuctionResult {
  /** Per transaction: what it was, and its receipt's status and reason. */
  readonly receipts: ReadonlyArray<{ readonly what: string; readonly status: 0 | 1; readonly reason: string }>;
  /** The code of the NodeError the malformed bid was refused with. */
  readonly refusal: string;
  /** As each node sees it (linearizable read): the auction, and the three accounts' balances. */
  readonly views: ReadonlyArray<{
    readonly node: string;
    readonly auction: Auction | null;
    readonly balances: Record<string, string>;
    /** The auction's highest bid as of the block that committed the first bid. */
    readonly highBidAfterFirstBid: string | null;
  }>;
  /** The block numbers node 3 saw through `blocks()`, in order. */
  readonly blocksSeen: readonly number[];
}

export async function runAuction(dir: string, basePort: number, print: (line: string) => void): Promise<AuctionResult> {
  const cluster = await initCluster({
    nodes: 3,
    dir,
    hosts: ['127.0.0.1', '127.0.0.1', '127.0.0.1'],
    rpcPort: basePort,
    p2pPort: basePort + 3,
    tmPort: basePort + 6,
    force: false,
    chainId: 4242,
  });

  // One controller stops the whole cluster (and node 3's block loop).
  const shutdown = new AbortController();
  const nodes: EmbeddedNode[] = [];
  try {
    for (const n of cluster.nodes)
      nodes.push(
        await startNode({
          config: n.configPath,
          app: new AuctionApp(),
          signal: shutdown.signal,
          logger: silentLogger(),
        }),
      );
    await waitForLeader(nodes);
    const [seller, alice, bob] = nodes.map((n) => n.accounts[0]);
    const names = new Map<Address, string>([
      [seller, 'seller'],
      [alice, 'alice'],
      [bob, 'bob'],
    ]);

    // Node 3 follows the chain as it commits.
    const blocksSeen: number[] = [];
    const following = (async () => {
      for await (const block of nodes[2].blocks({ signal: shutdown.signal })) {
        blocksSeen.push(block.header.number);
        print(`  node-3 saw block ${block.header.number} (${describeBlock(block)})`);
      }
    })();

    const receipts: Array<{ what: string; status: 0 | 1; reason: string }> = [];
    const send = async (by: EmbeddedNode, tx: AuctionTx, what: string): Promise<void> => {
      const hash = await by.send({ from: by.accounts[0], ops: [auctionOp(tx)] });
      const r = await by.waitForReceipt(hash);
      receipts.push({ what, status: r.status, reason: r.reason });
      print(`${what}: ${r.status === 1 ? 'ok' : `failed (${r.reason})`}`);
    };

    await send(nodes[0], { action: 'open', id: 'lamp', item: 'a brass lamp', reserve: '100' }, 'seller opens "lamp"');
    await send(nodes[1], { action: 'bid', id: 'lamp', amount: '150' }, 'alice bids 150');
    const afterFirstBid = nodes[1].status().head;
    await send(nodes[2], { action: 'bid', id: 'lamp', amount: '120' }, 'bob bids 120');
    await send(nodes[2], { action: 'bid', id: 'lamp', amount: '200' }, 'bob bids 200');
    await send(nodes[0], { action: 'bid', id: 'lamp', amount: '500' }, 'seller bids 500');
    await send(nodes[0], { action: 'close', id: 'lamp' }, 'seller closes');
    await send(nodes[1], { action: 'bid', id: 'lamp', amount: '300' }, 'alice bids 300');

    // Refused before the pool: the application's validateTx, surfaced as a typed error.
    let refusal = '';
    const negative: Op = { type: 'put', key: 'auction:bid', value: JSON.stringify({ id: 'lamp', amount: '-5' }) };
    try {
      await nodes[1].send({ from: alice, ops: [negative] });
    } catch (err) {
      if (!(err instanceof NodeError)) throw err;
      refusal = err.code;
      print(`alice bids -5: refused, ${err.code} (${err.message})`);
    }

    const views: Array<AuctionResult['views'][number]> = [];
    for (const [i, n] of nodes.entries()) {
      const auction = parseAuction(await n.getValue(auctionKey('lamp'), 'linearizable'));
      const balances: Record<string, string> = {};
      for (const [address, name] of names) balances[name] = (await n.getBalance(address)).toString();
      const earlier = parseAuction(await n.getValue(auctionKey('lamp'), afterFirstBid));
      views.push({ node: `node-${i + 1}`, auction, balances, highBidAfterFirstBid: earlier?.highBid ?? null });
      print(
        `node-${i + 1} sees: lamp ${auction?.closed ? 'closed' : 'open'}, won by ` +
          `${auction?.highBidder ? names.get(auction.highBidder) : 'nobody'} for ${auction?.highBid}; ` +
          `as of block ${afterFirstBid} the high bid was ${earlier?.highBid}; balances ${JSON.stringify(balances)}`,
      );
    }

    shutdown.abort();
    await following;
    return { receipts, refusal, views, blocksSeen };
  } finally {
    shutdown.abort();
    await Promise.all(nodes.map((n) => n.stopped));
  }
}

function describeBlock(block: Block): string {
  return `${block.transactions.length} transaction${block.transactions.length === 1 ? '' : 's'}`;
}

async function waitForLeader(nodes: readonly EmbeddedNode[]): Promise<void> {
  const deadline = Date.now() + LEADER_WAIT_MS;
  for (;;) {
    const statuses = nodes.map((n) => n.status());
    const leader = statuses.find((s) => s.role === 'leader');
    if (leader && statuses.every((s) => s.leader === leader.raftId)) return;
    if (Date.now() > deadline) throw new Error(`no leader known to all three nodes within ${LEADER_WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [dirArg, portArg] = process.argv.slice(2);
  const dir = dirArg ?? (await mkdtemp(join(tmpdir(), 'quorate-auction-')));
  const basePort = portArg === undefined ? DEFAULT_BASE_PORT : Number(portArg);
  if (!Number.isInteger(basePort) || basePort < 1 || basePort > 65_535 - 9)
    throw new Error(`usage: run.ts [empty dir] [base port 1..65526], got port ${portArg}`);
  console.log(`auction cluster in ${dir} (ports ${basePort}..${basePort + 8})`);
  const result = await runAuction(dir, basePort, (line) => console.log(line));
  console.log('auction-result', JSON.stringify(result));
  // libp2p may keep timers alive after a clean stop; everything is closed by now.
  process.exit(0);
}
