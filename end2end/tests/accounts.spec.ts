import { expect, test } from './fixtures';
import { ADMIN, DEMO, hydrated, ready, shot, signIn, signOut } from './helpers';

test('anonymous visitors are sent to sign in, and come back after', async ({ page }) => {
  await page.goto('/account');
  await expect(page).toHaveURL(/\/login\?next=(%2F|\/)account$/);
  await page.getByLabel('Email').fill(DEMO.email);
  await page.getByLabel('Password').fill(DEMO.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByTestId('signed-in-as')).toHaveText(DEMO.email);
});

test('a wrong password says so and signs nobody in', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('Email').fill(DEMO.email);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('login-error')).toHaveText('The email or password is not right.');
  await page.goto('/');
  await expect(page).toHaveURL(/\/login/);
});

test('a user cannot open /admin nor read another user through the UI or HTTP', async ({ page }, info) => {
  await signIn(page, DEMO);
  await ready(page, info);
  await expect(page.getByTestId('nav-admin')).toHaveCount(0);
  const res = await page.goto('/admin');
  expect(res?.status()).toBe(403);
  await expect(page.getByTestId('forbidden')).toBeVisible();
  for (const path of ['/admin/plans', '/admin/pricing', '/admin/keys', '/admin/audit']) {
    expect((await page.goto(path))?.status(), path).toBe(403);
  }
  // Another user's dashboard through the UI: refused, nothing of theirs shown.
  await page.goto('/?user=admin');
  await expect(page.getByTestId('billing-overview')).toHaveCount(0);
  await expect(page.getByRole('alert')).toContainText('may not read');
  // And through HTTP with the same session cookie.
  for (const path of ['/api/subscription/usage/admin', '/api/subscription/dashboard/admin', '/api/admin/users']) {
    const r = await page.request.get(path);
    expect(r.status(), path).toBe(403);
    expect((await r.json()).success).toBe(false);
  }
  expect((await page.request.get('/api/subscription/usage/demo')).status()).toBe(200);
  await signOut(page);
  expect((await page.request.get('/api/subscription/usage/demo')).status()).toBe(401);
});

