import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { ManualClock, SystemClock } from '../../node/clock.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  decodePayload,
  EnclaveError,
  EnclaveErrorCode,
  encodePayload,
  keyFromBase64,
  keyToBase64,
  payloadHashBase64,
} from '../../enclave/index.js';
import {
  BreakerState,
  LevelOwedQueue,
  LevelPayloadStore,
  MemoryOwedQueue,
  MemoryPayloadStore,
  PartyTransportError,
  PartyTransportErrorCode,
  type PayloadStore,
  TransactionManager,
  TxManagerError,
  TxManagerErrorCode,
} from '../../txmanager/index.js';
import { eventually, text, tmCluster, utf8 } from './fixtures.js';

const dirs: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  return error as Error;
}

async function allFileBytes(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const name of await readdir(dir)) parts.push(await readFile(join(dir, name)).catch(() => Buffer.alloc(0)));
  return Buffer.concat(parts);
}

describe('TransactionManager: send and receive', () => {
  it('the recipient and the sender read the payload; a non-party is told it is not a party', async () => {
    const c = await tmCluster();
    const { 'node-a': a, 'node-b': b, 'node-c': cc } = c.nodes;
    const hash = await a.tm.send(utf8('private ops'), undefined, [b.keys[0]]);
    expect(Buffer.from(hash, 'base64')).toHaveLength(64);
    expect(await b.tm.receive(hash)).toMatchObject({ kind: 'party', senderKey: a.keys[0] });
    expect(text(((await b.tm.receive(hash)) as { payload: Uint8Array }).payload)).toBe('private ops');
    expect(text(((await a.tm.receive(hash)) as { payload: Uint8Array }).payload)).toBe('private ops');
    expect(await cc.tm.receive(hash)).toEqual({ kind: 'not-a-party' });
    expect(await b.tm.isParty(hash)).toBe(true);
    expect(await cc.tm.isParty(hash)).toBe(false);
    await c.stop();
  });

  it('the sender keeps every box, a recipient only its own, a non-party nothing at all', async () => {
    const c = await tmCluster();
    const { 'node-a': a, 'node-b': b, 'node-c': cc } = c.nodes;
    const hash = await a.tm.send(utf8('x'.repeat(300)), a.keys[0], [b.keys[0]]);
    const full = decodePayload((await a.store.get(hash)) as Uint8Array);
    expect(full.recipientKeys.map(keyToBase64).sort()).toEqual([a.keys[0], b.keys[0]].sort());
    const bobs = decodePayload((await b.store.get(hash)) as Uint8Array);
    expect(bobs.recipientKeys.map(keyToBase64)).toEqual([b.keys[0]]);
    expect(bobs.cipherText).toEqual(full.cipherText);
    expect((cc.store as MemoryPayloadStore).rawBytes()).toHaveLength(0);
    await c.stop();
  });

  it("a non-party's LevelDB files hold no bytes of the ciphertext (and a party's do)", async () => {
    const storeDirs: Record<string, string> = {};
    const c = await tmCluster({
      store: async (nodeId) => {
        storeDirs[nodeId] = await tempDir(`quorate-tm-${nodeId}-`);
        return LevelPayloadStore.open(storeDirs[nodeId]);
      },
    });
    const { 'node-a': a, 'node-b': b, 'node-c': cc } = c.nodes;
    const hashes = [];
    for (let i = 0; i < 5; i++) hashes.push(await a.tm.send(utf8(`secret ${i} `.repeat(40)), undefined, [b.keys[0]]));
    const cipherTexts = await Promise.all(
      hashes.map(async (h) => decodePayload((await a.store.get(h)) as Uint8Array).cipherText),
    );
    await c.stop();
    for (const node of [a, b, cc]) await node.store.close();
    const atB = await allFileBytes(storeDirs['node-b']);
    const atC = await allFileBytes(storeDirs['node-c']);
    for (const cipherText of cipherTexts) {
      const window = Buffer.from(cipherText.subarray(20, 52));
      expect(atB.includes(window)).toBe(true); // positive control: the search would find it
      expect(atC.includes(window)).toBe(false);
    }
  });

  it('a node with two keys gets both boxes and reads the payload as either key', async () => {
    const c = await tmCluster({ keysPerNode: { 'node-b': 2 } });
    const { 'node-a': a, 'node-b': b } = c.nodes;
    const hash = await a.tm.send(utf8('to both of b'), undefined, [b.keys[0], b.keys[1]]);
    expect(decodePayload((await b.store.get(hash)) as Uint8Array).recipientKeys).toHaveLength(2);
    for (const key of b.keys) expect(await b.tm.receive(hash, key)).toMatchObject({ kind: 'party' });
    const onlyFirst = await a.tm.send(utf8('to b1 only'), undefined, [b.keys[0]]);
    expect(await b.tm.receive(onlyFirst, b.keys[1])).toEqual({ kind: 'not-a-party' });
    expect(((await rejection(b.tm.receive(onlyFirst, a.keys[0]))) as TxManagerError).code).toBe(
      TxManagerErrorCode.UnknownLocalKey,
    );
    await c.stop();
  });

  it('sending to oneself only, or to a key on the same node, pushes nothing', async () => {
    const c = await tmCluster({ keysPerNode: { 'node-a': 2 } });
    const { 'node-a': a } = c.nodes;
    const hash = await a.tm.send(utf8('local'), a.keys[0], [a.keys[1]]);
    expect(await a.tm.receive(hash, a.keys[1])).toMatchObject({ kind: 'party' });
    expect(a.transport.pushesTo.size).toBe(0);
    await c.stop();
  });

  it('refuses unknown recipient keys, foreign sender keys, bad keys and oversized payloads — storing nothing', async () => {
    const c = await tmCluster();
    const { 'node-a': a, 'node-b': b } = c.nodes;
    const stranger = keyToBase64(new Uint8Array(32).fill(9));
    const code = async (p: Promise<unknown>): Promise<string> => ((await rejection(p)) as TxManagerError).code;
    expect(await code(a.tm.send(utf8('x'), undefined, [b.keys[0], stranger]))).toBe(
      TxManagerErrorCode.UnknownRecipientKey,
    );
    expect(await code(a.tm.send(utf8('x'), b.keys[0], [b.keys[0]]))).toBe(TxManagerErrorCode.UnknownSenderKey);
    expect(await code(a.tm.send(utf8('x'), undefined, ['nope']))).toBe(TxManagerErrorCode.InvalidRequest);
    expect(await code(a.tm.send(new Uint8Array(4 * 1024 * 1024 + 1), undefined, [b.keys[0]]))).toBe(
      TxManagerErrorCode.PayloadTooLarge,
    );
    expect(await code(a.tm.receive('not-a-hash'))).toBe(TxManagerErrorCode.InvalidRequest);
    expect((a.store as MemoryPayloadStore).rawBytes()).toHaveLength(0);
    expect((b.store as MemoryPayloadStore).rawBytes()).toHaveLength(0);
    await c.stop();
  });

  it('refuses payloads over its configured limit (limits.privatePayloadMaxBytes), and accepts one of exactly that size', async () => {
    const c = await tmCluster({ options: () => ({ maxPayloadBytes: 1024 }) });
    const { 'node-a': a, 'node-b': b } = c.nodes;
    const err = (await rejection(a.tm.send(new Uint8Array(1025), undefined, [b.keys[0]]))) as TxManagerError;
    expect(err.code).toBe(TxManagerErrorCode.PayloadTooLarge);
    expect(err.message).toMatch(/over the limit of 1024/);
    const hash = await a.tm.send(new Uint8Array(1024).fill(7), undefined, [b.keys[0]]);
    expect(await b.tm.receive(hash)).toMatchObject({ kind: 'party' });
    await c.stop();
  });
});

