// Compliance suite for PartyTransport. The in-memory transport passes it here
// (transport.memory.test.ts); the libp2p transport (p2p/) must pass it too:
//
//   import { runPartyTransportSuite } from '../txmanager/transport.suite.js';
//   runPartyTransportSuite('libp2p', { create: async (nodeIds) => ... });
//
// Every test builds its own cluster and closes it.
import { describe, expect, it } from 'vitest';
import {
  MAX_PUSH_BYTES,
  type PartyTransport,
  PartyTransportError,
  PartyTransportErrorCode,
  type PartyTransportHandlers,
  type ResendPage,
  type ResendRequest,
} from '../../txmanager/index.js';

export interface TransportCluster {
  /** One transport per node id, each able to reach the others. No handlers installed yet. */
  readonly transports: ReadonlyMap<string, PartyTransport>;
  /** Makes `nodeId` unreachable to the others (stop its node, or cut it off). */
  takeDown(nodeId: string): Promise<void>;
  close(): Promise<void>;
}

export interface TransportHarness {
  create(nodeIds: readonly string[]): Promise<TransportCluster>;
}

interface Recorded {
  pushes: Array<{ from: string; bytes: Uint8Array }>;
  resends: Array<{ from: string; request: ResendRequest }>;
}

function recordingHandlers(overrides: Partial<PartyTransportHandlers> = {}): {
  handlers: PartyTransportHandlers;
  recorded: Recorded;
} {
  const recorded: Recorded = { pushes: [], resends: [] };
  const handlers: PartyTransportHandlers = {
    onPush:
      overrides.onPush ??
      (async (from, bytes) => {
        recorded.pushes.push({ from, bytes: Uint8Array.from(bytes) });
      }),
    onResendRequest:
      overrides.onResendRequest ??
      (async (from, request) => {
        recorded.resends.push({ from, request });
        return { payloads: [Uint8Array.from([1, 2, 3]), Uint8Array.from([4])], nextAfterHash: 'cursor-2' };
      }),
  };
  return { handlers, recorded };
}

async function transportError(promise: Promise<unknown>): Promise<PartyTransportError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PartyTransportError);
  return error as PartyTransportError;
}

const SIGNAL_MS = 10_000;

