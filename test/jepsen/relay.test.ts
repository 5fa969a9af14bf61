// The control relay and the Jepsen JSON-RPC transport, on loopback (the relay runs here in the host
// namespace; under netns it runs in the control namespace, unchanged): requests go through, a
// refused dial is reported as "certainly not sent", and refused dials do not leak connections.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcCallError, RpcTransportError, RpcTransportErrorCode } from '../../node/rpc/client.js';
import { ControlRelay, RELAY_MAX_CONNECTIONS_PER_SOCKET } from '../../node/jepsen/relay.js';
import { ConnectionRefusedError, JepsenRpc } from '../../node/jepsen/rpc.js';

let dir = '';
let server: Server;
let port = 0;
let hangPort = 0;
let hang: ReturnType<typeof createTcpServer>;
let relay: ControlRelay;

/** A JSON-RPC echo server: `echo` returns its params, `fail` answers error -32001, batches work. */
function answer(req: { id: number; method: string; params: unknown[] }): unknown {
  if (req.method === 'fail') return { jsonrpc: '2.0', id: req.id, error: { code: -32001, message: 'no leader' } };
  return { jsonrpc: '2.0', id: req.id, result: req.params };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'qj-relay-'));
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const parsed = JSON.parse(body) as unknown;
      const out = Array.isArray(parsed) ? parsed.map((r) => answer(r as never)) : answer(parsed as never);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(out));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
  // Accepts connections and never answers (a paused node).
  hang = createTcpServer(() => undefined);
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  hangPort = (hang.address() as { port: number }).port;
  relay = ControlRelay.start((cmd, args) => spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] }));
});

afterAll(async () => {
  await relay.close();
  server.close();
  hang.close();
  await rm(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

describe('ControlRelay + JepsenRpc', () => {
  it('carries calls, batches and JSON-RPC errors through a Unix socket', async () => {
    const sock = join(dir, 'ok.sock');
    await relay.listen(sock, '127.0.0.1', port);
    const rpc = new JepsenRpc({ socketPath: sock }, { timeoutMs: 5_000 });
    expect(await rpc.call('echo', [1, 'a'])).toEqual([1, 'a']);
    const b = await rpc.batch([
      { method: 'echo', params: ['x'] },
      { method: 'fail', params: [] },
    ]);
    expect(b[0].result).toEqual(['x']);
    expect(b[1].error).toBeInstanceOf(RpcCallError);
    await expect(rpc.call('fail')).rejects.toMatchObject({ code: -32001 });
    rpc.close();
  });

  it('reports a refused dial as ConnectionRefusedError (nothing sent), directly and through the relay', async () => {
    const closed = await freePort();
    const direct = new JepsenRpc({ host: '127.0.0.1', port: closed }, { timeoutMs: 5_000 });
    await expect(direct.call('echo')).rejects.toBeInstanceOf(ConnectionRefusedError);
    const sock = join(dir, 'refused.sock');
    await relay.listen(sock, '127.0.0.1', closed);
    const viaRelay = new JepsenRpc({ socketPath: sock }, { timeoutMs: 5_000 });
    await expect(viaRelay.call('echo')).rejects.toBeInstanceOf(ConnectionRefusedError);
    direct.close();
    viaRelay.close();
  });

  it('does not leak relay connections on refused dials: more refusals than its connection limit, then a target that listens', async () => {
    const p = await freePort();
    const sock = join(dir, 'flappy.sock');
    await relay.listen(sock, '127.0.0.1', p);
    const rpc = new JepsenRpc({ socketPath: sock }, { timeoutMs: 5_000 });
    for (let i = 0; i < RELAY_MAX_CONNECTIONS_PER_SOCKET + 20; i += 20) {
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => rpc.call('echo')));
      for (const r of results) expect(r.status === 'rejected' ? String(r.reason) : 'fulfilled').toMatch(/refused/);
    }
    // The node comes back on the same port (a restart after SIGKILL): calls work again.
    const back = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => res.end(JSON.stringify(answer(JSON.parse(body) as never))));
    });
    await new Promise<void>((r) => back.listen(p, '127.0.0.1', r));
    expect(await rpc.call('echo', ['back'])).toEqual(['back']);
    rpc.close();
    back.close();
  });

  it('times out on a node that accepts but never answers: outcome unknown, not refused', async () => {
    const sock = join(dir, 'hang.sock');
    await relay.listen(sock, '127.0.0.1', hangPort);
    const rpc = new JepsenRpc({ socketPath: sock }, { timeoutMs: 300 });
    const err = await rpc.call('echo').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcTransportError);
    expect(err).not.toBeInstanceOf(ConnectionRefusedError);
    expect((err as RpcTransportError).code).toBe(RpcTransportErrorCode.Timeout);
    rpc.close();
  });
});
