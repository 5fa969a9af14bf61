// Who may reach this node's p2p listener, and how refusals are logged.
//
//  - CidrGate: the optional `p2p.allowedCidrs`. The connection gater's denyInboundConnection asks
//    it with the socket's remote address, before the Noise handshake: a stranger outside the
//    consortium's networks costs no crypto at all. (Membership by peer id is still checked after
//    Noise, where the remote's key is proven.)
//  - RefusalLog: a stranger that retries every second, or a flood of fresh keys, must not fill
//    the log. At most one line per refused peer (or address) per REFUSAL_LOG_INTERVAL_MS, which
//    says how many refusals of it were not logged since; and at most REFUSAL_LOG_MAX_LINES_PER_INTERVAL
//    lines in all per interval, the rest counted and reported in the next line that is written.

import { BlockList, isIP } from 'node:net';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { P2pLogger } from './logger.js';

/** One log line per refused peer (or address) per this interval at most. */
export const REFUSAL_LOG_INTERVAL_MS = 60_000;
/** Refusal lines per interval across all peers; past it refusals are only counted. */
export const REFUSAL_LOG_MAX_LINES_PER_INTERVAL = 20;
/**
 * Refused peers remembered for rate limiting. A flood of strangers (each with a fresh key) must not
 * grow memory: past this count the oldest is forgotten (and could be logged again within the interval,
 * still under the global cap).
 */
export const MAX_REFUSED_PEERS_REMEMBERED = 1024;

interface RefusalState {
  lastLoggedMs: number;
  suppressed: number;
}

export class RefusalLog {
  /** Insertion order = age, for eviction. */
  private readonly byKey = new Map<string, RefusalState>();
  private intervalStartMs = -Infinity;
  private linesThisInterval = 0;
  /** Refusals not logged because of the global cap, reported with the next line written. */
  private overCap = 0;
  refusedCount = 0;

  constructor(
    private readonly logger: P2pLogger,
    private readonly nowMs: () => number = () => performance.now(),
    private readonly maxRemembered = MAX_REFUSED_PEERS_REMEMBERED,
  ) {}

  /** Records one refusal of `key` (a peer id, or an address for refusals before Noise). */
  refused(key: string, fields: Record<string, unknown>, message: string): void {
    this.refusedCount++;
    const now = this.nowMs();
    const state = this.byKey.get(key);
    if (state && now - state.lastLoggedMs < REFUSAL_LOG_INTERVAL_MS) {
      state.suppressed++;
      return;
    }
    if (now - this.intervalStartMs >= REFUSAL_LOG_INTERVAL_MS) {
      this.intervalStartMs = now;
      this.linesThisInterval = 0;
    }
    if (this.linesThisInterval >= REFUSAL_LOG_MAX_LINES_PER_INTERVAL) {
      this.overCap++;
      return;
    }
    this.linesThisInterval++;
    const suppressed = state?.suppressed ?? 0;
    this.remember(key, { lastLoggedMs: now, suppressed: 0 });
    const overCap = this.overCap;
    this.overCap = 0;
    this.logger.warn(
      { ...fields, suppressedSinceLastLine: suppressed, ...(overCap > 0 ? { otherRefusalsNotLogged: overCap } : {}) },
      `${message} (at most one line per peer per ${REFUSAL_LOG_INTERVAL_MS / 1000} s)`,
    );
  }

  /** A peer that becomes allowed, then is removed again, deserves a fresh log line. */
  forget(key: string): void {
    this.byKey.delete(key);
  }

  private remember(key: string, state: RefusalState): void {
    this.byKey.delete(key);
    if (this.byKey.size >= this.maxRemembered) {
      const oldest = this.byKey.keys().next().value as string;
      this.byKey.delete(oldest);
    }
    this.byKey.set(key, state);
  }
}

/** The networks inbound p2p connections may come from (`p2p.allowedCidrs`), as CIDR strings. */
export class CidrGate {
  private readonly list = new BlockList();

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
      const family = m ? isIP(m[1]) : 0;
      if (!m || family === 0) throw new RangeError(`not a CIDR: ${JSON.stringify(cidr)}`);
      this.list.addSubnet(m[1], Number(m[2]), family === 4 ? 'ipv4' : 'ipv6');
    }
  }

  /** True when `ip` is inside one of the networks. An IPv4-mapped IPv6 address counts as its IPv4 address. */
  allows(ip: string): boolean {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    const address = mapped ? mapped[1] : ip;
    const family = isIP(address);
    if (family === 0) return false;
    return this.list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }

  /** The IP of a TCP multiaddr (/ip4/… or /ip6/…), or undefined for anything else (refused). */
  static ipOf(addr: Multiaddr): string | undefined {
    const c = addr.getComponents().find((x) => x.name === 'ip4' || x.name === 'ip6');
    return c?.value;
  }
}
