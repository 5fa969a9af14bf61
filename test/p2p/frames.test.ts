import { describe, expect, it } from 'vitest';
import { P2pError } from '../../p2p/errors.js';
import { FrameKind, decodeFrame, encodeErrReply, encodeHello, encodeMessage, encodeWithId } from '../../p2p/frames.js';
import { MAX_REMOTE_ERROR_MESSAGE_BYTES, RemoteErrorReason } from '../../p2p/transport.js';

describe('channel stream frames', () => {
  it('round-trips every frame kind', () => {
    expect(decodeFrame(encodeHello('raft'))).toEqual({ kind: FrameKind.Hello, version: 1, channel: 'raft' });
    expect(decodeFrame(encodeMessage(Uint8Array.of(1, 2)))).toEqual({
      kind: FrameKind.Message,
      payload: Uint8Array.of(1, 2),
    });
    expect(decodeFrame(encodeWithId(FrameKind.Request, 0xfffffffe, Uint8Array.of(9)))).toEqual({
      kind: FrameKind.Request,
      id: 0xfffffffe,
      payload: Uint8Array.of(9),
    });
    expect(decodeFrame(encodeWithId(FrameKind.Reply, 7, new Uint8Array(0)))).toEqual({
      kind: FrameKind.Reply,
      id: 7,
      payload: new Uint8Array(0),
    });
    expect(decodeFrame(encodeErrReply(3, RemoteErrorReason.Busy, 'busy'))).toEqual({
      kind: FrameKind.ErrReply,
      id: 3,
      reason: RemoteErrorReason.Busy,
      message: 'busy',
    });
  });

  it('cuts a long error message to its bound', () => {
    const frame = encodeErrReply(1, RemoteErrorReason.HandlerFailed, 'x'.repeat(100_000));
    expect(frame.byteLength).toBeLessThanOrEqual(6 + MAX_REMOTE_ERROR_MESSAGE_BYTES);
  });

  it('rejects garbage with a P2pError, never an unchecked exception', () => {
    const garbage = [
      new Uint8Array(0),
      Uint8Array.of(0x09),
      Uint8Array.of(FrameKind.Request, 1, 2),
      Uint8Array.of(FrameKind.Hello, 1),
    ];
    for (const bytes of garbage) expect(() => decodeFrame(bytes)).toThrow(P2pError);
    const longHello = new Uint8Array(200).fill(0x61);
    longHello[0] = FrameKind.Hello;
    expect(() => decodeFrame(longHello)).toThrow(P2pError);
  });
});

describe('reconnection backoff', () => {
  it('grows exponentially with jitter inside [step/2, step], capped at the maximum', async () => {
    const { reconnectDelayMs, resolveLimits } = await import('../../p2p/transport.js');
    const limits = resolveLimits({ reconnectBaseDelayMs: 100, reconnectMaxDelayMs: 5_000 });
    const low = (attempt: number) => reconnectDelayMs(attempt, limits, () => 0);
    const high = (attempt: number) => reconnectDelayMs(attempt, limits, () => 0.999999);
    expect([0, 1, 2, 3].map(low)).toEqual([50, 100, 200, 400]);
    expect([0, 1, 2, 3].map(high)).toEqual([100, 200, 400, 800]);
    expect(high(50)).toBe(5_000);
    expect(low(1_000)).toBe(2_500);
  });
});
