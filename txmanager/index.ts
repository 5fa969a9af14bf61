// The transaction manager's public surface.
export * from './errors.js';
export * from './clock.js';
export * from './circuit-breaker.js';
export * from './key-directory.js';
export * from './payload-store.js';
export * from './owed-queue.js';
export * from './transport.js';
export * from './transaction-manager.js';
export * from './rest.js';
export * from './client-access.js';
export * from './durable.js';
