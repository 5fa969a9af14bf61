// The simulated network: every message a node sends goes through here, and every fault the
// network can commit — loss, duplication, delay, reordering, partitions of any shape — is drawn
// from the simulator's one seeded generator, so a seed replays the same deliveries exactly.
//
// Time is counted in ticks. A message sent at tick t is delivered at t + delay, delay >= 1:
// a zero delay would let a reply arrive in the same tick, which no real network does and
// which would let one tick run an unbounded chain of messages.

import type { SeededRng } from '../../consensus/rng.js';
import type { Message, RaftId } from '../../consensus/types.js';

/** Fault rates of the network, in parts per thousand so the numbers stay integers in a schedule. */
export interface NetworkFaults {
  /** Chance that a sent message is lost. */
  readonly lossPerMille: number;
  /** Chance that a delivered message is delivered a second time (after its own delay). */
  readonly duplicatePerMille: number;
  /** Chance that a message gets a long delay (up to maxDelayTicks) instead of one tick. */
  readonly slowPerMille: number;
  /** Upper bound on a message's delay. Messages with different delays overtake each other. */
  readonly maxDelayTicks: number;
}

export const CALM_NETWORK: NetworkFaults = { lossPerMille: 0, duplicatePerMille: 0, slowPerMille: 0, maxDelayTicks: 1 };

/**
 * The largest delay the ring of buckets can hold. Bounding it bounds the network's memory:
 * a schedule cannot park a message for longer than this.
 */
export const MAX_DELAY_TICKS_LIMIT = 16;

/**
 * Upper bound on messages in flight in the whole simulated network. A correct core bounds its
 * own output (heartbeats, in-flight appends per follower), so hitting this is itself a finding;
 * the simulator drops the excess and counts it rather than growing without limit.
 */
export const MAX_MESSAGES_IN_FLIGHT = 100_000;

export enum PartitionKind {
  /** Two random groups that cannot talk to each other. */
  Halves = 'halves',
  /** The current leader cannot talk to anyone. */
  IsolatedLeader = 'isolated-leader',
  /** Nodes on a ring; each sees only its neighbours (with 5 nodes: a different majority each). */
  MajorityRing = 'majority-ring',
  /** Two groups joined through one node that sees both. */
  Bridge = 'bridge',
  /** A group that can receive from the others but not send to them (or the reverse). */
  OneWay = 'one-way',
  /** Each directed link cut at random. */
  RandomLinks = 'random-links',
}

/** A partition: which directed links are cut. Nodes created after it started are never cut. */
export interface Partition {
  readonly kind: PartitionKind;
  readonly description: string;
  blocks(from: RaftId, to: RaftId): boolean;
}

function shuffle<T>(rng: SeededRng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    const tmp = items[i]!;
    items[i] = items[j]!;
    items[j] = tmp;
  }
  return items;
}

function groupsText(groups: ReadonlyMap<RaftId, number>, count: number): string {
  const parts: string[] = [];
  for (let g = 0; g < count; g++) {
    const ids = [...groups].filter(([, group]) => group === g).map(([id]) => id);
    parts.push(`{${ids.join(',')}}`);
  }
  return parts.join(' | ');
}

/**
 * Draws a partition of `ids` of the given kind. `leader` (or NO_NODE = 0) is used by the shapes
 * that single the leader out.
 */
