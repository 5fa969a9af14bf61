// The measuring tools without etcd or a cluster: the flags of `npm run bench:etcd-vs` and of
// `quorate bench --offered`, and the open-loop accounting against a small JSON-RPC server on
// 127.0.0.1 that accepts, refuses (-32010 with data.retryAfterMs, and another code) or never
// answers, by the order transactions arrive, and puts what it accepted in its next "block".

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  EtcdVsError,
  checkEtcd,
  formatComparison,
  freePortBlock,
  parseEtcdVsArgs,
  type LoadResult,
} from '../../bench/etcd-vs.js';
import { PORT_BLOCK_RANGE } from '../../bench/lifecycle.js';
import { rpcBatch } from '../../node/bench.js';
import { formatOfferedResult, runOfferedLoad, type OfferedOptions } from '../../node/bench-offered.js';
import { parseBenchArgs } from '../../node/cli/bench.js';
import { UsageError } from '../../node/cli/args.js';

describe('npm run bench:etcd-vs flags', () => {
  it('defaults to the issue 11 shape: both systems, 64 in flight, 15 s, node-signed, one per request', () => {
    expect(parseEtcdVsArgs([])).toEqual({
      seconds: 15,
      concurrency: 64,
      batch: 1,
      raw: false,
      runEtcd: true,
      runQuorate: true,
      etcdBin: 'etcd',
    });
  });

  it('takes every flag', () => {
    expect(
      parseEtcdVsArgs(['--seconds', '5', '--concurrency', '8', '--batch', '16', '--raw', '--quorate-only']),
    ).toMatchObject({ seconds: 5, concurrency: 8, batch: 16, raw: true, runEtcd: false, runQuorate: true });
    expect(parseEtcdVsArgs(['--etcd-only', '--etcd', '/opt/etcd'])).toMatchObject({
      runEtcd: true,
      runQuorate: false,
      etcdBin: '/opt/etcd',
    });
    expect(parseEtcdVsArgs(['--help'])).toBe('help');
  });

  it.each([
    [['--etcd-only', '--quorate-only'], /exclude each other/],
    [['--etcd-only', '--raw'], /quorate side/],
    [['--seconds', '0'], /--seconds must be an integer from 1/],
    [['--concurrency', '9999999'], /--concurrency/],
    [['--batch', 'x'], /--batch/],
    [['--nope'], /Unknown option/],
  ])('refuses %j', (argv, message) => {
    let caught: unknown;
    try {
      parseEtcdVsArgs(argv);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(EtcdVsError);
    expect((caught as EtcdVsError).code).toBe('USAGE');
    expect((caught as Error).message).toMatch(message);
  });

  it('says how to install etcd when the binary is missing', () => {
    let caught: unknown;
    try {
      checkEtcd('/nonexistent/etcd-for-bench-test');
    } catch (err) {
      caught = err;
    }
    expect((caught as EtcdVsError).code).toBe('ETCD_MISSING');
    expect((caught as Error).message).toMatch(/apt-get install etcd-server/);
  });

  it('finds consecutive loopback ports that can be listened on', async () => {
    const base = await freePortBlock(3);
    // Below the ephemeral range, where an outgoing connection could take a port between the check and the listen.
    expect(base).toBeGreaterThanOrEqual(PORT_BLOCK_RANGE.first);
    expect(base + 2).toBeLessThan(PORT_BLOCK_RANGE.end);
    expect(PORT_BLOCK_RANGE.end).toBeLessThanOrEqual(32_768);
  });

  it('prints the ratio of committed puts/s', () => {
    const r = (system: string, perSecond: number): LoadResult => ({
      system,
      path: 'p',
      committed: perSecond * 10,
      seconds: 10,
      perSecond,
      p50Ms: 10,
      p99Ms: 40,
      errors: new Map(system === 'quorate' ? [['-32010 overloaded', 3]] : []),
    });
    const text = formatComparison([r('etcd 3.4', 1500), r('quorate', 1200)]);
    expect(text).toMatch(/ratio quorate\/etcd puts\/s = 0\.80x/);
    expect(text).toMatch(/quorate error count=3 message="-32010 overloaded"/);
    expect(text.split('\n')[0]).toMatch(/system\s+path\s+committed\s+seconds\s+puts\/s\s+p50 ms\s+p99 ms\s+errors/);
  });
});

describe('quorate bench --offered flags', () => {
  it('parses the open-loop mode and its defaults', () => {
    expect(parseBenchArgs(['--offered', '2000'])).toMatchObject({
      offered: 2000,
      seconds: 15,
      nodeSigned: false,
      timeoutMs: 10_000,
    });
    expect(
      parseBenchArgs(['--offered', '500', '--seconds', '3', '--node-signed', '--batch', '4', '--timeout-ms', '900']),
    ).toMatchObject({ offered: 500, seconds: 3, nodeSigned: true, batch: 4, timeoutMs: 900 });
    expect((parseBenchArgs([]) as { offered?: number }).offered).toBeUndefined();
  });

  it.each([
    [['--seconds', '3'], /--seconds goes with --offered/],
    [['--offered', '100', '--txs', '5'], /--txs does not go with --offered/],
    [['--offered', '0'], /--offered must be between 1/],
    [['--offered', '1000000', '--seconds', '3600'], /at most 2000000 transactions/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseBenchArgs(argv)).toThrow(UsageError);
    expect(() => parseBenchArgs(argv)).toThrow(message);
  });
});

/** What the fake node does with the i-th transaction it receives. */
function fate(i: number): 'accept' | 'overloaded' | 'invalid' | 'hang' {
  switch (i % 5) {
    case 1:
      return 'overloaded';
    case 2:
      return 'hang';
    case 3:
      return 'invalid';
    default:
      return 'accept';
  }
}

interface FakeNode {
  url: string;
  received: string[];
  /** The `from` of every quorate_sendTransaction received. */
  fromSeen: string[];
  close: () => Promise<void>;
}

/** A JSON-RPC server with a chain: a block every 20 ms holding the transactions accepted since the last. */
async function fakeNode(account = '0x00000000000000000000000000000000000000aa'): Promise<FakeNode> {
  const blocks: string[][] = [[]];
  let pending: string[] = [];
  let txCount = 0;
  const received: string[] = [];
  const fromSeen: string[] = [];
  const miner = setInterval(() => {
    blocks.push(pending);
    pending = [];
  }, 20);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const calls = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Array<{
        id: number;
        method: string;
        params: unknown[];
      }>;
      let hang = false;
      const replies = calls.map(({ id, method, params }) => {
        switch (method) {
          case 'eth_chainId':
            return { jsonrpc: '2.0', id, result: '0x539' };
          case 'eth_blockNumber':
            return { jsonrpc: '2.0', id, result: `0x${(blocks.length - 1).toString(16)}` };
          case 'eth_getBlockByNumber': {
            const h = Number(BigInt(params[0] as string));
            return { jsonrpc: '2.0', id, result: h < blocks.length ? { transactions: blocks[h] } : null };
          }
          case 'quorate_accounts':
            return { jsonrpc: '2.0', id, result: [account] };
          case 'quorate_sendTransaction':
          case 'quorate_sendRawTransaction': {
            received.push(method);
            if (method === 'quorate_sendTransaction') fromSeen.push((params[0] as { from: string }).from);
            const i = txCount++;
            const f = fate(i);
            if (f === 'hang') hang = true;
            if (f === 'overloaded')
              return {
                jsonrpc: '2.0',
                id,
                error: { code: -32010, message: 'overloaded', data: { retryAfterMs: 250 } },
              };
            if (f === 'invalid') return { jsonrpc: '2.0', id, error: { code: -32602, message: 'invalid' } };
            const hash = `0x${i.toString(16).padStart(64, '0')}`;
            pending.push(hash);
            return { jsonrpc: '2.0', id, result: hash };
          }
          default:
            return { jsonrpc: '2.0', id, error: { code: -32601, message: `no method ${method}` } };
        }
      });
      if (hang) return; // never answered: the client's timeout counts it
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(replies));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    received,
    fromSeen,
    close: async () => {
      clearInterval(miner);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('quorate bench --offered accounting', () => {
  let node: FakeNode | undefined;
  afterEach(async () => {
    await node?.close();
    node = undefined;
  });

  const options = (url: string, over: Partial<OfferedOptions> = {}): OfferedOptions => ({
    rpcUrls: [url],
    offeredPerSecond: 100,
    seconds: 1,
    batch: 1,
    nodeSigned: false,
    // Generous: on a loaded machine an answered request must not count as timed out.
    requestTimeoutMs: 1_500,
    drainTimeoutMs: 5_000,
    ...over,
  });

  it('counts accepted, refused by code with retryAfterMs, timed out and committed, never retrying a refusal', async () => {
    node = await fakeNode();
    const o = options(node.url);
    const r = await runOfferedLoad(o);
    // 100 offered; by arrival order 2 of 5 accepted, 1 refused -32010, 1 refused -32602, 1 unanswered.
    expect(r.offered).toBe(100);
    expect(node.received.length).toBe(100); // nothing retried
    expect(node.received.every((m) => m === 'quorate_sendRawTransaction')).toBe(true);
    expect(r.droppedByClient).toBe(0);
    expect(r.accepted).toBe(40);
    expect(r.refused).toBe(40);
    expect(r.refusedByCode.get(-32010)).toBe(20);
    expect(r.refusedByCode.get(-32602)).toBe(20);
    expect(r.retryAfterMs).toEqual({ count: 20, p50: 250, max: 250 });
    expect(r.timedOut).toBe(20);
    expect(r.failed.size).toBe(0);
    expect(r.committed).toBe(40);
    expect(r.commitLatencyMs.p50).toBeGreaterThan(0);
    expect(r.commitLatencyMs.p99).toBeGreaterThanOrEqual(r.commitLatencyMs.p50);
    // Sent on schedule over about a second, not as fast as answers allowed.
    expect(r.sendSeconds).toBeGreaterThan(0.9);
    const text = formatOfferedResult(o, r).join('\n');
    expect(text).toMatch(/accepted=40 \(40\.0%\) refused=40 \(40\.0%\) timed_out=20 \(20\.0%\)/);
    expect(text).toMatch(/refused code=-32010 count=20 retry_after_ms p50=250 max=250/);
    expect(text).toMatch(/committed=40 of accepted=40/);
  });

  it('node-signed batches: one request per batch, every call of it accounted', async () => {
    node = await fakeNode();
    const r = await runOfferedLoad(options(node.url, { nodeSigned: true, batch: 5, offeredPerSecond: 50 }));
    // Each batch of 5 holds one transaction of each fate, and one of them hangs the whole request.
    expect(r.offered).toBe(50);
    expect(node.received.length).toBe(50);
    expect(node.received.every((m) => m === 'quorate_sendTransaction')).toBe(true);
    expect(r.timedOut).toBe(50);
    expect(r.accepted).toBe(0);
  });

  it('node-signed: every transaction names the account of the node it is sent to', async () => {
    // Two nodes with different accounts, batches of 3: a batch goes to one node, so all of its
    // transactions must be that node's (before, the i-th transaction took the (i mod n)-th account).
    const a = await fakeNode('0x00000000000000000000000000000000000000aa');
    const b = await fakeNode('0x00000000000000000000000000000000000000bb');
    try {
      const r = await runOfferedLoad({
        ...options(a.url, { nodeSigned: true, batch: 3, offeredPerSecond: 60 }),
        rpcUrls: [a.url, b.url],
      });
      expect(r.offered).toBe(60);
      expect(a.fromSeen.length + b.fromSeen.length).toBe(60);
      expect(a.fromSeen.length).toBeGreaterThan(0);
      expect(b.fromSeen.length).toBeGreaterThan(0);
      expect(new Set(a.fromSeen)).toEqual(new Set(['0x00000000000000000000000000000000000000aa']));
      expect(new Set(b.fromSeen)).toEqual(new Set(['0x00000000000000000000000000000000000000bb']));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a whole batch refused with one error object counts every call as refused', async () => {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () =>
        res.end(
          JSON.stringify({
            jsonrpc: '2.0',
            id: null,
            error: { code: -32010, message: 'too many calls in flight', data: { retryAfterMs: 100 } },
          }),
        ),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const replies = await rpcBatch(
        url,
        [
          ['a', []],
          ['b', []],
        ],
        1_000,
      );
      expect(replies.map((x) => x.error?.code)).toEqual([-32010, -32010]);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
