// The control relay: how the harness (in the host's network namespace) reaches nodes that live in
// network namespaces the host has no route to. One small child process runs in the control (hub)
// namespace — which reaches every node and is never cut — and, on request over stdin, listens on a
// Unix socket per target and pipes every connection to the target's TCP address. Unix sockets are
// files: reachable from any network namespace. The relay is a byte pipe; it never parses HTTP,
// except for one case: when the node refuses the relay's dial, nothing of the request has been sent,
// and the relay answers with an HTTP 502 carrying RELAY_REFUSED_HEADER so the client can record the
// operation as certainly not done (`fail`) rather than unknown.
//
// Without netns (the proxy network) there is no relay: clients dial 127.0.0.1 directly.

import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { JepsenError, JepsenErrorCode } from './errors.js';
import { RELAY_REFUSED_HEADER } from './rpc.js';
import { harnessClock as clock } from './clock.js';

/** Time allowed for the relay to start listening on a new socket. */
export const RELAY_LISTEN_TIMEOUT_MS = 10_000;
/** Connections the relay keeps open per socket; beyond it new ones are refused (clients are bounded far below). */
export const RELAY_MAX_CONNECTIONS_PER_SOCKET = 256;

const RELAY_SCRIPT = `
const net = require('node:net');
const fs = require('node:fs');
const readline = require('node:readline');
const MAX = ${RELAY_MAX_CONNECTIONS_PER_SOCKET};
const refused = (why) => 'HTTP/1.1 502 Bad Gateway\\r\\n${RELAY_REFUSED_HEADER}: ' + why + '\\r\\ncontent-type: application/json\\r\\ncontent-length: 2\\r\\nconnection: close\\r\\n\\r\\n{}';
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line);
  try { fs.unlinkSync(req.socketPath); } catch {}
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: req.host, port: req.port });
    let connected = false;
    // Bytes from the client wait (paused) until the upstream is connected: if the dial fails,
    // nothing was sent, and the client is told so.
    client.pause();
    upstream.on('connect', () => { connected = true; client.pipe(upstream); upstream.pipe(client); client.resume(); });
    // On a refused dial: read and drop the request (a paused socket would never see the client's
    // FIN and would stay open, counting against maxConnections forever), answer, and let the client
    // close; destroying at once would reset a request still being written (EPIPE: "unknown").
    upstream.on('error', (e) => {
      if (connected) return client.destroy();
      client.resume();
      client.end(refused(e.code || 'error'));
      setTimeout(() => client.destroy(), 10000).unref();
    });
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => { if (connected) client.destroy(); });
  });
  server.maxConnections = MAX;
  server.on('error', (e) => process.stdout.write(JSON.stringify({ id: req.id, error: e.message }) + '\\n'));
  server.listen(req.socketPath, () => process.stdout.write(JSON.stringify({ id: req.id, ok: true }) + '\\n'));
});
`;

/** Spawns `argv` where the relay must run (the control namespace). */
export type RelaySpawn = (command: string, args: readonly string[]) => ChildProcess;

export class ControlRelay {
  private nextId = 1;
  private readonly waiting = new Map<number, (err?: Error) => void>();

  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let msg: { id?: number; ok?: boolean; error?: string };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      if (msg.id === undefined) return;
      const w = this.waiting.get(msg.id);
      this.waiting.delete(msg.id);
      w?.(
        msg.error === undefined
          ? undefined
          : new JepsenError(JepsenErrorCode.NetnsCommandFailed, `relay could not listen: ${msg.error}`),
      );
    });
    child.once('exit', () => {
      for (const w of this.waiting.values())
        w(new JepsenError(JepsenErrorCode.NetnsCommandFailed, 'the control relay exited'));
      this.waiting.clear();
    });
  }

  static start(spawnRelay: RelaySpawn): ControlRelay {
    const child = spawnRelay(process.execPath, ['-e', RELAY_SCRIPT]);
    return new ControlRelay(child);
  }

  /** Listens on `socketPath` and pipes its connections to host:port (seen from the control namespace). */
  listen(socketPath: string, host: string, port: number): Promise<void> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = clock.setTimeout(() => {
        this.waiting.delete(id);
        reject(
          new JepsenError(
            JepsenErrorCode.NetnsCommandFailed,
            `relay did not listen on ${socketPath} within ${RELAY_LISTEN_TIMEOUT_MS} ms`,
          ),
        );
      }, RELAY_LISTEN_TIMEOUT_MS);
      this.waiting.set(id, (err) => {
        timer?.cancel();
        if (err) reject(err);
        else resolve();
      });
      this.child.stdin!.write(JSON.stringify({ id, socketPath, host, port }) + '\n');
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }
}
