// The leader's minter (node/minter.ts) over a real pool and chain: it mints only while it may
// propose, builds each pending block on the previous one (speculative minting, up to
// maxPendingBlocks), gives transactions back when a proposal is refused, and never mints an empty block.

import { describe, expect, it } from 'vitest';
import { TxPool, VerifiedTxCache, decodeBlock, getNonce, type Block } from '../../node/chain/index.js';
import { ManualClock } from '../../node/clock.js';
import { DEFAULT_FORWARD_OPTIONS, TxForwarder } from '../../node/forward.js';
import { silentLogger } from '../../node/log.js';
import { BlockMinter } from '../../node/minter.js';
import { DEFAULT_BLOCK_OPTIONS } from '../../node/options.js';
import { MemoryNetwork } from '../../p2p/memory-transport.js';
import { CHAIN_ID, fixture, put, tx } from '../chain/helpers.js';

const f = fixture();

function setup(opts: { leading?: boolean; refuse?: boolean; maxPendingBlocks?: number; perBlock?: number } = {}) {
  const chain = f.newChain();
  const verifiedTxs = new VerifiedTxCache();
  const clock = new ManualClock();
  const pool = new TxPool({
    chainId: CHAIN_ID,
    app: chain.app,
    nonceOf: (a) => getNonce(chain.state, a),
    verifiedTxs,
    nowMs: () => clock.monotonicMs(),
  });
  const proposed: Block[] = [];
  let leading = opts.leading ?? true;
  const transport = new MemoryNetwork(new ManualClock()).createTransport('unused');
  const minter = new BlockMinter(
    {
      ...DEFAULT_BLOCK_OPTIONS,
      maxPendingBlocks: opts.maxPendingBlocks ?? 4,
      blockMaxTransactions: opts.perBlock ?? 2,
    },
    {
      app: chain.app,
      chainId: CHAIN_ID,
      minterKey: f.minters[0],
      verifiedTxs,
      clock,
      logger: silentLogger(),
      pool: () => pool,
      chain: () => chain,
      forwarder: new TxForwarder(DEFAULT_FORWARD_OPTIONS, {
        transport,
        clock,
        self: () => 1,
        leader: () => undefined,
        isMember: () => false,
        assertLeader: () => undefined,
        accept: () => undefined,
      }),
      self: () => 1,
      term: () => 3,
      mayPropose: () => leading,
      propose: async (data) => {
        if (opts.refuse) throw new Error('not the leader any more');
        proposed.push(decodeBlock(data));
      },
    },
  );
  return { minter, pool, proposed, setLeading: (v: boolean) => (leading = v) };
}

describe('minting', () => {
  it('mints nothing while it may not propose, or when the pool is empty', async () => {
    const s = setup({ leading: false });
    s.minter.mint();
    s.pool.add(tx(f.accounts[0], 0, [put('a', '1')]));
    s.minter.mint();
    expect(s.proposed).toHaveLength(0);
    s.setLeading(true);
    s.minter.mint();
    await Promise.resolve();
    expect(s.proposed).toHaveLength(1);
    expect(s.proposed[0].header.number).toBe(1);
  });

  it('builds each pending block on the previous one, up to maxPendingBlocks, and forgets them once applied', async () => {
    const s = setup({ maxPendingBlocks: 2, perBlock: 1 });
    for (let n = 0; n < 3; n++) s.pool.add(tx(f.accounts[0], n, [put(`k${n}`, 'v')]));
    s.minter.mint();
    s.minter.mint();
    s.minter.mint(); // over maxPendingBlocks: waits
    await Promise.resolve();
    expect(s.proposed.map((b) => b.header.number)).toEqual([1, 2]);
    expect(s.proposed[1].header.parentHash).toEqual(s.proposed[0].hash);
    expect(s.minter.ownBlock(s.proposed[0].hashHex)).toBeDefined();
    s.minter.applied(s.proposed[0], true);
    expect(s.minter.ownBlock(s.proposed[0].hashHex)).toBeUndefined();
    s.minter.mint();
    await Promise.resolve();
    expect(s.proposed.map((b) => b.header.number)).toEqual([1, 2, 3]);
  });

  it('a refused proposal gives its transactions back to the pool for the next block', async () => {
    const s = setup({ refuse: true });
    s.pool.add(tx(f.accounts[0], 0, [put('a', '1')]));
    s.minter.mint();
    await new Promise((r) => setTimeout(r, 0));
    expect(s.proposed).toHaveLength(0);
    expect(s.pool.take(10, 1_000_000)).toHaveLength(1); // available again, not in flight
  });
});
