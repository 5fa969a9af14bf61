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
//
// Credentials (a node whose listener requires them, node/rpc/security.ts): a bearer token and,
// for an https:// URL signed by the cluster's own CA, that CA's certificate (and optionally a
// client certificate). Given per client, or process-wide with setDefaultRpcCredentials(), or from
// the environment: QUORATE_RPC_TOKEN and QUORATE_RPC_CA_FILE (read when a client is built).
// Plain connections use Node's global fetch; a client with TLS material uses undici's fetch with
// its own Agent, the documented way to give fetch a CA or a client certificate.

import { readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';
import type { RpcReply, RpcResponse } from './server.js';

/** The environment variables clients read their credentials from when given none. */
export const RPC_TOKEN_ENV = 'QUORATE_RPC_TOKEN';
export const RPC_CA_FILE_ENV = 'QUORATE_RPC_CA_FILE';

export interface RpcClientCredentials {
  /** Sent as `Authorization: Bearer <token>`. */
  readonly token?: string;
  /** PEM of the CA that signed the node's certificate (when not a public CA). */
  readonly caPem?: string | Buffer;
  /** A client certificate and its key (PEM), for a listener with rpc.tls.clientCaFile. */
  readonly certPem?: string | Buffer;
  readonly keyPem?: string | Buffer;
}

/** Credentials from files (the CLI's --token / --ca-file / --cert-file / --key-file). */
export function credentialsFromFiles(o: {
  token?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}): RpcClientCredentials {
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`cannot read the ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, {
        cause: err,
      });
    }
  };
  return {
    ...(o.token ? { token: o.token } : {}),
    ...(o.caFile ? { caPem: read(o.caFile, 'CA certificate') } : {}),
    ...(o.certFile ? { certPem: read(o.certFile, 'client certificate') } : {}),
    ...(o.keyFile ? { keyPem: read(o.keyFile, 'client key') } : {}),
  };
}

/** QUORATE_RPC_TOKEN and QUORATE_RPC_CA_FILE, when set. */
export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): RpcClientCredentials {
  const token = env[RPC_TOKEN_ENV];
  const caFile = env[RPC_CA_FILE_ENV];
  return credentialsFromFiles({
    ...(token ? { token } : {}),
    ...(caFile ? { caFile } : {}),
  });
}

let processDefaultCredentials: RpcClientCredentials | undefined;

/** Credentials for every HttpRpcClient built later without its own (the CLI sets them from its flags). */
export function setDefaultRpcCredentials(credentials: RpcClientCredentials | undefined): void {
  processDefaultCredentials = credentials;
}

/** What a client built now without credentials uses: the process default, else the environment's. */
export function defaultRpcCredentials(): RpcClientCredentials {
  return processDefaultCredentials ?? credentialsFromEnv();
}

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

/** The part of a fetch Response this client reads (global fetch's and undici's alike). */
interface FetchResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  readonly body: { cancel(): Promise<void> } | null;
}

export class HttpRpcClient implements RpcClient {
  private nextId = 1;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly headers: Record<string, string>;
  /** Set when the client has TLS material: undici's Agent carrying the CA / client certificate. */
  private readonly agent: Agent | undefined;

  constructor(
    readonly url: string,
    options: { timeoutMs?: number; maxResponseBytes?: number; credentials?: RpcClientCredentials } = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? HTTP_RPC_CLIENT_DEFAULTS.timeoutMs;
    this.maxResponseBytes = options.maxResponseBytes ?? HTTP_RPC_CLIENT_DEFAULTS.maxResponseBytes;
    const c = options.credentials ?? defaultRpcCredentials();
    this.headers = { 'content-type': 'application/json' };
    if (c.token) this.headers.authorization = `Bearer ${c.token}`;
    this.agent =
      c.caPem || c.certPem
        ? new Agent({
            connect: {
              ...(c.caPem ? { ca: c.caPem } : {}),
              ...(c.certPem ? { cert: c.certPem } : {}),
              ...(c.keyPem ? { key: c.keyPem } : {}),
            },
          })
        : undefined;
  }

  /** Closes the TLS agent's sockets (nothing to do for a plain client). */
  async close(): Promise<void> {
    await this.agent?.close();
  }

  private post(body: string, signal: AbortSignal): Promise<FetchResponse> {
    const init = { method: 'POST', headers: this.headers, body, signal };
    return this.agent ? undiciFetch(this.url, { ...init, dispatcher: this.agent }) : fetch(this.url, init);
  }

  async call<T = unknown>(method: string, params: readonly unknown[] = [], options: RpcCallOptions = {}): Promise<T> {
    const id = this.nextId++;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    let res: FetchResponse;
    let text: string;
    try {
      res = await this.post(JSON.stringify({ jsonrpc: '2.0', id, method, params }), signal);
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

async function readLimited(res: FetchResponse, maxBytes: number, url: string): Promise<string> {
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
