// Transaction-manager throughput: private sends of 1 KiB payloads from node A to node B over
// the in-memory party network, with in-memory stores and with LevelDB stores (sync writes at
// the sender and at the recipient), sequentially and with 32 sends in flight.
// Run: node --import tsx node/txmanager-bench.ts [durationMs]
// Prints numbers only; nothing asserts on them (machines are shared and noisy).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyToBase64, MemoryKeyStore, NaclEnclave } from '../enclave/index.js';
import { SystemClock } from './clock.js';
import {
  KeyDirectory,
  LevelPayloadStore,
  MemoryPartyNetwork,
  MemoryPayloadStore,
  type PayloadStore,
  TransactionManager,
} from '../txmanager/index.js';

/** The node's real clock: this bench wires the transaction manager as the node does. */
const clock = new SystemClock();

const PAYLOAD_BYTES = 1024;
const IN_FLIGHT = 32;
const durationMs = Number(process.argv[2] ?? 2000);

async function pair(
  makeStore: (id: string) => Promise<PayloadStore>,
): Promise<{ a: TransactionManager; b: TransactionManager; bKey: string; close: () => Promise<void> }> {
  const network = new MemoryPartyNetwork(clock);
  const directory = new KeyDirectory();
  const stores: PayloadStore[] = [];
  const tms: TransactionManager[] = [];
  for (const id of ['a', 'b']) {
    const enclave = await NaclEnclave.create(MemoryKeyStore.generate(1));
    directory.setKeys(id, enclave.publicKeys().map(keyToBase64));
    const store = await makeStore(id);
    stores.push(store);
    const tm = new TransactionManager(
      {},
      { nodeId: id, enclave, store, transport: network.transport(id), directory, clock },
    );
    tm.start();
    tms.push(tm);
  }
  return {
    a: tms[0],
    b: tms[1],
    bKey: directory.keysOf('b')[0],
    close: async () => {
      for (const tm of tms) await tm.stop();
      for (const s of stores) await s.close();
    },
  };
}

async function measure(label: string, inFlight: number, op: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 50; i++) await op();
  let count = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(durationMs) * 1_000_000n;
  const worker = async (): Promise<void> => {
    while (process.hrtime.bigint() < deadline) {
      await op();
      count++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(
    `${label.padEnd(52)} ${(count / seconds).toFixed(0).padStart(7)} ops/s  (${count} in ${seconds.toFixed(2)} s)`,
  );
}

const payload = new Uint8Array(PAYLOAD_BYTES).map((_, i) => i & 0xff);
console.log(`txmanager bench: ${PAYLOAD_BYTES} B payloads, A → B over the in-memory network, node ${process.version}`);

const memory = await pair(async () => new MemoryPayloadStore());
let lastHash = await memory.a.send(payload, undefined, [memory.bKey]);
await measure('send, memory stores, sequential', 1, async () => {
  lastHash = await memory.a.send(payload, undefined, [memory.bKey]);
});
await measure(`send, memory stores, ${IN_FLIGHT} in flight`, IN_FLIGHT, () =>
  memory.a.send(payload, undefined, [memory.bKey]),
);
await measure('receive at the recipient, memory store', 1, () => memory.b.receive(lastHash));
await memory.close();

const dir = await mkdtemp(join(tmpdir(), 'quorate-tm-bench-'));
try {
  const level = await pair((id) => LevelPayloadStore.open(join(dir, id)));
  await measure('send, LevelDB stores (sync), sequential', 1, () => level.a.send(payload, undefined, [level.bKey]));
  await measure(`send, LevelDB stores (sync), ${IN_FLIGHT} in flight`, IN_FLIGHT, () =>
    level.a.send(payload, undefined, [level.bKey]),
  );
  await level.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
