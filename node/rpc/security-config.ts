// The JSON-RPC listener's security settings in config.json (`rpc.vhosts`, `rpc.corsOrigins`,
// `rpc.tls`, `rpc.auth`, `rpc.metrics`): their schema, defaults and validation, and the one
// decision "must this listener authenticate its callers?".
//
//   "rpc": {
//     "host": "10.0.0.1", "port": 8545,
//     "vhosts": ["node-1.example"],            // Host headers accepted, besides the defaults
//     "corsOrigins": ["https://app.example"],  // browser origins allowed (default: none)
//     "tls": { "certFile": "tls/rpc.crt", "keyFile": "tls/rpc.key", "clientCaFile": "tls/client-ca.crt" },
//     "auth": { "tokensFile": "rpc-tokens.json" },
//     "metrics": "auth"                        // GET /metrics: "open" | "auth" | "off"
//   }
//
// The rule: a listener bound to anything but a loopback address requires a bearer token
// (node/rpc/auth.ts). Such a listener without `auth.tokensFile` is a config error, so a node
// never starts open to the network by omission; `auth.required: true` turns tokens on for a
// loopback listener too, and `required: false` is refused on a non-loopback one.
//
// Kept apart from node/config.ts so that file only hooks it in: this module owns its defaults.
// It reports errors through the caller's `fail(field, message)`, so it needs nothing from
// config.ts (no import cycle) and every message names the dotted field.

import { isIP } from 'node:net';

/** The fields this module owns inside config.json's `rpc` object. */
export const RPC_SECURITY_FIELDS = ['vhosts', 'corsOrigins', 'tls', 'auth', 'metrics'] as const;

/** Entries in `rpc.vhosts` / `rpc.corsOrigins`. */
export const MAX_RPC_VHOSTS = 64;
export const MAX_RPC_CORS_ORIGINS = 64;

export type RpcMetricsAccess = 'open' | 'auth' | 'off';

export interface RpcTlsConfig {
  /** PEM certificate chain the listener presents. */
  readonly certFile: string;
  /** PEM private key of that certificate. */
  readonly keyFile: string;
  /** When set, every client must present a certificate issued by this CA (PEM), checked in the TLS handshake. */
  readonly clientCaFile?: string;
}

export interface RpcSecurityConfig {
  /**
   * Host header names accepted (lowercase, without port; IPv6 in brackets). `*` accepts any.
   * Always includes localhost, 127.0.0.1, [::1] and the configured host.
   */
  readonly vhosts: readonly string[];
  /** Origins (scheme://host[:port]) a browser may call from; `*` allows any. Default: none. */
  readonly corsOrigins: readonly string[];
  readonly tls?: RpcTlsConfig;
  /** Bearer tokens: required is the decision of authRequired(); tokensFile holds their hashes. */
  readonly auth: { readonly required: boolean; readonly tokensFile?: string };
  /** GET /metrics: open to all, only with a valid token, or not served. */
  readonly metrics: RpcMetricsAccess;
}

/** True for an address that only this machine can reach: 127.0.0.0/8, ::1, ::ffff:127.x, `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h) || h === '0:0:0:0:0:0:0:1';
  // Any other name may resolve to anything: treat it as reachable from the network.
  return false;
}

/**
 * Must callers of a listener on `host` authenticate? Yes when it binds a non-loopback address
 * (a wildcard such as 0.0.0.0 included), when tokens are configured, or when asked explicitly.
 */
export function authRequired(host: string, auth: { required?: boolean; tokensFile?: string } = {}): boolean {
  return !isLoopbackHost(host) || auth.tokensFile !== undefined || auth.required === true;
}

/** The Host header names every listener accepts, plus its own configured host. */
export function defaultVhosts(host: string): string[] {
  const own = isIP(host) === 6 ? `[${host}]` : host.toLowerCase();
  return [...new Set(['localhost', '127.0.0.1', '[::1]', own])];
}

/** The defaults for a listener on `host` with nothing configured (what RpcServer uses without a config). */
export function defaultRpcSecurity(host: string): RpcSecurityConfig {
  const required = authRequired(host);
  return {
    vhosts: defaultVhosts(host),
    corsOrigins: [],
    auth: { required },
    metrics: required ? 'auth' : 'open',
  };
}

export interface SecurityFieldContext {
  /** The configured rpc.host. */
  readonly host: string;
  /** Throws the config's typed error for `field`. */
  fail(field: string, message: string): never;
  /** Resolves a path field relative to the config file (and validates it is a non-empty string). */
  path(value: unknown, field: string): string;
}

