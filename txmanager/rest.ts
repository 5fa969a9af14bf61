// The transaction manager's REST API, in Tessera's shapes (docs/interface.md):
//   GET  /upcheck                → 200 "I'm up!"
//   GET  /keys                   → 200 { keys: [{ key }] }            this node's keys
//   POST /send { payload, from?, to } → 201 { key }                   payload base64, key = hash
//   GET  /transaction/{key}[?to=K] → 200 { payload } | 404            key URL-encoded base64
//   GET  /partyinfo/keys         → 200 { keys: [{ key, node }] }
//   POST /storeraw { payload, from? }  → 200 { key }                  sealed for the sender only
//   POST /sendsignedtx { hash, to }    → 201 { key }                  adds recipients, delivers
// Who may call it (client-access.ts): the listener binds loopback only, or a Unix socket of mode
// 0600 (`socketPath`: only this user's processes can connect); an optional second
// listener for remote clients serves the same routes over TLS with a bearer token (401 without
// one), and only when configured. /upcheck is open on both.
// Errors are JSON { error, code }. 404 on /transaction means "not a party" and nothing else:
// a failure to answer is a 5xx, so a caller can never mistake one for the other.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { chmod, lstat, unlink } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { isAbsolute } from 'node:path';
import { EnclaveError, EnclaveErrorCode, MAX_PLAINTEXT_BYTES, MAX_RECIPIENTS } from '../enclave/index.js';
import { TxManagerError, TxManagerErrorCode } from './errors.js';
import type { TransactionManager } from './transaction-manager.js';
import {
  bearerTokenAccepted,
  checkLocalListenerHost,
  loadRemoteClientsMaterial,
  type TmRemoteClientsConfig,
} from './client-access.js';

/**
 * Largest request body: a maximal plaintext in base64 (4/3 of its size) plus room for
 * MAX_RECIPIENTS keys and the JSON around them. Larger bodies get 413 without being read.
 */
export const MAX_REQUEST_BODY_BYTES = Math.ceil(MAX_PLAINTEXT_BYTES / 3) * 4 + MAX_RECIPIENTS * 64 + 64 * 1024;
/** A request must arrive whole within this time (slow-loris bound). */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Headers must arrive within this time. */
export const HEADERS_TIMEOUT_MS = 10_000;
/** Most simultaneous connections. The node and its local clients are the only callers. */
export const MAX_CONNECTIONS = 256;
/** Longest Unix socket path (Linux's sun_path holds 108 bytes with its terminating NUL). */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;
/** The Unix socket's mode: its owner only. */
export const UNIX_SOCKET_MODE = 0o600;

