import { describe, expect, it } from 'vitest';
import { SystemClock } from '../../node/clock.js';
import {
  MemoryPartyNetwork,
  PartyTransportError,
  PartyTransportErrorCode,
  type PartyTransport,
} from '../../txmanager/index.js';
import { runPartyTransportSuite } from './transport.suite.js';

runPartyTransportSuite('in-memory', {
  create: async (nodeIds) => {
    const network = new MemoryPartyNetwork(new SystemClock());
    const transports = new Map<string, PartyTransport>(nodeIds.map((id) => [id, network.transport(id)]));
    return {
      transports,
      takeDown: async (nodeId) => network.setDown(nodeId, true),
      close: async () => {
        for (const t of transports.values()) t.unhandle();
      },
    };
  },
});

describe('MemoryPartyNetwork fault switches', () => {
  function setUp(): { network: MemoryPartyNetwork; received: number[] } {
    const network = new MemoryPartyNetwork(new SystemClock());
    const received: number[] = [];
    network.transport('b').handle({
      onPush: async (_from, bytes) => {
        received.push(bytes[0]);
      },
      onResendRequest: async () => ({ payloads: [], nextAfterHash: null }),
    });
    return { network, received };
  }
  const code = async (p: Promise<unknown>): Promise<string> =>
    (
      (await p.then(
        () => null,
        (e: unknown) => e,
      )) as PartyTransportError
    ).code;

  it('down, then up again', async () => {
    const { network, received } = setUp();
    network.setDown('b', true);
    expect(await code(network.transport('a').push('b', Uint8Array.of(1), AbortSignal.timeout(1000)))).toBe(
      PartyTransportErrorCode.Unreachable,
    );
    network.setDown('b', false);
    await network.transport('a').push('b', Uint8Array.of(2), AbortSignal.timeout(1000));
    expect(received).toEqual([2]);
  });

  it('a down node cannot send either', async () => {
    const { network } = setUp();
    network.transport('a');
    network.setDown('a', true);
    expect(await code(network.transport('a').push('b', Uint8Array.of(1), AbortSignal.timeout(1000)))).toBe(
      PartyTransportErrorCode.Unreachable,
    );
  });

  it('slow: delivered after the delay, or Aborted when the signal fires first', async () => {
    const { network, received } = setUp();
    network.setDelayMs('b', 150);
    const started = Date.now();
    await network.transport('a').push('b', Uint8Array.of(3), AbortSignal.timeout(2000));
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(await code(network.transport('a').push('b', Uint8Array.of(4), AbortSignal.timeout(30)))).toBe(
      PartyTransportErrorCode.Aborted,
    );
    expect(received).toEqual([3]);
  });

  it('failing: reachable but refusing, until switched back', async () => {
    const { network, received } = setUp();
    network.setFailing('b', 'disk full');
    const error = (await network
      .transport('a')
      .push('b', Uint8Array.of(5), AbortSignal.timeout(1000))
      .then(
        () => null,
        (e: unknown) => e,
      )) as PartyTransportError;
    expect(error.code).toBe(PartyTransportErrorCode.Rejected);
    expect(error.message).toContain('disk full');
    network.setFailing('b', null);
    await network.transport('a').push('b', Uint8Array.of(6), AbortSignal.timeout(1000));
    expect(received).toEqual([6]);
  });

  it('bytes are copied on the way: a later mutation by the sender is not seen', async () => {
    const network = new MemoryPartyNetwork(new SystemClock());
    let seen: Uint8Array | null = null;
    network.transport('b').handle({
      onPush: async (_f, bytes) => {
        seen = bytes;
      },
      onResendRequest: async () => ({ payloads: [], nextAfterHash: null }),
    });
    const payload = Uint8Array.of(7, 7);
    await network.transport('a').push('b', payload, AbortSignal.timeout(1000));
    payload[0] = 0;
    expect(seen).toEqual(Uint8Array.of(7, 7));
  });
});
