// The enclave's public surface. enclave/ imports nothing of ours (docs/design.md §7).
export * from './errors.js';
export * from './payload.js';
export * from './keyfile.js';
export * from './sealed.js';
export * from './keystore.js';
export * from './enclave.js';
export * from './key-proof.js';