export interface TxManagerServerOptions {
  /** Bind address; default 127.0.0.1. Loopback only: any other address is refused at start (client-access.ts). */
  readonly host?: string;
  /** Port; 0 picks a free one (see `address()` after start). Default 0. */
  readonly port?: number;
  /**
   * An absolute path: the local listener is a Unix socket there (mode 0600) instead of
   * host:port. A stale socket left by a crash is replaced; any other file there is refused.
   */
  readonly socketPath?: string;
  readonly maxRequestBodyBytes?: number;
  /** A second listener for clients on other hosts: TLS and a bearer token, or the server refuses to start. */
  readonly remoteClients?: TmRemoteClientsConfig;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export class TxManagerServer {
  private server: Server | null = null;
  private remoteServer: Server | null = null;
  private readonly host: string;
  private readonly port: number;
  private readonly maxRequestBodyBytes: number;
  private readonly remoteClients: TmRemoteClientsConfig | undefined;
  private readonly socketPath: string | undefined;

  constructor(
    private readonly tm: TransactionManager,
    options: TxManagerServerOptions = {},
  ) {
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? 0;
    this.maxRequestBodyBytes = options.maxRequestBodyBytes ?? MAX_REQUEST_BODY_BYTES;
    this.remoteClients = options.remoteClients;
    this.socketPath = options.socketPath;
  }

  /** Starts the loopback listener (and the remote-client one when configured). Throws InsecureListener before binding anything unsafe. */
  async start(): Promise<{ host: string; port: number; url: string }> {
    if (this.server !== null) throw new Error('TxManagerServer already started');
    if (this.socketPath === undefined) checkLocalListenerHost(this.host);
    else await prepareSocketPath(this.socketPath);
    // Read and checked before anything binds: a refused remote config leaves no listener behind.
    const remote = this.remoteClients === undefined ? undefined : await loadRemoteClientsMaterial(this.remoteClients);
    const server = createServer(
      { requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: HEADERS_TIMEOUT_MS },
      (req, res) => {
        this.handle(req, res).catch((error: unknown) => sendError(res, error));
      },
    );
    server.maxConnections = MAX_CONNECTIONS;
    if (this.socketPath === undefined) await listen(server, this.port, this.host);
    else await listenOnSocket(server, this.socketPath);
    this.server = server;
    if (remote !== undefined) {
      const tokenHashes = remote.tokenHashes;
      const remoteServer = createTlsServer(
        { cert: remote.cert, key: remote.key, requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: HEADERS_TIMEOUT_MS },
        (req, res) => {
          const path = new URL(req.url ?? '/', 'https://localhost').pathname;
          if (path !== '/upcheck' && !bearerTokenAccepted(req.headers.authorization, tokenHashes)) {
            req.resume();
            sendJson(
              res,
              401,
              { error: 'a bearer token is required (Authorization: Bearer <token>)', code: 'UNAUTHORIZED' },
              { 'www-authenticate': 'Bearer' },
            );
            return;
          }
          this.handle(req, res).catch((error: unknown) => sendError(res, error));
        },
      );
      remoteServer.maxConnections = MAX_CONNECTIONS;
      try {
        await listen(remoteServer, remote.port, remote.host);
      } catch (error) {
        await this.stop();
        throw error;
      }
      this.remoteServer = remoteServer;
    }
    return this.address();
  }

  /** The remote-client listener's address, when one runs. */
  remoteAddress(): { host: string; port: number; url: string } | undefined {
    if (this.remoteServer === null) return undefined;
    const info = this.remoteServer.address() as AddressInfo;
    const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
    return { host: info.address, port: info.port, url: `https://${host}:${info.port}` };
  }

  /** host:port and an http URL; on a Unix socket: host "unix", port 0 and `unix:<path>`. */
  address(): { host: string; port: number; url: string } {
    if (this.server === null) throw new Error('TxManagerServer not started');
    if (this.socketPath !== undefined) return { host: 'unix', port: 0, url: `unix:${this.socketPath}` };
    const info = this.server.address() as AddressInfo;
    const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
    return { host: info.address, port: info.port, url: `http://${host}:${info.port}` };
  }

  async stop(): Promise<void> {
    const servers = [this.server, this.remoteServer].filter((s): s is Server => s !== null);
    this.server = null;
    this.remoteServer = null;
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/upcheck') {
      requireMethod(method, 'GET');
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end("I'm up!");
      return;
    }
    if (path === '/keys') {
      requireMethod(method, 'GET');
      sendJson(res, 200, { keys: this.tm.publicKeys().map((key) => ({ key })) });
      return;
    }
    if (path === '/partyinfo/keys') {
      requireMethod(method, 'GET');
      sendJson(res, 200, { keys: this.tm.partyKeys() });
      return;
    }
    if (path === '/send') {
      requireMethod(method, 'POST');
      const body = await readJson(req, this.maxRequestBodyBytes);
      const { payload, from, to } = parseSend(body);
      const key = await this.tm.send(payload, from, to);
      sendJson(res, 201, { key });
      return;
    }
    if (path === '/storeraw') {
      requireMethod(method, 'POST');
      const body = await readJson(req, this.maxRequestBodyBytes);
      const { payload, from } = parseSend(body, false);
      sendJson(res, 200, { key: await this.tm.storeRaw(payload, from) });
      return;
    }
    if (path === '/sendsignedtx') {
      requireMethod(method, 'POST');
      const body = await readJson(req, this.maxRequestBodyBytes);
      if (!isObject(body) || typeof body.hash !== 'string')
        throw new HttpError(400, 'body must be a JSON object { hash, to }', TxManagerErrorCode.InvalidRequest);
      const to = parseKeys(body.to);
      sendJson(res, 201, { key: await this.tm.sendSignedTransaction(body.hash, to) });
      return;
    }
    if (path.startsWith('/transaction/')) {
      requireMethod(method, 'GET');
      let hash: string;
      try {
        hash = decodeURIComponent(path.slice('/transaction/'.length));
      } catch {
        throw new HttpError(400, 'transaction key is not valid URL encoding', TxManagerErrorCode.InvalidRequest);
      }
      const to = url.searchParams.get('to') ?? undefined;
      const result = await this.tm.receive(hash, to);
      if (result.kind === 'not-a-party') {
        sendJson(res, 404, { error: `this node is not a party to transaction ${hash}`, code: 'NOT_A_PARTY' });
        return;
      }
      sendJson(res, 200, { payload: Buffer.from(result.payload).toString('base64'), senderKey: result.senderKey });
      return;
    }
    throw new HttpError(404, `no route ${method} ${path}`, 'NOT_FOUND');
  }
}

