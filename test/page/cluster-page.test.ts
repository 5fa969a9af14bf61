// The cluster page in a real browser: a 3-node cluster of `quorate start` processes, headless
// Debian Chromium driven by playwright-core, the page opened on one node's RPC port. It must show
// three members and a leader, show a SIGKILLed member DOWN within 3 s, show it back after a
// restart, and it leaves a screenshot at docs/cluster-page.png (the README shows it).
//
// Skipped, with the reason printed, where /usr/bin/chromium is missing (`apt-get install chromium`;
// CI installs it).

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchmark } from '../../node/bench.js';
import { ProcessCluster, type ProcNode } from '../cluster/process-cluster.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const SCREENSHOT = join(dirname(fileURLToPath(import.meta.url)), '../../docs/cluster-page.png');
/** What the issue asks: a killed member is shown DOWN within this. */
const SHOWN_DOWN_WITHIN_MS = 3_000;

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium)
  console.log(`test/page/cluster-page.test.ts skipped: ${CHROMIUM} is missing (apt-get install chromium)`);

describe.skipIf(!hasChromium)('the cluster page in headless Chromium', () => {
  const cluster = new ProcessCluster();
  let userDataDir = '';
  let context: BrowserContext | undefined;
  let page: Page;

  beforeAll(async () => {
    const t0 = Date.now();
    await cluster.init(3);
    const tInit = Date.now();
    cluster.startAll();
    userDataDir = await mkdtemp(join(tmpdir(), 'quorate-chromium-'));
    let tBrowser = 0;
    let tLeader = 0;
    [context] = await Promise.all([
      chromium
        .launchPersistentContext(userDataDir, {
          executablePath: CHROMIUM,
          headless: true,
          args: CHROMIUM_ARGS,
          viewport: { width: 1280, height: 960 },
        })
        .finally(() => (tBrowser = Date.now())),
      cluster.waitForLeader().finally(() => (tLeader = Date.now())),
    ]);
    console.log(`set-up: init ${tInit - t0} ms, chromium ${tBrowser - tInit} ms, leader ${tLeader - tInit} ms`);
    page = context.pages()[0] ?? (await context.newPage());
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await cluster.cleanup();
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  }, 60_000);

  const row = (n: ProcNode, state: 'up' | 'down'): string =>
    `#members tr[data-member="${n.name}"][data-state="${state}"]`;

  it('shows three members and a leader', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(cluster.nodes[0].rpcUrl);
    await page.waitForSelector('#stream[data-state="live"]', { timeout: 10_000 });
    for (const n of cluster.nodes) await page.waitForSelector(row(n, 'up'), { timeout: 10_000 });
    await page.waitForSelector('#members tr[data-role="leader"]', { timeout: 10_000 });
    expect(await page.locator('#members tbody tr').count()).toBe(3);
    expect(await page.locator('#members tr[data-role="leader"]').count()).toBe(1);
    // Every node is connected to the two others.
    await page.waitForFunction(() => document.querySelectorAll('#links td.link-ok').length === 6, null, {
      timeout: 10_000,
    });
    expect(await page.locator('.uplot').count()).toBe(3);
    expect(errors).toEqual([]);
  });

  it(`shows a SIGKILLed member DOWN within ${SHOWN_DOWN_WITHIN_MS} ms, and back after a restart`, async () => {
    const victim = cluster.nodes[2];
    const t0 = Date.now();
    await cluster.kill(victim, 'SIGKILL');
    await page.waitForSelector(row(victim, 'down'), { timeout: SHOWN_DOWN_WITHIN_MS });
    const shownDownMs = Date.now() - t0;
    console.log(`${victim.name} shown down ${shownDownMs} ms after SIGKILL`);
    expect(shownDownMs).toBeLessThanOrEqual(SHOWN_DOWN_WITHIN_MS);
    // The others see it gone too: its column in the connection matrix turns ✗ for the live nodes.
    await page.waitForFunction(() => document.querySelectorAll('#links td.link-bad').length === 2, null, {
      timeout: 10_000,
    });

    cluster.start(victim);
    await page.waitForSelector(row(victim, 'up'), { timeout: 30_000 });
    await page.waitForSelector('#timeline li[data-kind="down"]', { timeout: 5_000 });
    await page.waitForSelector('#timeline li[data-kind="up"]', { timeout: 5_000 });
    await cluster.waitForLeader();
    await page.waitForFunction(() => document.querySelectorAll('#links td.link-ok').length === 6, null, {
      timeout: 15_000,
    });
  });

  it('draws the applied load and saves a screenshot for the README', async () => {
    const r = await benchmark({
      rpcUrls: cluster.nodes.map((n) => n.rpcUrl),
      txs: 400,
      concurrency: 16,
      rate: 200,
      private: false,
    });
    expect(r.committed).toBe(400);
    // Every member's head block (8th column) shows the blocks the load made.
    await page.waitForFunction(
      () =>
        Array.from(document.querySelectorAll('#members tbody tr')).every(
          (tr) => Number(tr.querySelector('td:nth-child(8)')?.textContent) > 0,
        ),
      null,
      { timeout: 10_000 },
    );
    // One more view, so the charts hold the last second of the load.
    await page.waitForTimeout(1_500);
    await mkdir(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);
  });
});
