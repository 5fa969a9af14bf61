// A fault-injecting TCP proxy between every ordered pair of nodes, for runs without root (where
// network namespaces cannot be used). Node i reaches node j by dialling `addressFor(i, j)`, a port
// of this proxy that forwards to j's real address. The proxy can then cut, delay or heal each
// direction at run time.
//
// What a cut means here, and why: a cut {from: a, to: b} drops packets from a to b. Over TCP:
//  - on an established connection between a and b (either link), bytes a→b stop flowing and are held,
//    as TCP would keep retransmitting them; they arrive after the heal, if the connection is still open
//    (the node's own timeouts decide that, as on a real network). Bytes b→a keep flowing.
//  - a new connection between a and b (in either direction) needs packets both ways, so it is
//    accepted but not connected upstream until the heal (the dialer sees a silent peer, as when SYNs
//    are dropped).
//  - with `mode: 'reset'`, a cut instead closes the affected connections and refuses new ones at once
//    (a router answering with RSTs): faster to detect, less realistic.
// A node that is down (killed) shows as a connection that closes right after it opens.

import { createServer, connect, type Server, type Socket } from 'node:net';
import { JepsenError, JepsenErrorCode, invariant, silentLogger, type JepsenLogger } from './errors.js';
import type { Cut, NetworkController, NodeName } from './nemesis.js';
import type { TimerHandle } from '../clock.js';
import { harnessClock as clock } from './clock.js';

/** Connections a single link (ordered pair) may carry at once; libp2p keeps one or two per peer. */
export const DEFAULT_MAX_CONNECTIONS_PER_LINK = 64;
/** Bytes held per direction of a connection (cut or delayed) before the sender is paused (backpressure). */
export const DEFAULT_MAX_HELD_BYTES_PER_DIRECTION = 4 * 1024 * 1024;
/** Time allowed to reach a node's real address when forwarding a new connection. */
export const UPSTREAM_CONNECT_TIMEOUT_MS = 5_000;

export interface ProxyTarget {
  readonly host: string;
  readonly port: number;
}

export interface ProxyNetworkOptions {
  readonly nodes: readonly NodeName[];
  /** Each node's real listening address (its p2p port). */
  readonly targets: Readonly<Record<NodeName, ProxyTarget>>;
  /** Where the proxy listens. Loopback by default: the proxy never serves other hosts. */
  readonly listenHost?: string;
  /** First port of a block of n*(n-1) consecutive ports; 0 (default) lets the OS choose each. */
  readonly basePort?: number;
  readonly mode?: 'stall' | 'reset';
  readonly maxConnectionsPerLink?: number;
  readonly maxHeldBytesPerDirection?: number;
  readonly log?: JepsenLogger;
}

const dirKey = (from: NodeName, to: NodeName): string => `${from}\u0000${to}`;

/** One direction of one proxied connection. */
class Pipe {
  private readonly queue: Array<{ chunk: Buffer; dueMs: number }> = [];
  private heldBytes = 0;
  private lastDueMs = 0;
  private timer: TimerHandle | undefined;
  private sourceEnded = false;
  private waitingDrain = false;
  dest: Socket | undefined;

  constructor(
    private readonly net: ProxyNetwork,
    readonly from: NodeName,
    readonly to: NodeName,
    private readonly source: Socket,
    private readonly maxHeldBytes: number,
  ) {
    source.on('data', (chunk: Buffer) => {
      const delayMs = this.net.delayOf(from, to);
      const due = Math.max(this.lastDueMs, clock.monotonicMs() + delayMs);
      this.lastDueMs = due;
      this.queue.push({ chunk, dueMs: due });
      this.heldBytes += chunk.length;
      if (this.heldBytes > this.maxHeldBytes) source.pause();
      this.pump();
    });
    source.on('end', () => {
      this.sourceEnded = true;
      this.pump();
    });
  }