/**
 * Checks a socket path before anything binds: absolute, short enough for sun_path, and either free
 * or a stale socket (removed). Any other file there is refused (InvalidConfig), never deleted.
 */
async function prepareSocketPath(path: string): Promise<void> {
  if (!isAbsolute(path) || Buffer.byteLength(path) > MAX_UNIX_SOCKET_PATH_BYTES)
    throw new TxManagerError(
      TxManagerErrorCode.InvalidConfig,
      `tm.socketPath must be an absolute path of at most ${MAX_UNIX_SOCKET_PATH_BYTES} bytes, got ${JSON.stringify(path)}`,
      { field: 'tm.socketPath' },
    );
  const st = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (st === undefined) return;
  if (!st.isSocket())
    throw new TxManagerError(
      TxManagerErrorCode.InvalidConfig,
      `tm.socketPath ${path} exists and is not a socket: refusing to replace it`,
      { field: 'tm.socketPath' },
    );
  await unlink(path);
}

/**
 * Listens on a Unix socket created with mode 0600: the umask is narrowed around the bind (which
 * Node does synchronously inside listen()), so the socket is never connectable by others, and
 * its mode is set again after.
 */
async function listenOnSocket(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    let umask: number | undefined;
    try {
      umask = process.umask(0o777 & ~UNIX_SOCKET_MODE);
    } catch {
      umask = undefined; // a worker thread cannot change it: the chmod below still applies
    }
    try {
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      if (umask !== undefined) process.umask(umask);
    }
  });
  await chmod(path, UNIX_SOCKET_MODE);
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function requireMethod(actual: string, expected: string): void {
  if (actual !== expected)
    throw new HttpError(405, `method ${actual} not allowed, use ${expected}`, 'METHOD_NOT_ALLOWED');
}

