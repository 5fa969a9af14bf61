// Starts a real RpcServer on 127.0.0.1, port 0, over the FakeLedgerBackend test double, with a
// logger whose lines are captured for assertions.

import { createLogger } from '../../node/log.js';
import { createNodeMetrics, type NodeMetrics } from '../../node/metrics.js';
import { RpcServer, type RpcServerOptions } from '../../node/rpc/server.js';
import type { RpcMethod } from '../../node/rpc/methods.js';
import type { SubmissionShedder } from '../../node/rpc/load-shed.js';
import { FakeLedgerBackend } from './fake-ledger-backend.js';

export const ALICE = `0x${'a1'.repeat(20)}`;
export const BOB = `0x${'b2'.repeat(20)}`;

export interface LogLine {
  readonly level: string;
  readonly msg?: string;
  readonly [k: string]: unknown;
}

export interface Harness {
  readonly server: RpcServer;
  readonly backend: FakeLedgerBackend;
  readonly metrics: NodeMetrics;
  readonly url: string;
  readonly port: number;
  readonly logs: LogLine[];
  stop(): Promise<void>;
}

export async function startHarness(
  options: Partial<RpcServerOptions> = {},
  methods?: ReadonlyMap<string, RpcMethod>,
  shedder?: SubmissionShedder,
): Promise<Harness> {
  const logs: LogLine[] = [];
  const logger = createLogger({
    level: 'trace',
    destination: { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) },
  });
  const backend = new FakeLedgerBackend({ accounts: [ALICE], initialBalance: 1000n });
  const metrics = createNodeMetrics();
  const server = new RpcServer(
    { port: 0, ...options },
    { backend, logger, metrics, ...(methods ? { methods } : {}), ...(shedder ? { shedder } : {}) },
  );
  const { url, port } = await server.start();
  return { server, backend, metrics, url, port, logs, stop: () => server.stop() };
}

/** POSTs a raw body; returns status, headers and the parsed JSON body (or undefined when empty). */
export async function post(
  url: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  return { status: res.status, body: text.length > 0 ? (JSON.parse(text) as unknown) : undefined, text };
}

export async function rpc(
  url: string,
  method: string,
  params?: unknown,
  id: unknown = 1,
): Promise<{ result?: unknown; error?: { code: number; message: string; data?: unknown } }> {
  const r = await post(
    url,
    JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }),
  );
  return r.body as { result?: unknown; error?: { code: number; message: string; data?: unknown } };
}
