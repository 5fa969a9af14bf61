// JSON-RPC 2.0 over HTTP POST, on node:http with no framework, plus GET /health and GET /metrics.
//
// Robustness rules, each with a named limit (RPC_SERVER_DEFAULTS):
//  - the body is counted while it streams in and refused with 413 past maxBodyBytes (a declared
//    Content-Length over the limit is refused before reading anything);
//  - a batch longer than maxBatchLength is refused as a whole (one error, not N);
//  - every call runs under requestTimeoutMs; on expiry its AbortSignal fires and the client gets
//    -32002 "outcome unknown" — the server never waits on a stuck backend forever;
//  - at most maxInFlightCalls calls run at once; more are answered -32010 at once (load
//    shedding beats queueing without bound);
//  - while the event loop runs later than maxEventLoopDelayMs, a rising share of transaction
//    submissions is answered -32010 NODE_OVERLOADED with retryAfterMs (node/rpc/load-shed.ts):
//    the requests that wait under overload wait here, in front of the pool, where its bound
//    cannot see them;
//  - headers must arrive within headersTimeoutMs and the whole request within
//    requestBodyTimeoutMs (slow-loris), idle keep-alive sockets close after keepAliveTimeoutMs;
//  - malformed input of any kind is an error response, never a thrown exception: the handler
//    catches everything, and a bug in a method is answered -32603 and logged at error.
// A connection that opens and closes without a request (a load balancer's TCP probe) is logged
// at debug only.
//
// Security (node/rpc/security.ts says the order and the codes): Host and Origin checks, JSON
// Content-Type only, bearer tokens with scopes when the listener requires them, optional TLS with
// optional client certificates. A listener on a non-loopback address without tokens refuses to
// start. In-process callers of handle() are trusted: they are the embedding program itself.

import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { NodeConfig } from '../config.js';
import type { NodeMetrics } from '../metrics.js';
import type { NodeRpcBackend } from './backend.js';
import { NodeError, NodeErrorCode } from '../errors.js';
import { RpcErrorCode, toRpcError, type RpcErrorObject } from './errors.js';
import { RPC_METHODS, type RpcMethod } from './methods.js';
import { EventLoopProbe, SUBMISSION_METHODS, SubmissionShedder } from './load-shed.js';
import { pagePathKind } from './page.js';
import type { RpcSecurityConfig } from './security-config.js';
import {
  assertSafeListener,
  authenticate,
  checkContentType,
  checkHostAndOrigin,
  checkScopes,
  corsHeaders,
  defaultServerSecurity,
  loadRpcServerSecurity,
  preflightHeaders,
  type GateRefusal,
  type RpcServerSecurity,
} from './security.js';
import { SystemClock } from '../clock.js';

/** The real clock (node/clock.ts): this module has no injected one. */
const clock = new SystemClock();

/**
 * Connections the kernel may hold for the listener before the node accepts them (listen(2)'s
 * backlog; Linux caps it at net.core.somaxconn). Node's default, 511, overflowed under a burst of
 * new connections while the event loop ran late (TcpExtListenOverflows by the hundred thousand in
 * an overload run): the kernel then drops the handshake's last ACK and the client retries after
 * 1, 2, 4 s — seconds of latency on an idle CPU, before any check of ours could refuse the request.
 * Bounded still by rpcMaxConnections once accepted.
 */
export const RPC_LISTEN_BACKLOG = 4096;

