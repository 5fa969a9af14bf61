// Who may reach the transaction manager's client API (docs/interface.md, "Security"). The API hands
// out every private payload by its on-chain hash and sends as this organisation, and no other
// node ever calls it (TM-to-TM traffic runs over the members-only p2p network), so:
//  - the local listener binds a loopback address only (127.0.0.0/8, ::1, "localhost"); a
//    routable `tm.host` is refused at start with a message saying what to do;
//  - a listener for remote clients exists only when configured explicitly (`tm.remoteClients`),
//    and then only with TLS and bearer tokens: the server refuses to start otherwise. Tokens are
//    configured as SHA-256 hashes (hex), never in the clear. `/upcheck` stays open.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { TxManagerError, TxManagerErrorCode } from './errors.js';

/** Most token hashes one listener accepts (a handful of client applications). */
export const MAX_REMOTE_CLIENT_TOKENS = 256;
/** Largest tokens file read (one 64-character hash per line). */
export const MAX_TOKENS_FILE_BYTES = 64 * 1024;

export interface TmRemoteClientsConfig {
  /** Address the remote-client listener binds. */
  readonly host: string;
  readonly port: number;
  /** PEM certificate and key files. Required: the listener refuses to start without them. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** SHA-256 (hex) of each accepted bearer token. */
  readonly tokenHashes?: readonly string[];
  /** A file of token hashes, one per line (`#` comments allowed). */
  readonly tokensFile?: string;
}

/** The remote listener's material, read and checked: what the server needs to start. */
export interface TmRemoteClientsMaterial {
  readonly host: string;
  readonly port: number;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly tokenHashes: readonly Buffer[];
}

/** True for 127.0.0.0/8, ::1 (and its IPv4-mapped form) and "localhost". */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./i.test(h);
  return false;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

function invalid(field: string, why: string): TxManagerError {
  return new TxManagerError(TxManagerErrorCode.InvalidConfig, `${field} ${why}`, { field });
}

/** Validates the shape of `tm.remoteClients` from a config file; relative paths resolve against `baseDir`. */
export function parseTmRemoteClients(
  value: unknown,
  baseDir: string,
  field = 'tm.remoteClients',
): TmRemoteClientsConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalid(field, 'must be an object { host, port, tls: { certFile, keyFile }, tokenHashes | tokensFile }');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!['host', 'port', 'tls', 'tokenHashes', 'tokensFile'].includes(k))
      throw invalid(`${field}.${k}`, 'is not a known field');
  if (typeof o.host !== 'string' || o.host.length === 0 || /[\s/]/.test(o.host))
    throw invalid(`${field}.host`, 'must be a host name or IP address');
  if (!Number.isInteger(o.port) || (o.port as number) < 0 || (o.port as number) > 65535)
    throw invalid(`${field}.port`, 'must be an integer 0..65535');
  const path = (v: unknown, name: string): string => {
    if (typeof v !== 'string' || v.length === 0) throw invalid(name, 'must be a file path');
    return isAbsolute(v) ? v : resolve(baseDir, v);
  };
  let tls: TmRemoteClientsConfig['tls'];
  if (o.tls !== undefined) {
    if (o.tls === null || typeof o.tls !== 'object' || Array.isArray(o.tls))
      throw invalid(`${field}.tls`, 'must be an object { certFile, keyFile }');
    const t = o.tls as Record<string, unknown>;
    tls = { certFile: path(t.certFile, `${field}.tls.certFile`), keyFile: path(t.keyFile, `${field}.tls.keyFile`) };
  }
  let tokenHashes: string[] | undefined;
  if (o.tokenHashes !== undefined) {
    if (!Array.isArray(o.tokenHashes) || o.tokenHashes.length > MAX_REMOTE_CLIENT_TOKENS)
      throw invalid(
        `${field}.tokenHashes`,
        `must be an array of at most ${MAX_REMOTE_CLIENT_TOKENS} SHA-256 hex strings`,
      );
    tokenHashes = o.tokenHashes.map((h, i) => {
      if (typeof h !== 'string' || !SHA256_HEX.test(h))
        throw invalid(
          `${field}.tokenHashes[${i}]`,
          'must be a SHA-256 hash in lowercase hex (64 characters), not a token',
        );
      return h;
    });
  }
  return {
    host: o.host,
    port: o.port as number,
    ...(tls === undefined ? {} : { tls }),
    ...(tokenHashes === undefined ? {} : { tokenHashes }),
    ...(o.tokensFile === undefined ? {} : { tokensFile: path(o.tokensFile, `${field}.tokensFile`) }),
  };
}

