import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keccak_256 } from '@noble/hashes/sha3.js';
import {
  ChainError,
  ChainErrorCode,
  addressFromPublicKey,
  generateAccountKey,
  generateMinterKey,
  isAddress,
  loadAccountKey,
  loadMinterKey,
  saveAccountKey,
  saveMinterKey,
  sign,
  verifySignature,
} from '../../node/chain/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quorate-keys-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('keys', () => {
  it('address is 0x + last 20 bytes of keccak256(raw public key), lowercase', () => {
    const k = generateAccountKey();
    expect(isAddress(k.address)).toBe(true);
    expect(k.address).toBe('0x' + Buffer.from(keccak_256(k.publicKeyRaw).subarray(12)).toString('hex'));
    expect(addressFromPublicKey(k.publicKeyRaw)).toBe(k.address);
    expect(k.publicKeyRaw.length).toBe(32);
  });

  it('saves with mode 0600, loads the same key, and refuses to overwrite', () => {
    const k = generateAccountKey();
    const p = path.join(dir, 'account.json');
    saveAccountKey(p, k);
    expect(fs.statSync(p).mode & 0o777).toBe(0o600);
    const loaded = loadAccountKey(p);
    expect(loaded.address).toBe(k.address);
    const msg = new Uint8Array([1, 2, 3]);
    expect(verifySignature(k.publicKeyRaw, msg, sign(loaded, msg))).toBe(true);
    expect(() => saveAccountKey(p, generateAccountKey())).toThrow(/refusing to overwrite/);
    expect(loadAccountKey(p).address).toBe(k.address);
  });

  it('keeps minter keys and account keys apart', () => {
    const m = generateMinterKey();
    const p = path.join(dir, 'minter.json');
    saveMinterKey(p, m);
    expect(loadMinterKey(p).address).toBe(m.address);
    let err: unknown;
    try {
      loadAccountKey(p);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ChainError);
    expect((err as ChainError).code).toBe(ChainErrorCode.KeyFile);
  });

  it('refuses a tampered or malformed key file', () => {
    const k = generateAccountKey();
    const p = path.join(dir, 'tampered.json');
    saveAccountKey(p, k);
    const j = JSON.parse(fs.readFileSync(p, 'utf8'));
    j.address = generateAccountKey().address;
    fs.writeFileSync(p, JSON.stringify(j));
    expect(() => loadAccountKey(p)).toThrow(/does not match/);
    fs.writeFileSync(p, 'not json');
    expect(() => loadAccountKey(p)).toThrow(/not JSON/);
    expect(() => loadAccountKey(path.join(dir, 'missing.json'))).toThrow(/cannot read/);
  });

  it('verifySignature is false (not a throw) for bad signatures and keys', () => {
    const k = generateAccountKey();
    const msg = new Uint8Array([9]);
    const sig = sign(k, msg);
    const bad = Uint8Array.from(sig);
    bad[0] ^= 1;
    expect(verifySignature(k.publicKeyRaw, msg, bad)).toBe(false);
    expect(verifySignature(k.publicKeyRaw, msg, sig.subarray(0, 63))).toBe(false);
    expect(verifySignature(new Uint8Array(31), msg, sig)).toBe(false);
  });
});