  pump(): void {
    if (this.dest === undefined || this.dest.destroyed || this.waitingDrain) return;
    if (this.net.isCut(this.from, this.to)) return; // held until heal
    if (this.timer !== undefined) {
      this.timer?.cancel();
      this.timer = undefined;
    }
    const now = clock.monotonicMs();
    while (this.queue.length > 0) {
      const head = this.queue[0];
      if (head.dueMs > now) {
        this.timer = clock.setTimeout(
          () => {
            this.timer = undefined;
            this.pump();
          },
          Math.ceil(head.dueMs - now),
        );
        return;
      }
      this.queue.shift();
      this.heldBytes -= head.chunk.length;
      if (!this.dest.write(head.chunk)) {
        this.waitingDrain = true;
        this.dest.once('drain', () => {
          this.waitingDrain = false;
          this.pump();
        });
        break;
      }
    }
    if (this.heldBytes <= this.maxHeldBytes / 2 && this.source.isPaused()) this.source.resume();
    if (this.queue.length === 0 && this.sourceEnded && !this.dest.writableEnded) this.dest.end();
  }

  dispose(): void {
    if (this.timer !== undefined) this.timer?.cancel();
    this.timer = undefined;
  }
}

/** One proxied connection: the dialler's socket (client) and ours to the node (upstream). */
class Conn {
  upstream: Socket | undefined;
  readonly forward: Pipe;
  backward: Pipe | undefined;
  closed = false;
  constructor(
    readonly net: ProxyNetwork,
    readonly dialer: NodeName,
    readonly listener: NodeName,
    readonly client: Socket,
    private readonly maxHeldBytes: number,
  ) {
    this.forward = new Pipe(net, dialer, listener, client, maxHeldBytes);
    client.on('error', () => this.close());
    client.on('close', () => this.close());
  }

  /** Opens the upstream connection once the link carries packets both ways. */
  maybeConnect(target: ProxyTarget): void {
    if (this.closed || this.upstream !== undefined) return;
    if (this.net.isCut(this.dialer, this.listener) || this.net.isCut(this.listener, this.dialer)) return;
    const up = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    this.upstream = up;
    up.setNoDelay(true);
    const timer = clock.setTimeout(
      () => up.destroy(new Error('upstream connect timeout')),
      UPSTREAM_CONNECT_TIMEOUT_MS,
    );
    up.once('connect', () => {
      timer?.cancel();
      this.forward.dest = up;
      this.backward = new Pipe(this.net, this.listener, this.dialer, up, this.maxHeldBytes);
      this.backward.dest = this.client;
      this.forward.pump();
    });
    up.on('error', () => this.close());
    up.on('close', () => {
      timer?.cancel();
      this.close();
    });
  }

  pump(): void {
    this.forward.pump();
    this.backward?.pump();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.forward.dispose();
    this.backward?.dispose();
    this.client.destroy();
    this.upstream?.destroy();
    this.net.forget(this);
  }
}

interface Link {
  readonly from: NodeName;
  readonly to: NodeName;
  readonly server: Server;
  port: number;
  readonly conns: Set<Conn>;
}

export class ProxyNetwork implements NetworkController {
  readonly kind = 'proxy' as const;
  private readonly links = new Map<string, Link>();
  private readonly cuts = new Set<string>();
  private readonly delays = new Map<string, number>();
  private readonly mode: 'stall' | 'reset';
  private readonly maxConnectionsPerLink: number;
  private readonly maxHeldBytes: number;
  private readonly log: JepsenLogger;
  private readonly listenHost: string;
  private closed = false;

  private constructor(private readonly options: ProxyNetworkOptions) {
    this.mode = options.mode ?? 'stall';
    this.maxConnectionsPerLink = options.maxConnectionsPerLink ?? DEFAULT_MAX_CONNECTIONS_PER_LINK;
    this.maxHeldBytes = options.maxHeldBytesPerDirection ?? DEFAULT_MAX_HELD_BYTES_PER_DIRECTION;
    this.log = options.log ?? silentLogger;
    this.listenHost = options.listenHost ?? '127.0.0.1';
  }

  /** Listens on one port per ordered pair of nodes. */
  static async start(options: ProxyNetworkOptions): Promise<ProxyNetwork> {
    invariant(new Set(options.nodes).size === options.nodes.length, 'node names must be distinct');
    for (const n of options.nodes) invariant(options.targets[n] !== undefined, `no target address for node ${n}`);
    const net = new ProxyNetwork(options);
    let k = 0;
    try {
      for (const from of options.nodes) {
        for (const to of options.nodes) {
          if (from === to) continue;
          const port = options.basePort !== undefined && options.basePort > 0 ? options.basePort + k : 0;
          k++;
          await net.listen(from, to, port);
        }
      }
    } catch (err) {
      await net.close();
      throw err;
    }
    net.log.info({ links: net.links.size, mode: net.mode }, 'jepsen: TCP fault proxy listening');
    return net;
  }

