// The NodeRpcBackend contract, run against the FakeLedgerBackend test double. The node's real
// backend runs the same suite (backendComplianceSuite) where a live node is wired up.

import { backendComplianceSuite } from './backend-compliance.js';
import { FakeLedgerBackend } from './fake-ledger-backend.js';
import { ALICE } from './harness.js';

backendComplianceSuite('FakeLedgerBackend', async () => ({
  backend: new FakeLedgerBackend({ accounts: [ALICE], initialBalance: 1000n }),
  fundedAccount: ALICE,
  historicalState: true,
  privacy: true,
  stop: async () => undefined,
}));
