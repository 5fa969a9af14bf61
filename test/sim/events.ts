// The schedule's event log: a bounded ring of the most recent events, printed when a check fails.
//
// A schedule produces thousands of events (every message delivered is one) and almost never fails,
// so events are stored unformatted — a message is kept by reference (messages are immutable) —
// and only turned into text when someone asks.

import type { Message } from '../../consensus/types.js';

/** How many recent events a violation report shows by default. */
export const DEFAULT_EVENTS_KEPT = 50;

interface EventRecord {
  tick: number;
  text: string | undefined;
  message: Message | undefined;
}

export function describeMessage(m: Message): string {
  let s = `${m.type} ${m.from}->${m.to} term=${m.term}`;
  switch (m.type) {
    case 'App':
      s += ` prev=(${m.index},${m.logTerm}) entries=${m.entries.length}`;
      if (m.entries.length > 0) s += `[${m.entries[0]!.index}..${m.entries[m.entries.length - 1]!.index}]`;
      s += ` commit=${m.commit}`;
      break;
    case 'AppResp':
      s += m.reject ? ` REJECT index=${m.index} hint=${m.rejectHint} hintTerm=${m.logTerm}` : ` index=${m.index}`;
      break;
    case 'Vote':
    case 'PreVote':
      s += ` last=(${m.index},${m.logTerm})`;
      break;
    case 'VoteResp':
    case 'PreVoteResp':
      s += m.reject ? ' REJECT' : ' GRANT';
      break;
    case 'Heartbeat':
      s += ` commit=${m.commit}`;
      break;
    case 'Snap':
      if (m.snapshot !== undefined) s += ` snapshot=(${m.snapshot.metadata.index},${m.snapshot.metadata.term})`;
      break;
    case 'Prop':
      s += ` entries=${m.entries.length}`;
      break;
    default:
      if (m.index !== 0) s += ` index=${m.index}`;
  }
  return s;
}

export class EventLog {
  private readonly ring: EventRecord[];
  private next = 0;
  private count = 0;

  constructor(
    readonly capacity: number,
    /** When set, every event is also printed as it happens (the CLI's --trace). */
    private readonly trace: ((line: string) => void) | undefined,
  ) {
    this.ring = Array.from({ length: Math.max(1, capacity) }, () => ({ tick: 0, text: undefined, message: undefined }));
  }

  note(tick: number, text: string): void {
    const r = this.ring[this.next]!;
    r.tick = tick;
    r.text = text;
    r.message = undefined;
    this.advance();
    if (this.trace !== undefined) this.trace(format(r));
  }

  deliver(tick: number, message: Message): void {
    const r = this.ring[this.next]!;
    r.tick = tick;
    r.text = undefined;
    r.message = message;
    this.advance();
    if (this.trace !== undefined) this.trace(format(r));
  }

  private advance(): void {
    this.next = (this.next + 1) % this.ring.length;
    if (this.count < this.ring.length) this.count++;
  }

  /** The kept events, oldest first, as text. */
  lines(): string[] {
    const out: string[] = [];
    const start = (this.next - this.count + this.ring.length) % this.ring.length;
    for (let k = 0; k < this.count; k++) out.push(format(this.ring[(start + k) % this.ring.length]!));
    return out;
  }
}

function format(r: EventRecord): string {
  const body = r.message !== undefined ? `deliver ${describeMessage(r.message)}` : (r.text ?? '');
  return `t=${r.tick} ${body}`;
}