test('admin creates a plan, reprices a model, assigns the plan; the user sees it', async ({ page, request, baseURL }, info) => {
  test.skip(!hydrated(info), 'the admin journey runs once, hydrated');
  const stamp = Date.now();
  const planName = `Growth ${stamp}`;
  const email = `journey-${stamp}@example.test`;
  await signIn(page, ADMIN, '/admin/plans');
  await ready(page, info);

  // A plan, with a validation error first, shown beside the field in words.
  await page.getByRole('link', { name: 'New plan' }).click();
  const form = page.getByTestId('plan-form');
  await form.getByLabel('Name').fill(planName);
  await form.getByLabel('Tier').selectOption('enterprise');
  await form.getByLabel('Monthly price (USD)').fill('twelve');
  await form.getByLabel('Tavily calls a month').fill('7777');
  await form.getByLabel('Monthly cost cap (USD)').fill('42.50');
  await form.getByRole('button', { name: 'Save plan' }).click();
  await expect(form.getByText('Enter an amount in US dollars such as 29 or 29.99.')).toBeVisible();
  // Only a monthly price: the yearly one is optional (12 × monthly).
  await form.getByLabel('Monthly price (USD)').fill('12');
  await form.getByRole('button', { name: 'Save plan' }).click();
  await expect(page.getByRole('status')).toHaveText('Plan saved.');
  const row = page.getByTestId('plans-table').locator('tr', { hasText: planName });
  await expect(row).toContainText('$12');
  await expect(row).toContainText('$144');
  await expect(row).toContainText('Tavily calls: 7,777 a month');
  await expect(row).toContainText('Monthly cost cap: $42.50');
  await expect(page.getByTestId('plans-table')).not.toContainText('tavily_calls');
  await shot(page, info, 'admin-plans');

  // A new price for Gemini 2.5 Flash, from now.
  await page.goto('/admin/pricing');
  await ready(page, info);
  await page.getByRole('link', { name: 'Edit gemini-2.5-flash' }).click();
  const price = page.getByTestId('price-form');
  await expect(price.getByLabel('Model (* = every model)')).toHaveValue('gemini-2.5-flash');
  await price.getByLabel('Input per 1M tokens').fill('0.40');
  await price.getByLabel('Output per 1M tokens').fill('3.00');
  await price.getByLabel('Cached input per 1M').fill('0.10');
  await price.getByRole('button', { name: 'Add price version' }).click();
  await expect(page.getByText('Price version added.')).toBeVisible();
  const current = page.locator('tr[data-model="gemini-2.5-flash"][data-current="true"]');
  await expect(current).toContainText('$0.4');
  await expect(page.locator('tr[data-model="gemini-2.5-flash"][data-current="false"]').first()).toBeVisible();
  // A long-context model: its tiers are typed as JSON; a mistake is named.
  await price.getByLabel('Provider').fill('gemini');
  await price.getByLabel('Model (* = every model)').fill('long-context-e2e');
  await price.getByLabel('Input per 1M tokens').fill('1.25');
  await price.getByLabel('Output per 1M tokens').fill('10');
  await price.getByLabel('Cached input per 1M').fill('');
  await price.getByLabel('Reasoning per 1M').fill('12');
  const tiers = price.getByLabel('Long-context tiers (JSON; the whole request switches)');
  await tiers.fill('[{"above_input_tokens": 0, "input_per_million": "2.50"}]');
  await price.getByRole('button', { name: 'Add price version' }).click();
  await expect(price.getByRole('alert').filter({ hasText: 'tiers[0].above_input_tokens' })).toBeVisible();
  await tiers.fill('[{"above_input_tokens": 200000, "input_per_million": "2.50", "output_per_million": "15"}]');
  await price.getByLabel('Service tiers (JSON: batch, flex, priority)').fill('{"batch": {"input_per_million": "0.625"}}');
  await price.getByRole('button', { name: 'Add price version' }).click();
  await expect(page.getByText('Price version added.')).toBeVisible();
  const extras = page.locator('tr[data-model="long-context-e2e"] [data-testid="price-extras"]');
  await expect(extras).toContainText('Reasoning / 1M $12');
  await expect(extras).toContainText('above 200,000 input tokens: Input / 1M $2.5, Output / 1M $15');
  await expect(extras).toContainText('batch: Input / 1M $0.625');
  // Editing a version starts from every one of its fields, tiers included.
  await page.getByRole('link', { name: 'Edit gemini-2.5-pro' }).click();
  await expect(price.getByLabel('Per web-search query')).toHaveValue('0.035');
  await expect(price.getByLabel('Long-context tiers (JSON; the whole request switches)')).toHaveValue(/"above_input_tokens":200000/);
  // The demo's unpriced model is listed with a way to price it.
  await expect(page.getByTestId('unpriced-models')).toContainText('o4-preview');
  await shot(page, info, 'admin-pricing');

  // A new customer and a service key (the admin API, with the admin's session).
  const made = await page.request.post('/api/admin/users', {
    headers: { Origin: baseURL! },
    data: { email, name: 'Journey Person', password: 'journey-password' },
  });
  expect(made.status()).toBe(200);
  const userId = (await made.json()).data.user_id;
  const minted = await page.request.post('/api/admin/api-keys', { headers: { Origin: baseURL! }, data: { scopes: ['ingest'] } });
  const key = (await minted.json()).data.key as string;

  // Assign the plan: an upgrade from Free, so it applies at once.
  await page.goto(`/admin?q=${encodeURIComponent(email)}`);
  await ready(page, info);
  await page.getByLabel(`Plan for ${email}`).selectOption({ label: planName });
  await page.getByLabel(`Billing cycle for ${email}`).selectOption('monthly');
  await page.getByRole('button', { name: `Assign plan to ${email}` }).click();
  await expect(page.getByRole('status')).toContainText('Saved: upgrades apply now');
  await expect(page.getByTestId('users-table')).toContainText(`${planName} (monthly)`);

  // Every change is in the audit log.
  await page.goto('/admin/audit');
  await expect(page.getByTestId('audit-table')).toContainText('subscription.change');
  await expect(page.getByTestId('audit-table')).toContainText('price.create');
  await expect(page.getByTestId('audit-table')).toContainText('plan.create');
  await signOut(page);

  // The user sees the new plan, its limits, and the new price on new usage.
  await signIn(page, { email, password: 'journey-password' });
  await expect(page.getByTestId('billing-overview')).toContainText(`${planName} plan`);
  const usage = await (await page.request.get(`/api/subscription/usage/${userId}`)).json();
  expect(usage.data.limits.plan_name).toBe(planName);
  expect(usage.data.limits.limits.tavily_calls).toBe(7777);
  expect(usage.data.limits.limits.monthly_cost).toBe(42.5);
  const rec = await request.post('/api/usage/events', {
    headers: { Authorization: `Bearer ${key}` },
    data: { events: [{ id: `journey-${stamp}`, user_id: userId, provider: 'gemini', model: 'gemini-2.5-flash', tokens_input: 1000000, tokens_output: 1000000 }] },
  });
  // 1M input at $0.40 + 1M output at $3.00, at the price set above.
  expect((await rec.json()).data.results[0].cost).toBe('3.400000000');
  await page.reload();
  await expect(page.getByTestId('total-cost')).toHaveText('$3.40');
  await shot(page, info, 'user-after-plan-change');
});

