import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createKeyFile,
  FileKeyStore,
  MemoryKeyStore,
  NaclEnclave,
  SharedKeyCache,
  generateBoxKeyPair,
  keyToBase64,
} from '../../enclave/index.js';
import { runEnclaveSuite } from './enclave.suite.js';

// The cheapest parameters the loader accepts: the suite is about the enclave, not the KDF.
const TEST_SCRYPT = { logN: 10, r: 8, p: 1 };
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

runEnclaveSuite('tweetnacl, in-memory key store', {
  create: async (keyCount) => NaclEnclave.create(MemoryKeyStore.generate(keyCount)),
});

runEnclaveSuite('tweetnacl, password-protected key files', {
  create: async (keyCount) => {
    const dir = await mkdtemp(join(tmpdir(), 'quorate-enclave-'));
    dirs.push(dir);
    const files = [];
    for (let i = 0; i < keyCount; i++) {
      const path = join(dir, `key-${i}.json`);
      await createKeyFile(path, `pw-${i}`, TEST_SCRYPT);
      files.push({ path, password: `pw-${i}` });
    }
    return NaclEnclave.create(new FileKeyStore(files));
  },
});

describe('SharedKeyCache', () => {
  it('is bounded and evicts the least recently used pair', () => {
    const own = generateBoxKeyPair();
    const others = [generateBoxKeyPair(), generateBoxKeyPair(), generateBoxKeyPair()].map((k) => k.publicKey);
    const cache = new SharedKeyCache(2);
    const k0 = cache.sharedKey(own, others[0]);
    cache.sharedKey(own, others[1]);
    expect(cache.sharedKey(own, others[0])).toBe(k0); // hit, and 0 becomes most recent
    cache.sharedKey(own, others[2]); // evicts 1
    expect(cache.size).toBe(2);
    expect(cache.misses).toBe(3);
    cache.sharedKey(own, others[0]);
    expect(cache.hits).toBe(2);
    cache.sharedKey(own, others[1]);
    expect(cache.misses).toBe(4);
  });

  it('the enclave reuses shared keys across payloads to the same recipient', async () => {
    const alice = await NaclEnclave.create(MemoryKeyStore.generate(1));
    const bob = await NaclEnclave.create(MemoryKeyStore.generate(1));
    const [a] = alice.publicKeys();
    for (let i = 0; i < 5; i++) await alice.encryptPayload(new Uint8Array([i]), a, bob.publicKeys());
    const stats = alice.sharedKeyCacheStats();
    expect(stats.misses).toBe(2); // alice→bob and alice→alice, computed once each
    expect(stats.hits).toBe(8);
    expect(keyToBase64(bob.publicKeys()[0])).toHaveLength(44);
  });
});
