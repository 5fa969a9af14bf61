// The Jepsen harness's one clock: the node layer's real Clock (node/clock.ts), shared by every
// module of the harness that has none injected. Durations, deadlines and schedules read its
// monotonic time (monotonicMs); wall time (wallMs, which may jump under NTP) only names a moment
// in a value, never measures one.
// Owns nothing else; the grep test (test/raft/one-clock.test.ts) keeps direct platform calls out.

import { SystemClock, type Clock } from '../clock.js';

export const harnessClock: Clock = new SystemClock();