describe('TransactionManager: "not a party" versus "could not answer"', () => {
  it('a storage failure is thrown, never read as not-a-party', async () => {
    const c = await tmCluster();
    const { 'node-a': a, 'node-b': b } = c.nodes;
    const hash = await a.tm.send(utf8('x'), undefined, [b.keys[0]]);
    await b.store.close();
    expect(((await rejection(b.tm.receive(hash))) as TxManagerError).code).toBe(TxManagerErrorCode.StorageFailure);
    expect(((await rejection(b.tm.isParty(hash))) as TxManagerError).code).toBe(TxManagerErrorCode.StorageFailure);
    await c.stop();
  });

  it('a stored copy under the wrong hash, or with a tampered box, is thrown', async () => {
    const c = await tmCluster();
    const { 'node-a': a, 'node-b': b } = c.nodes;
    const h1 = await a.tm.send(utf8('one'), undefined, [b.keys[0]]);
    const h2 = await a.tm.send(utf8('two'), undefined, [b.keys[0]]);
    const copy1 = (await b.store.get(h1)) as Uint8Array;
    await b.store.put(h2, copy1); // a damaged store: the bytes under h2 are h1's
    expect(((await rejection(b.tm.receive(h2))) as TxManagerError).code).toBe(TxManagerErrorCode.CorruptStoredPayload);
    const decoded = decodePayload(copy1);
    const box = Uint8Array.from(decoded.recipientBoxes[0]);
    box[0] ^= 1;
    await b.store.put(h1, encodePayload({ ...decoded, recipientBoxes: [box] })); // the hash covers only the cipherText
    const error = await rejection(b.tm.receive(h1));
    expect(error).toBeInstanceOf(EnclaveError);
    expect((error as EnclaveError).code).toBe(EnclaveErrorCode.DecryptionFailed);
    await c.stop();
  });
});

