import { expect, test } from './fixtures';
import { DEMO, dollars, hydrated, ready, shot, signIn } from './helpers';

test('the server-rendered HTML already carries the real numbers', async ({ page }) => {
  await signIn(page, DEMO);
  const res = await page.request.get('/');
  expect(res.status()).toBe(200);
  const html = await res.text();
  expect(html).toMatch(/data-testid="total-cost"[^>]*>(<span[^>]*>)?\$[\d,]+\.\d+</);
  expect(html).toMatch(/data-testid="total-calls"[^>]*>(<span[^>]*>)?[\d,]+</);
  // No CDN: every script comes from our own origin.
  for (const src of html.matchAll(/<script[^>]*src="([^"]+)"/g)) {
    expect(src[1].startsWith('/')).toBeTruthy();
  }
});

test('the dashboard shows the period total, the provider split and the trend', async ({ page }, info) => {
  await signIn(page, DEMO);
  await ready(page, info);
  const overview = page.getByTestId('billing-overview');
  await expect(overview).toContainText(/Demo User · .+ plan/);
  // (A plan change earlier in the run may have just started a new period,
  // so the total may be zero; it must still reconcile with the rows.)
  const total = dollars(await page.getByTestId('total-cost').innerText());
  expect(total).toBeGreaterThanOrEqual(0);
  // The provider rows add up to the total shown (to display rounding).
  const costs = await page.getByTestId('cost-pie').locator('tbody tr td:nth-child(4)').allInnerTexts();
  const sum = costs.map(dollars).reduce((a, b) => a + b, 0);
  expect(Math.abs(sum - total)).toBeLessThan(0.01 * costs.length + 0.01);
  // Six months of trend data by default, as a table in every mode.
  await expect(page.getByTestId('trend-table').locator('tbody tr')).toHaveCount(6);
  if (hydrated(info)) {
    await expect(page.locator('#usage-trend-chart canvas')).toBeVisible();
  } else {
    await expect(page.locator('#usage-trend-chart canvas')).toHaveCount(0);
  }
  await shot(page, info, 'home');
});

test('unknown pages answer 404 with a way back', async ({ page }) => {
  const res = await page.goto('/no-such-page');
  expect(res?.status()).toBe(404);
  await expect(page.getByRole('link', { name: 'Back to the overview' })).toBeVisible();
});

test('an event recorded through the API shows on the next load', async ({ page, request }, info) => {
  const key = process.env.E2E_INGEST_KEY;
  test.skip(!key, 'needs E2E_INGEST_KEY (scripts/e2e provides one)');
  await signIn(page, DEMO);
  await ready(page, info);
  const calls = async () => Number((await page.getByTestId('total-calls').innerText()).replace(/,/g, ''));
  const before = await calls();
  const res = await request.post('/api/usage/events', {
    headers: { Authorization: `Bearer ${key}` },
    data: { events: [{ id: `e2e-${info.project.name}-${Date.now()}`, user_id: 'demo', provider: 'serper', operation_type: 'search' }] },
  });
  expect(res.status()).toBe(200);
  expect((await res.json()).data.accepted).toBe(1);
  await page.reload();
  await ready(page, info);
  expect(await calls()).toBe(before + 1);
});

test('only pages with a chart load ECharts, and charts draw after navigating to one', async ({ page }, info) => {
  const fetched: string[] = [];
  page.on('request', (r) => {
    if (r.url().includes('/vendor/echarts')) fetched.push(`${new URL(r.url()).pathname} from ${page.url()}`);
  });
  await signIn(page, DEMO, '/plans');
  await ready(page, info);
  await page.goto('/usage');
  await ready(page, info);
  expect(fetched, 'pages without a chart fetched ECharts').toEqual([]);
  if (!hydrated(info)) return;
  // In the browser: the header's link navigates without a page load, and
  // the dashboard's charts load ECharts themselves, then draw.
  await page.getByRole('link', { name: 'Dashboard', exact: true }).first().click();
  await expect(page.locator('#cost-pie-chart canvas')).toBeVisible();
  await expect(page.locator('#usage-trend-chart canvas')).toBeVisible();
  expect(fetched.length).toBeGreaterThan(0);
  expect(await page.locator('script[src="/vendor/echarts.min.js"]').count()).toBe(1);
});