export const RPC_SERVER_DEFAULTS = {
  /** Listen on loopback unless told otherwise: exposing RPC is an operator's decision. */
  host: '127.0.0.1',
  /** Request body limit (geth uses 5 MB too). Refused with HTTP 413 and -32011. */
  maxBodyBytes: 5 * 1024 * 1024,
  /** Requests in one batch. */
  maxBatchLength: 256,
  /** Per call. A submission that times out has an UNKNOWN outcome. */
  requestTimeoutMs: 30_000,
  /** Calls running at once across all connections. */
  maxInFlightCalls: 1024,
  /**
   * Event-loop delay past which transaction submissions start to be refused at the door (-32010,
   * data.reason NODE_OVERLOADED, data.retryAfterMs); all of them at twice it (node/rpc/load-shed.ts).
   */
  maxEventLoopDelayMs: 150,
  /** Open sockets. */
  maxConnections: 1024,
  /** Time for the request headers to arrive. */
  headersTimeoutMs: 10_000,
  /** Time for the whole request (headers and body) to arrive. */
  requestBodyTimeoutMs: 30_000,
  /** How often node:http checks the two timeouts above (its default, 30 s, lets a slow client linger 3x too long). */
  connectionsCheckIntervalMs: 1_000,
  /** An idle keep-alive connection closes after this. */
  keepAliveTimeoutMs: 5_000,
  /** GET /health answers 503 if the backend does not answer within this. */
  healthTimeoutMs: 2_000,
  /** stop(): in-flight responses get this long to flush before sockets are cut. */
  stopGraceMs: 2_000,
} as const;

export interface RpcServerOptions {
  readonly host?: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly maxBodyBytes?: number;
  readonly maxBatchLength?: number;
  readonly requestTimeoutMs?: number;
  readonly maxInFlightCalls?: number;
  readonly maxEventLoopDelayMs?: number;
  readonly maxConnections?: number;
  readonly headersTimeoutMs?: number;
  readonly requestBodyTimeoutMs?: number;
  readonly connectionsCheckIntervalMs?: number;
  readonly keepAliveTimeoutMs?: number;
  readonly healthTimeoutMs?: number;
  readonly stopGraceMs?: number;
  /** Host/Origin lists, TLS, tokens, /metrics access. Default: defaultServerSecurity(host). */
  readonly security?: RpcServerSecurity;
}

export interface RpcServerDeps {
  readonly backend: NodeRpcBackend;
  readonly logger: Logger;
  readonly metrics: NodeMetrics;
  /** The method table; defaults to RPC_METHODS. Embedders may extend it. */
  readonly methods?: ReadonlyMap<string, RpcMethod>;
  /**
   * The load-shedding policy, fed by hand (tests). Default: one of options.maxEventLoopDelayMs,
   * fed by an EventLoopProbe from start() to stop().
   */
  readonly shedder?: SubmissionShedder;
  /** The cluster page (node/rpc/page.ts): answers its GET paths and returns true, false for others. */
  readonly page?: { handle(req: http.IncomingMessage, res: http.ServerResponse): boolean; stop(): void };
}

/** The server's options from a node config (`rpc` endpoint and `limits.rpc*`); security: securedRpcServerOptions. */
export function rpcServerOptionsFromConfig(config: Pick<NodeConfig, 'rpc' | 'limits'>): RpcServerOptions {
  return {
    host: config.rpc.host,
    port: config.rpc.port,
    maxBodyBytes: config.limits.rpcMaxBodyBytes,
    maxBatchLength: config.limits.rpcMaxBatchLength,
    requestTimeoutMs: config.limits.rpcRequestTimeoutMs,
    maxInFlightCalls: config.limits.rpcMaxInFlightCalls,
    maxEventLoopDelayMs: config.limits.rpcMaxEventLoopDelayMs,
    maxConnections: config.limits.rpcMaxConnections,
  };
}

/** rpcServerOptionsFromConfig plus the security settings, with the files they name read (TLS material, tokens). */
export async function securedRpcServerOptions(
  config: Pick<NodeConfig, 'rpc' | 'limits'> & { readonly rpcSecurity: RpcSecurityConfig },
): Promise<RpcServerOptions> {
  return { ...rpcServerOptionsFromConfig(config), security: await loadRpcServerSecurity(config.rpcSecurity) };
}

type Id = string | number | null;

/** A batch's load-shedding state: set once one of its submissions is refused (see handle()). */
interface BatchShed {
  shed: boolean;
}