test('without JavaScript, a rejected admin form shows its errors', async ({ page }, info) => {
  test.skip(hydrated(info), 'the no-JS form path');
  await signIn(page, ADMIN, '/admin/plans?edit=new');
  const form = page.getByTestId('plan-form');
  await form.getByLabel('Name').fill(`NoJS ${Date.now()}`);
  await form.getByLabel('Monthly price (USD)').fill('1e20');
  await form.getByLabel('Gemini calls a month').fill('-3');
  await form.getByRole('button', { name: 'Save plan' }).click();
  await expect(page).toHaveURL(/\/admin\/plans\?edit=new&form=/);
  await expect(page.getByRole('alert').filter({ hasText: 'Please correct the fields marked below.' })).toBeVisible();
  await expect(form.getByText('Enter an amount in US dollars such as 29 or 29.99.')).toBeVisible();
  await expect(form.getByText(/Enter a whole number such as 1000/)).toBeVisible();
});

test('signed-out visitors get a redirect from the server, not an empty page', async ({ page, request }) => {
  for (const path of ['/', '/dashboard', '/usage', '/admin', '/admin/plans', '/admin/pricing']) {
    const res = await request.get(path, { maxRedirects: 0 });
    expect(res.status(), path).toBe(303);
    expect(res.headers()['location'], path).toBe(`/login?next=${path}`);
  }
  // In the browser: straight to the sign-in page, and back after signing in.
  await page.goto('/admin/pricing');
  await expect(page).toHaveURL(/\/login\?next=\/admin\/pricing$/);
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/admin\/pricing$/);
  await expect(page.getByTestId('price-form')).toBeVisible();
  // A hostile `next` never leaves the site.
  await signOut(page);
  await page.goto('/login?next=' + encodeURIComponent('/\\evil.com'));
  await page.getByLabel('Email').fill(DEMO.email);
  await page.getByLabel('Password').fill(DEMO.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/^http:\/\/127\.0\.0\.1:\d+\/$/);
});

test('pages carry a CSP and still hydrate under it', async ({ page }, info) => {
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await signIn(page, DEMO, '/dashboard');
  const res = await page.reload();
  const csp = res!.headers()['content-security-policy'];
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toContain("'wasm-unsafe-eval'");
  expect(res!.headers()['x-content-type-options']).toBe('nosniff');
  await ready(page, info);
  if (hydrated(info)) {
    // The chart is drawn by the hydrated app: nothing was blocked.
    await expect(page.locator('[data-testid="cost-pie"] canvas').first()).toBeVisible();
    expect(errors.filter((e) => /Content Security Policy|Refused/.test(e))).toEqual([]);
  }
});

