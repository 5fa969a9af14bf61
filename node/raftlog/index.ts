// The durable Raft log: what the node layer imports.
export {
  LevelRaftStorage,
  openOrInit,
  LOG_DIR_NAME,
  DEFAULT_MAX_ENTRY_DATA_BYTES,
  DEFAULT_MAX_BATCH_BYTES,
  DEFAULT_MAX_SNAPSHOT_BYTES,
  DEFAULT_MAX_PENDING_WRITE_BYTES,
  type LevelRaftStorageOptions,
  type LevelRaftInit,
  type RaftLogIdentity,
} from './level-storage.js';
export { StorageError, StorageErrorCode } from './errors.js';
export { SEQ_FILE_NAME } from './seq-file.js';
export { MAX_CLUSTER_ID_BYTES, FORMAT_VERSION } from './codec.js';
