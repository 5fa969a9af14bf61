// Errors of the chain layer (node/chain). Three kinds are kept apart (docs/design.md §6):
//  - ChainError with a stable `code`: an expected operating condition (a bad transaction, a full
//    pool, a block that is a no-op). Callers branch on `code`; the RPC layer maps it to JSON-RPC.
//  - Fatal ChainErrors (`fatal: true`, e.g. StateRootMismatch): this node's state can no longer be
//    trusted. The node must stop with the message; continuing would be silent divergence.
//  - ChainInvariantError (via `assert`): a programmer error. Never caught; crashes with the values.

export enum ChainErrorCode {
  // --- transactions (decode / verify) ---
  /** The bytes are not a canonical encoding (bad length, trailing bytes, unknown op type, bad UTF-8). */
  TxMalformed = 'CHAIN_TX_MALFORMED',
  /** The encoded transaction, or one of its parts, is over a named limit (tx.ts). */
  TxTooLarge = 'CHAIN_TX_TOO_LARGE',
  /** The Ed25519 signature does not verify. */
  TxBadSignature = 'CHAIN_TX_BAD_SIGNATURE',
  /** `from` is not the address of `publicKey`. */
  TxAddressMismatch = 'CHAIN_TX_ADDRESS_MISMATCH',
  /** The transaction was signed for another chain (replay across chains). */
  TxWrongChainId = 'CHAIN_TX_WRONG_CHAIN_ID',
  /** The transaction type/version byte is not one this node knows. */
  TxUnsupportedType = 'CHAIN_TX_UNSUPPORTED_TYPE',
  // --- pool ---
  /** nonce < the account's committed nonce: already used (replay). */
  NonceTooLow = 'CHAIN_NONCE_TOO_LOW',
  /** nonce is too far ahead of the account's committed nonce (pool.ts MAX_NONCE_GAP). */
  NonceGapTooLarge = 'CHAIN_NONCE_GAP_TOO_LARGE',
  /** The same transaction (same hash) is already in the pool. */
  TxDuplicate = 'CHAIN_TX_DUPLICATE',
  /** Another transaction with the same (from, nonce) is pending; there is no replacement by fee here. */
  NonceAlreadyPending = 'CHAIN_NONCE_ALREADY_PENDING',
  /** The pool is at its count or byte limit. Retry later. */
  PoolFull = 'CHAIN_POOL_FULL',
  // --- blocks ---
  /** A block's bytes are not a canonical encoding. */
  BlockMalformed = 'CHAIN_BLOCK_MALFORMED',
  /** The block is over a named limit (block.ts). */
  BlockTooLarge = 'CHAIN_BLOCK_TOO_LARGE',
  /** genesis.json is invalid. */
  GenesisInvalid = 'CHAIN_GENESIS_INVALID',
  // --- application / state ---
  /** A private transaction's payload is not in the prefetched map: the node must fetch it first. */
  PrivatePayloadMissing = 'CHAIN_PRIVATE_PAYLOAD_MISSING',
  /** Fatal: the state root after applying a block differs from the header's. */
  StateRootMismatch = 'CHAIN_STATE_ROOT_MISMATCH',
  /** Fatal: the receipts root after applying a block differs from the header's. */
  ReceiptsRootMismatch = 'CHAIN_RECEIPTS_ROOT_MISMATCH',
  /**
   * A snapshot is malformed, truncated, has an oversized chunk, or does not match its block's
   * state root. `meta.reason` says which (SnapshotRefusal in snapshot.ts). Never fatal: the
   * import is dropped and can start again.
   */
  SnapshotInvalid = 'CHAIN_SNAPSHOT_INVALID',
  // --- store ---
  /** The store's contents are inconsistent (corruption, or a store of another chain). Fatal. */
  StoreCorrupt = 'CHAIN_STORE_CORRUPT',
  /**
   * The data directory is in an on-disk format this build cannot read (newer, or an old one that
   * cannot be migrated). Nothing was read or written; the message says what to do.
   */
  StoreFormatUnsupported = 'CHAIN_STORE_FORMAT_UNSUPPORTED',
  /** State at that block is not kept on this node (before the snapshot it was rebuilt from). */
  HistoryUnavailable = 'CHAIN_HISTORY_UNAVAILABLE',
  /** The store was closed, or an IO error happened underneath (the cause is attached). */
  StoreIo = 'CHAIN_STORE_IO',
  /** A key file is missing, malformed, has the wrong purpose, or would be overwritten. */
  KeyFile = 'CHAIN_KEY_FILE',
}

export class ChainError extends Error {
  readonly code: ChainErrorCode;
  readonly meta: Record<string, unknown>;
  /** True when the node must stop: its state can no longer be trusted. */
  readonly fatal: boolean;
  constructor(
    code: ChainErrorCode,
    message: string,
    meta: Record<string, unknown> = {},
    options: { fatal?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ChainError';
    this.code = code;
    this.meta = meta;
    this.fatal = options.fatal ?? false;
  }
}

/**
 * Fatal: after applying block `height`, this node's state root is `actualRoot`, the minter's header
 * says `expectedRoot`. Either this node or the minter diverged; the node stops instead of carrying on.
 */
export class StateRootMismatchError extends ChainError {
  constructor(
    readonly height: number,
    readonly expectedRoot: string,
    readonly actualRoot: string,
  ) {
    super(
      ChainErrorCode.StateRootMismatch,
      `state root mismatch at block ${height}: header says ${expectedRoot}, this node computed ${actualRoot}. ` +
        "This node's state diverged from the minter's; the node stops rather than continue on a different state. " +
        'Restore the data directory from a healthy member (or resync) and report this as a bug.',
      { height, expectedRoot, actualRoot },
      { fatal: true },
    );
    this.name = 'StateRootMismatchError';
  }
}

/** Fatal: same as StateRootMismatchError, for the receipts root. */
export class ReceiptsRootMismatchError extends ChainError {
  constructor(
    readonly height: number,
    readonly expectedRoot: string,
    readonly actualRoot: string,
  ) {
    super(
      ChainErrorCode.ReceiptsRootMismatch,
      `receipts root mismatch at block ${height}: header says ${expectedRoot}, this node computed ${actualRoot}. ` +
        'Execution diverged; the node stops. Restore the data directory from a healthy member and report this as a bug.',
      { height, expectedRoot, actualRoot },
      { fatal: true },
    );
    this.name = 'ReceiptsRootMismatchError';
  }
}

export class ChainInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChainInvariantError';
  }
}

/** Assertions stay on in production: a broken invariant crashes with its values. */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new ChainInvariantError(typeof message === 'string' ? message : message());
}