/** Parses the security fields of config.json's `rpc` object (the other fields are config.ts's). */
export function parseRpcSecurityConfig(rpc: Record<string, unknown>, ctx: SecurityFieldContext): RpcSecurityConfig {
  const list = (v: unknown, field: string, max: number, check: (s: string, f: string) => string): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) ctx.fail(field, 'must be an array of strings');
    if (v.length > max) ctx.fail(field, `has ${v.length} entries, over the limit of ${max}`);
    return v.map((s, i) => {
      if (typeof s !== 'string' || s.length === 0 || s.length > 253)
        ctx.fail(`${field}[${i}]`, 'must be a non-empty string of at most 253 characters');
      return check(s, `${field}[${i}]`);
    });
  };
  const vhosts = list(rpc.vhosts, 'rpc.vhosts', MAX_RPC_VHOSTS, (s, f) => {
    if (/[\s/,:]/.test(s.replace(/^\[[0-9a-fA-F:.]+\]$/, 'x')))
      ctx.fail(f, `must be a host name without port or scheme ("node-1.example", "[::1]"), got "${s}"`);
    return s.toLowerCase();
  });
  const corsOrigins = list(rpc.corsOrigins, 'rpc.corsOrigins', MAX_RPC_CORS_ORIGINS, (s, f) => {
    if (s === '*') return s;
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      ctx.fail(f, `must be an origin such as "https://app.example" or "*", got "${s}"`);
    }
    if (u.origin === 'null' || u.origin !== s.replace(/\/$/, ''))
      ctx.fail(f, `must be an origin (scheme://host[:port], no path), got "${s}"`);
    return u.origin;
  });

  let tls: RpcTlsConfig | undefined;
  if (rpc.tls !== undefined) {
    const t = objectOf(rpc.tls, 'rpc.tls', ['certFile', 'keyFile', 'clientCaFile'], ctx);
    tls = {
      certFile: ctx.path(t.certFile, 'rpc.tls.certFile'),
      keyFile: ctx.path(t.keyFile, 'rpc.tls.keyFile'),
      ...(t.clientCaFile === undefined ? {} : { clientCaFile: ctx.path(t.clientCaFile, 'rpc.tls.clientCaFile') }),
    };
  }

  const a = rpc.auth === undefined ? {} : objectOf(rpc.auth, 'rpc.auth', ['tokensFile', 'required'], ctx);
  if (a.required !== undefined && typeof a.required !== 'boolean') ctx.fail('rpc.auth.required', 'must be a boolean');
  const tokensFile = a.tokensFile === undefined ? undefined : ctx.path(a.tokensFile, 'rpc.auth.tokensFile');
  if (a.required === false && !isLoopbackHost(ctx.host))
    ctx.fail(
      'rpc.auth.required',
      `cannot be false: rpc.host ${ctx.host} is not a loopback address, and such a listener always requires tokens`,
    );
  const required = authRequired(ctx.host, { required: a.required as boolean | undefined, tokensFile });
  if (required && tokensFile === undefined)
    ctx.fail(
      'rpc.auth.tokensFile',
      `is required: rpc.host ${ctx.host} is not a loopback address, so the JSON-RPC listener accepts only callers ` +
        'with a bearer token. Point rpc.auth.tokensFile at a tokens file (`quorate init --hosts` writes one), ' +
        'or bind rpc.host to 127.0.0.1',
    );

  const metrics = rpc.metrics === undefined ? (required ? 'auth' : 'open') : rpc.metrics;
  if (metrics !== 'open' && metrics !== 'auth' && metrics !== 'off')
    ctx.fail('rpc.metrics', `must be "open", "auth" or "off", got ${JSON.stringify(metrics)}`);
  if (metrics === 'auth' && !required)
    ctx.fail('rpc.metrics', '"auth" needs tokens: set rpc.auth.tokensFile, or choose "open" or "off"');

  return {
    vhosts: [...new Set([...defaultVhosts(ctx.host), ...vhosts])],
    corsOrigins,
    ...(tls ? { tls } : {}),
    auth: tokensFile === undefined ? { required } : { required, tokensFile },
    metrics,
  };
}

function objectOf(
  v: unknown,
  field: string,
  allowed: readonly string[],
  ctx: SecurityFieldContext,
): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) ctx.fail(field, 'must be an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!allowed.includes(k)) ctx.fail(`${field}.${k}`, `unknown field (allowed here: ${allowed.join(', ')})`);
  return o;
}

/** Entries in `p2p.allowedCidrs`. */
export const MAX_P2P_ALLOWED_CIDRS = 256;

/**
 * `p2p.allowedCidrs` (optional): the networks inbound p2p connections may come from, checked by
 * the libp2p connection gater before the Noise handshake (p2p/libp2p-transport.ts). Parsed here
 * because it is the same kind of rule as the RPC lists; absent means any address may connect
 * (the Noise handshake and the membership check still apply).
 */
export function parseAllowedCidrs(v: unknown, fail: (field: string, message: string) => never): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) fail('p2p.allowedCidrs', 'must be an array of CIDRs such as "10.0.0.0/8"');
  if (v.length > MAX_P2P_ALLOWED_CIDRS)
    fail('p2p.allowedCidrs', `has ${v.length} entries, over the limit of ${MAX_P2P_ALLOWED_CIDRS}`);
  return v.map((c, i) => {
    const parsed = typeof c === 'string' ? parseCidr(c) : undefined;
    if (parsed === undefined)
      fail(`p2p.allowedCidrs[${i}]`, `must be a CIDR such as "10.0.0.0/8" or "fd00::/8", got ${JSON.stringify(c)}`);
    return c as string;
  });
}

/** "10.0.0.0/8" → its parts, or undefined when it is not a CIDR. */
export function parseCidr(cidr: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) return undefined;
  const family = isIP(m[1]);
  const prefix = Number(m[2]);
  if (family === 0 || prefix > (family === 4 ? 32 : 128)) return undefined;
  return { address: m[1], prefix, family: family === 4 ? 'ipv4' : 'ipv6' };
}
