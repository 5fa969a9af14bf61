// The cluster page on the RPC port: GET / (the page), GET /page/assets/* (its script, style and
// the uPlot charting library, served from node_modules — no CDN), GET /events (a Server-Sent
// Events stream of the ClusterView, node/page/cluster-view.ts) and GET /page/node.json (this
// node's own sample, what the other members' views fetch once a second while watched).
//
// The RPC server calls `handle(req, res)` for GET/HEAD requests after its own checks
// (authentication, Host, Origin); it returns false for any path that is not the page's, so the
// server answers those as before. Everything here is read-only.
//
// Limits (PAGE_DEFAULTS): at most maxSseClients streams at once (more get 503 with Retry-After,
// never an error in the node); a stream whose client does not read is closed once more than
// maxSseBufferedBytes wait in its socket (a stalled browser cannot make the node buffer without
// bound). Assets are read once, when the page is created, and served from memory with an ETag.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type http from 'node:http';
import type { Logger } from 'pino';
import type { ClusterHistoryMessage, ClusterView, ClusterViewMessage } from '../page/cluster-view.js';

export const PAGE_DEFAULTS = {
  /** SSE streams open at once across all browsers; more are refused with 503. */
  maxSseClients: 32,
  /** Bytes waiting in one stream's socket before the stream is closed as stalled. */
  maxSseBufferedBytes: 512 * 1024,
  /** The browser's reconnect delay after a dropped stream (the SSE `retry:` field). */
  sseRetryMs: 1_000,
  /** Retry-After (seconds) on a refused stream. */
  refusedRetryAfterSeconds: 5,
} as const;

export type ClusterPageOptions = { -readonly [K in keyof typeof PAGE_DEFAULTS]?: number };

/**
 * The folder of the page's own files (HTML, CSS, JS): node/page/assets/ beside this module when
 * it runs from source; when it runs compiled (dist/node/rpc/page.js), tsc has not copied them, so
 * the package's node/page/assets/ is used (the package must ship it: package.json `files`).
 */
export const PAGE_ASSETS_DIR =
  [new URL('../page/assets/', import.meta.url), new URL('../../../node/page/assets/', import.meta.url)]
    .map((u) => fileURLToPath(u))
    .find((dir) => existsSync(`${dir}index.html`)) ?? fileURLToPath(new URL('../page/assets/', import.meta.url));

/**
 * Only this origin's scripts, styles and connections; no framing, no inline script or style, no
 * plugins. uPlot sets element styles from script (CSSOM), which 'self' allows.
 */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': PAGE_CSP,
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
} as const;

/** The paths that carry the cluster's state; the RPC server's authentication must cover them. */
export const PAGE_DATA_PATHS: ReadonlySet<string> = new Set(['/events', '/page/node.json']);

/**
 * What a GET path is to the page: 'data' (the cluster's state: authenticate like the RPC), 'asset'
 * (the page's own static files, the same for every node and holding no state: a browser cannot
 * attach a bearer token when it navigates, so these may stay open like /health), or undefined
 * (not the page's). Lets the server's authentication tell them apart without knowing the page.
 */
export function pagePathKind(path: string): 'data' | 'asset' | undefined {
  if (PAGE_DATA_PATHS.has(path)) return 'data';
  if (path === '/' || path.startsWith('/page/assets/')) return 'asset';
  return undefined;
}

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

/** URL path → file. uPlot comes from its npm package; the rest from PAGE_ASSETS_DIR. */
function assetFiles(): ReadonlyMap<string, { file: string; contentType: string }> {
  const require = createRequire(import.meta.url);
  const own = (name: string): string => `${PAGE_ASSETS_DIR}${name}`;
  return new Map([
    ['/', { file: own('index.html'), contentType: 'text/html; charset=utf-8' }],
    ['/page/assets/page.js', { file: own('page.js'), contentType: 'text/javascript; charset=utf-8' }],
    ['/page/assets/page.css', { file: own('page.css'), contentType: 'text/css; charset=utf-8' }],
    ['/page/assets/favicon.svg', { file: own('favicon.svg'), contentType: 'image/svg+xml' }],
    [
      '/page/assets/uPlot.iife.min.js',
      { file: require.resolve('uplot/dist/uPlot.iife.min.js'), contentType: 'text/javascript; charset=utf-8' },
    ],
    [
      '/page/assets/uPlot.min.css',
      { file: require.resolve('uplot/dist/uPlot.min.css'), contentType: 'text/css; charset=utf-8' },
    ],
  ]);
}

