// Bearer-token authentication and scopes of the JSON-RPC listener: the tokens file's format, how
// a presented token is checked, and which scope each method needs.
//
// Tokens file (`rpc.auth.tokensFile`, JSON, written by `quorate init --hosts`):
//   { "tokens": [ { "name": "operator", "sha256": "<64 hex>", "scopes": ["eth","net","quorate","raft","admin"] },
//                 { "name": "reader",   "sha256": "<64 hex>", "scopes": ["eth","net","quorate","raft"] } ] }
// Only the SHA-256 of each token is stored. A token is 32 random bytes (base64url, prefix
// `qrt_`), so a plain hash is enough: there is nothing to brute-force that a slow KDF would
// protect, and checking a request stays one hash. The presented token's hash is compared with
// every entry with crypto.timingSafeEqual, all entries every time, so the time taken says
// nothing about which bytes matched.
//
// Scopes (METHOD_SCOPES): a method needs the scope named by its namespace (`eth_*` → "eth",
// `net_*` → "net", `quorate_*` → "quorate", `raft_*` → "raft"), except the methods that change
// membership, sign with the node's own keys, or return private plaintext, which need "admin".
// Submitting a client-signed transaction (quorate_sendRawTransaction) is in "quorate": its
// signature, not the token, is what authorises it. A batch needs the scope of every method in it.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export const RPC_SCOPES = ['eth', 'net', 'quorate', 'raft', 'admin'] as const;
export type RpcScope = (typeof RPC_SCOPES)[number];

/** Methods that need "admin" whatever their namespace: membership, node-signed sends, private plaintext. */
export const ADMIN_METHODS: ReadonlySet<string> = new Set([
  'raft_addPeer',
  'raft_addLearner',
  'raft_promoteToPeer',
  'raft_removePeer',
  'raft_transferLeadership',
  'quorate_sendTransaction',
  'eth_getQuorumPayload',
  'quorate_getPrivateValue',
]);

/** Entries in one tokens file. */
export const MAX_RPC_TOKENS = 256;
/** A tokens file larger than this is not one. */
export const MAX_TOKENS_FILE_BYTES = 1024 * 1024;
/** A presented Authorization header longer than this is refused unread (tokens are ~47 characters). */
export const MAX_AUTHORIZATION_HEADER_CHARS = 512;
/** Random bytes in a generated token. */
export const TOKEN_ENTROPY_BYTES = 32;
export const TOKEN_PREFIX = 'qrt_';

/**
 * The scope `method` needs. A name outside every namespace needs "admin", so no token of lesser
 * scope learns anything from probing names (an unknown name then answers -32601 to an admin only).
 */
export function scopeOf(method: string): RpcScope {
  if (ADMIN_METHODS.has(method)) return 'admin';
  const ns = method.split('_', 1)[0];
  return ns === 'eth' || ns === 'net' || ns === 'quorate' || ns === 'raft' ? ns : 'admin';
}

export interface TokenEntry {
  readonly name: string;
  /** SHA-256 of the token, 32 bytes. */
  readonly sha256: Buffer;
  readonly scopes: ReadonlySet<RpcScope>;
}

export enum RpcAuthErrorCode {
  /** The tokens file cannot be read or is not valid. */
  TokensFileInvalid = 'RPC_TOKENS_FILE_INVALID',
}

export class RpcAuthError extends Error {
  readonly code: RpcAuthErrorCode;
  constructor(code: RpcAuthErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RpcAuthError';
    this.code = code;
  }
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** A new random token (what the operator keeps) and its hex hash (what the node keeps). */
export function generateToken(): { token: string; sha256Hex: string } {
  const token = TOKEN_PREFIX + randomBytes(TOKEN_ENTROPY_BYTES).toString('base64url');
  return { token, sha256Hex: hashToken(token).toString('hex') };
}

/** The tokens file's JSON for these entries (what `quorate init` writes). */
export function tokensFileJson(entries: readonly { name: string; sha256Hex: string; scopes: readonly RpcScope[] }[]) {
  return { tokens: entries.map((e) => ({ name: e.name, sha256: e.sha256Hex, scopes: [...e.scopes] })) };
}

/** The set of valid tokens of one listener. */
export class TokenStore {
  private constructor(private readonly entries: readonly TokenEntry[]) {}

