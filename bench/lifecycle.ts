// What the bench commands (bench/etcd-vs.ts, bench/state.ts) share about running clusters of
// processes on loopback: a cleanup that undoes everything once (on success, on error, on Ctrl-C),
// loopback port blocks, and integer flags. Owns no cluster itself; starts nothing.

import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { stopChild } from '../node/up.js';

/** A child gets SIGTERM, then SIGKILL after this. */
export const STOP_GRACE_MS = 10_000;
/** Random port blocks tried before giving up. */
export const PORT_SEARCH_ATTEMPTS = 50;

/** Everything started, undone once: children stop together, then the steps run in reverse. */
export class Cleanup {
  private readonly children: ChildProcess[] = [];
  private readonly steps: Array<() => Promise<void>> = [];
  private done: Promise<void> | undefined;
  /** Set once the children are being stopped on purpose: an exit after that is not news. */
  stopping = false;
  /** Tracks `child`; if it exits before the run stops it, `onEarlyExit` says so (a crashed node explains a failed run). */
  addChild(child: ChildProcess, onEarlyExit?: (how: string) => void): void {
    this.children.push(child);
    child.once('exit', (code, signal) => {
      if (!this.stopping) onEarlyExit?.(signal ?? `code ${code}`);
    });
  }
  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }
  /** Stops every child (SIGTERM, then SIGKILL after STOP_GRACE_MS); a child that never started is skipped. */
  stopChildren(): Promise<void> {
    this.stopping = true;
    return Promise.all(
      this.children.map((c) => (c.pid === undefined ? Promise.resolve() : stopChild(c, STOP_GRACE_MS))),
    ).then(() => {});
  }
  run(): Promise<void> {
    this.done ??= (async () => {
      await this.stopChildren().catch(() => {});
      for (const step of [...this.steps].reverse()) await step().catch(() => {});
    })();
    return this.done;
  }
}

/** True when 127.0.0.1:port can be listened on now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * Where port blocks are picked: below Linux's ephemeral range (net.ipv4.ip_local_port_range, 32768..60999 by
 * default), where any process's outgoing connection may take a port between our check and the listen
 * (EADDRINUSE, seen in CI at 48956), and below test/cluster/process-cluster.ts's 20000..31999.
 */
export const PORT_BLOCK_RANGE = { first: 10_000, end: 20_000 } as const;

/**
 * `count` consecutive free loopback ports in PORT_BLOCK_RANGE (random, so parallel runs rarely
 * collide); undefined after PORT_SEARCH_ATTEMPTS tries (the caller names its own error).
 */
export async function findFreePortBlock(count: number): Promise<number | undefined> {
  const span = PORT_BLOCK_RANGE.end - PORT_BLOCK_RANGE.first - count;
  for (let attempt = 0; attempt < PORT_SEARCH_ATTEMPTS; attempt++) {
    const base = PORT_BLOCK_RANGE.first + Math.floor(Math.random() * span);
    let free = true;
    for (let i = 0; i < count && free; i++) free = await portFree(base + i);
    if (free) return base;
  }
  return undefined;
}

/** `--name`'s integer value in [min, max], the fallback when absent; `usage` builds the refusal. */
export function intArg(
  values: Record<string, unknown>,
  name: string,
  fallback: number,
  min: number,
  max: number,
  usage: (message: string) => Error,
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const text = String(raw);
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max)
    throw usage(`--${name} must be an integer from ${min} to ${max}, got "${text}"`);
  return n;
}