function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    return Promise.reject(
      new HttpError(
        413,
        `request body of ${declared} bytes exceeds ${maxBytes} (MAX_REQUEST_BODY_BYTES)`,
        TxManagerErrorCode.PayloadTooLarge,
      ),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      if (tooLarge) return; // drained and dropped until the client stops (bounded by REQUEST_TIMEOUT_MS)
      total += chunk.length;
      if (total > maxBytes) {
        tooLarge = true;
        chunks.length = 0;
        reject(
          new HttpError(
            413,
            `request body exceeds ${maxBytes} bytes (MAX_REQUEST_BODY_BYTES)`,
            TxManagerErrorCode.PayloadTooLarge,
          ),
        );
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (tooLarge) return;
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (error) {
        reject(new HttpError(400, `malformed JSON: ${(error as Error).message}`, 'MALFORMED_JSON'));
      }
    });
  });
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parseKeys(to: unknown): string[] {
  if (!Array.isArray(to) || !to.every((k) => typeof k === 'string'))
    throw new HttpError(400, 'to must be an array of base64 key strings', TxManagerErrorCode.InvalidRequest);
  if (to.length > MAX_RECIPIENTS)
    throw new HttpError(
      400,
      `to has ${to.length} keys, limit MAX_RECIPIENTS=${MAX_RECIPIENTS}`,
      TxManagerErrorCode.InvalidRequest,
    );
  return to as string[];
}

function parseSend(body: unknown, requireTo = true): { payload: Uint8Array; from: string | undefined; to: string[] } {
  if (!isObject(body))
    throw new HttpError(400, 'body must be a JSON object { payload, from?, to }', TxManagerErrorCode.InvalidRequest);
  const { payload, from, to } = body;
  if (typeof payload !== 'string' || payload.length % 4 !== 0 || !BASE64.test(payload)) {
    throw new HttpError(400, 'payload must be a base64 string', TxManagerErrorCode.InvalidRequest);
  }
  if (from !== undefined && from !== null && typeof from !== 'string')
    throw new HttpError(400, 'from must be a base64 key string', TxManagerErrorCode.InvalidRequest);
  return {
    payload: Uint8Array.from(Buffer.from(payload, 'base64')),
    from: from ?? undefined,
    to: requireTo ? parseKeys(to) : [],
  };
}

/** HTTP status for each typed error: client mistakes are 4xx; every failure to answer is 5xx. */
function statusOf(error: unknown): { status: number; code: string } {
  if (error instanceof HttpError) return { status: error.status, code: error.code };
  if (error instanceof TxManagerError) {
    switch (error.code) {
      case TxManagerErrorCode.InvalidRequest:
      case TxManagerErrorCode.UnknownRecipientKey:
      case TxManagerErrorCode.UnknownSenderKey:
      case TxManagerErrorCode.UnknownLocalKey:
        return { status: 400, code: error.code };
      case TxManagerErrorCode.PayloadTooLarge:
        return { status: 413, code: error.code };
      case TxManagerErrorCode.StoreFull:
        // 507 Insufficient Storage (RFC 4918): the request was fine, this node has no room.
        return { status: 507, code: error.code };
      case TxManagerErrorCode.UnknownPayload:
        return { status: 404, code: error.code };
      case TxManagerErrorCode.RecipientRejected:
        return { status: 502, code: error.code };
      case TxManagerErrorCode.RecipientUnavailable:
      case TxManagerErrorCode.QueueFull:
      case TxManagerErrorCode.Stopped:
        return { status: 503, code: error.code };
      default:
        return { status: 500, code: error.code };
    }
  }
  if (error instanceof EnclaveError) {
    if (error.code === EnclaveErrorCode.InvalidKey || error.code === EnclaveErrorCode.LimitExceeded)
      return { status: 400, code: error.code };
    return { status: 500, code: error.code };
  }
  return { status: 500, code: 'INTERNAL' };
}

function sendError(res: ServerResponse, error: unknown): void {
  const { status, code } = statusOf(error);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // The API binds to the node's own host and serves its operator: the message helps them.
  const message = error instanceof Error ? error.message : String(error);
  if (status === 413) {
    // The rest of the body is drained unread and the connection closed after the answer, so it
    // is never parsed as a next request. Destroying the socket instead could reset the
    // connection before the client reads the 413.
    sendJson(res, status, { error: message, code }, { connection: 'close' });
    res.req.resume();
    return;
  }
  sendJson(res, status, { error: message, code });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res
    .writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
    .end(text);
}
