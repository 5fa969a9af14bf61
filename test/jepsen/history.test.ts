import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JepsenError, JepsenErrorCode, JepsenInvariantError } from '../../node/jepsen/errors.js';
import {
  FileHistorySink,
  HistoryRecorder,
  MemoryHistorySink,
  nemesisIntervals,
  pairHistory,
  parseHistory,
  readHistoryFile,
  type HistorySink,
} from '../../node/jepsen/history.js';
import { ManualClock } from '../../node/clock.js';
import { harnessClock } from '../../node/jepsen/clock.js';

/** The recorder stamps lines in nanoseconds; the Clock counts (fractional) milliseconds. */
const NS_PER_MS = 1_000_000;

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

// One suite, two sinks: the file and its in-memory twin must give the same text.
const sinks: Array<[string, () => Promise<{ sink: HistorySink; text: () => Promise<string> }>]> = [
  [
    'MemoryHistorySink',
    async () => {
      const sink = new MemoryHistorySink();
      return { sink, text: async () => sink.text() };
    },
  ],
  [
    'FileHistorySink',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'qrt-history-'));
      dirs.push(dir);
      const path = join(dir, 'history.jsonl');
      const sink = await FileHistorySink.create(path);
      return { sink, text: () => readFile(path, 'utf8') };
    },
  ],
];

describe.each(sinks)('HistoryRecorder with %s', (_name, make) => {
  it('writes invoke/complete lines that parse back, with monotonic times and consecutive indexes', async () => {
    const { sink, text } = await make();
    const clock = new ManualClock(5);
    const rec = new HistoryRecorder({ sink, clock, flushThresholdOps: 2 });
    const a = rec.invoke(0, 'put', { key: 'x', value: '1' }, 'n1');
    clock.advance(10 / NS_PER_MS);
    const b = rec.invoke(1, 'get', { key: 'x' });
    clock.advance(10 / NS_PER_MS);
    rec.ok(a, null);
    rec.nemesis('start-partition', { cuts: [['n1', 'n2']] });
    clock.advance(5 / NS_PER_MS);
    rec.info(b, null, 'timeout');
    rec.nemesis('stop-partition', null);
    const c = rec.invoke(2, 'cas', { key: 'x', expect: '1', value: '2' });
    rec.fail(c, null, 'not leader');
    await rec.close();
    const ops = parseHistory(await text());
    expect(ops.map((o) => o.type)).toEqual(['invoke', 'invoke', 'ok', 'info', 'info', 'info', 'invoke', 'fail']);
    expect(ops.map((o) => o.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(ops.map((o) => o.timeNs)).toEqual([0, 10, 20, 20, 25, 25, 25, 25]);
    expect(ops[0].node).toBe('n1');
    expect(ops[4].error).toBe('timeout');
    const paired = pairHistory(ops);
    expect(paired.map((p) => [p.f, p.type, p.completeIndex])).toEqual([
      ['put', 'ok', 2],
      ['get', 'info', Number.POSITIVE_INFINITY],
      ['cas', 'fail', 7],
    ]);
    expect(nemesisIntervals(ops)).toEqual([
      { fault: 'partition', startNs: 20, stopNs: 25, value: { cuts: [['n1', 'n2']] } },
    ]);
  });

  it('keeps Jepsen process rules: one outstanding op per process, no invoke after info', async () => {
    const { sink } = await make();
    const rec = new HistoryRecorder({ sink, clock: harnessClock });
    const a = rec.invoke(0, 'get', { key: 'x' });
    expect(() => rec.invoke(0, 'get', { key: 'x' })).toThrow(JepsenInvariantError);
    rec.info(a, null, 'timeout');
    expect(() => rec.invoke(0, 'get', { key: 'x' })).toThrow(JepsenInvariantError);
    expect(() => rec.ok(a, null)).toThrow(JepsenInvariantError);
    await rec.close();
    expect(() => rec.invoke(1, 'get', { key: 'x' })).toThrow(JepsenError);
  });
});

describe('HistoryRecorder buffer limit', () => {
  it('refuses lines past maxBufferedOps while the sink is stuck, and ready() waits for room', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const written: string[] = [];
    const slowSink: HistorySink = {
      async write(t) {
        await gate;
        written.push(t);
      },
      async close() {},
    };
    const rec = new HistoryRecorder({
      sink: slowSink,
      clock: new ManualClock(0),
      maxBufferedOps: 4,
      flushThresholdOps: 1,
    });
    // The first line starts a flush that hangs; four more fill the buffer.
    for (let i = 0; i < 5; i++) rec.nemesis('tick', i);
    let err: unknown;
    try {
      rec.nemesis('tick', 5);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(JepsenError);
    expect((err as JepsenError).code).toBe(JepsenErrorCode.HistoryBufferFull);
    let readyResolved = false;
    const ready = rec.ready().then(() => (readyResolved = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(readyResolved).toBe(false);
    release();
    await ready;
    await rec.close();
    expect(parseHistory(written.join('')).length).toBe(5);
  });
});

describe('history reader validation', () => {
  const line = (o: Record<string, unknown>) =>
    JSON.stringify({ index: 0, type: 'invoke', process: 0, f: 'get', value: null, timeNs: 0, ...o });
  const cases: Array<[string, string]> = [
    ['not JSON', '{nope'],
    ['bad type', line({ type: 'done' })],
    ['bad process', line({ process: -1 })],
    ['missing value', JSON.stringify({ index: 0, type: 'invoke', process: 0, f: 'get', timeNs: 0 })],
    ['index gap', line({ index: 1 })],
    ['completion without invoke', line({ type: 'ok' })],
    ['time going back', [line({ timeNs: 5 }), line({ index: 1, type: 'ok', timeNs: 4 })].join('\n')],
    ['completion with another f', [line({}), line({ index: 1, type: 'ok', f: 'put' })].join('\n')],
    ['two outstanding ops on one process', [line({}), line({ index: 1 })].join('\n')],
    ['invoke after info', [line({}), line({ index: 1, type: 'info' }), line({ index: 2 })].join('\n')],
    ['nemesis line that is not info', line({ process: 'nemesis', type: 'invoke' })],
  ];
  it.each(cases)('refuses %s', (_name, text) => {
    let err: unknown;
    try {
      parseHistory(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(JepsenError);
    expect((err as JepsenError).code).toBe(JepsenErrorCode.HistoryMalformed);
  });

  it('accepts a valid file, skipping blank lines; an open invoke at the end pairs as info', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qrt-history-'));
    dirs.push(dir);
    const path = join(dir, 'h.jsonl');
    await writeFile(
      path,
      [
        line({}),
        '',
        line({ index: 1, type: 'ok', value: { key: 'x', value: null }, timeNs: 3 }),
        line({ index: 2, process: 1, timeNs: 3 }),
        '',
      ].join('\n'),
    );
    const ops = await readHistoryFile(path);
    expect(ops.length).toBe(3);
    const paired = pairHistory(ops);
    expect(paired[0].value).toEqual({ key: 'x', value: null });
    expect(paired[1].type).toBe('info');
    expect(paired[1].completion).toBeUndefined();
  });
});
