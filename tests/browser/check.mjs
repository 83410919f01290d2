// Opens an archive's data/index.html from file:// in Debian's headless Chromium (Playwright),
// walks every project (overview, images, a tag filter, untagged, only-in-iterations, image
// details, stored predictions), saves a screenshot, and prints what it saw as one JSON object. The Rust test
// (tests/browse.rs) compares that with the archive; this script only observes.
//
// usage: node check.mjs <path/to/data/index.html> <screenshot.png>
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [indexPath, shotPath] = process.argv.slice(2);
if (!indexPath || !shotPath) {
  console.error('usage: node check.mjs <index.html> <screenshot.png>');
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), 'cvarchive-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CVARCHIVE_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 860 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const out = { consoleErrors: [], pageErrors: [], requests: [], failedRequests: [], projects: [], home: null };
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') out.consoleErrors.push(m.type() + ': ' + m.text()); });
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  context.on('request', (r) => out.requests.push(r.url()));
  context.on('requestfailed', (r) => out.failedRequests.push(r.url() + ' ' + (r.failure() || {}).errorText));

  // Waits until the page has rendered the fragment `hash` (set by a click, a select or by us).
  const settled = async (hash) => {
    await page.waitForFunction((h) => {
      const m = document.getElementById('main');
      return location.hash === h && m.dataset.route === h && m.dataset.state === 'ready';
    }, hash, { timeout: 15000 });
    // Every image in the grid has either loaded or failed.
    await page.waitForFunction(() => [...document.querySelectorAll('#main img')].every((i) => i.complete), null, { timeout: 15000 });
  };
  const go = async (hash) => {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await settled(hash);
  };
  const grid = () => page.$$eval('#grid .tile', (tiles) => tiles.map((t) => ({
    id: t.dataset.id,
    regions: [...t.querySelectorAll('.region')].map((r) => r.dataset.tag),
    chips: [...t.querySelectorAll('.chip')].map((c) => c.textContent),
    loaded: [...t.querySelectorAll('img')].every((i) => i.complete && i.naturalWidth > 0),
    missing: t.querySelectorAll('.missing-file').length,
    onlyInIterations: t.dataset.workspace === 'false' && t.classList.contains('iteration-only'),
  })));

  await page.goto(pathToFileURL(indexPath).href);
  await page.waitForSelector('body[data-ready]', { timeout: 15000 });
  out.home = await page.evaluate(() => ({
    rows: [...document.querySelectorAll('[data-project-row]')].map((r) => r.dataset.projectRow),
    nav: [...document.querySelectorAll('#projects a')].map((a) => ({ id: a.dataset.project, text: a.textContent, href: a.getAttribute('href') })),
    text: document.getElementById('main').innerText,
  }));

  let shotHash = null;
  let mostRegions = -1;
  for (const nav of out.home.nav) {
    const p = { id: nav.id };
    await page.click(`#projects a[data-project="${nav.id}"]`);
    await settled(nav.href);
    Object.assign(p, await page.evaluate(() => ({
      title: document.querySelector('#main h1').textContent,
      tags: [...document.querySelectorAll('#tag-table tbody tr')].map((r) => ({
        id: r.dataset.tagId, name: r.dataset.tag,
        reported: r.querySelector('.count-reported').textContent, archived: r.querySelector('.count-archived').textContent,
      })),
      iterations: [...document.querySelectorAll('section.iteration')].map((s) => ({
        id: s.dataset.iteration,
        perfTags: [...s.querySelectorAll('[data-perf-tag]')].map((r) => r.dataset.perfTag),
        chartBars: s.querySelectorAll('svg.chart rect').length,
        exports: s.querySelectorAll('table.exports tbody tr').length,
      })),
    })));

    await page.click('.tabs a[data-view="images"]');
    await settled(await page.evaluate(() => location.hash));
    p.pageInfo = await page.$eval('#page-info', (e) => e.textContent);
    p.images = await grid();
    const regions = p.images.reduce((a, t) => a + t.regions.length, 0);
    if (regions > mostRegions) { mostRegions = regions; shotHash = await page.evaluate(() => location.hash); }

    // A tag filter through the select, as a person would use it.
    p.filters = {};
    const options = await page.$$eval('#filter option', (os) => os.map((o) => o.value));
    const membership = options.filter((v) => v === 'iteration-only' || v === 'workspace');
    for (const value of options.filter((v) => v.startsWith('tag:')).slice(0, 3).concat(['untagged', 'tagged'], membership)) {
      await page.selectOption('#filter', value);
      await settled(await page.evaluate(() => location.hash));
      p.filters[value] = await grid();
    }

    // One image's details (the first with regions, else the first).
    await page.selectOption('#filter', 'all');
    await settled(await page.evaluate(() => location.hash));
    if (p.images.length) {
      const pick = p.images.find((t) => t.regions.length) || p.images[0];
      await page.click(`#grid .tile[data-id="${pick.id}"]`);
      await page.waitForSelector('#detail .panel', { timeout: 5000 });
      p.detail = await page.evaluate(() => ({
        id: document.querySelector('#detail .panel').dataset.id,
        regions: document.querySelectorAll('#detail-regions tbody tr').length,
        drawn: document.querySelectorAll('#detail .region').length,
        tags: [...document.querySelectorAll('#detail-tags .chip')].map((c) => c.textContent),
        meta: [...document.querySelectorAll('#detail-meta tbody tr')].map((r) => [...r.cells].map((c) => c.textContent)),
      }));
      await page.keyboard.press('Escape');
      // Each image's membership, as its details say it (the workspace, and iterations by name).
      p.membership = [];
      for (const t of p.images.slice(0, 12)) {
        await page.click(`#grid .tile[data-id="${t.id}"]`);
        await page.waitForSelector(`#detail .panel[data-id="${t.id}"]`, { timeout: 5000 });
        p.membership.push(await page.evaluate(() => ({
          id: document.querySelector('#detail .panel').dataset.id,
          workspace: document.getElementById('detail-workspace').textContent,
          iterations: document.getElementById('detail-iterations').textContent,
        })));
        await page.keyboard.press('Escape');
      }
    }

    await page.click('.tabs a[data-view="predictions"]');
    await settled(await page.evaluate(() => location.hash));
    p.predictions = await grid();
    out.projects.push(p);
  }

  if (shotHash) await go(shotHash);
  await page.screenshot({ path: shotPath, fullPage: false });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