test('a user changes their password; the old one stops working', async ({ page, baseURL }, info) => {
  test.skip(!hydrated(info), 'runs once, hydrated');
  const email = `pw-${Date.now()}@example.test`;
  await signIn(page, ADMIN, '/admin');
  // The admin API with the admin's browser session (same-origin, as a page would send it).
  const created = await page.request.post('/api/admin/users', {
    headers: { Origin: baseURL! },
    data: { email, name: 'Pat Password', password: 'first-password-1' },
  });
  expect(created.status()).toBe(200);
  // The same request from another origin is refused.
  const forged = await page.request.post('/api/admin/users', { headers: { Origin: 'https://evil.example' }, data: { email: `x${email}` } });
  expect(forged.status()).toBe(403);
  await signOut(page);

  await signIn(page, { email, password: 'first-password-1' }, '/account');
  await ready(page, info);
  await page.getByLabel('Current password').fill('not-it');
  await page.getByLabel('New password (8 characters or more)').fill('second-password-2');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'the current password is not right' })).toBeVisible();
  await page.getByLabel('Current password').fill('first-password-1');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('status')).toContainText('Password changed');
  await signOut(page);

  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('first-password-1');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('login-error')).toBeVisible();
  await signIn(page, { email, password: 'second-password-2' });
  await expect(page.getByTestId('signed-in-as')).toHaveText(email);
});

test('admin creates a user, makes them an admin and disables them, all in the web UI', async ({ page }, info) => {
  test.skip(!hydrated(info), 'changes accounts: once, hydrated');
  const email = `ui-${Date.now()}@example.test`;
  await signIn(page, ADMIN, '/admin');
  await ready(page, info);
  await page.getByTestId('new-user').locator('summary').click();
  const form = page.getByTestId('new-user');
  await form.getByLabel('Email').fill(email);
  await form.getByLabel('Name').fill('Una Interface');
  await form.getByLabel(/^Password/).fill('una-password-1');
  await form.getByRole('button', { name: 'Create user' }).click();
  await expect(form.getByRole('status')).toHaveText('User created on the default plan.');
  const row = page.locator('tr', { hasText: email });
  await expect(row).toContainText('user');
  await row.getByRole('button', { name: `Make admin: ${email}` }).click();
  await expect(row.getByRole('button', { name: `Make user: ${email}` })).toBeVisible();
  await row.getByRole('button', { name: `Disable ${email}` }).click();
  await expect(row).toContainText('disabled');
  await shot(page, info, 'admin-users');
  await signOut(page);
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('una-password-1');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('login-error')).toHaveText('This account is disabled. Ask an administrator.');
});

test('a user pauses and resumes their subscription; the dashboard says so', async ({ page, baseURL }, info) => {
  test.skip(!hydrated(info), 'changes a subscription: once, hydrated');
  const email = `life-${Date.now()}@example.test`;
  await signIn(page, ADMIN, '/admin');
  const made = await page.request.post('/api/admin/users', {
    headers: { Origin: baseURL! },
    data: { email, name: 'Lee Cycle', password: 'lee-password-1' },
  });
  expect(made.status()).toBe(200);
  await signOut(page);
  await signIn(page, { email, password: 'lee-password-1' }, '/plans');
  await ready(page, info);
  const controls = page.getByTestId('subscription-controls');
  await expect(controls).toHaveAttribute('data-status', 'active');
  await controls.getByRole('button', { name: 'Pause' }).click();
  await expect(page.getByTestId('status-change-result')).toContainText('paused');
  await expect(controls).toHaveAttribute('data-status', 'paused');
  await page.goto('/dashboard');
  await expect(page.getByTestId('subscription-status')).toContainText('Paused');
  await page.goto('/plans');
  await ready(page, info);
  await page.getByTestId('subscription-controls').getByRole('button', { name: 'Resume' }).click();
  await expect(page.getByTestId('status-change-result')).toContainText('active again');
  await page.getByTestId('subscription-controls').getByRole('button', { name: 'Cancel at the end of this cycle' }).click();
  await expect(page.getByTestId('status-change-result')).toContainText('ends on');
  await page.goto('/dashboard');
  await expect(page.getByTestId('subscription-status')).toContainText('Cancels on');
});
