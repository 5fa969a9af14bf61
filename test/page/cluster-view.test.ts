// The cluster page's server half without a browser: two RpcServers on loopback, each with a
// ClusterView and a ClusterPage, the first fetching the second's sample over real HTTP. Checks the
// SSE payloads (history first, then one view per tick with per-member lastSeen), DOWN after
// downAfterMs without a sample, the stream limit (503 + Retry-After, never a node error), the
// page's headers, the validation of what a peer sends, and that JSON-RPC is unchanged beside it.

import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { SystemClock } from '../../node/clock.js';
import { createLogger } from '../../node/log.js';
import { createNodeMetrics } from '../../node/metrics.js';
import {
  ClusterView,
  parseNodeSample,
  type ClusterHistoryMessage,
  type ClusterViewMessage,
  type NodeSample,
  type PageSource,
  type ViewMemberInfo,
} from '../../node/page/cluster-view.js';
import { ClusterPage, PAGE_CSP, loadPageAssets, pagePathKind } from '../../node/rpc/page.js';
import { RpcServer } from '../../node/rpc/server.js';
import { FakeLedgerBackend } from '../rpc/fake-ledger-backend.js';

/** A node's status held in memory: the page's IO boundary, set by the test. */
class MemorySource implements PageSource {
  members_: ViewMemberInfo[] = [];
  private readonly listeners = new Set<(b: { txCount: number; timestampMs: number }) => void>();
  constructor(public state: Omit<NodeSample, 'sampledAtMs'>) {}
  async sample(): Promise<NodeSample> {
    return { ...this.state, sampledAtMs: Date.now() };
  }
  members(): readonly ViewMemberInfo[] {
    return this.members_;
  }
  onBlock(listener: (b: { txCount: number; timestampMs: number }) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  applyBlock(txCount: number, timestampMs: number): void {
    for (const l of this.listeners) l({ txCount, timestampMs });
  }
}

function sampleOf(raftId: number, name: string, role: NodeSample['role'], connectedTo: number[]) {
  return {
    raftId,
    name,
    role,
    term: 3,
    leader: 1,
    commitIndex: 10,
    appliedIndex: 10,
    head: 4,
    voters: [1, 2],
    learners: [],
    joint: false,
    connectedTo,
    privateCatchUp: null,
    breakers: [],
    alarm: null,
  } satisfies Omit<NodeSample, 'sampledAtMs'>;
}

interface PageNode {
  source: MemorySource;
  view: ClusterView;
  page: ClusterPage;
  server: RpcServer;
  url: string;
}

const started: PageNode[] = [];
afterEach(async () => {
  for (const n of started.splice(0)) {
    n.view.stop();
    await n.server.stop();
  }
});

async function startPageNode(
  source: MemorySource,
  opts: { maxSseClients?: number; sampleIntervalMs?: number; downAfterMs?: number } = {},
): Promise<PageNode> {
  const logger = createLogger({ level: 'silent' });
  const clock = new SystemClock();
  const view = new ClusterView(
    { sampleIntervalMs: opts.sampleIntervalMs ?? 100, downAfterMs: opts.downAfterMs ?? 400, peerTimeoutMs: 90 },
    { source, clock, logger },
  );
  const page = new ClusterPage(
    { maxSseClients: opts.maxSseClients ?? 4 },
    { view, assets: await loadPageAssets(), logger },
  );
  const server = new RpcServer(
    { port: 0, stopGraceMs: 200 },
    {
      backend: new FakeLedgerBackend({ accounts: [], initialBalance: 0n }),
      logger,
      metrics: createNodeMetrics(),
      page,
    },
  );
  const { url } = await server.start();
  view.start();
  const n = { source, view, page, server, url };
  started.push(n);
  return n;
}

/** Two nodes that know each other's RPC URL. */
async function twoNodes(opts: Parameters<typeof startPageNode>[1] = {}): Promise<[PageNode, PageNode]> {
  const a = await startPageNode(new MemorySource(sampleOf(1, 'node-1', 'leader', [2])), opts);
  const b = await startPageNode(new MemorySource(sampleOf(2, 'node-2', 'follower', [1])), opts);
  const members: ViewMemberInfo[] = [
    { raftId: 1, name: 'node-1', rpcUrl: a.url, membership: 'verifier' },
    { raftId: 2, name: 'node-2', rpcUrl: b.url, membership: 'verifier' },
  ];
  a.source.members_ = members;
  b.source.members_ = members;
  return [a, b];
}

interface SseEvent {
  event: string;
  data: unknown;
}

/** Reads an SSE stream over node:http, collecting its events until `close()`. */
function openStream(url: string): Promise<{
  status: number;
  headers: http.IncomingHttpHeaders;
  events: SseEvent[];
  body: string;
  next(pred: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  close(): void;
}> {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL('/events', url), (res) => {
      const events: SseEvent[] = [];
      let buffer = '';
      let body = '';
      const waiters: Array<() => void> = [];
      // next() goes on from where the previous next() stopped: events are consumed in order.
      let seen = 0;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        buffer += chunk;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const ev = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (ev && data) events.push({ event: ev, data: JSON.parse(data) as unknown });
          for (const w of waiters.splice(0)) w();
        }
      });
      res.on('error', () => undefined);
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        get body() {
          return body;
        },
        async next(pred, timeoutMs = 3000) {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            for (; seen < events.length; seen++) if (pred(events[seen])) return events[seen++];
            if (Date.now() > deadline) throw new Error(`no matching event within ${timeoutMs} ms`);
            await new Promise<void>((r) => {
              waiters.push(r);
              setTimeout(r, 50);
            });
          }
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}

