import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createKeyFile,
  EnclaveError,
  EnclaveErrorCode,
  FileKeyStore,
  generateBoxKeyPair,
  keyToBase64,
  loadKeyFile,
  NaclEnclave,
  sealKeyPair,
  unsealKeyPair,
} from '../../enclave/index.js';

const TEST_SCRYPT = { logN: 10, r: 8, p: 1 };
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'quorate-keyfile-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(promise: Promise<unknown>): Promise<EnclaveErrorCode> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(EnclaveError);
    return (error as EnclaveError).code;
  }
  throw new Error('expected an EnclaveError');
}

describe('key files', () => {
  it('round-trips a key pair, stores the KDF parameters, and is private to its owner', async () => {
    const pair = generateBoxKeyPair();
    const path = join(dir, 'a.json');
    const publicKey = await createKeyFile(path, 'correct horse', TEST_SCRYPT, pair);
    expect(publicKey).toBe(keyToBase64(pair.publicKey));
    const json = JSON.parse(await readFile(path, 'utf8'));
    expect(json.version).toBe(2);
    expect(json.purpose).toBe('enclave-box');
    expect(json.kdf).toMatchObject({ name: 'scrypt', logN: 10, r: 8, p: 1, dkLen: 32 });
    expect(JSON.stringify(json)).not.toContain(Buffer.from(pair.secretKey).toString('base64'));
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const loaded = await loadKeyFile(path, 'correct horse');
    expect(loaded.secretKey).toEqual(pair.secretKey);
    expect(loaded.publicKey).toEqual(pair.publicKey);
  });

  it("the default parameters are geth's standard scrypt (N = 2^18, r = 8: 256 MiB, maxmem passed) and open again", async () => {
    const text = await sealKeyPair(generateBoxKeyPair(), 'pw');
    expect(JSON.parse(text).kdf).toMatchObject({ logN: 18, r: 8, p: 1 });
    expect((await unsealKeyPair(text, 'pw')).publicKey).toHaveLength(32);
  }, 60_000); // one production-cost scrypt takes ~0.5 s alone, several seconds on a loaded 2-core machine

  it('a version-1 file (the enclave format before every key was sealed alike) still opens', async () => {
    const pair = generateBoxKeyPair();
    const v2 = JSON.parse(await sealKeyPair(pair, 'pw', TEST_SCRYPT));
    const v1 = {
      version: 1,
      type: 'quorate-enclave-box-key',
      publicKey: v2.public.publicKey,
      kdf: v2.kdf,
      passwordCheck: v2.passwordCheck,
      cipher: v2.cipher,
    };
    expect((await unsealKeyPair(JSON.stringify(v1), 'pw')).secretKey).toEqual(pair.secretKey);
    expect(await codeOf(unsealKeyPair(JSON.stringify(v1), 'other'))).toBe(EnclaveErrorCode.WrongPassword);
  });

  it('wrong password is WrongPassword; missing password is MissingPassword with a clear message', async () => {
    const path = join(dir, 'b.json');
    await createKeyFile(path, 'right', TEST_SCRYPT);
    expect(await codeOf(loadKeyFile(path, 'wrong'))).toBe(EnclaveErrorCode.WrongPassword);
    expect(await codeOf(loadKeyFile(path, undefined))).toBe(EnclaveErrorCode.MissingPassword);
    await expect(loadKeyFile(path, '')).rejects.toThrow(/needs the node's password/);
    await expect(NaclEnclave.create(new FileKeyStore([{ path, password: 'wrong' }]))).rejects.toThrow(/wrong password/);
  });

  it('corrupt files are CorruptKeyFile, whatever part is damaged', async () => {
    const path = join(dir, 'c.json');
    await createKeyFile(path, 'pw', TEST_SCRYPT);
    const good = JSON.parse(await readFile(path, 'utf8'));
    const variants: Array<[string, string]> = [
      ['not json', '{"version": 1,'],
      ['unknown version', JSON.stringify({ ...good, version: 99 })],
      ['wrong type', JSON.stringify({ ...good, type: 'other' })],
      ['short salt', JSON.stringify({ ...good, kdf: { ...good.kdf, salt: 'AAAA' } })],
      ['KDF weakened below the floor', JSON.stringify({ ...good, kdf: { ...good.kdf, logN: 4 } })],
      ['KDF raised to exhaust memory', JSON.stringify({ ...good, kdf: { ...good.kdf, logN: 40 } })],
      [
        'flipped sealed byte',
        JSON.stringify({ ...good, cipher: { ...good.cipher, cipherText: flip(good.cipher.cipherText) } }),
      ],
      [
        'public key of another pair',
        JSON.stringify({ ...good, public: { publicKey: keyToBase64(generateBoxKeyPair().publicKey) } }),
      ],
      ['missing cipher', JSON.stringify({ ...good, cipher: undefined })],
      ['another purpose', JSON.stringify({ ...good, purpose: 'account' })],
      ['a plaintext key file of an older quorate', JSON.stringify({ purpose: 'account', seed: '00'.repeat(32) })],
    ];
    for (const [why, content] of variants) {
      const p = join(dir, `corrupt-${why.replace(/\W+/g, '-')}.json`);
      await writeFile(p, content);
      expect(await codeOf(loadKeyFile(p, 'pw')), why).toBe(EnclaveErrorCode.CorruptKeyFile);
    }
  });

  it('an unreadable path is KeyFileUnreadable; an existing file is never overwritten', async () => {
    expect(await codeOf(loadKeyFile(join(dir, 'nope.json'), 'pw'))).toBe(EnclaveErrorCode.KeyFileUnreadable);
    const path = join(dir, 'd.json');
    const first = await createKeyFile(path, 'pw', TEST_SCRYPT);
    expect(await codeOf(createKeyFile(path, 'pw', TEST_SCRYPT))).toBe(EnclaveErrorCode.KeyFileExists);
    expect(keyToBase64((await loadKeyFile(path, 'pw')).publicKey)).toBe(first);
    expect(await codeOf(createKeyFile(join(dir, 'e.json'), '', TEST_SCRYPT))).toBe(EnclaveErrorCode.MissingPassword);
  });
});

function flip(b64: string): string {
  const bytes = Buffer.from(b64, 'base64');
  bytes[5] ^= 1;
  return bytes.toString('base64');
}
