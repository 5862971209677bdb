import { browserLog, expect, test } from './fixtures';
import { DEMO, hydrated, ready, shot, signIn } from './helpers';

test('the dashboard links the provider comparison, whose table and charts show every provider', async ({ page }, info) => {
  await signIn(page, DEMO, '/dashboard');
  await ready(page, info);
  await page.getByTestId('compare-providers').click();
  await expect(page).toHaveURL(/\/performance$/);
  await ready(page, info);
  const table = page.getByTestId('performance-table');
  await expect(table).toBeVisible();
  const providers = table.getByTestId('performance-provider');
  expect(await providers.count()).toBeGreaterThan(0);
  // The demo's calls report response times: every provider has a median,
  // and its calls are its models' calls added up.
  for (const row of await providers.all()) {
    await expect(row.getByTestId('performance-p50')).not.toHaveText('-');
    const provider = await row.getAttribute('data-provider');
    const count = async (r: typeof row) => Number((await r.locator('td').nth(1).innerText()).replace(/,/g, ''));
    let sum = 0;
    for (const m of await table.locator(`[data-testid="performance-model"][data-provider="${provider}"]`).all()) sum += await count(m);
    expect(sum).toBe(await count(row));
  }
  if (hydrated(info)) {
    await expect(page.locator('#cost-latency-chart canvas')).toBeVisible();
    await expect(page.locator('#latency-spread-chart canvas')).toBeVisible();
    // The vendored ECharts is built with only the parts the charts use: a
    // missing one is an error in the console, not a blank chart unnoticed.
    expect(browserLog(page).filter((l) => /ECharts|not imported/i.test(l))).toEqual([]);
  }
  await shot(page, info, 'performance');
  // A period with no calls says so.
  await page.goto('/performance?period=2001-01');
  await ready(page, info);
  await expect(page.getByTestId('performance-empty')).toContainText('2001-01');
});
