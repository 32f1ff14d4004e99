// Drives headless Chromium (Debian's, at /usr/bin/chromium) through
// playwright-core, run by TestDeflateChromium.
//
// Usage: node chromium_client.js http://host:port/
//
// Opens the page in a fresh profile, waits until its title reports the
// outcome ("PASS …" or "FAIL …"), prints the title and the page's console,
// and exits 0 on PASS. No browser is downloaded: playwright-core only
// drives the installed one.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const url = process.argv[2];
if (!url) {
  console.error('usage: node chromium_client.js http://host:port/');
  process.exit(2);
}

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'gale-chromium-'));
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        // https:// and wss:// tests: trust the one test certificate whose
        // public key hash GALE_SPKI names, and no other.
        ...(process.env.GALE_SPKI ? ['--ignore-certificate-errors-spki-list=' + process.env.GALE_SPKI] : [])],
      timeout: 30000,
    });
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => console.log('console:', m.text()));
    await page.goto(url, { timeout: 20000 });
    await page.waitForFunction(() => document.title.startsWith('PASS') || document.title.startsWith('FAIL'), null, { timeout: 20000 });
    const title = await page.title();
    console.log('TITLE ' + title);
    process.exitCode = title.startsWith('PASS') ? 0 : 1;
  } catch (err) {
    console.log('FAIL:', err.message);
    process.exitCode = 1;
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
})();