  /** Where node `from` must dial to reach node `to`. */
  addressFor(from: NodeName, to: NodeName): ProxyTarget {
    const link = this.links.get(dirKey(from, to));
    if (link === undefined)
      throw new JepsenError(JepsenErrorCode.ProxyFailed, `no proxy link ${from} -> ${to}`, { from, to });
    return { host: this.listenHost, port: link.port };
  }

  isCut(from: NodeName, to: NodeName): boolean {
    return this.cuts.has(dirKey(from, to));
  }

  delayOf(from: NodeName, to: NodeName): number {
    return this.delays.get(dirKey(from, to)) ?? 0;
  }

  /** Live proxied connections (for tests and the report). */
  connectionCount(): number {
    let n = 0;
    for (const l of this.links.values()) n += l.conns.size;
    return n;
  }

  async cut(cuts: readonly Cut[]): Promise<void> {
    for (const c of cuts) {
      if (!this.links.has(dirKey(c.from, c.to)))
        throw new JepsenError(JepsenErrorCode.ProxyFailed, `cut names unknown nodes ${c.from} -> ${c.to}`, { ...c });
      this.cuts.add(dirKey(c.from, c.to));
    }
    if (this.mode === 'reset') {
      for (const link of this.links.values()) {
        if (this.isCut(link.from, link.to) || this.isCut(link.to, link.from))
          for (const conn of [...link.conns]) conn.close();
      }
    }
    this.log.debug({ cuts: cuts.length }, 'proxy: cut');
  }

  /** Adds latency to every byte from `from` to `to` (order is kept). 0 removes it. */
  async delay(from: NodeName, to: NodeName, delayMs: number): Promise<void> {
    invariant(delayMs >= 0, `delay must be >= 0, got ${delayMs}`);
    if (delayMs === 0) this.delays.delete(dirKey(from, to));
    else this.delays.set(dirKey(from, to), delayMs);
  }

  async heal(): Promise<void> {
    this.cuts.clear();
    this.delays.clear();
    for (const link of this.links.values()) {
      for (const conn of link.conns) {
        conn.maybeConnect(this.options.targets[link.to]);
        conn.pump();
      }
    }
    this.log.debug({}, 'proxy: healed');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      [...this.links.values()].map(
        (link) =>
          new Promise<void>((resolve) => {
            for (const conn of [...link.conns]) conn.close();
            link.server.close(() => resolve());
          }),
      ),
    );
    this.log.info({}, 'jepsen: TCP fault proxy closed');
  }

  /** @internal */
  forget(conn: Conn): void {
    this.links.get(dirKey(conn.dialer, conn.listener))?.conns.delete(conn);
  }

  private async listen(from: NodeName, to: NodeName, port: number): Promise<void> {
    const conns = new Set<Conn>();
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (client) => {
      client.setNoDelay(true);
      if (
        this.closed ||
        conns.size >= this.maxConnectionsPerLink ||
        (this.mode === 'reset' && (this.isCut(from, to) || this.isCut(to, from)))
      ) {
        client.destroy();
        return;
      }
      const conn = new Conn(this, from, to, client, this.maxHeldBytes);
      conns.add(conn);
      conn.maybeConnect(this.options.targets[to]);
    });
    const link: Link = { from, to, server, port, conns };
    this.links.set(dirKey(from, to), link);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new JepsenError(
            JepsenErrorCode.ProxyFailed,
            `proxy ${from} -> ${to} cannot listen on ${this.listenHost}:${port}: ${err.message}`,
            { from, to, port },
            { cause: err },
          ),
        ),
      );
      server.listen(port, this.listenHost, () => resolve());
    });
    const addr = server.address();
    invariant(addr !== null && typeof addr === 'object', 'proxy listener has no address');
    link.port = addr.port;
  }
}
