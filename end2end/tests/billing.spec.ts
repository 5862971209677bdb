import { expect, test } from './fixtures';
import { DEMO, dollars, hydrated, ready, shot, signIn } from './helpers';

test('the usage log filters by provider and status, and pages', async ({ page }, info) => {
  await signIn(page, DEMO, '/usage');
  await ready(page, info);
  const rows = page.getByTestId('usage-table').locator('tbody tr');
  await expect(rows).toHaveCount(25);
  // Claude's cache writes are priced apart, and the row says what each class cost.
  await page.goto('/usage?provider=anthropic');
  await ready(page, info);
  const split = page.getByTestId('cost-breakdown').filter({ hasText: 'cache write 5m' }).first();
  await expect(split).toBeVisible();
  await expect(page.getByTestId('usage-details').filter({ hasText: 'cache write 5m' }).first()).toBeVisible();
  await page.goto('/usage');
  await ready(page, info);
  await page.getByLabel('Provider').fill('gemini');
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page).toHaveURL(/provider=gemini/);
  await expect(rows.first()).toHaveAttribute('data-provider', 'gemini');
  expect(await page.locator('tbody tr:not([data-provider="gemini"])').count()).toBe(0);
  // The CSV download carries the filter and holds every matching event,
  // not just this page.
  const csvHref = await page.getByTestId('usage-csv').getAttribute('href');
  expect(csvHref).toContain('provider=gemini');
  const csv = await page.request.get(csvHref!);
  expect(csv.status()).toBe(200);
  expect(csv.headers()['content-type']).toContain('text/csv');
  const lines = (await csv.text()).split('\r\n').filter((l) => l.length > 0);
  expect(lines[0]).toContain('event_id,timestamp,provider');
  const total = Number((await page.getByTestId('usage-count').innerText()).split(' ')[0].replace(/,/g, ''));
  expect(total).toBeGreaterThan(25);
  expect(lines.length - 1).toBe(total);
  expect(lines.slice(1).every((l) => l.split(',')[2] === 'gemini')).toBe(true);
  await page.getByLabel('Status').selectOption('failed');
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page).toHaveURL(/status=failed/);
  expect(await rows.count()).toBeGreaterThan(0);
  expect(await page.locator('tbody tr[data-status="success"]').count()).toBe(0);
  // Paging keeps the filters.
  await page.goto('/usage?provider=gemini');
  const firstPage = await rows.first().innerText();
  await page.getByRole('link', { name: 'Older' }).click();
  await expect(page).toHaveURL(/page=2/);
  await expect(page).toHaveURL(/provider=gemini/);
  await expect(page.getByTestId('usage-count')).toContainText('page 2 of');
  expect(await rows.first().innerText()).not.toBe(firstPage);
  await page.goto('/usage?period=1999-01');
  await expect(page.getByTestId('usage-empty')).toBeVisible();
});

test('billing history and renewals, each as CSV that matches the page', async ({ page }, info) => {
  await signIn(page, DEMO, '/billing');
  await ready(page, info);
  const bills = page.getByTestId('billing-table').locator('tbody tr');
  expect(await bills.count()).toBeGreaterThanOrEqual(12);
  await expect(page.getByTestId('renewals-table')).toContainText('upgrade');
  const href = await page.getByTestId('billing-csv').getAttribute('href');
  const csv = await page.request.get(href!);
  expect(csv.status()).toBe(200);
  expect(csv.headers()['content-type']).toContain('text/csv');
  const lines = (await csv.text()).trim().split(/\r\n/);
  expect(lines[0]).toBe('billing_period,period_start,period_end,plan,plan_fee_usd,usage_cost_usd,total_usd,status');
  expect(lines.length - 1).toBe(await bills.count());
  // The newest bill's total on the page equals the CSV's exact total, rounded for display.
  const pageTotal = dollars(await bills.first().locator('td').nth(4).innerText());
  const csvTotal = Number(lines[1].split(',')[6]);
  expect(Math.abs(pageTotal - csvTotal)).toBeLessThan(0.005);
  const ren = await page.request.get((await page.getByTestId('renewals-csv').getAttribute('href'))!);
  expect((await ren.text()).split('\r\n')[0]).toContain('renewal_type');
  // This period's usage as FOCUS 1.2: the mandatory columns first, a row per billed class.
  const focus = await page.request.get((await page.getByTestId('focus-export').getAttribute('href'))!);
  expect(focus.status()).toBe(200);
  const focusLines = (await focus.text()).trim().split('\r\n');
  expect(focusLines[0].startsWith('BilledCost,BillingAccountId,BillingAccountName,BillingCurrency,')).toBe(true);
  expect(focusLines.length).toBeGreaterThan(1);
  // Not someone else's.
  expect((await page.request.get('/api/billing/admin/history.csv')).status()).toBe(403);
});

test('plans: no change resets usage; a downgrade waits for the cycle end and can be cancelled', async ({ page }, info) => {
  test.skip(!hydrated(info), 'changes the demo plan: once, hydrated');
  await signIn(page, DEMO, '/plans');
  await ready(page, info);
  await expect(page.locator('[data-current="true"]')).toHaveAttribute('data-plan', 'Pro');
  const before = await (await page.request.get('/api/subscription/usage/demo')).json();
  // Choosing the plan in force is refused: it never starts a new period.
  await page.getByRole('button', { name: 'Change cycle: Pro' }).click();
  await expect(page.getByRole('alert')).toContainText('already on this plan');
  // A downgrade is scheduled; Pro and its usage stay until the cycle ends.
  await page.getByRole('button', { name: 'Downgrade: Basic' }).click();
  await expect(page.getByTestId('plan-change-result')).toContainText('takes effect when this billing cycle ends');
  await expect(page.getByTestId('scheduled-change')).toContainText('Basic (monthly)');
  await expect(page.locator('[data-current="true"]')).toHaveAttribute('data-plan', 'Pro');
  await shot(page, info, 'plans');
  const after = await (await page.request.get('/api/subscription/usage/demo')).json();
  expect(after.data.billing_period).toBe(before.data.billing_period);
  expect(after.data.total_calls).toBeGreaterThanOrEqual(before.data.total_calls);
  // Choosing Pro again cancels the scheduled change.
  await page.getByRole('button', { name: 'Change cycle: Pro' }).click();
  await expect(page.getByTestId('plan-change-result')).toContainText('cancelled');
  await expect(page.getByTestId('scheduled-change')).toHaveCount(0);
});
