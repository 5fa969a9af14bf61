// Operating errors of the durable Raft log. Each has a stable `code` and says what to do; the
// numbers that led to it are in `meta`. Programmer errors (a write that would break a Raft
// invariant) are RaftInvariantError from consensus/errors.ts and crash instead.

export enum StorageErrorCode {
  /** A record failed its checksum, has an impossible shape, or the log is inconsistent (a gap,
   *  commit beyond the last entry). Never repaired silently: restore the node from its peers. */
  Corrupted = 'STORAGE_CORRUPTED',
  /** A record was written by a newer format version than this program reads. */
  UnsupportedFormat = 'STORAGE_UNSUPPORTED_FORMAT',
  /** The database is older than its sequence file says: an old copy was restored. */
  RolledBack = 'STORAGE_ROLLED_BACK',
  /** The sequence file exists but the database does not: the log was lost while the node was a member. */
  Lost = 'STORAGE_LOST',
  /** The database exists but its sequence file is gone, so a rollback cannot be ruled out. */
  SeqFileMissing = 'STORAGE_SEQ_FILE_MISSING',
  /** Another process (or another instance in this one) has the database open. */
  Locked = 'STORAGE_LOCKED',
  /** open(): the directory holds no Raft log. */
  NotFound = 'STORAGE_NOT_FOUND',
  /** init(): the directory already holds a Raft log or other files. */
  AlreadyExists = 'STORAGE_ALREADY_EXISTS',
  /** One entry's data is over maxEntryDataBytes. */
  EntryTooLarge = 'STORAGE_ENTRY_TOO_LARGE',
  /** One write (entries + hard state) is over maxBatchBytes. */
  BatchTooLarge = 'STORAGE_BATCH_TOO_LARGE',
  /** A snapshot's data is over maxSnapshotBytes. */
  SnapshotTooLarge = 'STORAGE_SNAPSHOT_TOO_LARGE',
  /** Writes waiting for the disk are over maxPendingWriteBytes: the caller is not awaiting its writes. */
  WriteQueueFull = 'STORAGE_WRITE_QUEUE_FULL',
  /** The directory belongs to another node or cluster than the one opening it. */
  IdentityMismatch = 'STORAGE_IDENTITY_MISMATCH',
  /** The raft id was already assigned. */
  RaftIdAssigned = 'STORAGE_RAFT_ID_ASSIGNED',
  /** A disk write failed. The storage refuses further writes (fail-stop: after a failed fsync
   *  nothing about the file can be trusted); stop the node and reopen. */
  IoFailed = 'STORAGE_IO_FAILED',
  /** The storage was closed. */
  Closed = 'STORAGE_CLOSED',
}

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  readonly meta: Record<string, unknown>;
  constructor(
    code: StorageErrorCode,
    message: string,
    meta: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
    this.code = code;
    this.meta = meta;
  }
}
