// Private transactions for a node: the transaction manager (txmanager/) and the enclave
// (enclave/) wired to the node's p2p transport and replicated membership, behind the
// PrivacyProvider that QuorateNode calls. Owns NodePrivacy (opening and closing the TM, the
// start-up resync, following the membership, metrics). The wire is node/party-transport.ts, the
// error table node/privacy-errors.ts; it may not touch the chain or Raft.
//
//   QuorateNode ──send/receive──► NodePrivacy ──► TransactionManager ──► NaclEnclave (keys stay inside)
//                                      │                   │
//                                      │                   └─ PeerPartyTransport ── "tm/push", "tm/resend"
//                                      │                        (node/party-transport.ts) over the node's PeerTransport
//                                      └─ membership listener: KeyDirectory (name → enclave keys)
//                                                             and party map (name ↔ peer id)
//
// Identities: a transaction manager knows its counterparts by node id = the member's `name`
// (what the KeyDirectory and the owed-delivery queue record, stable across restarts and
// address changes). On the wire, the authenticated identity is the libp2p peer id (Noise proves
// it); the replicated membership maps one to the other. A request from a peer that is not a
// member is refused, whatever the transport's allowlist says.
//
// "Not a party" and "could not tell" stay apart all the way up (GoQuorum's private-state
// divergence): `receive` returns null only when this node holds no copy AND nothing says it
// should (the transaction's privateFor does not name one of our keys, and the start-up resync
// from the other members finished); every other doubt is thrown, and the node retries with an
// alarm instead of applying.

import { join } from 'node:path';
import {
  type Enclave,
  FileKeyStore,
  type KeyFileRef,
  type KeyProof,
  type KeyProofRequest,
  keyToBase64,
  NaclEnclave,
  PAYLOAD_HASH_BYTES,
} from '../enclave/index.js';
import type { PeerTransport } from '../p2p/transport.js';
import {
  type BreakerSnapshot,
  BreakerState,
  type DeliveryMode,
  type DurableTransactionManager,
  KeyDirectory,
  openDurableTransactionManager,
  PartyTransportError,
  PartyTransportErrorCode,
  type TransactionManager,
  type TransactionManagerOptions,
  TxManagerServer,
  type TxManagerServerOptions,
} from '../txmanager/index.js';
import { raceDeadline, sleep } from './abort.js';
import { SystemClock, type Clock } from './clock.js';
import { NodeError, NodeErrorCode, nodeAssert } from './errors.js';
import type { Logger } from './log.js';
import type { MembershipState } from './membership.js';
import { CircuitStateValue, type NodeMetrics } from './metrics.js';
import { PeerPartyTransport } from './party-transport.js';
import { privacyError } from './privacy-errors.js';
import type { PrivacyProvider } from './privacy-provider.js';

/**
 * How long after start-up a node keeps asking unreachable members for the payloads they hold
 * for it. Until then (or until every member answered) a missing payload is "could not tell":
 * the node holds off applying instead of recording "not a party" for a payload it was owed
 * while it was down.
 */
export const RESYNC_DEADLINE_MS = 15_000;
/** Pause between rounds of the start-up resync over the members that did not answer. */
export const RESYNC_RETRY_MS = 500;

export interface NodePrivacyConfig {
  /** This node's member name: its node id among the transaction managers. */
  readonly nodeId: string;
  /** The TM's stores live under `<dataDir>/tm`. */
  readonly dataDir: string;
  readonly deliveryMode: DeliveryMode;
  /** Where the enclave's key pairs come from, unless `enclave` is given in the dependencies. */
  readonly keyFiles?: readonly KeyFileRef[];
  /** Timeouts and breaker settings of the TransactionManager (defaults otherwise). */
  readonly tm?: Omit<TransactionManagerOptions, 'deliveryMode'>;
  /** Skip the start-up resync (tests of a node that must find its payloads some other way). */
  readonly resyncOnOpen?: boolean;
}

export interface NodePrivacyDeps {
  /** The node's PeerTransport; the TMs talk over its "tm/push" and "tm/resend" channels. */
  readonly peers: PeerTransport;
  readonly logger: Logger;
  /** An already-built enclave (tests, embedders); otherwise NaclEnclave over FileKeyStore(keyFiles). */
  readonly enclave?: Enclave;
  /** The node's clock (its TM's timers and backoff); default the real one. */
  readonly clock?: Clock;
}

/** The membership as the privacy layer needs it (QuorateNode.onMembership). */
export interface MembershipSource {
  onMembership(listener: (m: MembershipState) => void): () => void;
}

export class NodePrivacy implements PrivacyProvider {
  readonly nodeId: string;
  private readonly durable: DurableTransactionManager;
  private readonly transport: PeerPartyTransport;
  private readonly directory: KeyDirectory;
  private readonly log: Logger;
  private readonly ownKeys: ReadonlySet<string>;
  private server: TxManagerServer | null = null;
  private unsubscribe: (() => void) | null = null;
  private closed = false;
  // Start-up resync: until it has finished, a missing payload is "could not tell", not "not a party".
  private resync: Promise<void> | null = null;
  private resyncDone = false;
  private lastMembersWithKeys = 0;
  private readonly gaugePeers = new Set<string>();

