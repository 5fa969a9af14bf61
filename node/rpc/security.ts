// The JSON-RPC listener's gate: what it checks on every HTTP request before a method runs, in
// this order, each refusal with its own HTTP status and stable JSON-RPC code (node/rpc/errors.ts):
//   1. Host header in the vhosts list               → else 403, -32015 (DNS rebinding: a page on
//      evil.example that re-points its name at 127.0.0.1 still sends Host: evil.example);
//   2. Origin header absent or in corsOrigins       → else 403, -32016 (a browser page may not call);
//      an OPTIONS preflight from a listed origin gets 204 with the CORS headers;
//   3. Content-Type application/json                → else 415, -32017 (text/plain and form posts
//      are "simple" requests a browser sends cross-site without a preflight);
//   4. bearer token valid, when auth is required    → else 401, -32013;
//   5. the token holds the scope of every method    → else 403, -32014.
// GET /health answers before all of this (load balancers probe it without credentials).
//
// TLS (and with a client CA, client certificates) is enforced by the TLS handshake itself:
// a plain-HTTP request to a TLS listener, or a certificate from another CA, never reaches here.
//
// RpcServerSecurity is the resolved, in-memory form (file contents read); loadRpcServerSecurity
// builds it from the config (node/rpc/security-config.ts).

import { readFile } from 'node:fs/promises';
import type http from 'node:http';
import { TokenStore, bearerToken, scopeOf, type RpcScope, type TokenEntry } from './auth.js';
import { RpcErrorCode } from './errors.js';
import {
  defaultRpcSecurity,
  isLoopbackHost,
  type RpcMetricsAccess,
  type RpcSecurityConfig,
} from './security-config.js';

export interface RpcServerSecurity {
  readonly vhosts: readonly string[];
  readonly corsOrigins: readonly string[];
  /** PEM contents. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly clientCa?: Buffer };
  readonly authRequired: boolean;
  /** Present whenever authRequired. */
  readonly tokens?: TokenStore;
  readonly metrics: RpcMetricsAccess;
}

export enum RpcSecurityErrorCode {
  /** The listener would be reachable from the network without authentication. */
  AuthMissing = 'RPC_AUTH_MISSING',
  /** A TLS file cannot be read. */
  TlsFileUnreadable = 'RPC_TLS_FILE_UNREADABLE',
}

export class RpcSecurityError extends Error {
  readonly code: RpcSecurityErrorCode;
  constructor(code: RpcSecurityErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RpcSecurityError';
    this.code = code;
  }
}

