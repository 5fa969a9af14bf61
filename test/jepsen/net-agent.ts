// A tiny network agent for the network-controller tests: a child process (possibly inside a network
// namespace) that runs an echo server and, on request over stdin, dials another address, sends a token
// and reports whether the echo came back in time. A probe therefore crosses the real kernel path (the
// namespace's routes, or the proxy) in both directions.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

const AGENT_SCRIPT = `
const net = require('node:net');
const readline = require('node:readline');
const [host, port] = process.argv.slice(1);
const server = net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('error', () => {}); });
server.listen(Number(port), host, () => process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\\n'));
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line);
  let done = false;
  const finish = (ok) => { if (done) return; done = true; clearTimeout(t); sock.destroy(); process.stdout.write(JSON.stringify({ id: req.id, ok }) + '\\n'); };
  const sock = net.connect({ host: req.host, port: req.port });
  const t = setTimeout(() => finish(false), req.timeoutMs);
  let got = '';
  sock.on('connect', () => sock.write(req.token));
  sock.on('data', (d) => { got += d; if (got === req.token) finish(true); });
  sock.on('error', () => finish(false));
  sock.on('close', () => finish(false));
});
`;

export class NetAgent {
  private nextId = 1;
  private readonly waiting = new Map<number, (ok: boolean) => void>();
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}

  /** `wrap` turns [command, ...args] into what to spawn (e.g. inside a namespace). */
  static async start(
    host: string,
    port: number,
    wrap: (argv: string[]) => ChildProcess = (argv) =>
      spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] }),
  ): Promise<NetAgent> {
    const child = wrap([process.execPath, '-e', AGENT_SCRIPT, host, String(port)]);
    const lines = createInterface({ input: child.stdout! });
    let agent: NetAgent | undefined = undefined; // set once listening; the line handler reads it before
    const listening = new Promise<number>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`agent exited with ${code} before listening`)));
      lines.on('line', (line) => {
        const msg = JSON.parse(line) as { listening?: number; id?: number; ok?: boolean };
        if (msg.listening !== undefined) resolve(msg.listening);
        else if (msg.id !== undefined) {
          agent?.waiting.get(msg.id)?.(msg.ok === true);
          agent?.waiting.delete(msg.id);
        }
      });
    });
    agent = new NetAgent(child, await listening);
    return agent;
  }

  probe(host: string, port: number, timeoutMs: number): Promise<boolean> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin!.write(JSON.stringify({ id, host, port, timeoutMs, token: `tok-${id}` }) + '\n');
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }
}
