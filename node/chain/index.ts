// The chain layer's public surface: what the node (node/), the RPC backend and embedders import.
export * from './errors.js';
export { toHex, fromHex, bytesEqual, Reader, Writer } from './codec.js';
export * from './hash.js';
export * from './keys.js';
export * from './tx.js';
export * from './lthash.js';
export * from './state.js';
export * from './receipt.js';
export * from './app.js';
export * from './block.js';
export * from './executor.js';
export * from './pool.js';
export * from './kv.js';
export * from './store.js';
export * from './snapshot.js';
export * from './state-store.js';
