// Strict parsing of JSON-RPC parameters. Each parser either returns a typed value or throws
// -32602 with a message naming the parameter, what was expected, and what arrived — so that a
// client author can fix the call from the message alone.
//
// The limits here are the RPC edge's outer bounds: they reject garbage before it reaches the
// node. The application and the pool enforce their own (possibly tighter) limits.

import { multiaddr } from '@multiformats/multiaddr';
import { invalidParams } from './errors.js';
import type { BlockTag, Hex, NewMemberInfo, Op, ReadTag, SendTransactionRequest } from './backend.js';

export const PARAM_LIMITS = {
  /** UTF-8 bytes of a state key. */
  maxKeyBytes: 1024,
  /** UTF-8 bytes of a state value. */
  maxValueBytes: 64 * 1024,
  /** Ops in one transaction. */
  maxOpsPerTransaction: 1024,
  /** Parties in one privateFor list. */
  maxPrivateForKeys: 64,
  /** Bytes of a client-signed, encoded transaction. */
  maxRawTransactionBytes: 1024 * 1024,
  /** Decimal digits of an amount: 78 covers 2^256, more is certainly a mistake. */
  maxAmountDigits: 78,
  /** Characters of a multiaddr or URL. */
  maxAddressChars: 1024,
  /** Enclave public keys of one new member. */
  maxEnclaveKeysPerMember: 16,
} as const;

const HEX_QUANTITY = /^0x(0|[1-9a-f][0-9a-f]*)$/i;
const HEX_DATA = /^0x([0-9a-f]{2})*$/i;
const ADDRESS = /^0x[0-9a-f]{40}$/i;
const HASH32 = /^0x[0-9a-f]{64}$/i;
const HASH64 = /^0x[0-9a-f]{128}$/i;
const DECIMAL = /^(0|[1-9][0-9]*)$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return value.length > 80 ? `"${value.slice(0, 77)}..." (${value.length} chars)` : JSON.stringify(value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/**
 * Positional parameters. `params` omitted means none. By-name (object) params are refused:
 * quorate, like Ethereum clients, uses positional parameters only.
 */
export function positional(params: unknown, min: number, max: number, usage: string): readonly unknown[] {
  if (params === undefined) params = [];
  if (!Array.isArray(params)) throw invalidParams(`params must be an array of positional parameters: ${usage}`);
  if (params.length < min || params.length > max) {
    const expected = min === max ? `${min}` : `${min} to ${max}`;
    throw invalidParams(`expected ${expected} parameter(s), got ${params.length}: ${usage}`);
  }
  return params;
}

export function parseQuantity(value: unknown, name: string): number {
  if (typeof value !== 'string' || !HEX_QUANTITY.test(value)) {
    throw invalidParams(
      `${name} must be a 0x-hex quantity without leading zeros (e.g. "0x1a"), got ${describe(value)}`,
    );
  }
  const n = Number.parseInt(value.slice(2), 16);
  if (!Number.isSafeInteger(n)) throw invalidParams(`${name} ${value} is too large (max 2^53-1)`);
  return n;
}

export function parseBlockTag(value: unknown, name = 'block tag'): BlockTag {
  if (value === 'latest' || value === 'earliest') return value;
  if (value === 'pending' || value === 'safe' || value === 'finalized') {
    // Raft blocks are final once committed: these Ethereum tags all mean the head.
    return 'latest';
  }
  if (typeof value === 'string' && value.startsWith('0x')) return parseQuantity(value, name);
  throw invalidParams(`${name} must be "latest", "earliest" or a 0x-hex block number, got ${describe(value)}`);
}

export function parseReadTag(value: unknown, name = 'block tag'): ReadTag {
  if (value === 'linearizable') return value;
  if (typeof value === 'string' && value.startsWith('0x')) return parseQuantity(value, name);
  if (value === 'latest' || value === 'earliest' || value === 'pending' || value === 'safe' || value === 'finalized')
    return parseBlockTag(value, name);
  throw invalidParams(
    `${name} must be "latest", "earliest", "linearizable" or a 0x-hex block number, got ${describe(value)}`,
  );
}

export function parseAddress(value: unknown, name: string): Hex {
  if (typeof value !== 'string' || !ADDRESS.test(value)) {
    throw invalidParams(`${name} must be a 20-byte address as 0x-hex (40 hex digits), got ${describe(value)}`);
  }
  return value.toLowerCase();
}

export function parseHash32(value: unknown, name: string): Hex {
  if (typeof value !== 'string' || !HASH32.test(value)) {
    throw invalidParams(`${name} must be a 32-byte hash as 0x-hex (64 hex digits), got ${describe(value)}`);
  }
  return value.toLowerCase();
}

export function parseHash64(value: unknown, name: string): Hex {
  if (typeof value !== 'string' || !HASH64.test(value)) {
    throw invalidParams(`${name} must be a 64-byte payload hash as 0x-hex (128 hex digits), got ${describe(value)}`);
  }
  return value.toLowerCase();
}

export function parseHexData(value: unknown, name: string, maxBytes: number): Uint8Array {
  if (typeof value !== 'string' || !HEX_DATA.test(value)) {
    throw invalidParams(`${name} must be 0x-hex bytes (an even number of hex digits), got ${describe(value)}`);
  }
  const bytes = (value.length - 2) / 2;
  if (bytes === 0) throw invalidParams(`${name} is empty`);
  if (bytes > maxBytes) throw invalidParams(`${name} is ${bytes} bytes, over the limit of ${maxBytes}`);
  return Uint8Array.from(Buffer.from(value.slice(2), 'hex'));
}

export function parseBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidParams(`${name} must be true or false, got ${describe(value)}`);
  return value;
}