  private constructor(
    nodeId: string,
    durable: DurableTransactionManager,
    transport: PeerPartyTransport,
    directory: KeyDirectory,
    log: Logger,
    private readonly clock: Clock,
  ) {
    this.nodeId = nodeId;
    this.durable = durable;
    this.transport = transport;
    this.directory = directory;
    this.log = log;
    this.ownKeys = new Set(durable.tm.publicKeys());
  }

  /**
   * Unlocks the enclave, opens the TM's stores under `<dataDir>/tm` and starts it (it answers
   * pushes from members from now on). Call `followMembership(node)` next, so the key directory
   * and the party map follow the replicated membership.
   */
  static async open(config: NodePrivacyConfig, deps: NodePrivacyDeps): Promise<NodePrivacy> {
    const log = deps.logger.child({ component: 'tm' });
    let enclave = deps.enclave;
    if (enclave === undefined) {
      nodeAssert(
        config.keyFiles !== undefined && config.keyFiles.length > 0,
        'NodePrivacy.open needs keyFiles or an enclave',
      );
      enclave = await NaclEnclave.create(new FileKeyStore(config.keyFiles));
    }
    const transport = new PeerPartyTransport(deps.peers, config.nodeId);
    const directory = new KeyDirectory();
    const durable = await openDurableTransactionManager({
      ...config.tm,
      clock: deps.clock ?? new SystemClock(),
      deliveryMode: config.deliveryMode,
      dataDir: join(config.dataDir, 'tm'),
      nodeId: config.nodeId,
      enclave,
      transport,
      directory,
    });
    const privacy = new NodePrivacy(config.nodeId, durable, transport, directory, log, deps.clock ?? new SystemClock());
    if (config.resyncOnOpen === false) privacy.resyncDone = true;
    return privacy;
  }

  /** The transaction manager (REST server, tests, metrics). */
  get tm(): TransactionManager {
    return this.durable.tm;
  }

  /** The TM's payload store (tests look inside it). */
  get payloadStore(): DurableTransactionManager['store'] {
    return this.durable.store;
  }

  /** This node's enclave public keys (base64): what the node announces in the membership. */
  publicKeys(): string[] {
    return this.durable.tm.publicKeys();
  }

  /**
   * Keeps the key directory and the party map in step with the replicated membership, and, on
   * the first membership that names other members' keys, fetches from each of them the payloads
   * this node is a party to (a node that was down while payloads were sent catches up so).
   */
  followMembership(source: MembershipSource): void {
    nodeAssert(this.unsubscribe === null, 'followMembership called twice');
    this.unsubscribe = source.onMembership((m) => this.applyMembership(m));
  }

  /** Applies one membership (every member's name, peer id and enclave keys). Never throws: it runs inside the node's apply. */
  applyMembership(m: MembershipState): void {
    if (this.closed) return;
    this.transport.setParties(m.members.map((x) => ({ nodeId: x.name, peerId: x.peerId })));
    const names = new Set(m.members.map((x) => x.name));
    for (const node of this.directory.nodes()) if (!names.has(node)) this.directory.removeNode(node);
    let withKeys = 0;
    for (const member of m.members) {
      try {
        this.directory.setKeys(member.name, member.enclaveKeys);
        if (member.name !== this.nodeId && member.enclaveKeys.length > 0) withKeys++;
      } catch (error) {
        this.log.error(
          { err: error, member: member.name, raftId: member.raftId },
          'member enclave keys not usable: private transactions for them will be refused',
        );
      }
    }
    if (this.resync === null && !this.resyncDone && withKeys > 0) this.startResync();
    this.lastMembersWithKeys = withKeys;
  }

  private startResync(): void {
    this.resync = (async () => {
      const deadlineMs = this.clock.monotonicMs() + RESYNC_DEADLINE_MS;
      const pending = new Set(this.directory.nodes().filter((n) => n !== this.nodeId));
      let stored = 0;
      while (pending.size > 0 && !this.closed) {
        for (const nodeId of [...pending]) {
          if (this.closed) break;
          try {
            stored += await this.durable.tm.resend(nodeId);
            pending.delete(nodeId);
          } catch (error) {
            // Not connected yet (the node is starting) or down: ask again until the deadline.
            const retry =
              error instanceof PartyTransportError &&
              (error.code === PartyTransportErrorCode.Unreachable || error.code === PartyTransportErrorCode.Aborted);
            if (!retry) {
              this.log.warn(
                { err: error, node: nodeId },
                'start-up resync: this member refused or failed; not asking it again',
              );
              pending.delete(nodeId);
            }
          }
        }
        if (pending.size === 0 || this.clock.monotonicMs() >= deadlineMs) break;
        await sleep(this.clock, RESYNC_RETRY_MS);
      }
      if (pending.size > 0)
        this.log.warn(
          { unreachable: [...pending] },
          'start-up resync: members unreachable; payloads they owe this node arrive when they push them (queue mode)',
        );
      this.log.info({ stored }, 'start-up resync finished');
      this.resyncDone = true;
    })();
  }