export interface RpcResponse {
  readonly jsonrpc: '2.0';
  readonly id: Id;
  readonly result?: unknown;
  readonly error?: RpcErrorObject;
}

/** What one HTTP POST body yields: a response value to serialise, or nothing (notifications only). */
export type RpcReply = { readonly body: RpcResponse | RpcResponse[] } | { readonly body: undefined };

type ResolvedOptions = Required<Omit<RpcServerOptions, 'security'>>;

const JSON_HEADERS = { 'content-type': 'application/json' } as const;

export class RpcServer {
  private readonly options: ResolvedOptions;
  private readonly backend: NodeRpcBackend;
  private readonly log: Logger;
  private readonly metrics: NodeMetrics;
  private readonly methods: ReadonlyMap<string, RpcMethod>;
  private readonly page: RpcServerDeps['page'];
  private readonly server: http.Server;
  private readonly security: RpcServerSecurity;
  /** Abort controllers of calls in flight; stop() aborts them. Bounded by maxInFlightCalls. */
  private readonly inFlight = new Set<AbortController>();
  /** Submissions refused while the event loop runs late; fed by `probe` from start() to stop(). */
  private readonly shedder: SubmissionShedder;
  private readonly probe: EventLoopProbe | undefined;
  private stopping = false;

  constructor(options: RpcServerOptions, deps: RpcServerDeps) {
    const { security, ...limits } = options;
    this.options = { ...RPC_SERVER_DEFAULTS, ...stripUndefined(limits) } as ResolvedOptions;
    this.security = security ?? defaultServerSecurity(this.options.host);
    // Before anything binds: a node must not come up open to the network by omission.
    assertSafeListener(this.options.host, this.security);
    for (const [k, v] of Object.entries(this.options)) {
      if (k !== 'host' && k !== 'port' && !(typeof v === 'number' && Number.isInteger(v) && v > 0)) {
        throw new RangeError(`RpcServer option ${k} must be a positive integer, got ${String(v)}`);
      }
    }
    this.shedder = deps.shedder ?? new SubmissionShedder(this.options.maxEventLoopDelayMs);
    this.probe = deps.shedder ? undefined : new EventLoopProbe(this.shedder);
    this.backend = deps.backend;
    this.log = deps.logger;
    this.metrics = deps.metrics;
    this.methods = deps.methods ?? RPC_METHODS;
    this.page = deps.page;
    const httpOptions: http.ServerOptions = {
      headersTimeout: this.options.headersTimeoutMs,
      requestTimeout: this.options.requestBodyTimeoutMs,
      keepAliveTimeout: this.options.keepAliveTimeoutMs,
      connectionsCheckingInterval: this.options.connectionsCheckIntervalMs,
    };
    const tls = this.security.tls;
    this.server = tls
      ? https.createServer({
          ...httpOptions,
          cert: tls.cert,
          key: tls.key,
          minVersion: 'TLSv1.2',
          // With a client CA, a client without a certificate it issued fails the handshake.
          ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
        })
      : http.createServer(httpOptions);
    if (tls) {
      this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => {
        // Plain HTTP to this port, an unknown client certificate, a scanner: refused by the
        // handshake. Debug only: a stranger must not be able to fill the log.
        this.log.debug({ code: err.code, remote: socket.remoteAddress }, 'rpc TLS handshake refused');
      });
    }
    this.server.maxConnections = this.options.maxConnections;
    this.server.on('request', (req, res) => {
      this.onRequest(req, res).catch((err: unknown) => {
        // onRequest catches everything it can answer; reaching here is a bug in this file.
        this.log.error({ err }, 'rpc request handler failed');
        if (!res.headersSent) res.writeHead(500, JSON_HEADERS);
        res.end();
      });
    });
    this.server.on('connection', (socket: Socket) => {
      this.log.debug({ remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'rpc connection');
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // Malformed HTTP, resets and timeouts of clients: their problem, not the node's.
      this.log.debug({ code: err.code, message: err.message }, 'rpc client error');
      if (socket.writable && err.code !== 'ECONNRESET') {
        const status =
          err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? '408 Request Timeout'
            : err.code === 'HPE_HEADER_OVERFLOW'
              ? '431 Request Header Fields Too Large'
              : '400 Bad Request';
        socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      }
      socket.destroy();
    });
  }