export function makePartition(rng: SeededRng, kind: PartitionKind, ids: readonly RaftId[], leader: RaftId): Partition {
  const order = shuffle(rng, [...ids]);
  switch (kind) {
    case PartitionKind.Halves: {
      const cut = 1 + rng.nextInt(Math.max(1, order.length - 1));
      const group = new Map<RaftId, number>(order.map((id, i) => [id, i < cut ? 0 : 1]));
      return {
        kind,
        description: groupsText(group, 2),
        blocks: (from, to) => {
          const a = group.get(from);
          const b = group.get(to);
          return a !== undefined && b !== undefined && a !== b;
        },
      };
    }
    case PartitionKind.IsolatedLeader: {
      const isolated = leader !== 0 && ids.includes(leader) ? leader : order[0]!;
      return {
        kind,
        description: `{${isolated}} cut off`,
        blocks: (from, to) => from !== to && (from === isolated || to === isolated),
      };
    }
    case PartitionKind.MajorityRing: {
      const position = new Map<RaftId, number>(order.map((id, i) => [id, i]));
      const n = order.length;
      // Each node sees itself and `reach` neighbours on each side: with 5 nodes, 3 of 5.
      const reach = Math.max(1, Math.floor((Math.floor(n / 2) + 1 - 1) / 2));
      return {
        kind,
        description: `ring ${order.join('-')} reach ${reach}`,
        blocks: (from, to) => {
          const a = position.get(from);
          const b = position.get(to);
          if (a === undefined || b === undefined) return false;
          const d = Math.abs(a - b);
          return Math.min(d, n - d) > reach;
        },
      };
    }
    case PartitionKind.Bridge: {
      const bridge = order[0]!;
      const rest = order.slice(1);
      const cut = Math.ceil(rest.length / 2);
      const group = new Map<RaftId, number>(rest.map((id, i) => [id, i < cut ? 0 : 1]));
      group.set(bridge, 2);
      return {
        kind,
        description: `${groupsText(group, 2)} bridged by ${bridge}`,
        blocks: (from, to) => {
          const a = group.get(from);
          const b = group.get(to);
          return (a === 0 && b === 1) || (a === 1 && b === 0);
        },
      };
    }
    case PartitionKind.OneWay: {
      const size = 1 + rng.nextInt(Math.max(1, order.length - 1));
      const inside = new Set<RaftId>(
        leader !== 0 && rng.nextInt(2) === 0 && ids.includes(leader) ? [leader] : order.slice(0, size),
      );
      const deaf = rng.nextInt(2) === 0; // deaf: the group sends but hears nothing; else: mute.
      return {
        kind,
        description: `{${[...inside].join(',')}} ${deaf ? 'cannot receive' : 'cannot send'}`,
        blocks: (from, to) => {
          const known = ids.includes(from) && ids.includes(to);
          if (!known) return false;
          return deaf ? inside.has(to) && !inside.has(from) : inside.has(from) && !inside.has(to);
        },
      };
    }
    case PartitionKind.RandomLinks: {
      const cut = new Set<string>();
      for (const a of ids) {
        for (const b of ids) {
          if (a !== b && rng.nextInt(3) === 0) cut.add(`${a}>${b}`);
        }
      }
      return {
        kind,
        description: `cut ${[...cut].join(' ')}`,
        blocks: (from, to) => cut.has(`${from}>${to}`),
      };
    }
  }
}

export const PARTITION_KINDS: readonly PartitionKind[] = Object.values(PartitionKind);

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  blocked: number;
  overflowed: number;
}

/**
 * In-flight messages in a ring of buckets, one per tick of delay. Delivery order within a tick
 * is shuffled by the seeded generator: that, plus varying delays, is the reordering.
 */
export class SimNetwork {
  private readonly buckets: Message[][];
  private inFlight = 0;
  faults: NetworkFaults = CALM_NETWORK;
  partition: Partition | undefined;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, blocked: 0, overflowed: 0 };

  constructor(private readonly rng: SeededRng) {
    this.buckets = Array.from({ length: MAX_DELAY_TICKS_LIMIT + 1 }, () => []);
  }

  private drawDelayTicks(): number {
    const f = this.faults;
    if (f.maxDelayTicks > 1 && this.rng.nextInt(1000) < f.slowPerMille) {
      return 1 + this.rng.nextInt(Math.min(f.maxDelayTicks, MAX_DELAY_TICKS_LIMIT));
    }
    return 1;
  }

  private enqueue(message: Message, nowTick: number): void {
    if (this.inFlight >= MAX_MESSAGES_IN_FLIGHT) {
      this.stats.overflowed++;
      return;
    }
    const at = nowTick + this.drawDelayTicks();
    this.buckets[at % this.buckets.length]!.push(message);
    this.inFlight++;
  }

  /**
   * Hands a message to the network at tick `nowTick`. Returns false when the message is lost at
   * once (the sender's transport may learn of it, as a broken connection tells it).
   */
  send(message: Message, nowTick: number): boolean {
    this.stats.sent++;
    const f = this.faults;
    if (f.lossPerMille > 0 && this.rng.nextInt(1000) < f.lossPerMille) {
      this.stats.lost++;
      return false;
    }
    this.enqueue(message, nowTick);
    if (f.duplicatePerMille > 0 && this.rng.nextInt(1000) < f.duplicatePerMille) {
      this.stats.duplicated++;
      this.enqueue(message, nowTick);
    }
    return true;
  }

  /**
   * Removes and returns the messages due at `nowTick`, shuffled. The caller asks `blocks` for
   * each: a partition applies to messages in flight when it starts, as a pulled cable does, and
   * the sender's transport learns of the failure.
   */
  takeDue(nowTick: number): Message[] {
    const index = nowTick % this.buckets.length;
    const due = this.buckets[index]!;
    if (due.length === 0) return due;
    this.buckets[index] = [];
    this.inFlight -= due.length;
    return shuffle(this.rng, due);
  }

  /** True when the current partition cuts this message's link (counted as blocked). */
  blocks(m: Message): boolean {
    const p = this.partition;
    if (p !== undefined && p.blocks(m.from, m.to)) {
      this.stats.blocked++;
      return true;
    }
    this.stats.delivered++;
    return false;
  }

  messagesInFlight(): number {
    return this.inFlight;
  }
}