describe('TransactionManager: inbound pushes', () => {
  it('a tampered payload is refused before it is acknowledged, and not stored', async () => {
    const c = await tmCluster();
    const { 'node-a': a, 'node-b': b } = c.nodes;
    const encoded = await a.enclave.encryptPayload(utf8('genuine'), keyFromBase64(a.keys[0]), [
      keyFromBase64(b.keys[0]),
    ]);
    const cipherText = Uint8Array.from(encoded.cipherText);
    cipherText[0] ^= 0x10;
    const tampered = encodePayload(a.enclave.payloadFor({ ...encoded, cipherText }, keyFromBase64(b.keys[0])));
    const error = await rejection(c.network.transport('node-a').push('node-b', tampered, AbortSignal.timeout(5000)));
    expect(error).toBeInstanceOf(PartyTransportError);
    expect((error as PartyTransportError).remoteCode).toBe(EnclaveErrorCode.DecryptionFailed);
    expect((b.store as MemoryPayloadStore).rawBytes()).toHaveLength(0);
    const truncated = encodePayload(encoded).subarray(0, 100);
    expect(
      (
        (await rejection(
          c.network.transport('node-a').push('node-b', truncated, AbortSignal.timeout(5000)),
        )) as PartyTransportError
      ).remoteCode,
    ).toBe(EnclaveErrorCode.MalformedPayload);
    await c.stop();
  });

  it('a payload with no box for the node is refused as NotAParty and stores nothing', async () => {
    const c = await tmCluster();
    const { 'node-a': a, 'node-b': b, 'node-c': cc } = c.nodes;
    const encoded = await a.enclave.encryptPayload(utf8('for b'), keyFromBase64(a.keys[0]), [keyFromBase64(b.keys[0])]);
    const error = (await rejection(
      c.network.transport('node-a').push('node-c', encodePayload(encoded), AbortSignal.timeout(5000)),
    )) as PartyTransportError;
    expect(error.remoteCode).toBe(TxManagerErrorCode.NotAParty);
    expect((cc.store as MemoryPayloadStore).rawBytes()).toHaveLength(0);
    // Pushing the full copy to a recipient stores only the recipient's box.
    await c.network.transport('node-a').push('node-b', encodePayload(encoded), AbortSignal.timeout(5000));
    expect(
      decodePayload((await b.store.get(payloadHashBase64(encoded))) as Uint8Array).recipientKeys.map(keyToBase64),
    ).toEqual([b.keys[0]]);
    await c.stop();
  });
});

