// An embedder's own Application: an English auction with escrow. It owns the auction's
// transaction types, their validation, their deterministic effect on state, and the encoding of
// its transactions into ops.
//
// How an Application receives its transactions: a transaction carries `ops`, and the application
// alone gives them meaning (node/chain/app.ts). The wire format has five op shapes (transfer, put,
// delete, cas, append); this application uses exactly one `put` per transaction as its envelope —
// the key names the action (`auction:open`, `auction:bid`, `auction:close`) and the value holds
// its JSON arguments — and refuses everything else in validateTx, so a LedgerApp-style op never
// reaches it. A refusal there is a NodeError TX_MALFORMED at submit (nothing enters the pool);
// a rule broken at apply time (a bid too low, an auction closed) is a failed receipt (status 0,
// with the reason) and changes nothing but the sender's nonce.
//
// State lives in the application's keys: `auction/<id>` (JSON, readable with getValue) and the
// accounts' balances, which bids lock in escrow: a bid debits the bidder, being outbid refunds
// them, and closing pays the highest bid to the seller.
//
// An installed project imports from 'quorate'; this example lives in the repository and imports
// the sources, so that it always runs against the code beside it.

import {
  ChainError,
  ChainErrorCode,
  getBalance,
  getValue,
  setBalance,
  stateKeys,
  type Address,
  type ApplyContext,
  type Hash,
  type Application,
  type Op,
  type StateKey,
  type StateOverlay,
  type StateView,
  type Transaction,
  type TxOutcome,
} from '../../node/index.js';

/** Longest auction id and item description (bounds one auction's share of the state). */
export const MAX_AUCTION_ID_CHARS = 64;
export const MAX_ITEM_CHARS = 256;

/** The auction's transaction types, as the embedder's code writes them. Amounts are decimal strings (bigint). */
export type AuctionTx =
  | { readonly action: 'open'; readonly id: string; readonly item: string; readonly reserve: string }
  | { readonly action: 'bid'; readonly id: string; readonly amount: string }
  | { readonly action: 'close'; readonly id: string };

/** One auction as stored under `auction/<id>`. */
export interface Auction {
  readonly id: string;
  readonly item: string;
  readonly seller: Address;
  readonly reserve: string;
  readonly highBidder: Address | null;
  readonly highBid: string;
  readonly closed: boolean;
  /** The block in which it opened, and in which it closed (null while open). */
  readonly openedAt: number;
  readonly closedAt: number | null;
}

const ACTION_PREFIX = 'auction:';

/** The op that carries one auction transaction. */
export function auctionOp(tx: AuctionTx): Op {
  const { action, ...args } = tx;
  return { type: 'put', key: ACTION_PREFIX + action, value: JSON.stringify(args) };
}

/** The state key (a LedgerApp-compatible value key, so `getValue('auction/<id>')` reads it) of one auction. */
export function auctionKey(id: string): string {
  return `auction/${id}`;
}

export function parseAuction(json: string | null): Auction | null {
  return json === null ? null : (JSON.parse(json) as Auction);
}

const OK: TxOutcome = { status: 1, reason: '' };
const fail = (reason: string): TxOutcome => ({ status: 0, reason });
const encoder = new TextEncoder();

export class AuctionApp implements Application {
  readonly name = 'quorate-example-auction-v1';

  /** Stateless: exactly one auction op, well formed. Throws ChainError TxMalformed otherwise. */
  validateTx(_tx: Transaction, ops: readonly Op[]): void {
    decode(ops);
  }