export function runPartyTransportSuite(name: string, harness: TransportHarness): void {
  describe(`PartyTransport compliance: ${name}`, () => {
    async function withCluster(
      nodeIds: string[],
      body: (c: TransportCluster, t: (id: string) => PartyTransport) => Promise<void>,
    ): Promise<void> {
      const cluster = await harness.create(nodeIds);
      try {
        await body(cluster, (id) => cluster.transports.get(id) as PartyTransport);
      } finally {
        await cluster.close();
      }
    }

    it("push delivers the exact bytes and the caller's node id", async () => {
      await withCluster(['a', 'b'], async (_c, t) => {
        const { handlers, recorded } = recordingHandlers();
        t('b').handle(handlers);
        t('a').handle(recordingHandlers().handlers);
        const payload = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff);
        await t('a').push('b', payload, AbortSignal.timeout(SIGNAL_MS));
        expect(recorded.pushes).toHaveLength(1);
        expect(recorded.pushes[0].from).toBe('a');
        expect(Uint8Array.from(recorded.pushes[0].bytes)).toEqual(payload);
        expect(t('a').localNodeId).toBe('a');
      });
    });

    it('push resolves only after the remote handler resolved (the durable ack)', async () => {
      await withCluster(['a', 'b'], async (_c, t) => {
        let release!: () => void;
        const gate = new Promise<void>((resolve) => {
          release = resolve;
        });
        let handlerDone = false;
        t('b').handle(
          recordingHandlers({
            onPush: async () => {
              await gate;
              handlerDone = true;
            },
          }).handlers,
        );
        let pushed = false;
        const push = t('a')
          .push('b', Uint8Array.from([1]), AbortSignal.timeout(SIGNAL_MS))
          .then(() => {
            pushed = true;
          });
        await new Promise((r) => setTimeout(r, 100));
        expect(pushed).toBe(false);
        release();
        await push;
        expect(handlerDone).toBe(true);
      });
    });

    it('a refusal by the remote handler is Rejected, with its message and code', async () => {
      await withCluster(['a', 'b'], async (_c, t) => {
        const refusal = Object.assign(new Error('no box for this node'), { code: 'TXM_NOT_A_PARTY' });
        t('b').handle(
          recordingHandlers({
            onPush: async () => {
              throw refusal;
            },
          }).handlers,
        );
        const error = await transportError(t('a').push('b', Uint8Array.from([1]), AbortSignal.timeout(SIGNAL_MS)));
        expect(error.code).toBe(PartyTransportErrorCode.Rejected);
        expect(error.remoteCode).toBe('TXM_NOT_A_PARTY');
        expect(error.message).toContain('no box for this node');
        expect(error.nodeId).toBe('b');
      });
    });

    it('an unknown node, a node without handlers, and a node taken down are Unreachable', async () => {
      await withCluster(['a', 'b', 'c'], async (cluster, t) => {
        t('c').handle(recordingHandlers().handlers);
        expect(
          (await transportError(t('a').push('nobody', Uint8Array.from([1]), AbortSignal.timeout(SIGNAL_MS)))).code,
        ).toBe(PartyTransportErrorCode.Unreachable);
        expect(
          (await transportError(t('a').push('b', Uint8Array.from([1]), AbortSignal.timeout(SIGNAL_MS)))).code,
        ).toBe(PartyTransportErrorCode.Unreachable);
        await t('a').push('c', Uint8Array.from([1]), AbortSignal.timeout(SIGNAL_MS)); // positive control
        await cluster.takeDown('c');
        expect(
          (await transportError(t('a').push('c', Uint8Array.from([1]), AbortSignal.timeout(SIGNAL_MS)))).code,
        ).toBe(PartyTransportErrorCode.Unreachable);
      });
    });

    it('a fired signal ends a slow request promptly with Aborted', async () => {
      await withCluster(['a', 'b'], async (_c, t) => {
        t('b').handle(recordingHandlers({ onPush: () => new Promise<void>((r) => setTimeout(r, 5_000)) }).handlers);
        const started = Date.now();
        const error = await transportError(t('a').push('b', Uint8Array.from([1]), AbortSignal.timeout(200)));
        expect(error.code).toBe(PartyTransportErrorCode.Aborted);
        expect(Date.now() - started).toBeLessThan(4_000);
        const already = AbortSignal.abort(new Error('cancelled'));
        expect((await transportError(t('a').push('b', Uint8Array.from([1]), already))).code).toBe(
          PartyTransportErrorCode.Aborted,
        );
      });
    });

    it('a push over MAX_PUSH_BYTES is refused with TooLarge before reaching the remote', async () => {
      await withCluster(['a', 'b'], async (_c, t) => {
        const { handlers, recorded } = recordingHandlers();
        t('b').handle(handlers);
        const error = await transportError(
          t('a').push('b', new Uint8Array(MAX_PUSH_BYTES + 1), AbortSignal.timeout(SIGNAL_MS)),
        );
        expect(error.code).toBe(PartyTransportErrorCode.TooLarge);
        expect(recorded.pushes).toHaveLength(0);
      });
    });

    it('resendRequest carries the request and returns the page', async () => {
      await withCluster(['a', 'b'], async (_c, t) => {
        const { handlers, recorded } = recordingHandlers();
        t('b').handle(handlers);
        const page: ResendPage = await t('a').resendRequest(
          'b',
          { afterHash: 'cursor-1', maxPayloads: 8 },
          AbortSignal.timeout(SIGNAL_MS),
        );
        expect(recorded.resends).toEqual([{ from: 'a', request: { afterHash: 'cursor-1', maxPayloads: 8 } }]);
        expect(page.payloads.map((p) => [...p])).toEqual([[1, 2, 3], [4]]);
        expect(page.nextAfterHash).toBe('cursor-2');
        const first = await t('a')
          .resendRequest('b', { afterHash: null, maxPayloads: 1 }, AbortSignal.timeout(SIGNAL_MS))
          .then(
            () => null,
            (e: unknown) => e,
          );
        // The handler above returns 2 payloads for maxPayloads 1: a protocol violation the caller must not accept.
        expect(first).toBeInstanceOf(PartyTransportError);
        expect((first as PartyTransportError).code).toBe(PartyTransportErrorCode.Protocol);
      });
    });

    it('many concurrent pushes in both directions all arrive once', async () => {
      await withCluster(['a', 'b'], async (_c, t) => {
        const atA = recordingHandlers();
        const atB = recordingHandlers();
        t('a').handle(atA.handlers);
        t('b').handle(atB.handlers);
        await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            i % 2 === 0
              ? t('a').push('b', Uint8Array.from([i]), AbortSignal.timeout(SIGNAL_MS))
              : t('b').push('a', Uint8Array.from([i]), AbortSignal.timeout(SIGNAL_MS)),
          ),
        );
        expect(atB.recorded.pushes.map((p) => p.bytes[0]).sort((x, y) => x - y)).toEqual(
          Array.from({ length: 20 }, (_, i) => i * 2),
        );
        expect(atA.recorded.pushes.map((p) => p.bytes[0]).sort((x, y) => x - y)).toEqual(
          Array.from({ length: 20 }, (_, i) => i * 2 + 1),
        );
      });
    });
  });
}
