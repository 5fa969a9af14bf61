import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { P2pError, P2pErrorCode } from '../../p2p/errors.js';
import { createNetworkIdentity, loadNetworkIdentity } from '../../p2p/identity.js';

describe('network identity files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'quorate-identity-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function codeOf(promise: Promise<unknown>): Promise<P2pErrorCode> {
    const err = await promise.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(P2pError);
    return (err as P2pError).code;
  }

  it('creates an Ed25519 key readable only by its owner, and loads the same peer id back', async () => {
    const path = join(dir, 'node-1', 'p2p.key');
    const { peerId } = await createNetworkIdentity(path);
    expect(peerId).toMatch(/^12D3KooW[1-9A-HJ-NP-Za-km-z]+$/);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const loaded = await loadNetworkIdentity(path);
    expect(loaded.peerId).toBe(peerId);
    expect(loaded.privateKey.type).toBe('Ed25519');
  });

  it('gives two identities two different peer ids', async () => {
    const first = await createNetworkIdentity(join(dir, 'a.key'));
    const second = await createNetworkIdentity(join(dir, 'b.key'));
    expect(first.peerId).not.toBe(second.peerId);
  });

  it('refuses to overwrite an existing identity, and keeps the original', async () => {
    const path = join(dir, 'p2p.key');
    const { peerId } = await createNetworkIdentity(path);
    expect(await codeOf(createNetworkIdentity(path))).toBe(P2pErrorCode.IdentityExists);
    expect((await loadNetworkIdentity(path)).peerId).toBe(peerId);
  });

  it('reports a missing file as IdentityMissing', async () => {
    expect(await codeOf(loadNetworkIdentity(join(dir, 'nope.key')))).toBe(P2pErrorCode.IdentityMissing);
  });

  it('reports empty, garbage and oversized files as IdentityCorrupt', async () => {
    const cases: Array<[string, Uint8Array]> = [
      ['empty.key', new Uint8Array(0)],
      ['garbage.key', new TextEncoder().encode('this is not a protobuf key')],
      ['huge.key', new Uint8Array(10_000)],
    ];
    for (const [name, bytes] of cases) {
      await writeFile(join(dir, name), bytes);
      expect(await codeOf(loadNetworkIdentity(join(dir, name)))).toBe(P2pErrorCode.IdentityCorrupt);
    }
  });
});
