// A JSON-RPC client: what the CLI (status, bench), the Jepsen clients and tests use to talk to a
// node. One interface, two implementations that pass one compliance suite (test/rpc/client.test.ts):
//  - HttpRpcClient: over HTTP (global fetch), with a timeout and a response size limit;
//  - InProcessRpcClient: straight into an RpcServer's transport-independent `handle()`, for
//    embedders and simulations that run nodes in one process.
// Errors keep three cases apart, because a caller must treat them differently:
//  - RpcCallError: the node answered with a JSON-RPC error (`code` from node/rpc/errors.ts);
//  - RpcTransportError Unreachable/HttpStatus/BadResponse: no usable answer; the call may or
//    may not have happened at the node;
//  - RpcTransportError Timeout: no answer in time; the outcome is unknown.

import type { RpcReply, RpcResponse } from './server.js';

export interface RpcCallOptions {
  readonly signal?: AbortSignal;
}

export interface RpcClient {
  /** Calls `method`; resolves with `result`, rejects with RpcCallError or RpcTransportError. */
  call<T = unknown>(method: string, params?: readonly unknown[], options?: RpcCallOptions): Promise<T>;
}

export class RpcCallError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(method: string, code: number, message: string, data: unknown) {
    super(`${method}: ${message} (code ${code})`);
    this.name = 'RpcCallError';
    this.code = code;
    this.data = data;
  }
}

export enum RpcTransportErrorCode {
  /** Connection refused, reset, DNS failure. */
  Unreachable = 'RPC_UNREACHABLE',
  /** An HTTP status other than 200 with no JSON-RPC error inside. */
  HttpStatus = 'RPC_HTTP_STATUS',
  /** Not a JSON-RPC response, a response to another id, or over the size limit. */
  BadResponse = 'RPC_BAD_RESPONSE',
  /** No answer within the timeout: the outcome is unknown. */
  Timeout = 'RPC_TIMEOUT',
}

export class RpcTransportError extends Error {
  readonly code: RpcTransportErrorCode;
  readonly url: string;
  constructor(code: RpcTransportErrorCode, url: string, message: string, options?: { cause?: unknown }) {
    super(`${url}: ${message}`, options);
    this.name = 'RpcTransportError';
    this.code = code;
    this.url = url;
  }
}

/** Turns one response into a result or an RpcCallError. */
function unwrap<T>(method: string, id: number, response: unknown, where: string): T {
  const r = response as Partial<RpcResponse> | null;
  if (typeof r !== 'object' || r === null || r.jsonrpc !== '2.0') {
    throw new RpcTransportError(RpcTransportErrorCode.BadResponse, where, `${method}: not a JSON-RPC 2.0 response`);
  }
  if (r.error !== undefined) {
    const e = r.error as { code?: unknown; message?: unknown; data?: unknown };
    throw new RpcCallError(
      method,
      typeof e.code === 'number' ? e.code : 0,
      typeof e.message === 'string' ? e.message : 'error',
      e.data,
    );
  }
  if (r.id !== id)
    throw new RpcTransportError(
      RpcTransportErrorCode.BadResponse,
      where,
      `${method}: response id ${String(r.id)} does not match request id ${id}`,
    );
  if (!('result' in r))
    throw new RpcTransportError(
      RpcTransportErrorCode.BadResponse,
      where,
      `${method}: response has neither result nor error`,
    );
  return r.result as T;
}

export const HTTP_RPC_CLIENT_DEFAULTS = {
  /** Per call. */
  timeoutMs: 10_000,
  /** Responses larger than this are refused (a block with full transactions is well under it). */
  maxResponseBytes: 64 * 1024 * 1024,
} as const;

export class HttpRpcClient implements RpcClient {
  private nextId = 1;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(
    readonly url: string,
    options: { timeoutMs?: number; maxResponseBytes?: number } = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? HTTP_RPC_CLIENT_DEFAULTS.timeoutMs;
    this.maxResponseBytes = options.maxResponseBytes ?? HTTP_RPC_CLIENT_DEFAULTS.maxResponseBytes;
  }

  async call<T = unknown>(method: string, params: readonly unknown[] = [], options: RpcCallOptions = {}): Promise<T> {
    const id = this.nextId++;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
        signal,
      });
      text = await readLimited(res, this.maxResponseBytes, this.url);
    } catch (err) {
      if (err instanceof RpcTransportError) throw err;
      if (timeout.aborted)
        throw new RpcTransportError(
          RpcTransportErrorCode.Timeout,
          this.url,
          `${method}: no answer within ${this.timeoutMs} ms (outcome unknown)`,
          { cause: err },
        );
      if (options.signal?.aborted) throw err;
      const cause = (err as { cause?: { code?: string } }).cause;
      throw new RpcTransportError(
        RpcTransportErrorCode.Unreachable,
        this.url,
        `${method}: ${cause?.code ?? (err as Error).message}`,
        { cause: err },
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new RpcTransportError(
        RpcTransportErrorCode.HttpStatus,
        this.url,
        `${method}: HTTP ${res.status} with a body that is not JSON`,
      );
    }
    // A JSON-RPC error is meaningful whatever the HTTP status (413 carries one too).
    if (typeof body === 'object' && body !== null && 'error' in body) return unwrap<T>(method, id, body, this.url);
    if (res.status !== 200)
      throw new RpcTransportError(RpcTransportErrorCode.HttpStatus, this.url, `${method}: HTTP ${res.status}`);
    return unwrap<T>(method, id, body, this.url);
  }
}

async function readLimited(res: Response, maxBytes: number, url: string): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel();
    throw new RpcTransportError(
      RpcTransportErrorCode.BadResponse,
      url,
      `response of ${declared} bytes is over the limit of ${maxBytes}`,
    );
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    bytes += chunk.length;
    if (bytes > maxBytes)
      throw new RpcTransportError(
        RpcTransportErrorCode.BadResponse,
        url,
        `response is over the limit of ${maxBytes} bytes`,
      );
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, bytes).toString('utf8');
}

/** Anything with the RpcServer's transport-independent entry point. */
export interface RpcHandler {
  handle(body: unknown): Promise<RpcReply>;
}

export class InProcessRpcClient implements RpcClient {
  private nextId = 1;
  constructor(
    private readonly handler: RpcHandler,
    private readonly name = 'in-process',
  ) {}

  async call<T = unknown>(method: string, params: readonly unknown[] = [], options: RpcCallOptions = {}): Promise<T> {
    options.signal?.throwIfAborted();
    const id = this.nextId++;
    // Round-trip through JSON, as the wire would: the same values reach the server and come back.
    const request = JSON.parse(JSON.stringify({ jsonrpc: '2.0', id, method, params })) as unknown;
    const reply = await this.handler.handle(request);
    if (reply.body === undefined || Array.isArray(reply.body)) {
      throw new RpcTransportError(RpcTransportErrorCode.BadResponse, this.name, `${method}: expected one response`);
    }
    return unwrap<T>(method, id, JSON.parse(JSON.stringify(reply.body)), this.name);
  }
}
