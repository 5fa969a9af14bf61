// Wire format of Libp2pTransport's channel streams, inside libp2p's varint length prefix:
//
//   Hello     [0x01][version u8][channel utf-8]     first frame of every stream, names its channel
//   Message   [0x02][payload]                        send()
//   Request   [0x03][id u32 BE][payload]             request()
//   Reply     [0x04][id u32 BE][payload]             a handler's result, on the same stream
//   ErrReply  [0x05][id u32 BE][reason u8][utf-8]    a handler's failure (RemoteErrorReason)
//
// One protocol id carries every channel, so a new channel needs no handle() registration on the
// remote before it can be used, and per-protocol stream limits apply to all channels together.

import { P2pError, P2pErrorCode } from './errors.js';
import { MAX_CHANNEL_NAME_BYTES, MAX_REMOTE_ERROR_MESSAGE_BYTES, type RemoteErrorReason } from './transport.js';

export const CHANNEL_PROTOCOL = '/quorate/channel/1.0.0';
export const WIRE_VERSION = 1;

export enum FrameKind {
  Hello = 0x01,
  Message = 0x02,
  Request = 0x03,
  Reply = 0x04,
  ErrReply = 0x05,
}

/** Header bytes before a payload: kind + request id. A frame is at most maxMessageBytes + this. */
export const MAX_FRAME_OVERHEAD_BYTES = 5 + 1;

export type Frame =
  | { kind: FrameKind.Hello; version: number; channel: string }
  | { kind: FrameKind.Message; payload: Uint8Array }
  | { kind: FrameKind.Request; id: number; payload: Uint8Array }
  | { kind: FrameKind.Reply; id: number; payload: Uint8Array }
  | { kind: FrameKind.ErrReply; id: number; reason: RemoteErrorReason; message: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeHello(channel: string): Uint8Array {
  const name = encoder.encode(channel);
  const out = new Uint8Array(2 + name.byteLength);
  out[0] = FrameKind.Hello;
  out[1] = WIRE_VERSION;
  out.set(name, 2);
  return out;
}

export function encodeMessage(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + payload.byteLength);
  out[0] = FrameKind.Message;
  out.set(payload, 1);
  return out;
}

export function encodeWithId(kind: FrameKind.Request | FrameKind.Reply, id: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.byteLength);
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, id);
  out.set(payload, 5);
  return out;
}

export function encodeErrReply(id: number, reason: RemoteErrorReason, message: string): Uint8Array {
  let text = encoder.encode(message);
  if (text.byteLength > MAX_REMOTE_ERROR_MESSAGE_BYTES)
    text = encoder.encode(message.slice(0, MAX_REMOTE_ERROR_MESSAGE_BYTES / 4));
  const out = new Uint8Array(6 + text.byteLength);
  out[0] = FrameKind.ErrReply;
  new DataView(out.buffer).setUint32(1, id);
  out[5] = reason;
  out.set(text, 6);
  return out;
}

function malformed(why: string): P2pError {
  // A peer speaking a broken protocol is treated like one sending an oversized frame: its stream is reset.
  return new P2pError(P2pErrorCode.RemoteError, `malformed frame: ${why}`);
}

/** Decodes one frame. `bytes` is not copied: payloads are views into it. Throws P2pError on garbage. */
export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.byteLength < 1) throw malformed('empty');
  const kind = bytes[0];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (kind) {
    case FrameKind.Hello: {
      if (bytes.byteLength < 3 || bytes.byteLength > 2 + MAX_CHANNEL_NAME_BYTES) throw malformed('hello length');
      let channel: string;
      try {
        channel = decoder.decode(bytes.subarray(2));
      } catch {
        throw malformed('hello channel is not utf-8');
      }
      return { kind, version: bytes[1], channel };
    }
    case FrameKind.Message:
      return { kind, payload: bytes.subarray(1) };
    case FrameKind.Request:
    case FrameKind.Reply:
      if (bytes.byteLength < 5) throw malformed('short request/reply');
      return { kind, id: view.getUint32(1), payload: bytes.subarray(5) };
    case FrameKind.ErrReply: {
      if (bytes.byteLength < 6) throw malformed('short error reply');
      let message: string;
      try {
        message = decoder.decode(bytes.subarray(6));
      } catch {
        message = '(undecodable error message)';
      }
      return { kind, id: view.getUint32(1), reason: bytes[5] as RemoteErrorReason, message };
    }
    default:
      throw malformed(`unknown kind ${kind}`);
  }
}
