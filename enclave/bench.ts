// Enclave throughput: encrypt and decrypt per second for 1 KiB payloads with one recipient,
// shared keys cached (the steady state of a node talking to known parties).
// Run: node --import tsx enclave/bench.ts [durationMs]
// Prints numbers only; nothing asserts on them (machines are shared and noisy).

import { MemoryKeyStore, NaclEnclave } from './index.js';

const PAYLOAD_BYTES = 1024;
const durationMs = Number(process.argv[2] ?? 2000);

async function rate(label: string, op: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 200; i++) await op(); // warm-up: JIT and the shared-key cache
  let count = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(durationMs) * 1_000_000n;
  while (process.hrtime.bigint() < deadline) {
    for (let i = 0; i < 50; i++) await op();
    count += 50;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(
    `${label.padEnd(44)} ${(count / seconds).toFixed(0).padStart(8)} ops/s  (${count} in ${seconds.toFixed(2)} s)`,
  );
}

const sender = await NaclEnclave.create(MemoryKeyStore.generate(1));
const recipient = await NaclEnclave.create(MemoryKeyStore.generate(1));
const [senderKey] = sender.publicKeys();
const [recipientKey] = recipient.publicKeys();
const plaintext = new Uint8Array(PAYLOAD_BYTES).map((_, i) => i & 0xff);
const encoded = await sender.encryptPayload(plaintext, senderKey, [recipientKey]);

console.log(
  `enclave bench: ${PAYLOAD_BYTES} B payload, 1 recipient (+ sender box), shared keys cached, node ${process.version}`,
);
await rate('encryptPayload', () => sender.encryptPayload(plaintext, senderKey, [recipientKey]));
await rate('decryptPayload (as recipient)', () => recipient.decryptPayload(encoded));
await rate('decryptPayload (as sender)', () => sender.decryptPayload(encoded));
console.log('shared-key cache (sender):', sender.sharedKeyCacheStats());
