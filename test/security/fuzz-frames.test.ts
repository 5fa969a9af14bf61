// A member that lies on the wire: a genesis member whose node is replaced by a raw transport that
// sends random and mutated frames on every p2p channel (raft, tx, ctl, blocks, tm/push,
// tm/resend), both as messages and as requests, to every other member. The three honest nodes
// must not crash (no fatal lifecycle; the process guards, installed and counting, see no
// unhandled rejection and no uncaught exception) and must keep committing. The liar also answers
// ident with a well-formed `refused`: one member's word does not stop a node. Seeded: a failure prints its seed. QUORATE_FUZZ_SEEDS=N sweeps N seeds (default 1,
// for the default suite); QUORATE_FUZZ_SEED=S replays one.

import { afterEach, describe, expect, it } from 'vitest';
import { CHANNEL_BLOCKS } from '../../node/catch-up.js';
import { CHANNEL_CTL } from '../../node/control.js';
import { CHANNEL_TX, encodeTxBatch } from '../../node/forward.js';
import { silentLogger } from '../../node/log.js';
import { NodeState } from '../../node/node-types.js';
import { CHANNEL_RAFT } from '../../node/node.js';
import { CHANNEL_TM_PUSH, CHANNEL_TM_RESEND } from '../../node/party-transport.js';
import { generateAccountKey, signTransaction } from '../../node/chain/index.js';
import { TestCluster, commitOnAll, type HarnessNode } from '../node/harness.js';
import { watchProcessFaults } from './faults.js';

const CHANNELS = [CHANNEL_RAFT, CHANNEL_TX, CHANNEL_CTL, CHANNEL_BLOCKS, CHANNEL_TM_PUSH, CHANNEL_TM_RESEND];
/** How long one seed fuzzes the cluster. */
const FUZZ_DURATION_MS = 3_000;
/** Frames sent per burst (one burst every FUZZ_BURST_INTERVAL_MS). */
const FRAMES_PER_BURST = 20;
const FUZZ_BURST_INTERVAL_MS = 10;

