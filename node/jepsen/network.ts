// Choosing how to inject network faults: network namespaces when we can (root, iproute2), the TCP
// proxy otherwise. The choice changes how nodes are started (inside a namespace and bound to its
// address, or on loopback and told to dial peers through proxy ports), so the caller gets the kind
// and builds its cluster accordingly.

import { silentLogger, type JepsenLogger } from './errors.js';
import { detectNetns } from './netns-network.js';

export type NetworkKind = 'netns' | 'proxy';

/**
 * 'netns' when `prefer` allows it and namespaces work here; else 'proxy', with one info line that
 * says why, so a run's log always tells which fault injector it used.
 */
export async function chooseNetworkKind(
  prefer: NetworkKind | 'auto' = 'auto',
  log: JepsenLogger = silentLogger,
): Promise<NetworkKind> {
  if (prefer === 'proxy') {
    log.info({ network: 'proxy' }, 'jepsen: using the TCP fault proxy (asked for)');
    return 'proxy';
  }
  const a = await detectNetns();
  if (a.available) {
    log.info({ network: 'netns' }, 'jepsen: using Linux network namespaces for partitions');
    return 'netns';
  }
  log.info(
    { network: 'proxy', reason: a.reason },
    `jepsen: network namespaces unavailable (${a.reason}); falling back to the TCP fault proxy`,
  );
  return 'proxy';
}
