import { describe, expect, it } from 'vitest';
import { FrameDecoder, FrameTooLargeError, encodeFrames, varintLength } from '../../p2p/framing.js';

const frame = (length: number, fill: number): Uint8Array => new Uint8Array(length).fill(fill);

describe('length-prefixed framing', () => {
  it('decodes what it encodes, whatever the chunk boundaries', () => {
    const frames = [frame(1, 1), frame(127, 2), frame(128, 3), frame(300, 4), frame(70_000, 5)];
    const wire = encodeFrames(frames);
    for (const chunkBytes of [1, 2, 7, 128, 4096, wire.byteLength]) {
      const decoder = new FrameDecoder(100_000);
      const out: Uint8Array[] = [];
      for (let offset = 0; offset < wire.byteLength; offset += chunkBytes) {
        out.push(...decoder.push(wire.subarray(offset, offset + chunkBytes)).map((f) => f.slice()));
      }
      expect(out).toEqual(frames);
    }
  });

  it('uses the unsigned varint prefix of libp2p lpStream (a raw lpStream peer talks to us in libp2p-transport.test.ts)', () => {
    // 300 = 0b1_0010_1100 -> 0xac 0x02
    expect([...encodeFrames([frame(300, 0)]).subarray(0, 2)]).toEqual([0xac, 0x02]);
    expect(varintLength(127)).toBe(1);
    expect(varintLength(128)).toBe(2);
    expect(varintLength(16 * 1024 * 1024)).toBe(4);
  });

  it('refuses a frame over the maximum as soon as its prefix arrives, before buffering it', () => {
    const decoder = new FrameDecoder(1000);
    expect(decoder.push(encodeFrames([frame(1000, 1)])).length).toBe(1); // exactly the maximum: fine
    const prefixOnly = encodeFrames([frame(1001, 1)]).subarray(0, 2);
    expect(() => decoder.push(prefixOnly)).toThrow(FrameTooLargeError);
  });

  it('refuses an endless length prefix', () => {
    const decoder = new FrameDecoder(1 << 30);
    expect(() => decoder.push(new Uint8Array(6).fill(0x80))).toThrow(FrameTooLargeError);
  });
});
