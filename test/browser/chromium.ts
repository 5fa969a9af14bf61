// Headless Chromium for the browser tests, driven by playwright-core (no browser download: it
// runs Debian's `chromium` package, which .ci/run installs). One launcher, so every browser test
// starts Chromium the same way and skips the same way when it is absent.

import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

/** Debian's chromium package (`apt-get install -y chromium`). */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Whether browser tests can run here; they skip (saying why) when not. */
export const chromiumAvailable = existsSync(CHROMIUM_PATH);

/** The reason printed in a skipped suite's name. */
export const CHROMIUM_SKIP_REASON = `skipped: no ${CHROMIUM_PATH}; apt-get install -y chromium`;

/**
 * Flags for a quiet, sandbox-free headless run in a container: no GPU, and none of Chromium's own
 * traffic (updates, sync, first-run pings) — the machines here reach no internet, and tests send
 * nothing but loopback.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
] as const;

/** How long Chromium may take to start on a loaded 2-core machine. */
const LAUNCH_TIMEOUT_MS = 60_000;

export interface HeadlessChromium {
  readonly context: BrowserContext;
  /** Closes the browser and deletes its profile. */
  close(): Promise<void>;
}

/**
 * Starts Chromium with a fresh, empty user-data dir (a persistent context is the only way
 * playwright takes one; it is deleted on close), so no test sees another's cache or cookies.
 */
export async function launchChromium(viewport: { width: number; height: number }): Promise<HeadlessChromium> {
  const profile = await mkdtemp(join(tmpdir(), 'qrt-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS],
      viewport,
      deviceScaleFactor: 1,
      timeout: LAUNCH_TIMEOUT_MS,
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    async close() {
      try {
        await context.close();
      } finally {
        await rm(profile, { recursive: true, force: true });
      }
    },
  };
}
