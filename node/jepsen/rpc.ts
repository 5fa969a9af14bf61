// The Jepsen clients' JSON-RPC transport. It speaks the same JSON-RPC as node/rpc/client.ts, but over
// node:http so that a target can be a Unix socket as well as host:port: under network namespaces the
// host has no route to the nodes (netns-network.ts), so every request goes through a relay that runs
// in the control namespace and listens on a Unix socket per node (relay.ts). A Unix socket is a file,
// so it is reachable from any network namespace.
//
// Outcomes are classified the way a Jepsen client needs them (workload.ts):
//  - RpcCallError: the node answered with an error (its `code` says whether anything happened);
//  - RpcTransportError Unreachable with `refused: true`: the connection was never made, nothing was
//    sent, so the call certainly did not happen;
//  - any other RpcTransportError: the call may or may not have happened.

import { request, Agent } from 'node:http';
import { RpcCallError, RpcTransportError, RpcTransportErrorCode } from '../rpc/client.js';
import { harnessClock as clock } from './clock.js';

/** Set by the relay on its answer when the node refused its dial: nothing of the request was sent. */
export const RELAY_REFUSED_HEADER = 'x-jepsen-relay-refused';

/**
 * Where a node's JSON-RPC listens: TCP, or a relay's Unix socket; `token`: the bearer token its
 * listener requires (nodes on namespace addresses are not on loopback, so they require one).
 */
export type RpcTarget = ({ readonly host: string; readonly port: number } | { readonly socketPath: string }) & {
  readonly token?: string;
};

/** Largest JSON-RPC response accepted (a batch of full blocks stays well under it). */
export const JEPSEN_RPC_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** Sockets kept open per client: one per concurrent call of that client at most. */
export const JEPSEN_RPC_MAX_SOCKETS = 16;

export class ConnectionRefusedError extends RpcTransportError {
  /** True: nothing reached the node, so the call certainly did not happen. */
  readonly refused = true;
  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super(RpcTransportErrorCode.Unreachable, url, message, options);
    this.name = 'ConnectionRefusedError';
  }
}

export interface JepsenRpcOptions {
  readonly timeoutMs: number;
}

export class JepsenRpc {
  private nextId = 1;
  private readonly agent: Agent;
  readonly label: string;

  constructor(
    readonly target: RpcTarget,
    private readonly options: JepsenRpcOptions,
  ) {
    // No keep-alive: a request on a reused socket that the server closed meanwhile fails in a way
    // that cannot be told apart from "sent, then lost" — a fresh connection makes ECONNREFUSED mean
    // "never sent".
    this.agent = new Agent({ keepAlive: false, maxSockets: JEPSEN_RPC_MAX_SOCKETS });
    this.label = 'socketPath' in target ? `unix:${target.socketPath}` : `http://${target.host}:${target.port}/`;
  }

  async call<T = unknown>(method: string, params: readonly unknown[] = [], signal?: AbortSignal): Promise<T> {
    const id = this.nextId++;
    const body = await this.post(JSON.stringify({ jsonrpc: '2.0', id, method, params }), method, signal);
    return unwrapOne<T>(method, id, body, this.label);
  }

  /** A JSON-RPC batch: one HTTP request, the answers in request order (each a result or an error). */
  async batch(
    calls: ReadonlyArray<{ method: string; params: readonly unknown[] }>,
    signal?: AbortSignal,
  ): Promise<Array<{ result?: unknown; error?: RpcCallError }>> {
    if (calls.length === 0) return [];
    const first = this.nextId;
    this.nextId += calls.length;
    const body = await this.post(
      JSON.stringify(calls.map((c, i) => ({ jsonrpc: '2.0', id: first + i, method: c.method, params: c.params }))),
      `batch of ${calls.length}`,
      signal,
    );
    if (!Array.isArray(body)) {
      // A whole-batch error (e.g. the batch is too long) comes back as one error object.
      const e = (body as { error?: { code?: number; message?: string; data?: unknown } } | null)?.error;
      if (e) throw new RpcCallError('batch', e.code ?? 0, e.message ?? 'error', e.data);
      throw new RpcTransportError(RpcTransportErrorCode.BadResponse, this.label, 'batch: response is not an array');
    }
    const byId = new Map<number, unknown>();
    for (const r of body) byId.set((r as { id: number }).id, r);
    return calls.map((c, i) => {
      try {
        return { result: unwrapOne(c.method, first + i, byId.get(first + i), this.label) };
      } catch (err) {
        if (err instanceof RpcCallError) return { error: err };
        throw err;
      }
    });
  }