const isView = (e: SseEvent): e is { event: 'view'; data: ClusterViewMessage } => e.event === 'view';

describe('the event stream', () => {
  it('sends the history, then one view per tick with every member, its sample and lastSeen', async () => {
    const [a] = await twoNodes();
    a.source.applyBlock(5, Date.now() - 20);
    const s = await openStream(a.url);
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(s.headers['cache-control']).toBe('no-store');
    expect(s.headers['x-content-type-options']).toBe('nosniff');
    const first = await s.next(() => true);
    expect(first.event).toBe('history');
    expect((first.data as ClusterHistoryMessage).historySeconds).toBe(300);
    // A view in which node-2's sample, fetched over HTTP, has arrived.
    const v = (await s.next((e) => isView(e) && e.data.members.every((m) => m.up))).data as ClusterViewMessage;
    s.close();
    expect(v.self).toEqual({ raftId: 1, name: 'node-1' });
    expect(v.downAfterMs).toBe(400);
    expect(v.members.map((m) => [m.name, m.up, m.sample?.role, m.sample?.connectedTo])).toEqual([
      ['node-1', true, 'leader', [2]],
      ['node-2', true, 'follower', [1]],
    ]);
    for (const m of v.members) {
      expect(m.lastSeenMs).not.toBeNull();
      expect(m.lastSeenMs).toBeLessThanOrEqual(v.nowMs);
      expect(v.nowMs - (m.lastSeenMs ?? 0)).toBeLessThanOrEqual(v.downAfterMs);
    }
    expect(v.timeline.some((e) => e.kind === 'leader' && e.text === 'node-1 leads (term 3)')).toBe(true);
    expect(v.timeline.some((e) => e.kind === 'membership' && e.text.includes('node-1, node-2'))).toBe(true);
    // The block applied before the first tick is in the history: 5 transactions, a latency >= 20 ms.
    // Then a tick without blocks: a point with no latency. Ticks come every intervalMs, so wait for
    // one (on a fast machine the view above can be the first tick's).
    const quietTick = () => a.view.history().points.some((p) => p.commitLatencyMs === null && p.blocksPerSecond === 0);
    for (let waitedMs = 0; !quietTick() && waitedMs < 5_000; waitedMs += 50)
      await new Promise((r) => setTimeout(r, 50));
    const history = a.view.history().points;
    expect(history.some((p) => p.txPerSecond > 0 && (p.commitLatencyMs ?? 0) >= 20)).toBe(true);
    expect(quietTick()).toBe(true);
  });

  it('shows a member DOWN once its sample is older than downAfterMs, with the reason, and back when it answers', async () => {
    const [a, b] = await twoNodes();
    const s = await openStream(a.url);
    await s.next((e) => isView(e) && e.data.members.every((m) => m.up));
    await b.server.stop();
    const down = (await s.next((e) => isView(e) && e.data.members[1].up === false)).data as ClusterViewMessage;
    const m2 = down.members[1];
    expect(down.nowMs - (m2.lastSeenMs ?? 0)).toBeGreaterThan(down.downAfterMs);
    expect(m2.error).toMatch(/unreachable|fetch failed/);
    expect(m2.sample?.name).toBe('node-2'); // the last known state stays
    expect(down.timeline.some((e) => e.kind === 'down' && e.text.startsWith('node-2 is down'))).toBe(true);
    // node-2 comes back on another port (a restarted process); the membership says where.
    const b2 = await startPageNode(b.source);
    a.source.members_ = [a.source.members_[0], { ...a.source.members_[1], rpcUrl: b2.url }];
    const back = (await s.next((e) => isView(e) && e.data.members[1].up)).data as ClusterViewMessage;
    expect(back.timeline.some((e) => e.kind === 'up' && e.text === 'node-2 is back')).toBe(true);
    s.close();
  });

  it('does not ask peers while nobody watches', async () => {
    const [a, b] = await twoNodes();
    let asked = 0;
    const counting = new ClusterView(
      { sampleIntervalMs: 50 },
      {
        source: a.source,
        clock: new SystemClock(),
        logger: createLogger({ level: 'silent' }),
        fetchPeer: async () => {
          asked++;
          return b.view.localSample();
        },
      },
    );
    await counting.tick();
    await counting.tick();
    expect(asked).toBe(0);
    const views: ClusterViewMessage[] = [];
    const unwatch = counting.watch((v) => views.push(v));
    await counting.tick();
    expect(asked).toBe(1);
    expect(views).toHaveLength(1);
    unwatch();
    await counting.tick();
    expect(asked).toBe(1);
  });

  it('sends peerHeaders (a token) with each request to a peer, and refuses an answer over the size limit', async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    let body = JSON.stringify({ ...sampleOf(2, 'node-2', 'follower', [1]), sampledAtMs: 1 });
    const peer = http.createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    const peerUrl = `http://127.0.0.1:${(peer.address() as { port: number }).port}`;
    try {
      const source = new MemorySource(sampleOf(1, 'node-1', 'leader', [2]));
      source.members_ = [
        { raftId: 1, name: 'node-1', rpcUrl: 'http://127.0.0.1:1', membership: 'verifier' },
        { raftId: 2, name: 'node-2', rpcUrl: peerUrl, membership: 'verifier' },
      ];
      const view = new ClusterView(
        { peerMaxResponseBytes: 2048 },
        {
          source,
          clock: new SystemClock(),
          logger: createLogger({ level: 'silent' }),
          peerHeaders: { authorization: 'Bearer t0ken' },
        },
      );
      const views: ClusterViewMessage[] = [];
      view.watch((v) => views.push(v));
      await view.tick();
      expect(seen[0].authorization).toBe('Bearer t0ken');
      expect(views[0].members[1]).toMatchObject({ up: true, error: null });
      body = JSON.stringify({ ...sampleOf(2, 'node-2', 'follower', [1]), sampledAtMs: 1, pad: 'x'.repeat(4096) });
      await view.tick();
      expect(views[1].members[1].error).toBe('answer over 2048 bytes');
    } finally {
      await new Promise((r) => peer.close(r));
    }
  });

  it('refuses streams past maxSseClients with 503 and Retry-After, and serves again once one closes', async () => {
    const [a] = await twoNodes({ maxSseClients: 2 });
    const s1 = await openStream(a.url);
    const s2 = await openStream(a.url);
    expect([s1.status, s2.status]).toEqual([200, 200]);
    const s3 = await openStream(a.url);
    expect(s3.status).toBe(503);
    expect(s3.headers['retry-after']).toBe('5');
    await s1.next(isView);
    expect(a.page.sseClients).toBe(2);
    expect(a.view.watcherCount).toBe(2);
    s1.close();
    const deadline = Date.now() + 2000;
    while (a.page.sseClients > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(a.page.sseClients).toBe(1);
    const s4 = await openStream(a.url);
    expect(s4.status).toBe(200);
    await s4.next(isView);
    s2.close();
    s4.close();
  });

  it('ends its streams when the server stops', async () => {
    const [a] = await twoNodes();
    const s = await openStream(a.url);
    await s.next(isView);
    const t0 = Date.now();
    await a.server.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(a.page.sseClients).toBe(0);
    s.close();
  });
});

