// Control-channel messages are checked before use (issue 10 part 4): the reply envelope every
// request reads, the `whoami` reply a joiner takes its raft id from, and the `admin` and `prove`
// requests a member serves. Malformed ones are refused with a reason, never a TypeError.

import { describe, expect, it } from 'vitest';
import { ControlChannel, parseAdminRequest, parseReplyEnvelope, parseWhoamiReply } from '../../node/control.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { canonicalBase64 } from '../../node/membership.js';
import { SystemClock } from '../../node/clock.js';
import { MemoryNetwork } from '../../p2p/memory-transport.js';
import { testPeerId } from '../node/harness.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

function refusedWith(fn: () => unknown, code: NodeErrorCode): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(NodeError);
    expect((err as NodeError).code).toBe(code);
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('the reply envelope', () => {
  it('accepts { ok } and a well-formed { error }', () => {
    expect(parseReplyEnvelope(bytes('{"ok":null}'))).toEqual({ ok: null });
    expect(parseReplyEnvelope(bytes('{"ok":{"a":1}}'))).toEqual({ ok: { a: 1 } });
    expect(parseReplyEnvelope(bytes('{"error":{"code":"NOT_LEADER","message":"m","meta":{"leader":2}}}'))).toEqual({
      error: { code: 'NOT_LEADER', message: 'm', meta: { leader: 2 } },
    });
    const long = parseReplyEnvelope(bytes(JSON.stringify({ error: { code: 'X', message: 'm'.repeat(10_000) } })));
    expect('error' in long && long.error.message.length).toBe(2_048);
  });

  it.each([
    ['not JSON', '{'],
    ['not UTF-8', '\xff'],
    ['null', 'null'],
    ['an array', '[1]'],
    ['neither ok nor error', '{}'],
    ['both', '{"ok":1,"error":{"code":"X","message":"m"}}'],
    ['an extra field', '{"ok":1,"x":2}'],
    ['an error that is not an object', '{"error":"boom"}'],
    ['an error without a message', '{"error":{"code":"X"}}'],
    ['an error with a numeric code', '{"error":{"code":5,"message":"m"}}'],
    ['an error meta that is a list', '{"error":{"code":"X","message":"m","meta":[1]}}'],
  ])('refuses %s as Unavailable', (_what, text) => {
    const raw = text === '\xff' ? Uint8Array.of(0xff) : bytes(text);
    expect(refusedWith(() => parseReplyEnvelope(raw), NodeErrorCode.Unavailable)).toMatch(/malformed control reply/);
  });

  it('ControlChannel.request rejects with that NodeError, not a TypeError', async () => {
    const net = new MemoryNetwork(new SystemClock());
    const a = net.createTransport(testPeerId(3, 1));
    const b = net.createTransport(testPeerId(3, 2));
    a.setPeers([{ peerId: b.localPeerId, addrs: ['/memory/b'] }]);
    b.setPeers([{ peerId: a.localPeerId, addrs: ['/memory/a'] }]);
    b.onRequest('ctl', async () => bytes('null'));
    await Promise.all([a.start(), b.start()]);
    try {
      let err: unknown;
      for (let i = 0; i < 100 && !(err instanceof NodeError && /malformed/.test(err.message)); i++) {
        err = await new ControlChannel(a).request(b.localPeerId, { type: 'whoami' }, 1_000).catch((e: unknown) => e);
        if (!(err instanceof NodeError && /malformed/.test(err.message))) await new Promise((r) => setTimeout(r, 20));
      }
      expect(err).toBeInstanceOf(NodeError);
      expect((err as Error).message).toMatch(/malformed control reply: not an object/);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('whoami', () => {
  it('takes exactly { raftId } with an id in range or null', () => {
    expect(parseWhoamiReply({ raftId: 4 })).toEqual({ ok: true, raftId: 4 });
    expect(parseWhoamiReply({ raftId: null })).toEqual({ ok: true, raftId: null });
    for (const bad of [
      null,
      4,
      [],
      {},
      { raftId: 0 },
      { raftId: -1 },
      { raftId: 1.5 },
      { raftId: '4' },
      { raftId: 2 ** 31 },
      { raftId: 4, x: 1 },
    ])
      expect(parseWhoamiReply(bad).ok, JSON.stringify(bad)).toBe(false);
  });
});

describe('admin and prove requests', () => {
  it('an admin request is checked field by field', () => {
    const addr = `/ip4/127.0.0.1/tcp/1/p2p/${testPeerId(3, 9)}`;
    expect(parseAdminRequest({ type: 'admin', op: 'remove', raftId: 3 })).toEqual({
      type: 'admin',
      op: 'remove',
      raftId: 3,
    });
    expect(
      parseAdminRequest({
        type: 'admin',
        op: 'add-peer',
        p2pAddress: addr,
        expect: { enclavePublicKeys: ['k'], rpcUrl: 'http://h/' },
      }),
    ).toEqual({
      type: 'admin',
      op: 'add-peer',
      p2pAddress: addr,
      expect: { rpcUrl: 'http://h/', enclavePublicKeys: ['k'] },
    });
    for (const bad of [
      { op: 'leave-joint' },
      { op: 'nuke' },
      { op: 'remove', raftId: '3' },
      { op: 'remove', raftId: 0 },
      { op: 'transfer' },
      { op: 'add-peer', p2pAddress: 7 },
      { op: 'add-peer', p2pAddress: 'x'.repeat(1025) },
      { op: 'add-peer', p2pAddress: addr, expect: [] },
      { op: 'add-peer', p2pAddress: addr, expect: { enclavePublicKeys: 'k' } },
      { op: 'add-peer', p2pAddress: addr, expect: { enclavePublicKeys: [1] } },
      { op: 'add-peer', p2pAddress: addr, expect: { rpcUrl: 5 } },
      { op: 'add-peer', p2pAddress: addr, expect: { other: 1 } },
      { op: 'remove', raftId: 3, extra: 1 },
    ])
      expect(
        refusedWith(() => parseAdminRequest({ type: 'admin', ...bad }), NodeErrorCode.MembershipChangeInvalid),
        JSON.stringify(bad),
      ).toMatch(/malformed admin request/);
  });

  it('canonical base64 of an exact length only', () => {
    const k = Buffer.alloc(32, 7).toString('base64');
    expect(canonicalBase64(k, 32)).toEqual(Uint8Array.from(Buffer.alloc(32, 7)));
    for (const bad of [k.slice(0, -1), k.replace(/=$/, 'A'), Buffer.alloc(31).toString('base64'), 32, null, k + '='])
      expect(canonicalBase64(bad, 32), String(bad)).toBeUndefined();
  });
});
