// The package's public entry (`import { ... } from 'quorate'`): what an embedder needs to run a
// node in its own process — the node and its options, the process wiring with real IO, config
// and cluster-folder helpers, the Application interface and the ledger app, the chain types a
// transaction or a block is made of, the JSON-RPC client, and the typed errors to catch.
//
// A thin list of re-exports on purpose: the modules stay where they are, and this file only says
// which of their names are public. Deeper layers have their own entries ('quorate/chain',
// 'quorate/consensus', 'quorate/p2p', 'quorate/rpc'; see package.json "exports").

// libp2p calls Promise.withResolvers, which Node 20 lacks: installed before anything else loads.
import './polyfills.js';

// The node.
export {
  QuorateNode,
  NodeState,
  genesisMembership,
  type NodeIo,
  type NodeStatus,
  type NodeRole,
  type CommittedBlockEvent,
  type PrivacyProvider,
  type BootstrapPeer,
  type MembershipStore,
} from './node.js';
export type { MemberInfo, MembershipState } from './membership.js';
// The one factory (process and test harnesses alike) and the options tree it takes, with each
// module's defaults.
export { createNode } from './create-node.js';
export {
  resolveNodeOptions,
  settingsFromConfig,
  DEFAULT_RAFT_OPTIONS,
  DEFAULT_POOL_OPTIONS,
  DEFAULT_BLOCK_OPTIONS,
  DEFAULT_PRIVACY_OPTIONS,
  DEFAULT_RPC_OPTIONS,
  type NodeOptions,
  type NodeSettings,
  type RaftOptions,
  type PoolOptions,
  type BlockOptions,
  type PrivacyOptions,
  type RpcOptions,
} from './options.js';

// A node with real IO (LevelDB, libp2p, JSON-RPC server, transaction manager), as `quorate start` runs it.
export { startNodeProcess, chainGenesis, STOP_DEADLINE_MS, type RunningNode } from './process.js';

// The embedding entry: one node in the embedder's process, with AbortSignal, block iteration and reads at a tag.
export {
  startNode,
  DEFAULT_BLOCK_BUFFER_BLOCKS,
  DEFAULT_RECEIPT_WAIT_MS,
  type StartNodeOptions,
  type EmbeddedNode,
  type BlockIteratorOptions,
  type ReadTag,
} from './embed.js';

// Configuration and cluster folders.
export {
  loadConfig,
  parseConfig,
  loadGenesis,
  parseGenesis,
  resolveEnclavePassword,
  ConfigError,
  ConfigErrorCode,
  DEFAULT_LIMITS,
  DEFAULT_RAFT_TUNING,
  ENCLAVE_PASSWORD_ENV,
  type NodeConfig,
  type NodeLimits,
  type RaftTuning,
  type Genesis,
  type GenesisMember,
  type PeerConfig,
  type Endpoint,
  type DeliveryMode,
} from './config.js';
export {
  initCluster,
  INIT_DEFAULTS,
  GENESIS_ACCOUNT_BALANCE,
  type InitOptions,
  type InitResult,
  type InitNode,
} from './cli/init.js';

// The embedder's application, and the chain types it works with.
export {
  LedgerApp,
  ChainError,
  ChainErrorCode,
  generateAccountKey,
  generateMinterKey,
  loadAccountKey,
  signTransaction,
  createMemoryChainStore,
  openLevelChainStore,
  MemoryKv,
  getValue,
  getBalance,
  getNonce,
  getList,
  setBalance,
  stateKeys,
  type Hash,
  type StateKey,
  type Application,
  type ApplyContext,
  type TxOutcome,
  type StateView,
  type StateOverlay,
  type AccountKey,
  type Address,
  type Op,
  type Transaction,
  type UnsignedTransaction,
  type Block,
  type BlockHeader,
  type Receipt,
  type GenesisConfig,
  type ChainStore,
} from './chain/index.js';

// Talking to a node over JSON-RPC.
export {
  HttpRpcClient,
  HTTP_RPC_CLIENT_DEFAULTS,
  RpcCallError,
  RpcTransportError,
  RpcTransportErrorCode,
  type RpcClient,
  type RpcCallOptions,
} from './rpc/client.js';

// Errors, clock and logging.
export { NodeError, NodeErrorCode } from './errors.js';
export { SystemClock, type Clock } from './clock.js';
export { createLogger, silentLogger, type Logger, type LoggerOptions, type LogLevel } from './log.js';