describe('TransactionManager: concurrent copies of one payload', () => {
  it('two pushes with different boxes of the same payload, arriving at once, are merged without losing a box', async () => {
    const c = await tmCluster({ keysPerNode: { 'node-b': 2 } });
    const { 'node-a': a, 'node-b': b } = c.nodes;
    const [b1, b2] = b.keys.map((k) => keyFromBase64(k));
    for (let round = 0; round < 10; round++) {
      const encoded = await a.enclave.encryptPayload(utf8(`round ${round}`), keyFromBase64(a.keys[0]), [b1, b2]);
      const send = (key: Uint8Array): Promise<void> =>
        c.network
          .transport('node-a')
          .push('node-b', encodePayload(a.enclave.payloadFor(encoded, key)), AbortSignal.timeout(5000));
      await Promise.all([send(b1), send(b2)]);
      const held = decodePayload((await b.store.get(payloadHashBase64(encoded))) as Uint8Array);
      expect(held.recipientKeys.map(keyToBase64).sort()).toEqual([...b.keys].sort());
    }
    await c.stop();
  });
});

describe('TransactionManager: fail-fast delivery and the circuit breaker', () => {
  it('a down recipient fails send with RecipientUnavailable naming it; the open breaker then fails fast without trying; the probe closes it', async () => {
    const clock = new ManualClock(0);
    const c = await tmCluster({
      clock,
      options: () => ({
        pushTimeoutMs: 2_000,
        breaker: { minRequests: 2, failureRateThreshold: 0.5, openBaseMs: 10_000, openMaxMs: 60_000, jitterRatio: 0 },
      }),
    });
    const { 'node-a': a, 'node-b': b, 'node-c': cc } = c.nodes;
    c.network.setDown('node-b', true);
    for (let i = 0; i < 2; i++) {
      const error = (await rejection(
        a.tm.send(utf8(`try ${i}`), undefined, [b.keys[0], cc.keys[0]]),
      )) as TxManagerError;
      expect(error.code).toBe(TxManagerErrorCode.RecipientUnavailable);
      expect(error.meta.nodeIds).toEqual(['node-b']);
      expect(error.meta.keys).toEqual([b.keys[0]]);
      expect(error.message).toContain('node-b');
    }
    expect(a.transport.pushesTo.get('node-b')).toBe(2);
    expect(a.tm.breakerSnapshots()['node-b'].state).toBe(BreakerState.Open);
    expect(a.tm.breakerSnapshots()['node-c'].state).toBe(BreakerState.Closed);

    const fast = (await rejection(a.tm.send(utf8('fast'), undefined, [b.keys[0], cc.keys[0]]))) as TxManagerError;
    expect(fast.code).toBe(TxManagerErrorCode.RecipientUnavailable);
    expect(fast.message).toContain('circuit breaker open');
    expect(a.transport.pushesTo.get('node-b')).toBe(2); // not tried
    const pushesToC = a.transport.pushesTo.get('node-c');
    expect(pushesToC).toBe(2); // nor was anyone else: the send failed before any crypto or push

    // Sends that do not involve node-b are unaffected.
    const other = await a.tm.send(utf8('to c'), undefined, [cc.keys[0]]);
    expect(await cc.tm.receive(other)).toMatchObject({ kind: 'party' });

    c.network.setDown('node-b', false);
    expect(((await rejection(a.tm.send(utf8('still open'), undefined, [b.keys[0]]))) as TxManagerError).code).toBe(
      TxManagerErrorCode.RecipientUnavailable,
    );
    clock.advance(10_000);
    expect(a.tm.breakerSnapshots()['node-b'].state).toBe(BreakerState.HalfOpen);
    const probe = await a.tm.send(utf8('probe'), undefined, [b.keys[0]]);
    expect(await b.tm.receive(probe)).toMatchObject({ kind: 'party' });
    expect(a.tm.breakerSnapshots()['node-b'].state).toBe(BreakerState.Closed);
    await c.stop();
  });

  it('a slow recipient times out into RecipientUnavailable; a refusing one is RecipientRejected', async () => {
    const c = await tmCluster({ options: () => ({ pushTimeoutMs: 100 }) });
    const { 'node-a': a, 'node-b': b } = c.nodes;
    c.network.setDelayMs('node-b', 2_000);
    const slow = (await rejection(a.tm.send(utf8('slow'), undefined, [b.keys[0]]))) as TxManagerError;
    expect(slow.code).toBe(TxManagerErrorCode.RecipientUnavailable);
    expect(slow.cause).toBeInstanceOf(PartyTransportError);
    expect((slow.cause as PartyTransportError).code).toBe(PartyTransportErrorCode.Aborted);
    c.network.setDelayMs('node-b', 0);
    c.network.setFailing('node-b', 'disk full');
    const refused = (await rejection(a.tm.send(utf8('refused'), undefined, [b.keys[0]]))) as TxManagerError;
    expect(refused.code).toBe(TxManagerErrorCode.RecipientRejected);
    expect(refused.message).toContain('disk full');
    // Refusals are answers from a live party: they never open its breaker.
    for (let i = 0; i < 5; i++) await rejection(a.tm.send(utf8('refused'), undefined, [b.keys[0]]));
    expect(a.tm.breakerSnapshots()['node-b']).toMatchObject({ state: BreakerState.Closed, windowFailures: 1 });
    await c.stop();
  });

  it('a stopped transaction manager refuses work, and its peers see it as unreachable', async () => {
    const c = await tmCluster();
    const { 'node-a': a, 'node-b': b } = c.nodes;
    await b.tm.stop();
    expect(((await rejection(b.tm.send(utf8('x'), undefined, [a.keys[0]]))) as TxManagerError).code).toBe(
      TxManagerErrorCode.Stopped,
    );
    const error = (await rejection(a.tm.send(utf8('x'), undefined, [b.keys[0]]))) as TxManagerError;
    expect(error.code).toBe(TxManagerErrorCode.RecipientUnavailable);
    await c.stop();
  });
});