  /** Resolves once the start-up resync finished (tests; a node never waits for it). */
  async resynced(): Promise<void> {
    await this.resync;
  }

  // ---------------------------------------------------------------- PrivacyProvider

  async send(payload: Uint8Array, privateFor: readonly string[], signal?: AbortSignal): Promise<Uint8Array> {
    if (signal?.aborted) throw new NodeError(NodeErrorCode.Timeout, 'private transaction cancelled before it was sent');
    let hash: string;
    try {
      hash = await raceDeadline(
        this.durable.tm.send(payload, undefined, privateFor),
        { clock: this.clock, signal },
        () =>
          new NodeError(
            NodeErrorCode.Timeout,
            'private transaction timed out while its payload was being delivered: the payload may have reached some parties, but no transaction was submitted',
          ),
      );
    } catch (error) {
      throw privacyError(error);
    }
    const bytes = Buffer.from(hash, 'base64');
    nodeAssert(bytes.length === PAYLOAD_HASH_BYTES, () => `transaction manager returned a ${bytes.length}-byte hash`);
    return Uint8Array.from(bytes);
  }

  /**
   * The payload, or null when this node is not a party. `privateFor` (the transaction's
   * recipients, when the caller passes them) makes a missing copy for one of our keys an error
   * (the payload is owed to us and has not arrived), never "not a party". Throws NodeError
   * PrivacyUnavailable when it cannot tell.
   */
  async receive(hash: Uint8Array, privateFor?: readonly Uint8Array[]): Promise<Uint8Array | null> {
    if (hash.length !== PAYLOAD_HASH_BYTES)
      throw new NodeError(
        NodeErrorCode.PrivacyUnavailable,
        `a payload hash is ${PAYLOAD_HASH_BYTES} bytes, got ${hash.length}`,
      );
    if (this.closed) throw new NodeError(NodeErrorCode.PrivacyUnavailable, 'the transaction manager is closed');
    const hashBase64 = Buffer.from(hash).toString('base64');
    let result;
    try {
      result = await this.durable.tm.receive(hashBase64);
    } catch (error) {
      throw new NodeError(
        NodeErrorCode.PrivacyUnavailable,
        `transaction manager could not read payload ${hashBase64.slice(0, 16)}…: ${(error as Error)?.message ?? String(error)}`,
        {},
        { cause: error },
      );
    }
    if (result.kind === 'party') return result.payload;
    const ours = (privateFor ?? []).map(keyToBase64).filter((k) => this.ownKeys.has(k));
    if (ours.length > 0) {
      throw new NodeError(
        NodeErrorCode.PrivacyUnavailable,
        `payload ${hashBase64.slice(0, 16)}… is addressed to this node (${ours[0]}) but has not arrived yet`,
        { keys: ours },
      );
    }
    if (!this.resyncDone) {
      throw new NodeError(
        NodeErrorCode.PrivacyUnavailable,
        'the transaction manager is still fetching the payloads owed to this node from the other members',
      );
    }
    return null;
  }

  /** PrivacyProvider.proveKeys: the enclave answers a member's key-possession challenge. */
  proveKeys(request: KeyProofRequest, binding: Uint8Array): Promise<KeyProof[]> {
    return this.durable.tm.proveKeys(request, binding);
  }

  // ---------------------------------------------------------------- REST, metrics, lifecycle

  /** Starts the Tessera-shaped REST API (docs/interface.md) on host:port. */
  async startServer(options: TxManagerServerOptions): Promise<{ url: string }> {
    nodeAssert(this.server === null, 'TM server already started');
    const server = new TxManagerServer(this.durable.tm, options);
    const address = await server.start();
    this.server = server;
    this.log.info({ url: address.url }, 'transaction manager listening');
    return { url: address.url };
  }

  /** Copies each remote party's circuit breaker state into the node's gauge. */
  exportMetrics(metrics: NodeMetrics): void {
    const snapshots: Record<string, BreakerSnapshot> = this.durable.tm.breakerSnapshots();
    for (const peer of this.gaugePeers) if (!(peer in snapshots)) metrics.circuitBreakerState.remove({ peer });
    this.gaugePeers.clear();
    for (const [peer, s] of Object.entries(snapshots)) {
      metrics.circuitBreakerState.set({ peer }, breakerValue(s.state));
      this.gaugePeers.add(peer);
    }
  }

  /** Stops the REST server, then the TM (inbound pushes are refused from then on), then closes its stores. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    const server = this.server;
    this.server = null;
    await server?.stop();
    await this.resync?.catch(() => undefined);
    await this.durable.close();
  }

  /** Members other than this node that published enclave keys, at the last membership seen. */
  get knownParties(): number {
    return this.lastMembersWithKeys;
  }
}

function breakerValue(state: BreakerState): CircuitStateValue {
  switch (state) {
    case BreakerState.Closed:
      return CircuitStateValue.Closed;
    case BreakerState.HalfOpen:
      return CircuitStateValue.HalfOpen;
    case BreakerState.Open:
      return CircuitStateValue.Open;
  }
}
