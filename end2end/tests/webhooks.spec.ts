import * as crypto from 'crypto';
import * as http from 'http';
import { AddressInfo } from 'net';
import { expect, test } from './fixtures';
import { ADMIN, hydrated, ready, shot, signIn } from './helpers';

type Got = { id: string; timestamp: string; signature: string; body: string };

/** A webhook receiver on a free local port that records what it gets. */
async function receiver(): Promise<{ url: string; got: Got[]; close: () => void }> {
  const got: Got[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({
        id: String(req.headers['tally-webhook-id']),
        timestamp: String(req.headers['tally-webhook-timestamp']),
        signature: String(req.headers['tally-webhook-signature']),
        body,
      });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/hook`, got, close: () => server.close() };
}

test('admin registers a webhook; a plan change is delivered signed, listed and replayed', async ({ page }, info) => {
  test.skip(!hydrated(info), 'changes accounts: once, hydrated');
  const rx = await receiver();
  try {
    await signIn(page, ADMIN, '/admin/webhooks');
    await ready(page, info);
    // A bad URL is refused, saying why.
    await page.getByTestId('webhook-url').fill('ftp://example.com/x');
    await page.getByTestId('webhook-event-subscription.changed').check();
    await page.getByTestId('webhook-create').click();
    await expect(page.getByRole('alert').first()).toContainText('not an http');
    await page.getByTestId('webhook-url').fill(rx.url);
    await page.getByLabel('Description (optional)').fill('e2e receiver');
    await page.getByTestId('webhook-create').click();
    const secret = (await page.getByTestId('webhook-secret').innerText()).trim();
    expect(secret).toMatch(/^whsec_[0-9a-f]+$/);
    const row = page.getByTestId('webhook-row').filter({ hasText: rx.url });
    await expect(row).toContainText('subscription.changed');

    // A new customer moved to Tokyo: their subscription changed.
    const email = `hook-${Date.now()}@example.test`;
    await page.goto('/admin');
    await ready(page, info);
    await page.getByTestId('new-user').locator('summary').click();
    const form = page.getByTestId('new-user');
    await form.getByLabel('Email').fill(email);
    await form.getByLabel('Name').fill('Hook Test');
    await form.getByRole('button', { name: 'Create user' }).click();
    await expect(form.getByRole('status')).toHaveText('User created on the default plan.');
    const user = page.locator('tr', { hasText: email });
    await user.getByLabel(`Timezone for ${email}`).fill('Asia/Tokyo');
    await user.getByRole('button', { name: `Assign plan to ${email}` }).click();
    await expect(user.getByTestId('user-timezone')).toHaveText('periods in Asia/Tokyo');
    const userId = await user.getAttribute('data-user');

    // Delivered within seconds, signed with the secret shown once.
    await expect.poll(() => rx.got.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    const first = rx.got[0];
    const expected = crypto.createHmac('sha256', secret).update(`${first.timestamp}.${first.body}`).digest('hex');
    expect(first.signature).toBe(`v1=${expected}`);
    const event = JSON.parse(first.body);
    expect(event.id).toBe(first.id);
    expect(event.type).toBe('subscription.changed');
    expect(event.data.user_id).toBe(userId);
    expect(event.data.timezone).toBe('Asia/Tokyo');

    // The endpoint's deliveries: delivered once, with the receiver's 204.
    await page.goto('/admin/webhooks');
    await ready(page, info);
    await page.getByTestId('webhook-row').filter({ hasText: rx.url }).getByRole('link').click();
    await ready(page, info);
    const delivery = page.getByTestId('delivery-row').filter({ hasText: first.id });
    await expect(delivery.getByTestId('delivery-status')).toHaveText('delivered');
    await expect(delivery.getByTestId('delivery-attempts')).toHaveText('1');
    await expect(delivery).toContainText('204');
    await shot(page, info, 'admin-webhooks');
    // Replay: the same event again.
    await delivery.getByTestId('delivery-replay').click();
    await expect.poll(() => rx.got.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    expect(rx.got[1].id).toBe(first.id);
    expect(rx.got[1].body).toBe(first.body);
    await expect(async () => {
      await page.reload();
      const again = page.getByTestId('delivery-row').filter({ hasText: first.id });
      await expect(again.getByTestId('delivery-attempts')).toHaveText('2', { timeout: 1000 });
    }).toPass({ timeout: 10_000 });
    await ready(page, info);

    // Deleted: no longer listed.
    await page.getByTestId('webhook-row').filter({ hasText: rx.url }).getByRole('button', { name: 'Delete' }).click();
    await expect(page.getByTestId('webhook-row').filter({ hasText: rx.url })).toHaveCount(0);
  } finally {
    rx.close();
  }
});