export function parseRaftId(value: unknown, name = 'raftId'): number {
  // Accept a JSON number (GoQuorum's raft_* take plain integers) or a 0x-hex quantity.
  const n = typeof value === 'string' ? parseQuantity(value, name) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
    throw invalidParams(`${name} must be a positive integer, got ${describe(value)}`);
  }
  return n;
}

export function parseString(value: unknown, name: string, maxBytes: number, allowEmpty = true): string {
  if (typeof value !== 'string') throw invalidParams(`${name} must be a string, got ${describe(value)}`);
  if (!allowEmpty && value.length === 0) throw invalidParams(`${name} must not be empty`);
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > maxBytes) throw invalidParams(`${name} is ${bytes} bytes, over the limit of ${maxBytes}`);
  return value;
}

export function parseAmount(value: unknown, name: string): string {
  if (typeof value !== 'string' || !DECIMAL.test(value)) {
    throw invalidParams(
      `${name} must be a decimal string of an unsigned integer without leading zeros (e.g. "100"), got ${describe(value)}`,
    );
  }
  if (value.length > PARAM_LIMITS.maxAmountDigits)
    throw invalidParams(`${name} has ${value.length} digits, over the limit of ${PARAM_LIMITS.maxAmountDigits}`);
  return value;
}

/** A base64 enclave public key (32 bytes: X25519). */
export function parseEnclaveKey(value: unknown, name: string): string {
  if (
    typeof value !== 'string' ||
    value.length !== 44 ||
    !BASE64.test(value) ||
    Buffer.from(value, 'base64').length !== 32
  ) {
    throw invalidParams(
      `${name} must be a 32-byte enclave public key in base64 (44 characters), got ${describe(value)}`,
    );
  }
  return value;
}

export function parseP2pAddress(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > PARAM_LIMITS.maxAddressChars) {
    throw invalidParams(`${name} must be a libp2p multiaddr string ending in /p2p/<peerId>, got ${describe(value)}`);
  }
  let peerId: string | null | undefined;
  try {
    const ma = multiaddr(value);
    peerId = ma.getComponents().findLast((c) => c.name === 'p2p')?.value;
  } catch {
    throw invalidParams(`${name} is not a valid multiaddr: ${describe(value)}`);
  }
  if (!peerId)
    throw invalidParams(
      `${name} must end in /p2p/<peerId> so the node can authenticate the new member, got ${describe(value)}`,
    );
  return value;
}

