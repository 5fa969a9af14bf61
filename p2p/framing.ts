// Varint length-prefixed framing (the same bytes as @libp2p/utils' lpStream), decoded
// synchronously from a stream's 'message' events. lpStream's read() costs several promises per
// frame (the varint is read one byte at a time); decoding every complete frame of a chunk in one
// pass makes the receive path cheap, and gives natural backpressure: nothing is buffered beyond
// the one partial frame at the end of a chunk.

import type { Stream } from '@libp2p/interface';

/** A length prefix announced more than the receiver's maximum frame size. */
export class FrameTooLargeError extends Error {
  override readonly name = 'FrameTooLargeError';
}

/** A length prefix of more than this many bytes cannot be a frame we accept (2^35 > any limit). */
const MAX_VARINT_BYTES = 5;

export function varintLength(value: number): number {
  let bytes = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    bytes++;
  }
  return bytes;
}

/** Concatenates frames, each behind its unsigned LEB128 length, into one buffer for one send(). */
export function encodeFrames(frames: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const frame of frames) total += varintLength(frame.byteLength) + frame.byteLength;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const frame of frames) {
    let length = frame.byteLength;
    while (length >= 0x80) {
      out[offset++] = (length & 0x7f) | 0x80;
      length = Math.floor(length / 128);
    }
    out[offset++] = length;
    out.set(frame, offset);
    offset += frame.byteLength;
  }
  return out;
}

export class FrameDecoder {
  /** Bytes received but not yet part of a complete frame. At most one frame plus its prefix. */
  private chunks: Uint8Array[] = [];
  private bufferedBytes = 0;
  /** Bytes needed before the buffered partial frame is complete (0: prefix not yet known). */
  private neededBytes = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Feeds a chunk; returns the frames it completes (views into received bytes). Throws FrameTooLargeError. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.byteLength;
    // Waiting for the rest of a large frame: do not re-concatenate on every chunk (that is quadratic).
    if (this.neededBytes > 0 && this.bufferedBytes < this.neededBytes) return [];
    const data = this.chunks.length === 1 ? this.chunks[0] : concat(this.chunks, this.bufferedBytes);
    const frames: Uint8Array[] = [];
    let offset = 0;
    this.neededBytes = 0;
    for (;;) {
      let length = 0;
      let multiplier = 1;
      let index = offset;
      let complete = false;
      while (index < data.byteLength) {
        const byte = data[index++];
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if (byte < 0x80) {
          complete = true;
          break;
        }
        if (index - offset >= MAX_VARINT_BYTES) throw new FrameTooLargeError('frame length prefix is too long');
      }
      if (!complete) break;
      if (length > this.maxFrameBytes) {
        throw new FrameTooLargeError(`frame of ${length} bytes exceeds the maximum of ${this.maxFrameBytes}`);
      }
      if (data.byteLength - index < length) {
        this.neededBytes = index - offset + length;
        break;
      }
      frames.push(data.subarray(index, index + length));
      offset = index + length;
    }
    const rest = data.subarray(offset);
    this.chunks = rest.byteLength > 0 ? [rest] : [];
    this.bufferedBytes = rest.byteLength;
    return frames;
  }
}

function concat(chunks: readonly Uint8Array[], totalBytes: number): Uint8Array {
  const out = new Uint8Array(totalBytes);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * Calls `onFrame` for every complete frame as data arrives. A frame over `maxFrameBytes`, or an
 * exception from onFrame (a protocol violation), stops reading and goes to `onError` once.
 */
export function readFrames(
  stream: Stream,
  maxFrameBytes: number,
  onFrame: (frame: Uint8Array) => void,
  onError: (err: Error) => void,
): void {
  const decoder = new FrameDecoder(maxFrameBytes);
  const onMessage = (evt: { data: Uint8Array | { subarray(): Uint8Array } }): void => {
    try {
      const chunk = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray();
      for (const frame of decoder.push(chunk)) onFrame(frame);
    } catch (err) {
      stream.removeEventListener('message', onMessage);
      onError(err instanceof Error ? err : new Error(String(err)));
    }
  };
  stream.addEventListener('message', onMessage);
}

/** Writes frames with one send(); waits for the stream to drain when its buffer is full. */
export async function writeFrames(stream: Stream, frames: readonly Uint8Array[]): Promise<void> {
  if (!stream.send(encodeFrames(frames))) await stream.onDrain();
}