describe('TransactionManager: queue mode', () => {
  it('accepts while a party is down, and delivers from the durable queue after a restart of the sender once the party returns', async () => {
    const storeDir = await tempDir('quorate-tm-q-store-');
    const queueDir = await tempDir('quorate-tm-q-queue-');
    const queueOptions = {
      deliveryMode: 'queue' as const,
      queueRetryIntervalMs: 20,
      pushTimeoutMs: 1_000,
      breaker: { minRequests: 1, openBaseMs: 20, openMaxMs: 100 },
    };
    let firstQueue: LevelOwedQueue | undefined;
    const c = await tmCluster({
      options: (nodeId) => (nodeId === 'node-a' ? queueOptions : {}),
      store: async (nodeId) => (nodeId === 'node-a' ? LevelPayloadStore.open(storeDir) : new MemoryPayloadStore()),
      owedQueue: async (nodeId) =>
        nodeId === 'node-a' ? (firstQueue = await LevelOwedQueue.open(queueDir)) : undefined,
    });
    const { 'node-a': a, 'node-b': b, 'node-c': cc } = c.nodes;
    c.network.setDown('node-b', true);
    const h1 = await a.tm.send(utf8('owed one'), undefined, [b.keys[0], cc.keys[0]]);
    const h2 = await a.tm.send(utf8('owed two'), undefined, [b.keys[0]]);
    expect(await cc.tm.receive(h1)).toMatchObject({ kind: 'party' }); // the live party got it at once
    expect(await b.tm.receive(h1)).toEqual({ kind: 'not-a-party' });
    expect(a.tm.owed()).toEqual({ 'node-b': 2 });

    // The sender restarts (process crash): the store and queue are reopened from disk.
    await a.tm.stop();
    await a.store.close();
    await firstQueue?.close();
    const reopenedStore = await LevelPayloadStore.open(storeDir);
    const reopenedQueue = await LevelOwedQueue.open(queueDir);
    expect(reopenedQueue.peek('node-b', 10)).toEqual([h1, h2]);
    const tm = await c.restart('node-a', reopenedStore, reopenedQueue, queueOptions);
    expect(tm.owed()).toEqual({ 'node-b': 2 });

    c.network.setDown('node-b', false);
    await eventually(async () => (await b.tm.isParty(h1)) && (await b.tm.isParty(h2)));
    expect(text(((await b.tm.receive(h2)) as { payload: Uint8Array }).payload)).toBe('owed two');
    await eventually(() => reopenedQueue.size() === 0);
    expect(tm.owed()).toEqual({});
    expect(decodePayload((await b.store.get(h1)) as Uint8Array).recipientKeys.map(keyToBase64)).toEqual([b.keys[0]]);
    await c.stop();
    await reopenedStore.close();
    await reopenedQueue.close();
  });

  it("deliverOwed is paced by the party's breaker and stops at its first failure", async () => {
    const clock = new ManualClock(0);
    const c = await tmCluster({
      clock,
      options: (nodeId) =>
        nodeId === 'node-a'
          ? {
              deliveryMode: 'queue',
              queueRetryIntervalMs: 3_600_000,
              breaker: { minRequests: 1, openBaseMs: 1_000, jitterRatio: 0 },
            }
          : {},
      owedQueue: async (nodeId) => (nodeId === 'node-a' ? new MemoryOwedQueue() : undefined),
    });
    const { 'node-a': a, 'node-b': b } = c.nodes;
    c.network.setDown('node-b', true);
    await a.tm.send(utf8('1'), undefined, [b.keys[0]]); // fails, opens the breaker
    await a.tm.send(utf8('2'), undefined, [b.keys[0]]); // refused by the breaker: queued without trying
    expect(a.transport.pushesTo.get('node-b')).toBe(1);
    expect(await a.tm.deliverOwed()).toEqual({ delivered: 0, failed: 0, dropped: 0 });
    clock.advance(1_000);
    expect(await a.tm.deliverOwed()).toEqual({ delivered: 0, failed: 1, dropped: 0 }); // the probe fails, backoff doubles
    expect(a.tm.breakerSnapshots()['node-b']).toMatchObject({ state: 'open', consecutiveOpenings: 2 });
    c.network.setDown('node-b', false);
    clock.advance(2_000);
    expect(await a.tm.deliverOwed()).toEqual({ delivered: 2, failed: 0, dropped: 0 });
    expect(a.tm.stats()).toMatchObject({ owedDelivered: 2, owedDeliveryFailures: 1 });
    await c.stop();
  });

  it('a full queue fails the send with QueueFull instead of dropping what is owed', async () => {
    const c = await tmCluster({
      options: (nodeId) => (nodeId === 'node-a' ? { deliveryMode: 'queue', queueRetryIntervalMs: 3_600_000 } : {}),
      owedQueue: async (nodeId) => (nodeId === 'node-a' ? new MemoryOwedQueue(1) : undefined),
    });
    const { 'node-a': a, 'node-b': b } = c.nodes;
    c.network.setDown('node-b', true);
    await a.tm.send(utf8('fits'), undefined, [b.keys[0]]);
    expect(((await rejection(a.tm.send(utf8('does not fit'), undefined, [b.keys[0]]))) as TxManagerError).code).toBe(
      TxManagerErrorCode.QueueFull,
    );
    expect(a.tm.owed()).toEqual({ 'node-b': 1 });
    await c.stop();
  });

  it('queue mode without a queue is a configuration error', async () => {
    const c = await tmCluster();
    const a = c.nodes['node-a'];
    expect(
      () =>
        new TransactionManager(
          { deliveryMode: 'queue' },
          {
            nodeId: 'node-a',
            enclave: a.enclave,
            store: a.store,
            transport: a.transport,
            directory: c.directory,
            clock: new SystemClock(),
          },
        ),
    ).toThrow(TxManagerError);
    await c.stop();
  });
});

