// The Jepsen-style toolkit behind `quorate jepsen`: histories, checkers, nemesis, fault injectors,
// workloads and the report. Everything here runs without a cluster; the command wires it to real
// node processes. See each module's header for the why.

export * from './errors.js';
export * from './history.js';
export * from './linearizability.js';
export * from './checkers.js';
export * from './nemesis.js';
export * from './proxy-network.js';
export * from './netns-network.js';
export * from './network.js';
export * from './workload.js';
export * from './report.js';
export * from './options.js';
export * from './rpc.js';
export * from './relay.js';
export * from './cluster.js';
export * from './clients.js';
export * from './run.js';
