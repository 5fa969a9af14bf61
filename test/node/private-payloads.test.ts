// Fetching a block's private payloads before applying it (node/private-payloads.ts): "could not
// tell" is retried with an alarm until the transaction manager answers, never taken for "not a
// party"; "not a party" (null) and a malformed payload (a party with no ops) are answers.

import { describe, expect, it } from 'vitest';
import {
  baseOf,
  buildBlock,
  encodePrivatePayload,
  payloadHashKey,
  signTransaction,
  type Block,
} from '../../node/chain/index.js';
import { SystemClock } from '../../node/clock.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { silentLogger } from '../../node/log.js';
import { PayloadFetcher } from '../../node/private-payloads.js';
import type { PrivacyProvider } from '../../node/privacy-provider.js';
import { CHAIN_ID, fixture, put } from '../chain/helpers.js';

const f = fixture();

/** A block with one public and `n` private transactions (payload hashes 1.., 64 bytes each). */
function blockWithPrivate(n: number): { block: Block; hashes: Uint8Array[] } {
  const chain = f.newChain();
  const hashes = Array.from({ length: n }, (_, i) => new Uint8Array(64).fill(i + 1));
  const txs = [
    signTransaction({ chainId: CHAIN_ID, nonce: 0, ops: [put('public', 'x')] }, f.accounts[0]),
    ...hashes.map((h, i) =>
      signTransaction(
        { chainId: CHAIN_ID, nonce: i, ops: [], privatePayloadHash: h, privateFor: [new Uint8Array(32)] },
        f.accounts[1],
      ),
    ),
  ];
  const built = buildBlock(chain.app, CHAIN_ID, baseOf(chain), txs, { raftId: 1, key: f.minters[0] }, 2_000, 1);
  return { block: built.block, hashes };
}

/** A transaction manager that cannot answer for its first `failures` calls, then answers from `answers`. */
class FlakyProvider implements PrivacyProvider {
  calls = 0;
  constructor(
    private failures: number,
    private readonly answers: Map<string, Uint8Array | null>,
  ) {}
  async send(): Promise<Uint8Array> {
    throw new Error('not used');
  }
  async receive(hash: Uint8Array): Promise<Uint8Array | null> {
    this.calls++;
    if (this.failures > 0) {
      this.failures--;
      throw new NodeError(NodeErrorCode.PrivacyUnavailable, 'transaction manager down');
    }
    return this.answers.get(payloadHashKey(hash)) ?? null;
  }
}

describe('fetching private payloads', () => {
  it('a block without private transactions needs no transaction manager', async () => {
    const chain = f.newChain();
    const built = buildBlock(
      chain.app,
      CHAIN_ID,
      baseOf(chain),
      [signTransaction({ chainId: CHAIN_ID, nonce: 0, ops: [put('a', 'b')] }, f.accounts[0])],
      { raftId: 1, key: f.minters[0] },
      2_000,
      1,
    );
    const fetcher = new PayloadFetcher({ clock: new SystemClock(), logger: silentLogger(), stopped: () => false });
    expect((await fetcher.fetch(built.block)).size).toBe(0);
  });

  it('party, not a party, and a malformed payload are answers; an outage is retried with an alarm that clears', async () => {
    const { block, hashes } = blockWithPrivate(3);
    const answers = new Map<string, Uint8Array | null>([
      [payloadHashKey(hashes[0]), encodePrivatePayload([put('secret', '1')])],
      [payloadHashKey(hashes[1]), null],
      [payloadHashKey(hashes[2]), new Uint8Array([0xff, 0xff])],
    ]);
    const privacy = new FlakyProvider(3, answers);
    const fetcher = new PayloadFetcher({
      privacy,
      clock: new SystemClock(),
      logger: silentLogger(),
      stopped: () => false,
    });
    const alarms: Array<string | undefined> = [];
    const watch = setInterval(() => alarms.push(fetcher.alarm), 20);
    const got = await fetcher.fetch(block);
    clearInterval(watch);
    expect(got.get(payloadHashKey(hashes[0]))).toEqual({ kind: 'party', ops: [put('secret', '1')] });
    expect(got.get(payloadHashKey(hashes[1]))).toEqual({ kind: 'not-party' });
    expect(got.get(payloadHashKey(hashes[2]))).toEqual({ kind: 'party', ops: [] });
    expect(privacy.calls).toBeGreaterThan(3);
    expect(alarms.some((a) => a?.startsWith('cannot fetch private payload for block 1'))).toBe(true);
    expect(fetcher.alarm).toBeUndefined();
  });

  it('without a transaction manager it never answers "not a party": it retries until the node stops', async () => {
    const { block } = blockWithPrivate(1);
    let stopped = false;
    const fetcher = new PayloadFetcher({ clock: new SystemClock(), logger: silentLogger(), stopped: () => stopped });
    const p = fetcher.fetch(block);
    await new Promise((r) => setTimeout(r, 150));
    expect(fetcher.alarm).toMatch(/no transaction manager/);
    stopped = true;
    expect((await p).size).toBe(0); // incomplete: the caller applies nothing
  });
});
