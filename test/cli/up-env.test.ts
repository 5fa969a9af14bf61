// The environment `quorate up` gives each local node (node/up.ts localNodeEnv).

import { describe, expect, it } from 'vitest';
import { KEY_PASSWORD_ENV } from '../../node/keys.js';
import { NODE_MALLOC_ENV, localNodeEnv } from '../../node/up.js';

describe('a local node environment', () => {
  it('adds the allocator setting, keeps one the operator set, and drops the key password', () => {
    const env = localNodeEnv({ PATH: '/bin', [KEY_PASSWORD_ENV]: 'secret' });
    expect(env.MALLOC_MMAP_THRESHOLD_).toBe(NODE_MALLOC_ENV.MALLOC_MMAP_THRESHOLD_);
    expect(env.PATH).toBe('/bin');
    expect(env[KEY_PASSWORD_ENV]).toBeUndefined();
    expect(localNodeEnv({ MALLOC_MMAP_THRESHOLD_: '65536' }).MALLOC_MMAP_THRESHOLD_).toBe('65536');
    // bench:state --malloc-default: glibc's own defaults.
    expect(localNodeEnv({}, {}).MALLOC_MMAP_THRESHOLD_).toBeUndefined();
  });
});