  applyTx(state: StateOverlay, tx: Transaction, ctx: ApplyContext): TxOutcome {
    // Balances are public: escrow has no meaning in a private state.
    if (ctx.isPrivate) return fail('auction transactions cannot be private');
    const t = decode(ctx.ops);
    const key = stateKeys.value(auctionKey(t.id));
    const current = parseAuction(getValue(state, auctionKey(t.id)));
    const put = (a: Auction): void => state.set(key, encoder.encode(JSON.stringify(a)));

    switch (t.action) {
      case 'open': {
        if (current) return fail(`auction ${t.id} already exists`);
        put({
          id: t.id,
          item: t.item,
          seller: tx.from,
          reserve: t.reserve,
          highBidder: null,
          highBid: '0',
          closed: false,
          openedAt: ctx.blockNumber,
          closedAt: null,
        });
        return OK;
      }
      case 'bid': {
        if (!current) return fail(`no auction ${t.id}`);
        if (current.closed) return fail(`auction ${t.id} closed in block ${current.closedAt}`);
        if (tx.from === current.seller) return fail('the seller cannot bid');
        const amount = BigInt(t.amount);
        if (amount < BigInt(current.reserve)) return fail(`bid ${amount} is below the reserve ${current.reserve}`);
        if (amount <= BigInt(current.highBid))
          return fail(`bid ${amount} does not beat the highest bid ${current.highBid}`);
        const have = getBalance(state, tx.from);
        if (have < amount) return fail(`insufficient balance: ${tx.from} has ${have}, the bid needs ${amount}`);
        // Escrow: the new bid is locked, the bid it beats is refunded (read after the debit: a
        // bidder raising their own bid gets the old one back).
        setBalance(state, tx.from, have - amount);
        if (current.highBidder !== null)
          setBalance(state, current.highBidder, getBalance(state, current.highBidder) + BigInt(current.highBid));
        put({ ...current, highBidder: tx.from, highBid: amount.toString() });
        return OK;
      }
      case 'close': {
        if (!current) return fail(`no auction ${t.id}`);
        if (current.closed) return fail(`auction ${t.id} already closed`);
        if (tx.from !== current.seller) return fail('only the seller closes an auction');
        if (current.highBidder !== null)
          setBalance(state, current.seller, getBalance(state, current.seller) + BigInt(current.highBid));
        put({ ...current, closed: true, closedAt: ctx.blockNumber });
        return OK;
      }
    }
  }

  stateRoot(state: StateView): Hash {
    return state.root();
  }

  /** Prefetch hint: the auction and the sender's balance (a refunded bidder costs one synchronous read). */
  stateKeysOf(tx: Transaction, ops: readonly Op[]): StateKey[] {
    const t = decode(ops);
    return [stateKeys.value(auctionKey(t.id)), stateKeys.balance(tx.from)];
  }
}

function malformed(message: string): ChainError {
  return new ChainError(ChainErrorCode.TxMalformed, `auction: ${message}`);
}

const ID = /^[a-z0-9][a-z0-9-]*$/;
const AMOUNT = /^(0|[1-9][0-9]{0,40})$/;

/** The one auction transaction in `ops`, checked; ChainError TxMalformed otherwise. Pure, so validate and apply agree. */
function decode(ops: readonly Op[]): AuctionTx {
  if (ops.length !== 1) throw malformed(`a transaction carries exactly one auction op, got ${ops.length}`);
  const op = ops[0];
  if (op.type !== 'put' || !op.key.startsWith(ACTION_PREFIX))
    throw malformed(`expected a put op keyed "${ACTION_PREFIX}<action>", got ${op.type}`);
  let args: Record<string, unknown>;
  try {
    args = JSON.parse(op.value) as Record<string, unknown>;
  } catch {
    throw malformed('the arguments are not JSON');
  }
  if (typeof args !== 'object' || args === null) throw malformed('the arguments are not an object');
  const str = (name: string): string => {
    const v = args[name];
    if (typeof v !== 'string') throw malformed(`${name} must be a string`);
    return v;
  };
  const id = str('id');
  if (id.length > MAX_AUCTION_ID_CHARS || !ID.test(id))
    throw malformed(`id must match ${ID} and be at most ${MAX_AUCTION_ID_CHARS} characters`);
  const amount = (name: string): string => {
    const v = str(name);
    if (!AMOUNT.test(v)) throw malformed(`${name} must be a non-negative decimal integer`);
    return v;
  };
  const action = op.key.slice(ACTION_PREFIX.length);
  switch (action) {
    case 'open': {
      const item = str('item');
      if (item.length === 0 || item.length > MAX_ITEM_CHARS)
        throw malformed(`item must be 1..${MAX_ITEM_CHARS} characters`);
      return { action, id, item, reserve: amount('reserve') };
    }
    case 'bid':
      return { action, id, amount: amount('amount') };
    case 'close':
      return { action, id };
    default:
      throw malformed(`unknown action ${JSON.stringify(action)}`);
  }
}