describe('the page and its assets', () => {
  it('serves the page and its assets with type, cache and security headers, and 304 on a matching ETag', async () => {
    const [a] = await twoNodes();
    for (const [path, type] of [
      ['/', 'text/html; charset=utf-8'],
      ['/page/assets/page.js', 'text/javascript; charset=utf-8'],
      ['/page/assets/page.css', 'text/css; charset=utf-8'],
      ['/page/assets/uPlot.iife.min.js', 'text/javascript; charset=utf-8'],
      ['/page/assets/uPlot.min.css', 'text/css; charset=utf-8'],
    ] as const) {
      const res = await fetch(new URL(path, a.url));
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe(type);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('content-security-policy')).toBe(PAGE_CSP);
      const body = await res.text();
      expect(body.length).toBeGreaterThan(100);
      const again = await fetch(new URL(path, a.url), { headers: { 'if-none-match': res.headers.get('etag') ?? '' } });
      expect(again.status).toBe(304);
    }
    const html = await (await fetch(a.url)).text();
    expect(html).toContain('<script src="/page/assets/page.js" defer></script>');
    expect(html).not.toMatch(/<script>|style=|https?:\/\//); // no inline code, no CDN
  });

  it('tells the server which paths carry state (to authenticate) and which are static assets', () => {
    expect(['/events', '/page/node.json'].map(pagePathKind)).toEqual(['data', 'data']);
    expect(['/', '/page/assets/page.js', '/page/assets/uPlot.min.css'].map(pagePathKind)).toEqual([
      'asset',
      'asset',
      'asset',
    ]);
    expect(['/health', '/metrics', '/page', '/events/x'].map(pagePathKind)).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('serves this node sample as JSON that parseNodeSample accepts', async () => {
    const [a] = await twoNodes();
    const res = await fetch(new URL('/page/node.json', a.url));
    expect(res.headers.get('cache-control')).toBe('no-store');
    const s = parseNodeSample(await res.json());
    expect(s).toMatchObject({ raftId: 1, name: 'node-1', role: 'leader', connectedTo: [2] });
  });

  it('leaves JSON-RPC, /health, unknown paths and non-GET methods to the RPC server', async () => {
    const [a] = await twoNodes();
    const rpc = await fetch(a.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_blockNumber' }),
    });
    expect(await rpc.json()).toEqual({ jsonrpc: '2.0', id: 1, result: '0x0' });
    expect((await fetch(new URL('/nope', a.url))).status).toBe(404);
    expect((await fetch(new URL('/page/assets/missing.js', a.url))).status).toBe(404);
    expect((await fetch(new URL('/events', a.url), { method: 'POST', body: '{}' })).status).toBe(404);
  });
});

describe('a peer sample', () => {
  const good = { ...sampleOf(2, 'node-2', 'follower', [1]), sampledAtMs: 1 };
  it('is accepted when well-formed', () => {
    expect(parseNodeSample(good)).toEqual(good);
  });
  it.each([
    ['a wrong role', { ...good, role: 'king' }],
    ['a negative index', { ...good, commitIndex: -1 }],
    ['a non-integer term', { ...good, term: 1.5 }],
    ['a huge list', { ...good, connectedTo: Array.from({ length: 300 }, (_, i) => i) }],
    ['a long name', { ...good, name: 'x'.repeat(300) }],
    ['a bad breaker state', { ...good, breakers: [{ peer: 'p', state: 'melted' }] }],
    ['markup where a number goes', { ...good, head: '<img src=x>' }],
    ['not an object', [good]],
  ])('is refused with %s', (_, bad) => {
    expect(() => parseNodeSample(bad)).toThrow();
  });
});