/** mulberry32: small, seeded, good enough to pick frames. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));

function frameFor(rnd: () => number, channel: string, captured: Uint8Array[]): Uint8Array {
  const int = (n: number) => Math.floor(rnd() * n);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const weird = (): unknown =>
    pick([null, -1, 0, 2 ** 53, 'x'.repeat(int(3000)), [], {}, [null], { a: 1 }, true, 1.5, '\u0000', NaN]);
  switch (int(4)) {
    case 0:
      return bytes(int(2048)); // noise
    case 1: {
      // a real frame this member received, cut short or with bits flipped
      if (captured.length === 0) return bytes(int(64));
      const f = pick(captured).slice();
      if (rnd() < 0.5) return f.subarray(0, int(f.length + 1));
      for (let i = 0; i < 1 + int(4); i++) if (f.length > 0) f[int(f.length)] ^= 1 << int(8);
      return f;
    }
    case 2: {
      // protocol-shaped JSON with wrong fields (the control protocol, and replies-as-requests)
      if (channel === CHANNEL_CTL)
        return enc(
          pick([
            { type: 'hello' },
            { type: 'members' },
            { type: 'whoami' },
            { type: 'ident', raftId: weird(), incarnation: weird() },
            { type: 'ident', raftId: int(10), incarnation: 'x' },
            { type: weird() },
            { ok: { raftId: 1, incarnation: 'x', refused: 'stop' } },
            weird(),
          ]),
        );
      return enc(pick([{ ok: weird() }, [weird()], weird(), { from: 0, to: 2 ** 40 }]));
    }
    default: {
      if (channel === CHANNEL_TX) {
        // a forward batch: forged transactions and a huge claimed count
        const t = signTransaction(
          { chainId: 4242, nonce: int(5), ops: [{ type: 'put', key: 'f', value: 'z' }] },
          generateAccountKey(),
        );
        const b = encodeTxBatch([t]);
        if (rnd() < 0.5) b[b.length - 1] ^= 1;
        else new DataView(b.buffer).setUint32(0, int(2 ** 32));
        return b;
      }
      const b = new Uint8Array(4 + int(64));
      new DataView(b.buffer).setUint32(0, int(2 ** 32), rnd() < 0.5);
      return b;
    }
  }
}

let cluster: TestCluster | undefined;
let honest: HarnessNode[] = [];
afterEach(async () => {
  await Promise.all(honest.map((h) => h.node.stop()));
  honest = [];
  cluster = undefined;
});

async function fuzz(seed: number): Promise<void> {
  const faults = watchProcessFaults();
  try {
    // Four genesis members; node-4's node never starts: a raw transport speaks as it.
    cluster = new TestCluster({ nodes: 4 });
    honest = cluster.nodes.slice(0, 3);
    await Promise.all(honest.map((h) => h.node.start()));
    const liar = cluster.nodes[3];
    const t = cluster.network.createTransport(liar.peerId, { logger: silentLogger() });
    const captured: Uint8Array[] = [];
    const keep = (data: Uint8Array): void => {
      if (captured.length < 256) captured.push(Uint8Array.from(data));
      else captured[Math.floor(Math.random() * 256)] = Uint8Array.from(data);
    };
    for (const c of CHANNELS) {
      t.onMessage(c, (_from, data) => keep(data));
      t.onRequest(c, async (_from, data) => {
        keep(data);
        // Malformed answers to whatever the honest nodes ask (ident, members, block ranges...), and
        // a well-formed forged `refused`: obeyed only when a majority of the members say so.
        return enc(
          [
            null,
            [null],
            { ok: null },
            { ok: [null] },
            { ok: { raftId: 'x' } },
            { ok: { raftId: 1, refused: 5 } },
            'x',
            { ok: { raftId: 4, incarnation: 'inc-4', refused: 'forged: you were removed' } },
            { error: { code: 5, message: { a: 1 } } },
            { ok: 1, error: null },
          ][captured.length % 10],
        );
      });
    }
    await t.start();
    t.setPeers(honest.map((h) => ({ peerId: h.peerId, addrs: [`/memory/${h.name}`] })));
    let leader = await cluster.waitForLeader(honest, 15_000);
    await commitOnAll(honest, leader, `before-${seed}`, `before-${seed} committed on every honest node`);

    const rnd = prng(seed);
    const end = Date.now() + FUZZ_DURATION_MS;
    let sent = 0;
    while (Date.now() < end) {
      for (let i = 0; i < FRAMES_PER_BURST; i++) {
        const to = honest[Math.floor(rnd() * honest.length)].peerId;
        const channel = CHANNELS[Math.floor(rnd() * CHANNELS.length)];
        const frame = frameFor(rnd, channel, captured);
        if (rnd() < 0.5) {
          try {
            t.send(to, channel, frame);
          } catch {
            // refused locally (over a limit): fine
          }
        } else void t.request(to, channel, frame, { timeoutMs: 1_000 }).catch(() => undefined);
        sent++;
      }
      await new Promise((r) => setTimeout(r, FUZZ_BURST_INTERVAL_MS));
    }
    expect(sent).toBeGreaterThan(100);
    leader = await cluster.waitForLeader(honest, 15_000);
    await commitOnAll(honest, leader, `after-${seed}`, `after-${seed} committed on every honest node`);
    await t.stop();
    for (const h of honest) expect(h.node.lifecycle, `${h.name} (seed ${seed})`).toBe(NodeState.Running);
    faults.expectNone();
  } catch (err) {
    console.error(`fuzz-frames: failure with seed ${seed} (replay: QUORATE_FUZZ_SEED=${seed})`);
    throw err;
  } finally {
    faults.stop();
  }
}

const seeds = process.env.QUORATE_FUZZ_SEED
  ? [Number(process.env.QUORATE_FUZZ_SEED)]
  : Array.from({ length: Number(process.env.QUORATE_FUZZ_SEEDS ?? 1) }, (_, i) =>
      i === 0 ? Date.now() % 2 ** 31 : 1000 + i,
    );

describe('a member sending random and mutated frames on every p2p channel', () => {
  for (const seed of seeds)
    it(`crashes nothing, and every honest node keeps committing (seed ${seed})`, () => fuzz(seed), 60_000);
});
