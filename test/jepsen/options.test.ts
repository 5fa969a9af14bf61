import { describe, expect, it } from 'vitest';
import { JepsenUsageError, parseJepsenArgs, reproduceCommand } from '../../node/jepsen/options.js';

describe('quorate jepsen options', () => {
  const now = new Date('2026-11-21T00:00:00.000Z');
  it('has documented defaults, and draws a seed when none is given', () => {
    const o = parseJepsenArgs([], now);
    expect(o).toMatchObject({
      nodes: 3,
      timeS: 60,
      workloads: ['register', 'bank', 'append'],
      faults: ['partition', 'kill', 'pause', 'membership'],
      rateHz: 50,
      seedWasRandom: true,
      network: 'auto',
      outDir: 'jepsen-out/2026-11-21T00-00-00-000Z',
    });
    expect(o.seed).toBeGreaterThan(0);
  });
  it('parses every flag, in both --flag value and --flag=value forms', () => {
    const o = parseJepsenArgs(
      [
        '--nodes',
        '5',
        '--time=30',
        '--workload',
        'bank,append',
        '--nemesis',
        'partition,kill',
        '--rate',
        '200',
        '--seed',
        '42',
        '--out',
        '/tmp/x',
        '--network',
        'proxy',
      ],
      now,
    );
    expect(o).toEqual({
      nodes: 5,
      timeS: 30,
      workloads: ['bank', 'append'],
      faults: ['partition', 'kill'],
      rateHz: 200,
      seed: 42,
      seedWasRandom: false,
      outDir: '/tmp/x',
      network: 'proxy',
    });
    expect(parseJepsenArgs(reproduceCommand(o).split(' ').slice(2), now)).toEqual({
      ...o,
      outDir: 'jepsen-out/2026-11-21T00-00-00-000Z',
    });
  });
  it.each([
    [['--nodes', '4']],
    [['--time', '0']],
    [['--time', 'ten']],
    [['--workload', 'queue']],
    [['--nemesis', 'flood']],
    [['--rate']],
    [['--network', 'vpn']],
    [['--verbose']],
  ])('refuses %j with a usage error', (argv) => {
    expect(() => parseJepsenArgs(argv, now)).toThrow(JepsenUsageError);
  });
});