  static fromEntries(entries: readonly TokenEntry[]): TokenStore {
    return new TokenStore(entries);
  }

  /** Validates a parsed tokens file; `where` names it in messages. */
  static parse(json: unknown, where: string): TokenStore {
    const bad = (message: string): never => {
      throw new RpcAuthError(RpcAuthErrorCode.TokensFileInvalid, `${where}: ${message}`);
    };
    if (typeof json !== 'object' || json === null || !Array.isArray((json as { tokens?: unknown }).tokens))
      bad('must be an object { "tokens": [ { "name", "sha256", "scopes" } ] }');
    const list = (json as { tokens: unknown[] }).tokens;
    if (list.length === 0) bad('lists no tokens: nobody could call this node');
    if (list.length > MAX_RPC_TOKENS) bad(`has ${list.length} tokens, over the limit of ${MAX_RPC_TOKENS}`);
    const seen = new Set<string>();
    const entries = list.map((t, i): TokenEntry => {
      const e = t as { name?: unknown; sha256?: unknown; scopes?: unknown };
      if (typeof e !== 'object' || e === null) bad(`tokens[${i}] must be an object`);
      if (typeof e.name !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(e.name))
        bad(`tokens[${i}].name must be 1-64 letters, digits, ".", "_" or "-"`);
      if (typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256))
        bad(`tokens[${i}].sha256 must be 64 lowercase hex characters (the SHA-256 of the token)`);
      const sha = e.sha256 as string;
      if (seen.has(sha)) bad(`tokens[${i}]: the same token hash appears twice`);
      seen.add(sha);
      if (!Array.isArray(e.scopes) || e.scopes.length === 0) bad(`tokens[${i}].scopes must be a non-empty array`);
      const scopes = (e.scopes as unknown[]).map((s) => {
        if (!RPC_SCOPES.includes(s as RpcScope))
          bad(`tokens[${i}].scopes: unknown scope ${JSON.stringify(s)} (known: ${RPC_SCOPES.join(', ')})`);
        return s as RpcScope;
      });
      return { name: e.name as string, sha256: Buffer.from(sha, 'hex'), scopes: new Set(scopes) };
    });
    return new TokenStore(entries);
  }

  static async load(path: string): Promise<TokenStore> {
    let text: string;
    try {
      const buf = await readFile(path);
      if (buf.length > MAX_TOKENS_FILE_BYTES)
        throw new RpcAuthError(
          RpcAuthErrorCode.TokensFileInvalid,
          `${path}: ${buf.length} bytes, over the limit of ${MAX_TOKENS_FILE_BYTES}`,
        );
      text = buf.toString('utf8');
    } catch (err) {
      if (err instanceof RpcAuthError) throw err;
      throw new RpcAuthError(
        RpcAuthErrorCode.TokensFileInvalid,
        `${path}: cannot read the tokens file (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
        { cause: err },
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new RpcAuthError(RpcAuthErrorCode.TokensFileInvalid, `${path}: not valid JSON`, { cause: err });
    }
    return TokenStore.parse(json, path);
  }

  get size(): number {
    return this.entries.length;
  }

  /** The entry whose token this is, or undefined. Compares with every entry in constant time. */
  verify(token: string): TokenEntry | undefined {
    const presented = hashToken(token);
    let found: TokenEntry | undefined;
    for (const e of this.entries) if (timingSafeEqual(presented, e.sha256) && found === undefined) found = e;
    return found;
  }
}

/** The token of an `Authorization: Bearer <token>` header, or undefined when absent or of another kind. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined || header.length > MAX_AUTHORIZATION_HEADER_CHARS) return undefined;
  const m = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)[ ]*$/i.exec(header);
  return m ? m[1] : undefined;
}
