// Shared set-up for the chain tests: deterministic keys, a genesis, fresh chain states.
import {
  type AccountKey,
  ChainState,
  type GenesisConfig,
  LedgerApp,
  MemoryState,
  accountKeyFromSeed,
  genesisBlock,
  parseGenesis,
  toHex,
  signTransaction,
  type Op,
  type Transaction,
  type Block,
  baseOf,
  buildBlock,
  getNonce,
} from '../../node/chain/index.js';

export const CHAIN_ID = 4242;

export function seed(n: number, tag = 0): Uint8Array {
  const s = new Uint8Array(32);
  new DataView(s.buffer).setUint32(0, n);
  s[31] = tag;
  return s;
}

export interface Fixture {
  readonly accounts: AccountKey[];
  readonly minters: AccountKey[];
  readonly genesis: GenesisConfig;
  readonly genesisJson: unknown;
  newChain(): ChainState<MemoryState>;
}

export function fixture(opts: { accounts?: number; minters?: number; balance?: bigint } = {}): Fixture {
  const accounts = Array.from({ length: opts.accounts ?? 4 }, (_, i) => accountKeyFromSeed(seed(i + 1, 1)));
  const minters = Array.from({ length: opts.minters ?? 3 }, (_, i) => accountKeyFromSeed(seed(i + 1, 2), 'minter'));
  const genesisJson = {
    chainId: CHAIN_ID,
    timestampMs: 1_000,
    alloc: Object.fromEntries(accounts.map((a) => [a.address, { balance: String(opts.balance ?? 1_000_000n) }])),
    members: minters.map((m, i) => ({
      raftId: i + 1,
      minterPublicKey: toHex(m.publicKeyRaw),
      p2pAddress: 'ignored by the chain layer',
    })),
  };
  const genesis = parseGenesis(genesisJson);
  return {
    accounts,
    minters,
    genesis,
    genesisJson,
    newChain: () => {
      const { block, state } = genesisBlock(genesis);
      return new ChainState<MemoryState>({
        chainId: CHAIN_ID,
        app: new LedgerApp(),
        head: block,
        state,
        privateState: new MemoryState(),
      });
    },
  };
}

export function tx(key: AccountKey, nonce: number, ops: Op[], chainId = CHAIN_ID): Transaction {
  return signTransaction({ chainId, nonce, ops }, key);
}

export const put = (key: string, value: string): Op => ({ type: 'put', key, value });

/**
 * The n-th block (n >= 1) of a deterministic workload on `chain`: same chain, same n → same block,
 * byte for byte (Ed25519 signatures are deterministic and the timestamp is derived from n).
 */
export function deterministicBlock(f: Fixture, chain: ChainState, n: number, txsPerBlock = 8): Block {
  const txs: Transaction[] = [];
  for (let i = 0; i < txsPerBlock; i++) {
    const who = f.accounts[i % f.accounts.length];
    const nonce = getNonce(chain.state, who.address) + Math.floor(i / f.accounts.length);
    const ops: Op[] =
      i % 3 === 0
        ? [{ type: 'transfer', to: f.accounts[(i + 1) % f.accounts.length].address, amount: BigInt(n) }]
        : i % 3 === 1
          ? [put(`k${i}`, `v${n}`), { type: 'append', key: 'log', value: `${n}.${i}` }]
          : [
              { type: 'cas', key: `k${i - 1}`, expect: `v${n}`, value: `w${n}` },
              { type: 'delete', key: `k${i}` },
            ];
    txs.push(tx(who, nonce, ops));
  }
  const built = buildBlock(
    chain.app,
    CHAIN_ID,
    baseOf(chain),
    txs,
    { raftId: 1, key: f.minters[0] },
    1_000 + n * 1_000,
    1,
  );
  return built.block;
}
