// Several transaction managers in one process, over the in-memory party network, each with a
// real tweetnacl enclave and a real store (in-memory unless a test asks for LevelDB).
import { SystemClock } from '../../node/clock.js';
import { keyToBase64, MemoryKeyStore, NaclEnclave } from '../../enclave/index.js';
import {
  type TmClock,
  KeyDirectory,
  MemoryPartyNetwork,
  MemoryPayloadStore,
  type OwedQueue,
  type PartyTransport,
  type PartyTransportHandlers,
  type PayloadStore,
  type ResendPage,
  type ResendRequest,
  TransactionManager,
  type TransactionManagerOptions,
} from '../../txmanager/index.js';

export interface TmNode {
  readonly nodeId: string;
  readonly enclave: NaclEnclave;
  readonly keys: string[];
  tm: TransactionManager;
  store: PayloadStore;
  transport: CountingTransport;
}

/** A decorator that counts outbound pushes per target: lets a test prove a push was never attempted. */
export class CountingTransport implements PartyTransport {
  readonly pushesTo = new Map<string, number>();
  constructor(private readonly inner: PartyTransport) {}
  get localNodeId(): string {
    return this.inner.localNodeId;
  }
  push(nodeId: string, encodedPayload: Uint8Array, signal: AbortSignal): Promise<void> {
    this.pushesTo.set(nodeId, (this.pushesTo.get(nodeId) ?? 0) + 1);
    return this.inner.push(nodeId, encodedPayload, signal);
  }
  resendRequest(nodeId: string, request: ResendRequest, signal: AbortSignal): Promise<ResendPage> {
    return this.inner.resendRequest(nodeId, request, signal);
  }
  handle(handlers: PartyTransportHandlers): void {
    this.inner.handle(handlers);
  }
  unhandle(): void {
    this.inner.unhandle();
  }
}

export interface ClusterOptions {
  readonly nodeIds?: string[];
  readonly keysPerNode?: Record<string, number>;
  readonly options?: (nodeId: string) => TransactionManagerOptions;
  readonly store?: (nodeId: string) => Promise<PayloadStore>;
  readonly owedQueue?: (nodeId: string) => Promise<OwedQueue | undefined>;
  /** The TMs' clock (default: the real one); the party network always runs on real time. */
  readonly clock?: TmClock;
}

export interface TmCluster {
  readonly network: MemoryPartyNetwork;
  readonly directory: KeyDirectory;
  readonly nodes: Record<string, TmNode>;
  /** Replaces a node's transaction manager (restart), keeping its enclave; the old one is stopped. */
  restart(
    nodeId: string,
    store: PayloadStore,
    owedQueue?: OwedQueue,
    options?: TransactionManagerOptions,
  ): Promise<TransactionManager>;
  stop(): Promise<void>;
}

export async function tmCluster(config: ClusterOptions = {}): Promise<TmCluster> {
  const nodeIds = config.nodeIds ?? ['node-a', 'node-b', 'node-c'];
  const network = new MemoryPartyNetwork(new SystemClock());
  const directory = new KeyDirectory();
  const nodes: Record<string, TmNode> = {};
  const enclaves = new Map<string, NaclEnclave>();
  for (const nodeId of nodeIds) {
    const enclave = await NaclEnclave.create(MemoryKeyStore.generate(config.keysPerNode?.[nodeId] ?? 1));
    enclaves.set(nodeId, enclave);
    // Each node's directory would be its own copy fed from the replicated membership; one shared
    // instance here holds the same content.
    directory.setKeys(nodeId, enclave.publicKeys().map(keyToBase64));
  }
  const build = (
    nodeId: string,
    store: PayloadStore,
    owedQueue: OwedQueue | undefined,
    transport: CountingTransport,
    options?: TransactionManagerOptions,
  ): TransactionManager => {
    const tm = new TransactionManager(options ?? config.options?.(nodeId) ?? {}, {
      nodeId,
      enclave: enclaves.get(nodeId) as NaclEnclave,
      store,
      transport,
      directory,
      owedQueue,
      clock: config.clock ?? new SystemClock(),
    });
    tm.start();
    return tm;
  };
  for (const nodeId of nodeIds) {
    const store = config.store ? await config.store(nodeId) : new MemoryPayloadStore();
    const owedQueue = config.owedQueue ? await config.owedQueue(nodeId) : undefined;
    const transport = new CountingTransport(network.transport(nodeId));
    const enclave = enclaves.get(nodeId) as NaclEnclave;
    nodes[nodeId] = {
      nodeId,
      enclave,
      keys: enclave.publicKeys().map(keyToBase64),
      store,
      transport,
      tm: build(nodeId, store, owedQueue, transport),
    };
  }
  return {
    network,
    directory,
    nodes,
    async restart(nodeId, store, owedQueue, options) {
      const node = nodes[nodeId];
      await node.tm.stop();
      node.store = store;
      node.tm = build(nodeId, store, owedQueue, node.transport, options);
      return node.tm;
    },
    async stop() {
      for (const node of Object.values(nodes)) await node.tm.stop();
    },
  };
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Polls `condition` every 10 ms until it holds or `timeoutMs` passes (then throws). */
export async function eventually(condition: () => Promise<boolean> | boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
