// Receipts: the outcome of one transaction in a block.
//
// Encoding: u8 version(1) ‖ [32] txHash ‖ u8 status (0|1) ‖ u8 flags (bit 0: private) ‖ str16 reason.
// The receipts root (hash.ts merkleRoot over receiptLeaf of each) is in the header, so
// receipts must be identical on every node. For a private transaction the PUBLIC receipt is always
// status 1 ("included"): its execution differs per node (only parties run it), so its outcome lives
// in this node's private receipt, which is not in any root.

import { ChainErrorCode } from './errors.js';
import { Reader, Writer, toHex, utf8Length } from './codec.js';
import { type Hash, RECEIPT_LEAF_PREFIX, keccak256, merkleRoot } from './hash.js';
import type { Transaction, TxLocation } from './tx.js';

/** Longest failure reason kept, in UTF-8 bytes; longer reasons are cut (on a char boundary). */
export const MAX_REASON_BYTES = 512;

export interface Receipt {
  readonly txHash: Hash;
  readonly status: 0 | 1;
  /** Why the transaction failed ('' when status is 1). */
  readonly reason: string;
  readonly isPrivate: boolean;
}

export function truncateReason(reason: string): string {
  if (utf8Length(reason) <= MAX_REASON_BYTES) return reason;
  let s = reason.slice(0, MAX_REASON_BYTES);
  while (utf8Length(s) > MAX_REASON_BYTES) s = s.slice(0, -1);
  return s;
}

export function encodeReceipt(r: Receipt): Uint8Array {
  return new Writer(64)
    .u8(1)
    .raw(r.txHash)
    .u8(r.status)
    .u8(r.isPrivate ? 1 : 0)
    .str16(truncateReason(r.reason))
    .finish();
}

export function decodeReceipt(bytes: Uint8Array): Receipt {
  const rd = new Reader(bytes, ChainErrorCode.BlockMalformed, 'receipt');
  if (rd.u8() !== 1) rd.fail('unknown receipt version');
  const txHash = rd.raw(32).slice();
  const status = rd.u8();
  if (status > 1) rd.fail('status must be 0 or 1');
  const flags = rd.u8();
  if (flags > 1) rd.fail('unknown receipt flags');
  const reason = rd.str16(MAX_REASON_BYTES);
  rd.end();
  if (status === 1 && reason !== '') rd.fail('a successful receipt has no reason');
  return { txHash, status: status as 0 | 1, reason, isPrivate: flags === 1 };
}

/** The receipt's Merkle leaf: keccak256(0x00 ‖ encoding) (hash.ts explains the prefix). */
export function receiptLeaf(r: Receipt): Hash {
  const enc = encodeReceipt(r);
  const buf = new Uint8Array(1 + enc.length);
  buf[0] = RECEIPT_LEAF_PREFIX;
  buf.set(enc, 1);
  return keccak256(buf);
}

export function receiptsRoot(receipts: readonly Receipt[]): Hash {
  return merkleRoot(receipts.map(receiptLeaf));
}

export interface ReceiptJson {
  transactionHash: string;
  transactionIndex: string;
  blockHash: string;
  blockNumber: string;
  from: string;
  status: '0x1' | '0x0';
  reason?: string;
  isPrivate: boolean;
}

/**
 * RPC view (eth_getTransactionReceipt). For a private transaction pass this node's private
 * receipt as `privateReceipt` when it is a party: its status/reason are then the ones shown.
 */
export function receiptToJson(
  receipt: Receipt,
  tx: Transaction,
  location: TxLocation,
  privateReceipt?: Receipt,
): ReceiptJson {
  const shown = privateReceipt ?? receipt;
  const out: ReceiptJson = {
    transactionHash: tx.hashHex,
    transactionIndex: '0x' + location.index.toString(16),
    blockHash: toHex(location.blockHash),
    blockNumber: '0x' + location.blockNumber.toString(16),
    from: tx.from,
    status: shown.status === 1 ? '0x1' : '0x0',
    isPrivate: receipt.isPrivate,
  };
  if (shown.status === 0) out.reason = shown.reason;
  return out;
}
