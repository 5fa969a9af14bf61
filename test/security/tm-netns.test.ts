// The TM client API is unreachable from another host (issue 10): a network namespace stands in
// for "another host", joined to this one by a veth pair on a private /30 (10.200.0.0/30) used
// only between the two. From inside it, a control listener on this host's veth address answers
// (so the path works and a refusal is not for the wrong reason), and the TM client port does not.
// Needs root and `ip`; otherwise skipped with the reason printed. The namespace and the veth
// pair are always deleted afterwards.

import { execFile, execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TxManagerErrorCode, TxManagerServer } from '../../txmanager/index.js';
import { type TmCluster, tmCluster } from '../txmanager/fixtures.js';

const HOST_ADDR = '10.200.0.1';
const NS_ADDR = '10.200.0.2';
const PREFIX = 30;
// Short names (interface names are at most 15 characters), unique per run.
const tag = `${process.pid % 100_000}`;
const NS = `qtmns${tag}`;
const VETH_HOST = `qtmh${tag}`;
const VETH_NS = `qtmn${tag}`;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

function whyNoNetns(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (ip netns needs root)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'no `ip` command';
  }
  try {
    const addrs = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
    if (addrs.includes(` ${HOST_ADDR}/`)) return `${HOST_ADDR} is already in use on this machine`;
  } catch {
    return '`ip addr` failed';
  }
  return undefined;
}

function cleanup(): void {
  for (const args of [
    ['netns', 'del', NS],
    ['link', 'del', VETH_HOST],
  ]) {
    try {
      ip(...args);
    } catch {
      // Already gone (deleting the namespace deletes the pair).
    }
  }
}

let skipReason = whyNoNetns();
if (skipReason === undefined) {
  try {
    ip('netns', 'add', NS);
    ip('link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', VETH_NS);
    ip('link', 'set', VETH_NS, 'netns', NS);
    ip('addr', 'add', `${HOST_ADDR}/${PREFIX}`, 'dev', VETH_HOST);
    ip('link', 'set', VETH_HOST, 'up');
    ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${NS_ADDR}/${PREFIX}`, 'dev', VETH_NS);
    ip('netns', 'exec', NS, 'ip', 'link', 'set', VETH_NS, 'up');
    ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
  } catch (error) {
    skipReason = `could not set up the namespace: ${(error as { stderr?: Buffer }).stderr?.toString().trim() ?? String(error)}`;
    cleanup();
  }
}
if (skipReason !== undefined) console.log(`skipping the network-namespace TM test: ${skipReason}`);

/** From inside the namespace: "open", or the connect error code. */
function probeFromNamespace(port: number): Promise<string> {
  const script = `const s=require('net').connect(${port},'${HOST_ADDR}');s.on('connect',()=>{console.log('open');s.destroy()});s.on('error',e=>console.log(e.code));setTimeout(()=>{console.log('TIMEOUT');process.exit(0)},3000).unref()`;
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', NS, process.execPath, '-e', script], { timeout: 15_000 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout.trim()),
    );
  });
}

describe.skipIf(skipReason !== undefined)('TM client API from another host (network namespace)', () => {
  let cluster: TmCluster;
  let control: Server;
  beforeAll(async () => {
    cluster = await tmCluster();
    control = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => control.listen(0, HOST_ADDR, resolve));
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => control.close(() => resolve()));
    await cluster.stop();
    cleanup();
  });

  it('another host reaches this host, but not the TM client port; a TM bound to the veth address is refused', async () => {
    const controlPort = (control.address() as { port: number }).port;
    expect(await probeFromNamespace(controlPort)).toBe('open');

    const server = new TxManagerServer(cluster.nodes['node-a'].tm, { port: 0 });
    const { port, host } = await server.start();
    try {
      expect(host).toBe('127.0.0.1');
      expect((await fetch(`http://127.0.0.1:${port}/upcheck`)).status).toBe(200);
      expect(await probeFromNamespace(port)).toBe('ECONNREFUSED');
    } finally {
      await server.stop();
    }

    const exposed = new TxManagerServer(cluster.nodes['node-a'].tm, { host: HOST_ADDR, port: 0 });
    await expect(exposed.start()).rejects.toMatchObject({ code: TxManagerErrorCode.InsecureListener });
  }, 60_000);
});

afterAll(() => cleanup());
