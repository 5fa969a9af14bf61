// node/log.ts: one JSON object per line, the level as a word, the component and base fields on
// every line, and the level threshold applied.

import { describe, expect, it } from 'vitest';
import { componentLogger, createLogger, isLogLevel } from '../../node/log.js';

describe('logger', () => {
  it('writes one JSON object per line with level, time, base fields and component', () => {
    const lines: string[] = [];
    const root = createLogger({
      level: 'info',
      base: { nodeId: 'node-2' },
      destination: { write: (l: string) => void lines.push(l) },
    });
    const rpc = componentLogger(root, 'rpc');
    rpc.info({ url: 'http://127.0.0.1:1/' }, 'rpc listening');
    rpc.debug('per request: below the threshold');
    rpc.warn('degraded');
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l.endsWith('\n') && l.indexOf('\n') === l.length - 1).toBe(true);
    const first = JSON.parse(lines[0]) as Record<string, unknown>;
    expect(first).toMatchObject({
      level: 'info',
      nodeId: 'node-2',
      component: 'rpc',
      url: 'http://127.0.0.1:1/',
      msg: 'rpc listening',
    });
    expect(Number.isNaN(Date.parse(first.time as string))).toBe(false);
    expect(JSON.parse(lines[1])).toMatchObject({ level: 'warn', component: 'rpc' });
  });

  it('knows its levels', () => {
    expect(isLogLevel('debug')).toBe(true);
    expect(isLogLevel('verbose')).toBe(false);
    expect(isLogLevel(3)).toBe(false);
  });
});