export function parseHttpUrl(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length > PARAM_LIMITS.maxAddressChars)
    throw invalidParams(`${name} must be an http(s) URL, got ${describe(value)}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidParams(`${name} must be an http(s) URL, got ${describe(value)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw invalidParams(`${name} must be an http(s) URL, got ${describe(value)}`);
  return value;
}

function plainObject(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalidParams(`${name} must be an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}

function onlyFields(obj: Record<string, unknown>, allowed: readonly string[], name: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k))
      throw invalidParams(`${name} has an unknown field "${k}" (allowed: ${allowed.join(', ')})`);
  }
}

export function parseOp(value: unknown, name: string): Op {
  const o = plainObject(value, name);
  const key = (): string => parseString(o.key, `${name}.key`, PARAM_LIMITS.maxKeyBytes, false);
  const val = (): string => parseString(o.value, `${name}.value`, PARAM_LIMITS.maxValueBytes);
  switch (o.type) {
    case 'transfer':
      onlyFields(o, ['type', 'to', 'amount'], name);
      return {
        type: 'transfer',
        to: parseAddress(o.to, `${name}.to`),
        amount: parseAmount(o.amount, `${name}.amount`),
      };
    case 'put':
      onlyFields(o, ['type', 'key', 'value'], name);
      return { type: 'put', key: key(), value: val() };
    case 'delete':
      onlyFields(o, ['type', 'key'], name);
      return { type: 'delete', key: key() };
    case 'cas': {
      onlyFields(o, ['type', 'key', 'expect', 'value'], name);
      if (!('expect' in o)) throw invalidParams(`${name}.expect is required (a string, or null for "absent")`);
      const expect = o.expect === null ? null : parseString(o.expect, `${name}.expect`, PARAM_LIMITS.maxValueBytes);
      return { type: 'cas', key: key(), expect, value: val() };
    }
    case 'append':
      onlyFields(o, ['type', 'key', 'value'], name);
      return { type: 'append', key: key(), value: val() };
    default:
      throw invalidParams(`${name}.type must be one of transfer, put, delete, cas, append, got ${describe(o.type)}`);
  }
}

export function parseSendTransaction(value: unknown, name: string): SendTransactionRequest {
  const o = plainObject(value, name);
  onlyFields(o, ['from', 'ops', 'privateFor'], name);
  const from = parseAddress(o.from, `${name}.from`);
  if (!Array.isArray(o.ops)) throw invalidParams(`${name}.ops must be an array of ops, got ${describe(o.ops)}`);
  if (o.ops.length === 0) throw invalidParams(`${name}.ops must hold at least one op`);
  if (o.ops.length > PARAM_LIMITS.maxOpsPerTransaction) {
    throw invalidParams(`${name}.ops has ${o.ops.length} ops, over the limit of ${PARAM_LIMITS.maxOpsPerTransaction}`);
  }
  const ops = o.ops.map((op, i) => parseOp(op, `${name}.ops[${i}]`));
  if (o.privateFor === undefined) return { from, ops };
  if (!Array.isArray(o.privateFor))
    throw invalidParams(
      `${name}.privateFor must be an array of base64 enclave public keys, got ${describe(o.privateFor)}`,
    );
  if (o.privateFor.length === 0)
    throw invalidParams(`${name}.privateFor must name at least one party (omit it for a public transaction)`);
  if (o.privateFor.length > PARAM_LIMITS.maxPrivateForKeys) {
    throw invalidParams(
      `${name}.privateFor has ${o.privateFor.length} keys, over the limit of ${PARAM_LIMITS.maxPrivateForKeys}`,
    );
  }
  const privateFor = o.privateFor.map((k, i) => parseEnclaveKey(k, `${name}.privateFor[${i}]`));
  return { from, ops, privateFor };
}

/** raft_addPeer / raft_addLearner: a multiaddr, then optionally `{ rpcUrl, tmUrl, enclavePublicKeys }`. */
export function parseNewMember(address: unknown, extra: unknown): NewMemberInfo {
  const p2pAddress = parseP2pAddress(address, 'p2pAddress');
  if (extra === undefined) return { p2pAddress };
  const o = plainObject(extra, 'member info');
  onlyFields(o, ['rpcUrl', 'tmUrl', 'enclavePublicKeys'], 'member info');
  const info: { p2pAddress: string; rpcUrl?: string; tmUrl?: string; enclavePublicKeys?: string[] } = { p2pAddress };
  if (o.rpcUrl !== undefined) info.rpcUrl = parseHttpUrl(o.rpcUrl, 'member info.rpcUrl');
  if (o.tmUrl !== undefined) info.tmUrl = parseHttpUrl(o.tmUrl, 'member info.tmUrl');
  if (o.enclavePublicKeys !== undefined) {
    if (!Array.isArray(o.enclavePublicKeys) || o.enclavePublicKeys.length > PARAM_LIMITS.maxEnclaveKeysPerMember) {
      throw invalidParams(
        `member info.enclavePublicKeys must be an array of at most ${PARAM_LIMITS.maxEnclaveKeysPerMember} base64 keys`,
      );
    }
    info.enclavePublicKeys = o.enclavePublicKeys.map((k, i) =>
      parseEnclaveKey(k, `member info.enclavePublicKeys[${i}]`),
    );
  }
  return info;
}

// --- formatting ---------------------------------------------------------------------------
export function quantity(n: number | bigint): Hex {
  if (typeof n === 'number' && !(Number.isSafeInteger(n) && n >= 0)) {
    throw new RangeError(`quantity(${n}): not a non-negative safe integer`);
  }
  if (typeof n === 'bigint' && n < 0n) throw new RangeError(`quantity(${n}): negative`);
  return `0x${n.toString(16)}`;
}

export function bytesToHex(bytes: Uint8Array): Hex {
  return `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`;
}
