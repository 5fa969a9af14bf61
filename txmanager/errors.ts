// Errors of the transaction manager (docs/design.md §6):
//  - TxManagerError: an expected operating condition with a stable `code`. "Not a party" is NOT
//    one of them: it is an answer (ReceiveResult), while every failure to answer is thrown —
//    GoQuorum users lost private state when a Tessera error was read as "not a party".
//  - PartyTransportError (transport.ts): the IO edge towards remote parties, cause attached.
//  - TxManagerInvariantError: programmer errors; assertions stay on.

export enum TxManagerErrorCode {
  /** A recipient's node could not be reached (down, timed out, or its circuit breaker is open). meta.nodeIds names them. */
  RecipientUnavailable = 'TXM_RECIPIENT_UNAVAILABLE',
  /** A recipient's node answered, but refused the payload. meta.nodeIds names them. */
  RecipientRejected = 'TXM_RECIPIENT_REJECTED',
  /** A recipient key is in no node's key list (KeyDirectory): never guessed. */
  UnknownRecipientKey = 'TXM_UNKNOWN_RECIPIENT_KEY',
  /** `from` is not one of this node's enclave keys. */
  UnknownSenderKey = 'TXM_UNKNOWN_SENDER_KEY',
  /** `asKey` (or a similar argument) is not one of this node's enclave keys. */
  UnknownLocalKey = 'TXM_UNKNOWN_LOCAL_KEY',
  /** A node id the KeyDirectory does not know. */
  UnknownNode = 'TXM_UNKNOWN_NODE',
  /** A key was assigned to two nodes. */
  KeyConflict = 'TXM_KEY_CONFLICT',
  /** A pushed payload holds no box for any of this node's keys: a node that is not a party stores nothing. */
  NotAParty = 'TXM_NOT_A_PARTY',
  /** No payload is stored under the given hash (sendSignedTransaction of an unknown hash). */
  UnknownPayload = 'TXM_UNKNOWN_PAYLOAD',
  /** A request is malformed (bad base64, bad hash, wrong types). */
  InvalidRequest = 'TXM_INVALID_REQUEST',
  /** A payload or request is over its named limit. */
  PayloadTooLarge = 'TXM_PAYLOAD_TOO_LARGE',
  /** A named limit other than size was reached (directory sizes). */
  LimitExceeded = 'TXM_LIMIT_EXCEEDED',
  /** The durable queue of owed deliveries is full (MAX_OWED_DELIVERIES). */
  QueueFull = 'TXM_QUEUE_FULL',
  /** The payload store or the queue failed to read or write; the IO error is the cause. */
  StorageFailure = 'TXM_STORAGE_FAILURE',
  /** A stored payload does not decode, or its hash is not its key: the store is damaged. */
  CorruptStoredPayload = 'TXM_CORRUPT_STORED_PAYLOAD',
  /** queue mode was asked for without an OwedQueue, or a similar configuration mistake. */
  InvalidConfig = 'TXM_INVALID_CONFIG',
  /**
   * The payload store is at its quota (limits.tmStoreMaxBytes): this payload would take it over.
   * The send (or push) is refused; nothing else stops. HTTP 507.
   */
  StoreFull = 'TXM_STORE_FULL',
  /** A client API listener would be reachable without the protection it needs (a routable local listener; remote clients without TLS or a token). The server refuses to start. */
  InsecureListener = 'TXM_INSECURE_LISTENER',
  /** The transaction manager was stopped. */
  Stopped = 'TXM_STOPPED',
}

export class TxManagerError extends Error {
  readonly code: TxManagerErrorCode;
  readonly meta: Record<string, unknown>;
  constructor(
    code: TxManagerErrorCode,
    message: string,
    meta: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TxManagerError';
    this.code = code;
    this.meta = meta;
  }
}

export class TxManagerInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TxManagerInvariantError';
  }
}

export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new TxManagerInvariantError(typeof message === 'string' ? message : message());
}

export function isTxManagerError(error: unknown, code?: TxManagerErrorCode): error is TxManagerError {
  return error instanceof TxManagerError && (code === undefined || error.code === code);
}
