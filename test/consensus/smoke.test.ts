import { describe, expect, it } from 'vitest';
import { Network, assertAppliedPrefixes } from './network.js';
import { Role } from '../../consensus/index.js';

describe('smoke', () => {
  it('elects and replicates', () => {
    const net = new Network({ voters: [1, 2, 3] });
    net.campaign(1);
    expect(net.role(1)).toBe(Role.Leader);
    net.propose(1, 'a');
    net.propose(2, 'b');
    expect(net.appliedData(3)).toEqual(['a', 'b']);
    net.tickAll(50);
    expect(net.leaders()).toEqual([1]);
    assertAppliedPrefixes(net);
  });
});