  /** Starts listening. Resolves with the bound address (useful with port 0). */
  async start(): Promise<{ host: string; port: number; url: string }> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ port: this.options.port, host: this.options.host, backlog: RPC_LISTEN_BACKLOG }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.probe?.start();
    const a = this.address();
    this.log.info({ url: a.url }, 'rpc listening');
    return a;
  }

  address(): { host: string; port: number; url: string } {
    const a = this.server.address() as AddressInfo | null;
    if (a === null) throw new Error('RpcServer is not listening');
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    const scheme = this.security.tls ? 'https' : 'http';
    return { host: a.address, port: a.port, url: `${scheme}://${host}:${a.port}/` };
  }

  /** Calls running now (bounded by maxInFlightCalls). */
  inFlightCalls(): number {
    return this.inFlight.size;
  }

  /** Stops accepting, aborts calls in flight (answered -32010), closes sockets after a grace period. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.probe?.stop();
    this.page?.stop(); // ends the page's event streams, which would otherwise hold the close open
    for (const c of this.inFlight) c.abort(new NodeError(NodeErrorCode.Unavailable, 'the node is stopping'));
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const grace = clock.setTimeout(() => this.server.closeAllConnections(), this.options.stopGraceMs);
    await closed;
    grace?.cancel();
    this.log.info('rpc stopped');
  }

  /**
   * Handles one parsed JSON-RPC body (a request or a batch) — the transport-independent core,
   * used by the HTTP path and by in-process callers (embedders, the simulator).
   */
  async handle(body: unknown): Promise<RpcReply> {
    if (Array.isArray(body)) {
      if (body.length === 0)
        return { body: errorResponse(null, RpcErrorCode.InvalidRequest, 'empty batch: send at least one request') };
      if (body.length > this.options.maxBatchLength) {
        this.count('(batch)', RpcErrorCode.LimitExceeded);
        return {
          body: errorResponse(
            null,
            RpcErrorCode.LimitExceeded,
            `batch of ${body.length} requests is over the limit of ${this.options.maxBatchLength}; split it`,
            {
              limit: 'maxBatchLength',
              max: this.options.maxBatchLength,
            },
          ),
        };
      }
      // One shed decision carried through the batch: once a submission is refused for load, the
      // later ones are too. Otherwise a batch of one account's nonces n..n+15 could lose n+5 and
      // keep n+6.., which then wait behind the gap (measured: 635 accepted, never committed).
      const batch: BatchShed = { shed: false };
      const replies = await Promise.all(body.map((r) => this.handleOne(r, batch)));
      const responses = replies.filter((r): r is RpcResponse => r !== undefined);
      return responses.length === 0 ? { body: undefined } : { body: responses };
    }
    const reply = await this.handleOne(body);
    return { body: reply };
  }

  private async handleOne(request: unknown, batch?: BatchShed): Promise<RpcResponse | undefined> {
    if (typeof request !== 'object' || request === null || Array.isArray(request)) {
      this.count('(invalid)', RpcErrorCode.InvalidRequest);
      return errorResponse(
        null,
        RpcErrorCode.InvalidRequest,
        'a request must be a JSON object { "jsonrpc": "2.0", "method", "params"?, "id"? }',
      );
    }
    const r = request as Record<string, unknown>;
    const hasId = 'id' in r;
    const idValid =
      !hasId || r.id === null || typeof r.id === 'string' || (typeof r.id === 'number' && Number.isFinite(r.id));
    const id: Id = hasId && idValid ? (r.id as Id) : null;
    if (r.jsonrpc !== '2.0') {
      this.count('(invalid)', RpcErrorCode.InvalidRequest);
      return errorResponse(id, RpcErrorCode.InvalidRequest, `"jsonrpc" must be "2.0"`);
    }
    if (!idValid) {
      this.count('(invalid)', RpcErrorCode.InvalidRequest);
      return errorResponse(null, RpcErrorCode.InvalidRequest, '"id" must be a string, a number or null');
    }
    if (typeof r.method !== 'string') {
      this.count('(invalid)', RpcErrorCode.InvalidRequest);
      return errorResponse(id, RpcErrorCode.InvalidRequest, '"method" must be a string');
    }
    if ('params' in r && (typeof r.params !== 'object' || r.params === null)) {
      this.count('(invalid)', RpcErrorCode.InvalidRequest);
      return errorResponse(id, RpcErrorCode.InvalidRequest, '"params" must be an array or an object when present');
    }
    const response = await this.call(r.method, r.params, id, batch);
    // A notification (no "id") gets no response, even on error (JSON-RPC 2.0 §4.1).
    return hasId ? response : undefined;
  }

  private async call(methodName: string, params: unknown, id: Id, batch?: BatchShed): Promise<RpcResponse> {
    const method = this.methods.get(methodName);
    // Unknown names are not used as metric labels: a client could otherwise grow the registry without bound.
    const label = method ? methodName : 'unknown';
    if (!method) {
      this.count(label, RpcErrorCode.MethodNotFound);
      return errorResponse(
        id,
        RpcErrorCode.MethodNotFound,
        `method ${JSON.stringify(methodName.slice(0, 64))} does not exist`,
      );
    }
    if (this.stopping || this.inFlight.size >= this.options.maxInFlightCalls) {
      const why = this.stopping
        ? 'the node is stopping'
        : `overloaded: ${this.inFlight.size} calls in flight (limit ${this.options.maxInFlightCalls}); retry later`;
      this.count(label, RpcErrorCode.Unavailable);
      return errorResponse(id, RpcErrorCode.Unavailable, why);
    }
    if (SUBMISSION_METHODS.has(methodName)) {
      try {
        if (batch?.shed) this.shedder.refuse();
        else this.shedder.admit();
      } catch (err) {
        if (batch) batch.shed = true;
        const { error } = toRpcError(err);
        this.count(label, error.code);
        return { jsonrpc: '2.0', id, error };
      }
    }
    const controller = new AbortController();
    this.inFlight.add(controller);
    const startedNs = process.hrtime.bigint();
    // One timer and one abort promise per call: the timeout aborts the controller (so the method
    // sees it on its signal), and stop() aborts in-flight controllers the same way.
    const timer = clock.setTimeout(() => {
      controller.abort(
        new NodeError(
          NodeErrorCode.Timeout,
          `${methodName} did not finish within ${this.options.requestTimeoutMs} ms; its outcome is unknown (a submitted transaction may still commit)`,
          {
            timeoutMs: this.options.requestTimeoutMs,
          },
        ),
      );
    }, this.options.requestTimeoutMs);
    try {
      const aborted = new Promise<never>((_, reject) => {
        controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
      });
      const result = await Promise.race([method(this.backend, params, { signal: controller.signal }), aborted]);
      // Serialised once, by the HTTP path (serialiseReply): a result that cannot be becomes this
      // call's -32603 there, not a broken batch.
      this.count(label, 0);
      this.log.debug({ method: methodName, id }, 'rpc call');
      return { jsonrpc: '2.0', id, result: result === undefined ? null : result };
    } catch (err) {
      const { error, internal } = toRpcError(err);
      this.count(label, error.code);
      if (internal) this.log.error({ err, method: methodName }, 'rpc method failed with an unexpected error');
      else this.log.debug({ method: methodName, id, code: error.code, message: error.message }, 'rpc call refused');
      return { jsonrpc: '2.0', id, error };
    } finally {
      timer?.cancel();
      this.inFlight.delete(controller);
      this.metrics.rpcDurationSeconds.observe({ method: label }, Number(process.hrtime.bigint() - startedNs) / 1e9);
    }
  }

  private count(method: string, code: number): void {
    this.metrics.rpcRequests.inc({ method, code: String(code) });
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    // HEAD too: some load balancers probe with it (node:http drops the body of a HEAD reply).
    const read = req.method === 'GET' || req.method === 'HEAD';
    if (read && path === '/health') return this.serveHealth(res);
    const gate = checkHostAndOrigin(req, this.security);
    if (gate) return this.refuse(res, gate, null);
    for (const [k, v] of Object.entries(corsHeaders(req))) res.setHeader(k, v);
    if (req.method === 'OPTIONS') {
      // A CORS preflight from an allowed origin (a foreign one was refused just above).
      res.writeHead(204, preflightHeaders(req));
      res.end();
      return;
    }
    if (read && path === '/metrics' && this.security.metrics !== 'off') {
      if (this.security.metrics === 'auth') {
        const who = authenticate(req, this.security);
        if (who !== null && 'status' in who) return this.refuse(res, who, null);
      }
      return this.serveMetrics(res);
    }
    if (read && this.page) {
      // The page's files hold no cluster state and stay open (a browser cannot attach a token when
      // it navigates); its data paths need a token with the "raft" read scope, like raft_status.
      const kind = pagePathKind(path);
      if (kind === 'data') {
        const who = authenticate(req, this.security);
        if (who !== null && 'status' in who) return this.refuse(res, who, null);
        if (who !== null && !who.scopes.has('raft'))
          return this.refuse(
            res,
            {
              status: 403,
              code: RpcErrorCode.ScopeMissing,
              message: 'the token lacks scope "raft"',
              data: { missing: ['raft'] },
            },
            null,
          );
      }
      if (kind !== undefined && this.page.handle(req, res)) return;
    }
    if (path !== '/')
      return sendJson(res, 404, {
        error: `no such path ${JSON.stringify(path.slice(0, 64))}: POST JSON-RPC to /, GET /health, GET /metrics`,
      });
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return sendJson(
        res,
        405,
        errorResponse(null, RpcErrorCode.InvalidRequest, 'JSON-RPC requests must be HTTP POST'),
      );
    }
    const badType = checkContentType(req);
    if (badType) return this.refuse(res, badType, null);
    // The token before the body: an unauthenticated caller gets nothing read or parsed.
    const caller = authenticate(req, this.security);
    if (caller !== null && 'status' in caller) return this.refuse(res, caller, null);
    const text = await this.readBody(req, res);
    if (text === undefined) return; // already answered (413) or the client went away
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      this.count('(invalid)', RpcErrorCode.ParseError);
      return sendJson(
        res,
        200,
        errorResponse(null, RpcErrorCode.ParseError, `the body is not valid JSON: ${(err as Error).message}`),
      );
    }
    const outOfScope = checkScopes(parsed, caller);
    if (outOfScope) {
      const single = parsed as { id?: unknown } | null;
      const id = !Array.isArray(parsed) && typeof single === 'object' && single !== null ? single.id : null;
      return this.refuse(res, outOfScope, typeof id === 'string' || typeof id === 'number' ? id : null);
    }
    const reply = await this.handle(parsed);
    // While stopping, close each connection after its reply so stop() need not wait out keep-alive.
    if (this.stopping) res.setHeader('connection', 'close');
    if (reply.body === undefined) {
      res.writeHead(204);
      res.end();
      return;
    }
    const json = this.serialiseReply(reply.body);
    res.writeHead(200, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(json) });
    res.end(json);
  }

  /**
   * The reply as JSON text, serialised once. If it cannot be (a method returned something JSON
   * cannot hold), each response is tried on its own and the ones that fail become -32603, so one
   * bad result does not break the others of a batch.
   */
  private serialiseReply(body: RpcResponse | RpcResponse[]): string {
    try {
      return JSON.stringify(body);
    } catch {
      const one = (r: RpcResponse): string => {
        try {
          return JSON.stringify(r);
        } catch (err) {
          this.log.error({ err, id: r.id }, 'rpc result could not be serialised');
          return JSON.stringify(
            errorResponse(r.id, RpcErrorCode.InternalError, 'internal error: the result could not be serialised'),
          );
        }
      };
      return Array.isArray(body) ? `[${body.map(one).join(',')}]` : one(body);
    }
  }

  /** Reads the body up to maxBodyBytes. Answers 413 itself and returns undefined past the limit. */
  private readBody(req: http.IncomingMessage, res: http.ServerResponse): Promise<string | undefined> {
    const max = this.options.maxBodyBytes;
    const tooLarge = (): void => {
      this.count('(body)', RpcErrorCode.LimitExceeded);
      this.log.debug({ maxBodyBytes: max }, 'rpc body over the limit');
      res.setHeader('connection', 'close');
      sendJson(
        res,
        413,
        errorResponse(null, RpcErrorCode.LimitExceeded, `request body is over the limit of ${max} bytes`, {
          limit: 'maxBodyBytes',
          max,
        }),
      );
      // Stop reading: the rest of the body is never buffered. The socket closes after the reply.
      res.on('finish', () => req.socket.destroy());
    };
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > max) {
      tooLarge();
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      let done = false;
      req.on('data', (chunk: Buffer) => {
        if (done) return;
        bytes += chunk.length;
        if (bytes > max) {
          done = true;
          req.pause();
          tooLarge();
          resolve(undefined);
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => {
        if (done) return;
        done = true;
        resolve(Buffer.concat(chunks, bytes).toString('utf8'));
      });
      req.on('error', () => {
        if (done) return;
        done = true;
        resolve(undefined);
      });
      req.on('close', () => {
        if (done) return;
        done = true;
        resolve(undefined);
      });
    });
  }

  /** Answers a gate refusal as a JSON-RPC error body with its HTTP status. Logged at debug only. */
  private refuse(res: http.ServerResponse, r: GateRefusal, id: Id): void {
    this.count('(refused)', r.code);
    this.log.debug({ status: r.status, code: r.code, message: r.message }, 'rpc request refused');
    for (const [k, v] of Object.entries(r.headers ?? {})) res.setHeader(k, v);
    // A refused request's body may be unread (refused before reading): closing the connection
    // means node:http does not go on reading, and discarding, whatever the caller keeps sending.
    res.setHeader('connection', 'close');
    sendJson(res, r.status, errorResponse(id, r.code, r.message, r.data));
  }

  private async serveHealth(res: http.ServerResponse): Promise<void> {
    const controller = new AbortController();
    const timer = clock.setTimeout(() => controller.abort(), this.options.healthTimeoutMs);
    try {
      const h = await Promise.race([
        this.backend.health({ signal: controller.signal }),
        new Promise<never>((_, reject) =>
          controller.signal.addEventListener('abort', () => reject(new Error('health check timed out')), {
            once: true,
          }),
        ),
      ]);
      const body: Record<string, unknown> = { role: h.role, term: h.term, head: h.head, peers: h.peers };
      if (!h.ok || this.stopping) body.reason = this.stopping ? 'stopping' : (h.reason ?? 'not healthy');
      sendJson(res, h.ok && !this.stopping ? 200 : 503, body);
    } catch (err) {
      this.log.debug({ err }, 'health check failed');
      sendJson(res, 503, { reason: err instanceof Error ? err.message : 'health check failed' });
    } finally {
      timer?.cancel();
    }
  }

  private async serveMetrics(res: http.ServerResponse): Promise<void> {
    const text = await this.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
    res.end(text);
  }
}

function errorResponse(id: Id, code: RpcErrorCode, message: string, data?: unknown): RpcResponse {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
