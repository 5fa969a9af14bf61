// A test-only node entry point: the real node (`startNodeProcess`, real storage, p2p and Raft) with a
// deliberately broken JSON-RPC backend, to show that `quorate jepsen` catches real bugs. It lives
// under test/ so that no normal run can reach it; the Jepsen tests start it through
// `runJepsenDetailed(..., { nodeCommand: brokenNodeCommand(kind) })`.
//
//   node --import tsx test/jepsen/broken-node.ts --broken KIND --config C [--join]
//
// Kinds:
//  - ack-before-commit: quorate_sendTransaction answers as usual (the transaction is accepted), but
//    eth_getTransactionReceipt answers "committed, status 1" at once for every transaction this node
//    accepted — the bug of acknowledging a write before it commits. A later linearizable read can then
//    miss a write that was acknowledged before the read began.
//  - stale-reads: quorate_getValue / quorate_getList with 'linearizable' are served from local state
//    without the ReadIndex barrier, so a node cut off from the leader answers with stale values.

import '../../node/polyfills.js';
import { loadConfig } from '../../node/config.js';
import { startNodeProcess } from '../../node/process.js';
import type {
  CallContext,
  Hex,
  NodeRpcBackend,
  ReadTag,
  ReceiptView,
  SendTransactionRequest,
} from '../../node/rpc/backend.js';

export type BrokenKind = 'ack-before-commit' | 'stale-reads';
export const BROKEN_KINDS: readonly BrokenKind[] = ['ack-before-commit', 'stale-reads'];

/** Accepted-but-maybe-uncommitted transactions remembered per node (older ones are forgotten first). */
const MAX_EARLY_ACKS = 100_000;

export function brokenBackend(kind: BrokenKind, inner: NodeRpcBackend): NodeRpcBackend {
  // Every method not overridden is the real one. A Proxy keeps this file independent of the list.
  const overrides: Partial<NodeRpcBackend> = {};
  if (kind === 'ack-before-commit') {
    const accepted = new Map<Hex, Hex>();
    overrides.sendTransaction = async (request: SendTransactionRequest, ctx: CallContext) => {
      const hash = await inner.sendTransaction(request, ctx);
      if (accepted.size >= MAX_EARLY_ACKS) accepted.delete(accepted.keys().next().value!);
      accepted.set(hash, request.from);
      return hash;
    };
    overrides.getTransactionReceipt = async (hash: Hex, ctx: CallContext): Promise<ReceiptView | null> => {
      const real = await inner.getTransactionReceipt(hash, ctx);
      if (real !== null) return real;
      const from = accepted.get(hash);
      if (from === undefined) return null;
      // The bug: "committed" before it is.
      const head = await inner.blockNumber(ctx);
      return {
        transactionHash: hash,
        transactionIndex: 0,
        blockHash: `0x${'00'.repeat(32)}`,
        blockNumber: head + 1,
        from,
        status: true,
        isPrivate: false,
      };
    };
  } else {
    const local = (tag: ReadTag): ReadTag => (tag === 'linearizable' ? 'latest' : tag);
    overrides.getValue = (key: string, tag: ReadTag, ctx: CallContext) => inner.getValue(key, local(tag), ctx);
    overrides.getList = (key: string, tag: ReadTag, ctx: CallContext) => inner.getList(key, local(tag), ctx);
  }
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop in overrides) return overrides[prop as keyof NodeRpcBackend];
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function main(argv: readonly string[]): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const kind = arg('broken') as BrokenKind | undefined;
  const configPath = arg('config');
  if (kind === undefined || !BROKEN_KINDS.includes(kind) || configPath === undefined) {
    process.stderr.write(`usage: broken-node.ts --broken ${BROKEN_KINDS.join('|')} --config C [--join]\n`);
    process.exit(2);
  }
  const running = await startNodeProcess(await loadConfig(configPath), {
    join: argv.includes('--join'),
    wrapBackend: (b) => brokenBackend(kind, b),
  });
  const stop = (): void => void running.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const code = await running.done;
  setTimeout(() => process.exit(code), 200).unref();
}

// Run only as a program (the test imports the types and `brokenNodeCommand`).
if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  await main(process.argv.slice(2));
}