/** Reads the TLS material and the tokens file a config names. */
export async function loadRpcServerSecurity(config: RpcSecurityConfig): Promise<RpcServerSecurity> {
  const read = async (path: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new RpcSecurityError(
        RpcSecurityErrorCode.TlsFileUnreadable,
        `cannot read the JSON-RPC TLS ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
        { cause: err },
      );
    }
  };
  const tls = config.tls
    ? {
        cert: await read(config.tls.certFile, 'certificate'),
        key: await read(config.tls.keyFile, 'key'),
        ...(config.tls.clientCaFile ? { clientCa: await read(config.tls.clientCaFile, 'client CA') } : {}),
      }
    : undefined;
  const tokens = config.auth.tokensFile ? await TokenStore.load(config.auth.tokensFile) : undefined;
  return {
    vhosts: config.vhosts,
    corsOrigins: config.corsOrigins,
    ...(tls ? { tls } : {}),
    authRequired: config.auth.required,
    ...(tokens ? { tokens } : {}),
    metrics: config.metrics,
  };
}

/** What a listener on `host` does when given no security settings (loopback: open, anything else: refuses). */
export function defaultServerSecurity(host: string): RpcServerSecurity {
  const d = defaultRpcSecurity(host);
  return { vhosts: d.vhosts, corsOrigins: d.corsOrigins, authRequired: d.auth.required, metrics: d.metrics };
}

/** Throws unless the settings are safe for a listener on `host`: the refusal to start open to the network. */
export function assertSafeListener(host: string, s: RpcServerSecurity): void {
  if (!isLoopbackHost(host) && !s.authRequired)
    throw new RpcSecurityError(
      RpcSecurityErrorCode.AuthMissing,
      `refusing to start: the JSON-RPC listener binds ${host}, which is not a loopback address, without authentication; ` +
        'configure rpc.auth.tokensFile (quorate init --hosts writes one) or bind 127.0.0.1',
    );
  if (s.authRequired && (s.tokens === undefined || s.tokens.size === 0))
    throw new RpcSecurityError(
      RpcSecurityErrorCode.AuthMissing,
      isLoopbackHost(host)
        ? `refusing to start: the JSON-RPC listener on ${host} requires bearer tokens but none are configured; ` +
            'set rpc.auth.tokensFile'
        : `refusing to start: the JSON-RPC listener binds ${host}, which is not a loopback address, so it requires ` +
            'bearer tokens, and none are configured; set rpc.auth.tokensFile (quorate init --hosts writes one) or bind 127.0.0.1',
    );
}

/** A refusal: the HTTP status, the JSON-RPC code and message, extra headers. */
export interface GateRefusal {
  readonly status: number;
  readonly code: RpcErrorCode;
  readonly message: string;
  readonly data?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Host header → the name compared with vhosts (lowercase, port removed, IPv6 kept in brackets). */
export function hostName(header: string | undefined): string | undefined {
  if (header === undefined || header.length === 0 || header.length > 300) return undefined;
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? undefined : h.slice(0, end + 1);
  }
  return h.split(':', 1)[0];
}

/** Checks 1 and 2: Host and Origin. Undefined when the request may go on. */
export function checkHostAndOrigin(req: http.IncomingMessage, s: RpcServerSecurity): GateRefusal | undefined {
  const host = hostName(req.headers.host);
  if (!s.vhosts.includes('*') && (host === undefined || !s.vhosts.includes(host)))
    return {
      status: 403,
      code: RpcErrorCode.HostNotAllowed,
      message: `Host ${JSON.stringify((req.headers.host ?? '').slice(0, 64))} is not allowed; add it to rpc.vhosts`,
    };
  const origin = req.headers.origin;
  if (origin !== undefined && !originAllowed(origin, s))
    return {
      status: 403,
      code: RpcErrorCode.OriginNotAllowed,
      message: `Origin ${JSON.stringify(origin.slice(0, 64))} is not allowed; add it to rpc.corsOrigins`,
    };
  return undefined;
}

function originAllowed(origin: string, s: RpcServerSecurity): boolean {
  if (s.corsOrigins.includes('*')) return true;
  return s.corsOrigins.includes(origin.toLowerCase().replace(/\/$/, ''));
}

/** CORS response headers for an allowed Origin (none without an Origin). */
export function corsHeaders(req: http.IncomingMessage): Record<string, string> {
  const origin = req.headers.origin;
  return origin === undefined ? {} : { 'access-control-allow-origin': origin, vary: 'Origin' };
}

/** Seconds a browser may cache a preflight answer. */
export const CORS_PREFLIGHT_MAX_AGE_S = 600;

/** The answer to an OPTIONS preflight that passed checkHostAndOrigin. */
export function preflightHeaders(req: http.IncomingMessage): Record<string, string> {
  return {
    ...corsHeaders(req),
    'access-control-allow-methods': 'POST, GET, OPTIONS',
    'access-control-allow-headers': 'content-type, authorization',
    'access-control-max-age': String(CORS_PREFLIGHT_MAX_AGE_S),
  };
}

/** Check 3: the body's declared media type. */
export function checkContentType(req: http.IncomingMessage): GateRefusal | undefined {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0].trim().toLowerCase();
  if (type === 'application/json') return undefined;
  return {
    status: 415,
    code: RpcErrorCode.UnsupportedContentType,
    message: `Content-Type must be application/json, got ${JSON.stringify(type.slice(0, 64) || '(none)')}`,
  };
}

/** Check 4: the caller's token. Resolves to its entry, null when auth is off, or a refusal. */
export function authenticate(req: http.IncomingMessage, s: RpcServerSecurity): TokenEntry | null | GateRefusal {
  if (!s.authRequired) return null;
  const header = req.headers.authorization;
  const token = bearerToken(header);
  const entry = token === undefined ? undefined : s.tokens?.verify(token);
  if (entry) return entry;
  const missing = header === undefined;
  return {
    status: 401,
    code: RpcErrorCode.Unauthenticated,
    message: missing
      ? 'authentication required: send Authorization: Bearer <token>'
      : 'the bearer token is not valid for this node',
    headers: {
      'www-authenticate': missing ? 'Bearer realm="quorate"' : 'Bearer realm="quorate", error="invalid_token"',
    },
  };
}

/** Check 5: every method of a parsed body (request or batch) is within the token's scopes. */
export function checkScopes(body: unknown, entry: TokenEntry | null): GateRefusal | undefined {
  if (entry === null) return undefined;
  const requests = Array.isArray(body) ? body : [body];
  const missing = new Set<RpcScope>();
  const methods: string[] = [];
  for (const r of requests) {
    const method = typeof r === 'object' && r !== null ? (r as { method?: unknown }).method : undefined;
    // Not a request at all: the server answers it -32600 as usual; it runs nothing.
    if (typeof method !== 'string') continue;
    const scope = scopeOf(method);
    if (!entry.scopes.has(scope)) {
      missing.add(scope);
      if (methods.length < 8) methods.push(method.slice(0, 64));
    }
  }
  if (missing.size === 0) return undefined;
  return {
    status: 403,
    code: RpcErrorCode.ScopeMissing,
    message: `token "${entry.name}" lacks the scope(s) ${[...missing].join(', ')} needed by ${methods.join(', ')}`,
    data: { missing: [...missing], methods },
  };
}
