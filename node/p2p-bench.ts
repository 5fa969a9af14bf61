// Throughput of Libp2pTransport on loopback: `npm run bench:p2p`.
// Two transports in one process (so both ends share the CPU, as on the project's 2-core machines).
// Prints plain `name=value` lines; numbers are orders of magnitude on a shared machine, never asserted.

import './polyfills.js';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { pino } from 'pino';
import { Libp2pTransport } from '../p2p/libp2p-transport.js';
import { SystemClock, sleepMs } from './clock.js';

/** The real clock (node/clock.ts): this module has no injected one. */
const clock = new SystemClock();

const MESSAGE_BYTES = Number(process.env.BENCH_MESSAGE_BYTES ?? 200);
const ONE_WAY_MESSAGES = Number(process.env.BENCH_MESSAGES ?? 50_000);
/** Messages in flight in the one-way test: below maxQueuedMessagesPerPeer, so none is dropped. */
const ONE_WAY_WINDOW = 1024;
const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 3_000);
const PIPELINED_IN_FLIGHT = 32;

async function main(): Promise<void> {
  const logger = pino({ level: 'warn' });
  const make = async () => {
    const transport = new Libp2pTransport({
      clock,
      privateKey: await generateKeyPair('Ed25519'),
      listenAddrs: ['/ip4/127.0.0.1/tcp/0'],
      logger,
    });
    await transport.start();
    return transport;
  };
  const a = await make();
  const b = await make();
  let received = 0;
  b.onMessage('bench', () => {
    received++;
  });
  b.onRequest('echo', async (_from, data) => data);
  a.setPeers([{ peerId: b.localPeerId, addrs: b.listenAddrs() }]);
  b.setPeers([{ peerId: a.localPeerId, addrs: a.listenAddrs() }]);
  while (!(a.connectedPeers().length === 1 && b.connectedPeers().length === 1)) await sleepMs(clock, 5);

  const payload = new Uint8Array(MESSAGE_BYTES).fill(1);

  // Warm-up: JIT, stream set-up.
  for (let i = 0; i < 1000; i++) a.send(b.localPeerId, 'bench', payload);
  for (let i = 0; i < 200; i++) await a.request(b.localPeerId, 'echo', payload);
  while (received < 1000) await new Promise((r) => clock.setImmediate(() => r(undefined)));
  received = 0;

  // One-way, pipelined: keep up to ONE_WAY_WINDOW messages in flight.
  let sent = 0;
  let started = performance.now();
  while (received < ONE_WAY_MESSAGES) {
    while (sent < ONE_WAY_MESSAGES && sent - received < ONE_WAY_WINDOW) {
      a.send(b.localPeerId, 'bench', payload);
      sent++;
    }
    await new Promise((r) => clock.setImmediate(() => r(undefined)));
  }
  let seconds = (performance.now() - started) / 1000;
  console.log(`message_bytes=${MESSAGE_BYTES}`);
  console.log(`one_way_messages=${ONE_WAY_MESSAGES}`);
  console.log(`one_way_messages_per_s=${Math.round(ONE_WAY_MESSAGES / seconds)}`);
  console.log(`one_way_mib_per_s=${((ONE_WAY_MESSAGES * MESSAGE_BYTES) / seconds / 1024 / 1024).toFixed(1)}`);
  console.log(`one_way_dropped=${a.stats().messagesDropped}`);

  // Sequential request/reply: one in flight.
  started = performance.now();
  for (let i = 0; i < ROUND_TRIPS; i++) await a.request(b.localPeerId, 'echo', payload);
  seconds = (performance.now() - started) / 1000;
  console.log(`request_reply_sequential_per_s=${Math.round(ROUND_TRIPS / seconds)}`);
  console.log(`request_reply_sequential_latency_us=${Math.round((seconds / ROUND_TRIPS) * 1e6)}`);

  // Pipelined request/reply: PIPELINED_IN_FLIGHT outstanding on the same long-lived stream.
  started = performance.now();
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < ROUND_TRIPS * 4) {
      issued++;
      await a.request(b.localPeerId, 'echo', payload);
    }
  };
  await Promise.all(Array.from({ length: PIPELINED_IN_FLIGHT }, worker));
  seconds = (performance.now() - started) / 1000;
  console.log(`request_reply_in_flight=${PIPELINED_IN_FLIGHT}`);
  console.log(`request_reply_pipelined_per_s=${Math.round(issued / seconds)}`);

  await Promise.all([a.stop(), b.stop()]);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
