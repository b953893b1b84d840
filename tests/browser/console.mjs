// Drives the TC's web console in Debian's headless Chromium: log in, find the transaction, open
// its details, take a screenshot, roll it back from the page and wait for the result.
// Run by tests/console.rs (browser_rolls_back_from_the_page) with:
//   CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD, XID, SCREENSHOT (a PNG path, optional)
import { chromium } from 'playwright-core';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const url = need('CONSOLE_URL');
const user = need('CONSOLE_USER');
const password = need('CONSOLE_PASSWORD');
const xid = need('XID');
const screenshot = process.env.SCREENSHOT;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('dialog', (d) => d.accept());

  await page.goto(url);
  await page.fill('#login-user', user);
  await page.fill('#login-password', 'wrong password');
  await page.click('#login-submit');
  await page.waitForSelector('#login-error:not([hidden])');
  await page.fill('#login-password', password);
  await page.click('#login-submit');

  const row = page.locator(`tr.tx[data-xid="${xid}"]`);
  await row.waitFor({ timeout: 15000 });
  const status = await row.getAttribute('data-status');
  if (status !== 'Begin') throw new Error(`expected the transaction in Begin, the page shows ${status}`);
  await row.locator('button.toggle').click();
  await page.locator(`tr.detail[data-xid="${xid}"] tr.branch`).first().waitFor();
  await page.locator(`tr.detail[data-xid="${xid}"]`).getByText('product').first().waitFor();
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });

  await row.locator('button[data-action="changeGlobalStatus"]').click();
  await page.waitForSelector('#notice:not([hidden])');
  const notice = await page.textContent('#notice');
  if (!/Rollbacked/.test(notice)) throw new Error(`unexpected result of the rollback: ${notice}`);
  await row.waitFor({ state: 'detached', timeout: 15000 });
  if (errors.length) throw new Error(`errors in the page: ${errors.join('; ')}`);
  console.log(`rolled back from the page: ${notice}`);
} finally {
  await browser.close();
}