  close(): void {
    this.agent.destroy();
  }

  private post(payload: string, what: string, signal?: AbortSignal): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        timer?.cancel();
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      };
      const where =
        'socketPath' in this.target
          ? { socketPath: this.target.socketPath }
          : { host: this.target.host, port: this.target.port };
      const req = request(
        {
          ...where,
          path: '/',
          method: 'POST',
          agent: this.agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
            ...(this.target.token === undefined ? {} : { authorization: `Bearer ${this.target.token}` }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let bytes = 0;
          res.on('data', (c: Buffer) => {
            bytes += c.length;
            if (bytes > JEPSEN_RPC_MAX_RESPONSE_BYTES) {
              req.destroy();
              fail(
                new RpcTransportError(
                  RpcTransportErrorCode.BadResponse,
                  this.label,
                  `${what}: response over ${JEPSEN_RPC_MAX_RESPONSE_BYTES} bytes`,
                ),
              );
              return;
            }
            chunks.push(c);
          });
          res.on('error', (err) =>
            fail(
              new RpcTransportError(RpcTransportErrorCode.Unreachable, this.label, `${what}: ${err.message}`, {
                cause: err,
              }),
            ),
          );
          res.on('end', () => {
            if (settled) return;
            if (res.headers[RELAY_REFUSED_HEADER] !== undefined) {
              fail(
                new ConnectionRefusedError(
                  this.label,
                  `${what}: the node refused the connection (${String(res.headers[RELAY_REFUSED_HEADER])})`,
                ),
              );
              return;
            }
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              fail(
                new RpcTransportError(
                  RpcTransportErrorCode.HttpStatus,
                  this.label,
                  `${what}: HTTP ${res.statusCode} with a body that is not JSON`,
                ),
              );
              return;
            }
            settled = true;
            timer?.cancel();
            signal?.removeEventListener('abort', onAbort);
            resolve(parsed);
          });
        },
      );
      let connected = false;
      req.on('socket', (s) => s.once('connect', () => (connected = true)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        // Refused before connecting. Through a relay, a refused upstream dial comes back as a response
        // carrying RELAY_REFUSED_HEADER instead (relay.ts), since our own connect succeeded.
        if (!connected && (err.code === 'ECONNREFUSED' || err.code === 'ENOENT'))
          fail(new ConnectionRefusedError(this.label, `${what}: ${err.code}`, { cause: err }));
        else
          fail(
            new RpcTransportError(
              RpcTransportErrorCode.Unreachable,
              this.label,
              `${what}: ${err.code ?? err.message}`,
              { cause: err },
            ),
          );
      });
      const timer = clock.setTimeout(() => {
        req.destroy();
        fail(
          new RpcTransportError(
            RpcTransportErrorCode.Timeout,
            this.label,
            `${what}: no answer within ${this.options.timeoutMs} ms (outcome unknown)`,
          ),
        );
      }, this.options.timeoutMs);
      const onAbort = (): void => {
        req.destroy();
        fail(new RpcTransportError(RpcTransportErrorCode.Timeout, this.label, `${what}: aborted (outcome unknown)`));
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
      req.end(payload);
    });
  }
}

function unwrapOne<T>(method: string, id: number, response: unknown, where: string): T {
  const r = response as
    | {
        jsonrpc?: string;
        id?: unknown;
        result?: unknown;
        error?: { code?: unknown; message?: unknown; data?: unknown };
      }
    | null
    | undefined;
  if (typeof r !== 'object' || r === null || r.jsonrpc !== '2.0')
    throw new RpcTransportError(RpcTransportErrorCode.BadResponse, where, `${method}: not a JSON-RPC 2.0 response`);
  if (r.error !== undefined)
    throw new RpcCallError(
      method,
      typeof r.error.code === 'number' ? r.error.code : 0,
      typeof r.error.message === 'string' ? r.error.message : 'error',
      r.error.data,
    );
  if (r.id !== id)
    throw new RpcTransportError(
      RpcTransportErrorCode.BadResponse,
      where,
      `${method}: response id ${String(r.id)} does not match ${id}`,
    );
  if (!('result' in r)) throw new RpcTransportError(RpcTransportErrorCode.BadResponse, where, `${method}: no result`);
  return r.result as T;
}