describe('TransactionManager: resend', () => {
  it('a rebuilt recipient fetches exactly the payloads it is a party to, across pages', async () => {
    const c = await tmCluster();
    const { 'node-a': a, 'node-b': b, 'node-c': cc } = c.nodes;
    const forB: string[] = [];
    for (let i = 0; i < 70; i++) forB.push(await a.tm.send(utf8(`for b ${i}`), undefined, [b.keys[0]]));
    const forCOnly = await a.tm.send(utf8('for c'), undefined, [cc.keys[0]]);
    const fromC = await cc.tm.send(utf8('c to b'), undefined, [b.keys[0]]);

    const fresh: PayloadStore = new MemoryPayloadStore();
    const tm = await c.restart('node-b', fresh);
    expect(await tm.receive(forB[0])).toEqual({ kind: 'not-a-party' });
    const outcomes = await tm.resendAll();
    expect(outcomes).toEqual([
      { nodeId: 'node-a', stored: 70 },
      { nodeId: 'node-c', stored: 1 },
    ]);
    for (const [i, hash] of forB.entries())
      expect(text(((await tm.receive(hash)) as { payload: Uint8Array }).payload)).toBe(`for b ${i}`);
    expect(await tm.receive(fromC)).toMatchObject({ kind: 'party' });
    expect(await tm.receive(forCOnly)).toEqual({ kind: 'not-a-party' });
    expect(decodePayload((await fresh.get(forB[3])) as Uint8Array).recipientKeys.map(keyToBase64)).toEqual([b.keys[0]]);
    await c.stop();
  });

  it("a rebuilt sender recovers its payloads from the recipients' copies, merging their boxes", async () => {
    const c = await tmCluster();
    const { 'node-a': a, 'node-b': b, 'node-c': cc } = c.nodes;
    const both = await a.tm.send(utf8('to b and c'), undefined, [b.keys[0], cc.keys[0]]);
    const onlyB = await a.tm.send(utf8('to b'), undefined, [b.keys[0]]);
    const fresh = new MemoryPayloadStore();
    const tm = await c.restart('node-a', fresh);
    const outcomes = await tm.resendAll();
    expect(outcomes.map((o) => [o.nodeId, o.stored])).toEqual([
      ['node-b', 2],
      ['node-c', 1],
    ]);
    expect(text(((await tm.receive(both)) as { payload: Uint8Array }).payload)).toBe('to b and c');
    expect(text(((await tm.receive(onlyB)) as { payload: Uint8Array }).payload)).toBe('to b');
    expect(
      decodePayload((await fresh.get(both)) as Uint8Array)
        .recipientKeys.map(keyToBase64)
        .sort(),
    ).toEqual([b.keys[0], cc.keys[0]].sort());
    await c.stop();
  });

  it('resend from an unreachable counterparty is a reported failure, not silence', async () => {
    const c = await tmCluster();
    c.network.setDown('node-c', true);
    const outcomes = await c.nodes['node-b'].tm.resendAll();
    const failed = outcomes.find((o) => o.nodeId === 'node-c');
    expect(failed?.error).toBeInstanceOf(PartyTransportError);
    expect((failed?.error as PartyTransportError).code).toBe(PartyTransportErrorCode.Unreachable);
    await c.stop();
  });
});
