// One call for the node's wiring: a TransactionManager over LevelDB stores in a data directory.
//   <dataDir>/payloads  — the PayloadStore
//   <dataDir>/owed      — the OwedQueue (always opened, so switching deliveryMode to "queue"
//                          later finds what an earlier run still owed)
// The caller owns the enclave, the transport and the key directory (it feeds the directory
// from genesis and the replicated membership).

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Enclave } from '../enclave/index.js';
import type { TmClock } from './clock.js';
import type { KeyDirectory } from './key-directory.js';
import { LevelOwedQueue, MAX_OWED_DELIVERIES } from './owed-queue.js';
import { LevelPayloadStore, type PayloadStore } from './payload-store.js';
import { TransactionManager, type TransactionManagerOptions } from './transaction-manager.js';
import type { PartyTransport } from './transport.js';

export interface DurableTransactionManagerConfig extends TransactionManagerOptions {
  readonly dataDir: string;
  readonly nodeId: string;
  readonly enclave: Enclave;
  readonly transport: PartyTransport;
  readonly directory: KeyDirectory;
  readonly maxOwedDeliveries?: number;
  /** The node's clock (node/clock.ts satisfies TmClock). */
  readonly clock: TmClock;
}

export interface DurableTransactionManager {
  readonly tm: TransactionManager;
  /** The payload store under the TM (read-only use: tests and diagnostics look inside it). */
  readonly store: PayloadStore;
  /** Stops the transaction manager, then closes its stores. */
  close(): Promise<void>;
}

/** Opens the stores, builds and starts the transaction manager. */
export async function openDurableTransactionManager(
  config: DurableTransactionManagerConfig,
): Promise<DurableTransactionManager> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const store = await LevelPayloadStore.open(join(config.dataDir, 'payloads'), { maxBytes: config.storeMaxBytes });
  let owedQueue: LevelOwedQueue;
  try {
    await mkdir(join(config.dataDir, 'owed'), { recursive: true, mode: 0o700 });
    owedQueue = await LevelOwedQueue.open(
      join(config.dataDir, 'owed'),
      config.maxOwedDeliveries ?? MAX_OWED_DELIVERIES,
    );
  } catch (error) {
    await store.close();
    throw error;
  }
  let tm: TransactionManager;
  try {
    tm = new TransactionManager(config, {
      nodeId: config.nodeId,
      enclave: config.enclave,
      store,
      transport: config.transport,
      directory: config.directory,
      owedQueue,
      clock: config.clock,
    });
    tm.start();
  } catch (error) {
    await owedQueue.close();
    await store.close();
    throw error;
  }
  return {
    tm,
    store,
    async close() {
      await tm.stop();
      await owedQueue.close();
      await store.close();
    },
  };
}
