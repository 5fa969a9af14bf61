import { mkdtemp, rm } from 'node:fs/promises';
import { SystemClock } from '../../node/clock.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keyToBase64, MemoryKeyStore, NaclEnclave } from '../../enclave/index.js';
import { KeyDirectory, MemoryPartyNetwork, openDurableTransactionManager } from '../../txmanager/index.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('openDurableTransactionManager', () => {
  it('keeps payloads and owed deliveries across close and reopen of the data directory', async () => {
    const network = new MemoryPartyNetwork(new SystemClock());
    const directory = new KeyDirectory();
    const enclaves = {
      a: await NaclEnclave.create(MemoryKeyStore.generate(1)),
      b: await NaclEnclave.create(MemoryKeyStore.generate(1)),
    };
    directory.setKeys('a', enclaves.a.publicKeys().map(keyToBase64));
    directory.setKeys('b', enclaves.b.publicKeys().map(keyToBase64));
    const dataDirs = {
      a: await mkdtemp(join(tmpdir(), 'quorate-durable-a-')),
      b: await mkdtemp(join(tmpdir(), 'quorate-durable-b-')),
    };
    dirs.push(dataDirs.a, dataDirs.b);
    const open = (id: 'a' | 'b') =>
      openDurableTransactionManager({
        clock: new SystemClock(),
        dataDir: dataDirs[id],
        nodeId: id,
        enclave: enclaves[id],
        transport: network.transport(id),
        directory,
        deliveryMode: 'queue',
        queueRetryIntervalMs: 3_600_000,
      });
    const bKey = directory.keysOf('b')[0];
    let a = await open('a');
    let b = await open('b');
    const delivered = await a.tm.send(Uint8Array.of(1, 2, 3), undefined, [bKey]);
    network.setDown('b', true);
    const owed = await a.tm.send(Uint8Array.of(4), undefined, [bKey]);
    expect(a.tm.owed()).toEqual({ b: 1 });
    await a.close();
    await b.close();

    a = await open('a');
    b = await open('b');
    network.setDown('b', false);
    expect(await b.tm.receive(delivered)).toMatchObject({ kind: 'party', payload: Uint8Array.of(1, 2, 3) });
    expect(await b.tm.receive(owed)).toEqual({ kind: 'not-a-party' });
    expect(a.tm.owed()).toEqual({ b: 1 });
    expect(await a.tm.deliverOwed()).toEqual({ delivered: 1, failed: 0, dropped: 0 });
    expect(await b.tm.receive(owed)).toMatchObject({ kind: 'party' });
    await a.close();
    await b.close();
  });
});
