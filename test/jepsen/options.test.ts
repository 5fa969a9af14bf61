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
  it('refuses a --time too short for one fault of each --nemesis kind, naming the minimum', () => {
    expect(() => parseJepsenArgs(['--time', '8', '--nemesis', 'partition,kill'], now)).toThrow(
      /--time 8 is too short for --nemesis partition,kill: the minimum is --time 9 /,
    );
    expect(() => parseJepsenArgs(['--time', '19'], now)).toThrow(/the minimum is --time 20 /); // all four kinds
    expect(parseJepsenArgs(['--time', '9', '--nemesis', 'partition,kill'], now).timeS).toBe(9);
    expect(parseJepsenArgs(['--time', '20', '--nemesis', 'partition,kill', '--seed', '5'], now).timeS).toBe(20);
    expect(() => parseJepsenArgs(['--time', '5', '--nemesis', 'membership'], now)).toThrow(JepsenUsageError);
  });
});