/** Reads every asset once. Throws (with the path) when one is missing: a broken install should fail at start. */
export async function loadPageAssets(): Promise<ReadonlyMap<string, Asset>> {
  const out = new Map<string, Asset>();
  for (const [path, { file, contentType }] of assetFiles()) {
    const body = await readFile(file);
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    out.set(path, { body, contentType, etag });
  }
  return out;
}

type PageLimits = { -readonly [K in keyof typeof PAGE_DEFAULTS]: number };

interface SseClient {
  readonly res: http.ServerResponse;
  readonly unwatch: () => void;
}

export class ClusterPage {
  private readonly options: PageLimits;
  private readonly clients = new Set<SseClient>();
  private stopped = false;

  constructor(
    options: ClusterPageOptions,
    private readonly deps: {
      readonly view: ClusterView;
      readonly assets: ReadonlyMap<string, Asset>;
      readonly logger: Logger;
    },
  ) {
    const merged: PageLimits = { ...PAGE_DEFAULTS };
    for (const [k, v] of Object.entries(options)) {
      if (v === undefined) continue;
      if (!(Number.isInteger(v) && v > 0)) throw new RangeError(`ClusterPage option ${k} must be a positive integer`);
      merged[k as keyof typeof PAGE_DEFAULTS] = v;
    }
    this.options = merged;
  }

  /** SSE streams open now (bounded by maxSseClients). */
  get sseClients(): number {
    return this.clients.size;
  }

  /**
   * Answers the page's paths and returns true; returns false for anything else (the caller goes
   * on with its own routes). Only GET and HEAD are the page's.
   */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/events' && req.method === 'GET') {
      this.openStream(req, res);
      return true;
    }
    if (path === '/page/node.json' && req.method === 'GET') {
      void this.serveSample(res);
      return true;
    }
    if (pagePathKind(path) !== 'asset') return false;
    const asset = this.deps.assets.get(path);
    if (!asset) return false;
    const headers = { ...COMMON_HEADERS, 'cache-control': 'no-cache', etag: asset.etag };
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    res.writeHead(200, { ...headers, 'content-type': asset.contentType, 'content-length': asset.body.length });
    res.end(asset.body);
    return true;
  }

  /** Ends every stream (the RPC server's stop() then need not wait for them). */
  stop(): void {
    this.stopped = true;
    for (const c of [...this.clients]) this.drop(c);
  }

  private async serveSample(res: http.ServerResponse): Promise<void> {
    try {
      const text = JSON.stringify(await this.deps.view.localSample());
      res.writeHead(200, {
        ...COMMON_HEADERS,
        'content-type': 'application/json',
        'cache-control': 'no-store',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    } catch (err) {
      this.deps.logger.warn({ err }, 'cluster page: local sample failed');
      if (!res.headersSent) res.writeHead(503, { ...COMMON_HEADERS, 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'sample unavailable' }));
    }
  }

  private openStream(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.stopped || this.clients.size >= this.options.maxSseClients) {
      const text = JSON.stringify({
        error: this.stopped
          ? 'the node is stopping'
          : `${this.clients.size} page streams are open (limit maxSseClients=${this.options.maxSseClients}); retry later`,
      });
      res.writeHead(503, {
        ...COMMON_HEADERS,
        'content-type': 'application/json',
        'cache-control': 'no-store',
        'retry-after': String(this.options.refusedRetryAfterSeconds),
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
      return;
    }
    res.writeHead(200, {
      ...COMMON_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // Tells a reverse proxy (nginx) not to buffer the stream.
      'x-accel-buffering': 'no',
    });
    // A stream has no request timeout of its own: it lives until either side closes it.
    req.socket.setNoDelay(true);
    const client: SseClient = {
      res,
      unwatch: this.deps.view.watch((view) => this.send(client, 'view', view)),
    };
    this.clients.add(client);
    res.on('close', () => this.drop(client));
    res.write(`retry: ${this.options.sseRetryMs}\n\n`);
    this.send(client, 'history', this.deps.view.history());
    const latest = this.deps.view.latest();
    if (latest) this.send(client, 'view', latest);
  }

  private send(client: SseClient, event: 'view' | 'history', data: ClusterViewMessage | ClusterHistoryMessage): void {
    const { res } = client;
    if (res.destroyed || res.writableEnded) return this.drop(client);
    if (res.writableLength > this.options.maxSseBufferedBytes) {
      this.deps.logger.debug({ bufferedBytes: res.writableLength }, 'cluster page: closing a stalled stream');
      // destroy, not end: end() would wait for the stalled reader to drain what is buffered.
      return this.drop(client, true);
    }
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private drop(client: SseClient, destroy = false): void {
    if (!this.clients.delete(client)) return;
    client.unwatch();
    if (destroy) client.res.destroy();
    else if (!client.res.writableEnded) client.res.end();
  }
}
