import AxeBuilder from '@axe-core/playwright';
import { Browser, Page, TestInfo } from '@playwright/test';
import { expect, test } from './fixtures';
import { ADMIN, DEMO, hydrated, ready, signIn } from './helpers';

// axe-core on every page, signed out, as a user and as an admin, on a phone
// (375 px) and a desk (1280 px); the project runs it hydrated and again with
// JavaScript off. No violation of serious or critical impact is allowed.
//
// axe is a script, and a page with JavaScript off runs none. So "JavaScript
// off" is scanned in a context that allows scripts but never loads the
// app's own (its JS and WASM requests are refused): the page stays exactly
// as the server rendered it, which is what a visitor without JavaScript
// gets.

const USER_PAGES = ['/dashboard', '/usage', '/performance', '/plans', '/billing', '/account'];
const ADMIN_PAGES = [
  '/admin',
  '/admin/plans',
  '/admin/pricing',
  '/admin/alerts',
  '/admin/audit',
  '/admin/profitability',
  '/admin/keys',
  '/admin/webhooks',
  '/admin/wallet?user=prepaid',
];
const WIDTHS = [375, 1280];

async function violations(page: Page, info: TestInfo, path: string): Promise<string[]> {
  await page.goto(path);
  if (!page.url().includes(path)) throw new Error(`${path} went to ${page.url()}: not signed in?`);
  await ready(page, info);
  // Charts draw after hydration; scan what a visitor finally sees.
  await page.waitForLoadState('networkidle');
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${path} @${page.viewportSize()?.width}px: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).slice(0, 4).join(' | ')}`);
}

/** The page to scan: the test's own, or (JavaScript off) one that shows the
 * server's markup and can still run axe. */
async function scanningPage(page: Page, browser: Browser, info: TestInfo): Promise<Page> {
  if (hydrated(info)) return page;
  const context = await browser.newContext({ javaScriptEnabled: true, storageState: await page.context().storageState() });
  await context.route(/\.(js|wasm)(\?.*)?$/, (route) => route.abort());
  return context.newPage();
}

async function scan(testPage: Page, browser: Browser, info: TestInfo, paths: string[]) {
  const page = await scanningPage(testPage, browser, info);
  const found: string[] = [];
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 900 });
    for (const path of paths) {
      found.push(...(await violations(page, info, path)));
    }
  }
  if (page !== testPage) await page.context().close();
  expect(found, found.join('\n')).toEqual([]);
}

test('the sign-in page has no serious accessibility violations', async ({ page, browser }, info) => {
  await scan(page, browser, info, ['/login']);
});

test("a user's pages have no serious accessibility violations", async ({ page, browser }, info) => {
  test.setTimeout(120_000);
  await signIn(page, DEMO);
  await ready(page, info);
  await scan(page, browser, info, USER_PAGES);
});

test("a prepaid customer's wallet pages have no serious accessibility violations", async ({ page, browser }, info) => {
  test.setTimeout(120_000);
  await signIn(page, { email: 'prepaid@example.com', password: 'demo-password' });
  await ready(page, info);
  await scan(page, browser, info, ['/dashboard', '/billing']);
});

test("an admin's pages have no serious accessibility violations", async ({ page, browser }, info) => {
  test.setTimeout(180_000);
  await signIn(page, ADMIN);
  await ready(page, info);
  await scan(page, browser, info, ADMIN_PAGES);
});

test("every chart names the table that holds its figures", async ({ page }, info) => {
  await signIn(page, DEMO, '/dashboard');
  await ready(page, info);
  const charts = page.locator('[role="img"][id$="-chart"]');
  expect(await charts.count()).toBeGreaterThanOrEqual(2);
  for (const chart of await charts.all()) {
    const table = await chart.getAttribute('aria-describedby');
    expect(table, `${await chart.getAttribute('id')} has no text alternative`).toBeTruthy();
    await expect(page.locator(`table#${table}`)).toHaveCount(1);
    await expect(page.locator(`table#${table} tbody tr`).first()).toBeVisible();
  }
});
