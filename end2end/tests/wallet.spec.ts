import { Locator } from '@playwright/test';
import { expect, test } from './fixtures';
import { ADMIN, DEMO, dollars, hydrated, ready, shot, signIn } from './helpers';

const PREPAID = { email: 'prepaid@example.com', password: 'demo-password' };

test('a prepaid customer sees the balance card, its burn-down and the statement', async ({ page }, info) => {
  await signIn(page, PREPAID, '/dashboard');
  await ready(page, info);
  const card = page.getByTestId('wallet-card');
  await expect(card).toBeVisible();
  const available = dollars(await card.getByTestId('wallet-available').innerText());
  const balance = dollars(await card.getByTestId('wallet-balance').innerText());
  expect(available).toBeGreaterThan(0);
  expect(available).toBeLessThanOrEqual(balance);
  await expect(card.getByTestId('wallet-runs-out')).toContainText('run out around');
  // The burn-down's figures are a table too (the chart's text alternative),
  // one row per day of the period so far, ending at today's balance.
  const days = card.getByTestId('wallet-burn-table').locator('tbody tr');
  expect(await days.count()).toBeGreaterThan(0);
  const last = await days.last().locator('td').nth(1).textContent();
  expect(dollars(last!)).toBeCloseTo(balance, 2);
  await expect(page.locator('#wallet-burn-chart')).toHaveAttribute('aria-describedby', 'wallet-burn-table');
  if (hydrated(info)) await expect(page.locator('#wallet-burn-chart canvas')).toHaveCount(1);
  // Two top-ups are open; the expired sign-up credits are not listed.
  await expect(card.getByTestId('wallet-grants').locator('tbody tr')).toHaveCount(2);
  await shot(page, info, 'wallet-card');

  await page.goto('/billing');
  await ready(page, info);
  const statement = page.getByTestId('wallet-statement');
  await expect(statement.getByTestId('statement-row')).toHaveCount(20);
  await expect(statement.locator('[data-testid="statement-row"][data-kind="debit"]').first()).toBeVisible();
  await statement.getByTestId('statement-older').click();
  await expect(page).toHaveURL(/wallet_cursor=/);
  await ready(page, info);
  await expect(page.getByTestId('wallet-statement').getByTestId('statement-row').first()).toBeVisible();
  const csv = await page.request.get((await page.getByTestId('wallet-csv').getAttribute('href'))!);
  expect(csv.status()).toBe(200);
  const lines = (await csv.text()).split('\r\n').filter((l) => l.length > 0);
  expect(lines[0]).toBe('id,at,kind,amount,balance_after,event_id,grant_id,note');
  expect(lines[1]).toContain(',grant,5.000000000,');
  expect(lines.some((l) => l.includes(',expiry,-'))).toBe(true);
  // The statement's last balance is the card's balance.
  expect(Number(lines[lines.length - 1].split(',')[4])).toBeCloseTo(balance, 2);
});

test('a postpaid customer never credited sees no wallet', async ({ page }, info) => {
  await signIn(page, DEMO, '/dashboard');
  await ready(page, info);
  await expect(page.getByTestId('billing-overview')).toBeVisible();
  await expect(page.getByTestId('wallet-card')).toHaveCount(0);
});

test('an admin grants credits and voids them, with a reason', async ({ page }, info) => {
  // Without JavaScript a form's button posts and the page comes back:
  // wait for that before the next step.
  const submit = async (button: Locator) => {
    if (hydrated(info)) await button.click();
    else await Promise.all([page.waitForNavigation(), button.click()]);
  };
  await signIn(page, ADMIN, '/admin/wallet?user=prepaid');
  await ready(page, info);
  const figures = page.getByTestId('admin-wallet-figures');
  const before = dollars((await figures.innerText()).split('·')[0]);
  const form = page.getByTestId('grant-form');
  await form.getByLabel('Amount (USD)').fill('abc');
  await submit(form.getByRole('button', { name: 'Grant' }));
  await expect(form.getByRole('alert')).toContainText('USD');
  await form.getByLabel('Amount (USD)').fill('7.5');
  await form.getByLabel('Kind').selectOption('promotional');
  await form.getByLabel('Note').fill(`goodwill ${info.project.name}`);
  await submit(form.getByRole('button', { name: 'Grant' }));
  // Hydrated, the form says so; a plain post comes back to the page.
  if (hydrated(info)) await expect(page.getByRole('status').filter({ hasText: 'Credits granted' })).toBeVisible();
  await expect(figures).toContainText(`Balance $${(before + 7.5).toFixed(2)}`);
  const row = page.getByTestId('admin-grants').locator('tr', { hasText: `goodwill ${info.project.name}` });
  await expect(row).toHaveCount(1);
  await shot(page, info, 'admin-wallet');
  await row.getByPlaceholder('reason').fill('granted by mistake');
  await submit(row.getByRole('button', { name: 'Void' }));
  if (hydrated(info)) await expect(page.getByRole('status').filter({ hasText: 'Grant voided' })).toBeVisible();
  await expect(figures).toContainText(`Balance $${before.toFixed(2)}`);
  await expect(page.getByTestId('admin-grants').locator('tr', { hasText: `goodwill ${info.project.name}` })).toHaveCount(0);

  // A low-balance warning as a percent of the last top-up is kept as typed.
  const low = page.getByTestId('low-balance-form');
  await low.getByLabel(/Warn below/).fill('20%');
  await submit(low.getByRole('button', { name: 'Save' }));
  if (hydrated(info)) await expect(page.getByRole('status').filter({ hasText: 'Low-balance warning saved' })).toBeVisible();
  await page.goto('/admin/wallet?user=prepaid');
  await ready(page, info);
  await expect(page.getByTestId('low-balance-form').getByLabel(/Warn below/)).toHaveValue('20%');

  // Refund one call (a different one per project: each is refunded once).
  const ledger = await (await page.request.get('/api/wallet/prepaid/ledger?limit=200')).json();
  const debits = ledger.data.entries.filter((e: { kind: string }) => e.kind === 'debit');
  const debit = debits[hydrated(info) ? 0 : 1];
  // Exact amounts (nine decimals) from the API, in nano-dollars.
  const nanos = (usd: string) => BigInt(usd.replace('.', ''));
  const exactBalance = async () => nanos((await (await page.request.get('/api/wallet/prepaid')).json()).data.balance);
  const balance = await exactBalance();
  const refund = page.getByTestId('refund-form');
  await refund.getByLabel('Event id').fill(debit.event_id);
  await refund.getByLabel('Reason').fill('the call failed on their side');
  await submit(refund.getByRole('button', { name: 'Refund' }));
  if (hydrated(info)) await expect(page.getByRole('status').filter({ hasText: 'Event refunded' })).toBeVisible();
  await expect.poll(async () => (await exactBalance()).toString()).toBe((balance - nanos(debit.amount)).toString());
  // A second refund of the same event is refused, saying why.
  await page.getByTestId('refund-form').getByLabel('Event id').fill(debit.event_id);
  await page.getByTestId('refund-form').getByLabel('Reason').fill('again');
  await submit(page.getByTestId('refund-form').getByRole('button', { name: 'Refund' }));
  await expect(page.getByRole('alert').filter({ hasText: 'refunded already' })).toBeVisible();
});