function insecure(message: string): TxManagerError {
  return new TxManagerError(TxManagerErrorCode.InsecureListener, message);
}

/**
 * Checks the local listener's host: loopback only. A routable address would give anyone who
 * reaches it every payload this node is a party to.
 */
export function checkLocalListenerHost(host: string): void {
  if (!isLoopbackHost(host)) {
    throw insecure(
      `refusing to start the transaction manager's client API on ${host}: it serves local clients only and binds a loopback address (set tm.host to 127.0.0.1). ` +
        'For clients on other hosts configure tm.remoteClients { host, port, tls: { certFile, keyFile }, tokenHashes | tokensFile }',
    );
  }
}

/** Reads the TLS material and token hashes; refuses (InsecureListener) without TLS or without a token. */
export async function loadRemoteClientsMaterial(config: TmRemoteClientsConfig): Promise<TmRemoteClientsMaterial> {
  if (config.tls === undefined)
    throw insecure(
      'refusing to start tm.remoteClients without TLS: set tm.remoteClients.tls { certFile, keyFile } (remote clients would otherwise send payloads and tokens in the clear)',
    );
  const hashes = [...(config.tokenHashes ?? [])];
  const read = async (path: string, what: string, maxBytes?: number): Promise<Buffer> => {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (error) {
      throw new TxManagerError(
        TxManagerErrorCode.InvalidConfig,
        `${what} ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
        { path },
        { cause: error },
      );
    }
    if (maxBytes !== undefined && bytes.length > maxBytes)
      throw new TxManagerError(TxManagerErrorCode.InvalidConfig, `${what} ${path} is over ${maxBytes} bytes`, { path });
    return bytes;
  };
  if (config.tokensFile !== undefined) {
    const text = (await read(config.tokensFile, 'tm.remoteClients.tokensFile', MAX_TOKENS_FILE_BYTES)).toString('utf8');
    for (const line of text.split(/\r?\n/)) {
      const h = line.replace(/#.*$/, '').trim();
      if (h === '') continue;
      if (!SHA256_HEX.test(h))
        throw new TxManagerError(
          TxManagerErrorCode.InvalidConfig,
          `tm.remoteClients.tokensFile ${config.tokensFile} holds a line that is not a SHA-256 hex hash (tokens are stored hashed)`,
        );
      hashes.push(h);
    }
  }
  if (hashes.length === 0)
    throw insecure(
      'refusing to start tm.remoteClients without a bearer token: set tm.remoteClients.tokenHashes or tokensFile (SHA-256 hex of each token)',
    );
  if (hashes.length > MAX_REMOTE_CLIENT_TOKENS)
    throw new TxManagerError(
      TxManagerErrorCode.InvalidConfig,
      `tm.remoteClients names ${hashes.length} tokens, limit MAX_REMOTE_CLIENT_TOKENS=${MAX_REMOTE_CLIENT_TOKENS}`,
    );
  return {
    host: config.host,
    port: config.port,
    cert: await read(config.tls.certFile, 'tm.remoteClients.tls.certFile'),
    key: await read(config.tls.keyFile, 'tm.remoteClients.tls.keyFile'),
    tokenHashes: hashes.map((h) => Buffer.from(h, 'hex')),
  };
}

/** SHA-256 (hex) of a token: what a config stores. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** True when `authorization` is `Bearer <token>` for one of the accepted hashes (constant time per hash). */
export function bearerTokenAccepted(authorization: string | undefined, tokenHashes: readonly Buffer[]): boolean {
  if (authorization === undefined) return false;
  const m = /^Bearer ([!-~]{1,512})$/.exec(authorization);
  if (m === null) return false;
  const presented = createHash('sha256').update(m[1], 'utf8').digest();
  let ok = false;
  for (const h of tokenHashes) ok = timingSafeEqual(presented, h) || ok;
  return ok;
}
