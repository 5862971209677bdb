import { Page } from '@playwright/test';
import { browserLog, expect, test } from './fixtures';
import { DEMO, hydrated, ready, shot, signIn } from './helpers';

/** The option ECharts is drawing in element `id`. */
async function chartOption(page: Page, id: string) {
  return page.evaluate((id) => {
    const el = document.getElementById(id);
    // The global ECharts, once the page's first chart has loaded it.
    const echarts = (window as any).echarts;
    const inst = el && echarts && echarts.getInstanceByDom(el);
    return inst ? inst.getOption() : null;
  }, id);
}

// Usage in the current period for these tests, whatever ran before (a plan
// change elsewhere in the run starts a fresh period).
test.beforeAll(async ({ request }) => {
  const key = process.env.E2E_INGEST_KEY;
  if (!key) return;
  const t = Date.now();
  const events = [
    { id: `dash-${t}-1`, user_id: 'demo', provider: 'gemini', model: 'gemini-2.5-pro', tokens_input: 40000, tokens_output: 4000 },
    { id: `dash-${t}-2`, user_id: 'demo', provider: 'gemini', model: 'gemini-2.5-flash', tokens_input: 9000, tokens_output: 800 },
    { id: `dash-${t}-3`, user_id: 'demo', provider: 'openai', model: 'gpt-4o', tokens_input: 5000, tokens_output: 700 },
    { id: `dash-${t}-4`, user_id: 'demo', provider: 'tavily', operation_type: 'search' },
  ];
  const res = await request.post('/api/usage/events', { headers: { Authorization: `Bearer ${key}` }, data: { events } });
  expect(res.status()).toBe(200);
});

test('every part of the dashboard carries its test id and real numbers', async ({ page }, info) => {
  await signIn(page, DEMO, '/dashboard');
  await ready(page, info);
  for (const id of ['billing-overview', 'total-cost', 'total-calls', 'total-tokens', 'usage-status', 'cost-pie', 'usage-trends',
    'trend-range-3m', 'trend-range-6m', 'trend-range-12m', 'trend-metric-cost', 'trend-metric-calls', 'trend-metric-tokens',
    'alerts-list', 'health-indicator', 'last-updated', 'refresh-button']) {
    await expect(page.getByTestId(id).first(), id).toBeVisible();
  }
  await expect(page.getByTestId('usage-status')).toHaveText(/Active|Warning|Limit reached/);
  // One bar per limit of the Pro plan, with ARIA values that match the text.
  const bars = page.getByTestId('limit-bar');
  expect(await bars.count()).toBe(16);
  const tavily = page.locator('[data-testid="limit-bar"][data-limit="tavily_calls"]');
  const bar = tavily.getByRole('progressbar');
  await expect(bar).toHaveAttribute('aria-valuemax', '300');
  const now = Number(await bar.getAttribute('aria-valuenow'));
  expect(now).toBeGreaterThan(0);
  await expect(tavily).toContainText(`${now.toLocaleString('en-US')} / 300`);
  // The bar's width is the share used.
  const width = await tavily.locator('[role="progressbar"] > div').evaluate((el) => (el as HTMLElement).style.width);
  expect(parseFloat(width)).toBeCloseTo(Math.min(100, (now * 100) / 300), 0);
  await expect(page.getByTestId('health-indicator')).toContainText(/Healthy|Warning|Critical/);
  await expect(page.getByTestId('projection')).toContainText("You're on track to spend");
  await expect(page.getByTestId('last-updated')).toHaveAttribute('data-refresh-secs', '30');
});

test('range and metric toggles change the series', async ({ page }, info) => {
  await signIn(page, DEMO, '/dashboard');
  await ready(page, info);
  await page.getByTestId('trend-range-12m').click();
  await expect(page.getByTestId('trend-table').locator('tbody tr')).toHaveCount(12);
  await expect(page.getByTestId('trend-range-12m')).toHaveAttribute('aria-current', 'true');
  await page.getByTestId('trend-range-3m').click();
  await expect(page.getByTestId('trend-table').locator('tbody tr')).toHaveCount(3);
  if (hydrated(info)) {
    await expect(page.locator('#usage-trend-chart canvas')).toBeVisible();
    let opt = await chartOption(page, 'usage-trend-chart');
    expect(opt.xAxis[0].data.length).toBe(3);
    expect(opt.yAxis[0].name).toBe('Cost (USD)');
    const names = opt.series.map((s: any) => s.name);
    expect(names[0]).toBe('Total');
    expect(names).toContain('Projection');
    expect(opt.series.find((s: any) => s.name === 'Projection').lineStyle.type).toBe('dashed');
    await page.getByTestId('trend-metric-calls').click();
    await expect(page.getByTestId('trend-metric-calls')).toHaveAttribute('aria-current', 'true');
    await expect.poll(async () => (await chartOption(page, 'usage-trend-chart')).yAxis[0].name).toBe('Calls');
    opt = await chartOption(page, 'usage-trend-chart');
    const lastCalls = opt.series[0].data[opt.series[0].data.length - 1];
    const tableCalls = Number((await page.getByTestId('trend-table').locator('tbody tr').last().locator('td').nth(1).innerText()).replace(/,/g, ''));
    expect(lastCalls).toBe(tableCalls);
    await page.getByTestId('trend-metric-tokens').click();
    await expect.poll(async () => (await chartOption(page, 'usage-trend-chart')).yAxis[0].name).toBe('Tokens');
  }
});

test('clicking a slice (or a provider) opens its models', async ({ page }, info) => {
  await signIn(page, DEMO, '/dashboard');
  await ready(page, info);
  const pie = page.getByTestId('cost-pie');
  const first = (await pie.locator('tbody tr').first().locator('td').first().innerText()).trim();
  if (hydrated(info)) {
    // Hover the middle of the first (largest) slice, where ECharts laid it out.
    await page.locator('#cost-pie-chart').scrollIntoViewIfNeeded();
    await expect(page.locator('#cost-pie-chart canvas')).toBeVisible();
    await page.waitForTimeout(1200);
    const box = (await page.locator('#cost-pie-chart').boundingBox())!;
    const p = await page.evaluate(() => {
      // @ts-ignore: the global ECharts served by the page
      const inst = (window as any).echarts.getInstanceByDom(document.getElementById('cost-pie-chart'));
      const l = inst.getModel().getSeriesByIndex(0).getData().getItemLayout(0);
      const mid = (l.startAngle + l.endAngle) / 2;
      const r = (l.r0 + l.r) / 2;
      return { x: l.cx + Math.cos(mid) * r, y: l.cy + Math.sin(mid) * r };
    });
    await page.mouse.move(box.x + p.x, box.y + p.y);
    await expect(page.getByTestId('pie-hover')).toContainText(`${first}:`);
    await expect(page.getByTestId('pie-hover')).toContainText('calls');
    await page.mouse.down();
    await page.mouse.up();
    // The vendored ECharts holds only the parts the charts use: none missing.
    expect(browserLog(page).filter((l) => /ECharts|not imported/i.test(l))).toEqual([]);
  } else {
    await pie.getByRole('link', { name: first }).click();
  }
  const drill = page.getByTestId('provider-drilldown');
  await expect(drill).toContainText(`${first}: models this period`);
  expect(await drill.locator('tbody tr').count()).toBeGreaterThan(0);
});

test('mark one alert read, and it stays read after a reload', async ({ page }, info) => {
  await signIn(page, DEMO, '/dashboard');
  await ready(page, info);
  const unread = page.locator('[data-testid="alert-item"][data-read="false"]');
  const before = await unread.count();
  expect(before).toBeGreaterThan(0);
  const title = await unread.first().locator('p').first().innerText();
  await unread.first().getByTestId('alert-mark-read').click();
  await expect(unread).toHaveCount(before - 1);
  await page.reload();
  await ready(page, info);
  await expect(page.locator('[data-testid="alert-item"][data-read="false"]')).toHaveCount(before - 1);
  await expect(page.locator('[data-testid="alert-item"][data-read="true"]').filter({ hasText: title.replace(/^\s+/, '') }).first()).toBeVisible();
  // Filters.
  await page.getByRole('link', { name: 'unread', exact: true }).click();
  await expect(page.locator('[data-testid="alert-item"][data-read="true"]')).toHaveCount(0);
});

test('the dashboard refreshes itself every 30 s and shows new usage', async ({ page, request }, info) => {
  test.skip(!hydrated(info), 'refresh needs JavaScript');
  const key = process.env.E2E_INGEST_KEY;
  test.skip(!key, 'needs E2E_INGEST_KEY');
  // Without the live stream (refused here), the timer is what refreshes.
  await page.route('**/api/stream**', (route) => route.abort());
  await page.clock.install();
  await signIn(page, DEMO, '/dashboard');
  await ready(page, info);
  await expect(page.getByTestId('live-indicator')).toHaveAttribute('data-live', 'false');
  await expect(page.getByTestId('live-indicator')).toHaveText('Every 30 s');
  const calls = async () => Number((await page.getByTestId('total-calls').innerText()).replace(/,/g, ''));
  const before = await calls();
  const stamp = await page.getByTestId('last-updated').innerText();
  const res = await request.post('/api/usage/events', {
    headers: { Authorization: `Bearer ${key}` },
    data: { events: [{ id: `refresh-${Date.now()}`, user_id: 'demo', provider: 'tavily', operation_type: 'search' }] },
  });
  expect(res.status()).toBe(200);
  // Nothing moves before the interval.
  await page.clock.runFor(20_000);
  expect(await calls()).toBe(before);
  // After 30 s the data reloads in place, without a page load. (The
  // server stamps its answer to the second of the real clock, which the
  // page's fake one does not move: let a real second pass first.)
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  await page.clock.runFor(11_000);
  await expect.poll(calls).toBe(before + 1);
  await expect(page.getByTestId('billing-overview')).toBeVisible();
  // The counter that changed flashes; the one that did not (tokens) does not.
  await expect(page.getByTestId('total-calls').locator('.counter-changed')).toHaveCount(1);
  await expect(page.getByTestId('total-tokens').locator('.counter-changed')).toHaveCount(0);
  expect(await page.getByTestId('last-updated').innerText()).not.toBe(stamp);
  // The manual button refreshes too.
  await request.post('/api/usage/events', {
    headers: { Authorization: `Bearer ${key}` },
    data: { events: [{ id: `refresh-b-${Date.now()}`, user_id: 'demo', provider: 'tavily', operation_type: 'search' }] },
  });
  await page.getByTestId('refresh-button').click();
  await expect.poll(calls).toBe(before + 2);
});

test('new usage is pushed to the dashboard within a second of its ingest call', async ({ page, request }, info) => {
  test.skip(!hydrated(info), 'the stream needs JavaScript');
  const key = process.env.E2E_INGEST_KEY;
  test.skip(!key, 'needs E2E_INGEST_KEY');
  await signIn(page, DEMO, '/dashboard');
  await ready(page, info);
  const indicator = page.getByTestId('live-indicator');
  await expect(indicator).toHaveAttribute('data-live', 'true');
  await expect(indicator).toHaveText('Live');
  const calls = async () => Number((await page.getByTestId('total-calls').innerText()).replace(/,/g, ''));
  const cost = async () => page.getByTestId('total-cost').innerText();
  for (let round = 1; round <= 2; round++) {
    const before = await calls();
    const costBefore = await cost();
    const res = await request.post('/api/usage/events', {
      headers: { Authorization: `Bearer ${key}` },
      data: { events: [{ id: `live-${round}-${Date.now()}`, user_id: 'demo', provider: 'openai', model: 'gpt-4o', tokens_input: 200000, tokens_output: 50000 }] },
    });
    expect(res.status()).toBe(200);
    // No reload, no timer: the server says so at once.
    await expect.poll(calls, { timeout: 1000, intervals: [25] }).toBe(before + 1);
    await expect.poll(cost, { timeout: 1000, intervals: [25] }).not.toBe(costBefore);
  }
  await shot(page, info, 'dashboard-live');
});

test('screenshots at phone, tablet and desktop widths', async ({ page }, info) => {
  test.skip(!hydrated(info), 'once, hydrated');
  await signIn(page, DEMO, '/dashboard');
  for (const width of [375, 768, 1280]) {
    await page.setViewportSize({ width, height: 900 });
    await page.goto('/dashboard?months=12');
    await ready(page, info);
    await page.waitForTimeout(1200); // let the chart animations finish
    await shot(page, info, `dashboard-${width}`);
  }
});

test('a new user with no usage sees an empty state, not zeros pretending to be data', async ({ page, baseURL }, info) => {
  test.skip(!hydrated(info), 'creates a user: once, hydrated');
  const email = `empty-${Date.now()}@example.test`;
  await signIn(page, { email: 'admin@example.com', password: 'admin-password' }, '/admin');
  const made = await page.request.post('/api/admin/users', { headers: { Origin: baseURL! }, data: { email, name: 'New Person', password: 'new-person-pw' } });
  expect(made.status()).toBe(200);
  const minted = await page.request.post('/api/admin/api-keys', { headers: { Origin: baseURL! }, data: { scopes: ['ingest'], name: 'e2e service' } });
  const serviceKey = (await minted.json()).data.key as string;
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await signIn(page, { email, password: 'new-person-pw' }, '/dashboard');
  await ready(page, info);
  await expect(page.getByTestId('empty-state')).toBeVisible();
  await expect(page.getByTestId('total-cost')).toHaveText('$0.0000');
  await expect(page.getByTestId('cost-pie')).toContainText('No cost this period yet.');
  await expect(page.getByTestId('alerts-list')).toContainText('No alerts to show.');
  await shot(page, info, 'dashboard-empty');

  // Usage arrives: 18 of the Free plan's 20 Tavily calls raise the 80% and 90% alerts.
  const userId = (await made.json()).data.user_id;
  const events = Array.from({ length: 18 }, (_, i) => ({ id: `n-${i}`, user_id: userId, provider: 'tavily', operation_type: 'search' }));
  const rec = await page.request.post('/api/usage/events', { headers: { Authorization: `Bearer ${serviceKey}` }, data: { events } });
  expect((await rec.json()).data.accepted).toBe(18);
  // Refresh from the keyboard; focus is visible.
  await page.getByTestId('refresh-button').focus();
  const outline = await page.getByTestId('refresh-button').evaluate((el) => getComputedStyle(el).outlineStyle);
  expect(outline).not.toBe('none');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('empty-state')).toHaveCount(0);
  await expect(page.locator('[data-testid="alert-item"][data-read="false"]')).toHaveCount(2);
  await expect(page.getByTestId('usage-status')).toHaveText('Warning');
  await expect(page.locator('[data-testid="limit-bar"][data-limit="tavily_calls"]')).toHaveAttribute('data-status', 'warning');
  await page.getByRole('button', { name: 'Mark all read' }).click();
  await expect(page.locator('[data-testid="alert-item"][data-read="false"]')).toHaveCount(0);
  await expect(page.getByTestId('unread-count')).toHaveText('0 unread');
});

test('refresh pauses while the tab is hidden; a failed load offers a retry', async ({ page }, info) => {
  test.skip(!hydrated(info), 'needs JavaScript');
  await page.clock.install();
  await signIn(page, DEMO, '/dashboard');
  await ready(page, info);
  let loads = 0;
  page.on('request', (r) => { if (r.url().includes('/sfn/get_dashboard')) loads++; });
  // Hidden: three intervals pass, nothing is fetched.
  await page.evaluate(() => Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' }));
  await page.clock.runFor(95_000);
  expect(loads).toBe(0);
  // Visible again: the next interval fetches.
  await page.evaluate(() => Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' }));
  await page.clock.runFor(31_000);
  await expect.poll(() => loads).toBeGreaterThan(0);
  // The store goes away: an error with a way to retry, not a blank page.
  await page.route('**/sfn/get_dashboard*', (route) => route.abort());
  await page.getByTestId('refresh-button').click();
  await expect(page.getByRole('alert').filter({ hasText: 'Could not load your usage' })).toBeVisible();
  await page.unroute('**/sfn/get_dashboard*');
  await page.getByRole('button', { name: 'Retry' }).click();
  await expect(page.getByTestId('billing-overview')).toBeVisible();
});

test('text contrast meets WCAG AA on the dashboard', async ({ page }, info) => {
  test.skip(!hydrated(info), 'once');
  await signIn(page, DEMO, '/dashboard');
  await ready(page, info);
  const failures = await page.evaluate(() => {
    // Any CSS colour (Tailwind 4 emits lab/oklch) to sRGB + alpha, via a canvas.
    const ctx = document.createElement('canvas').getContext('2d', { willReadFrequently: true })!;
    const parse = (c: string): number[] => {
      ctx.clearRect(0, 0, 1, 1);
      ctx.fillStyle = '#000';
      ctx.fillStyle = c;
      ctx.fillRect(0, 0, 1, 1);
      const [r, g, b, a] = Array.from(ctx.getImageData(0, 0, 1, 1).data);
      return [r, g, b, a / 255];
    };
    const lum = ([r, g, b]: number[]) => {
      const f = (v: number) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el: Element | null): number[] => {
      for (; el; el = el.parentElement) {
        const c = parse(getComputedStyle(el).backgroundColor);
        if (c[3] > 0.5) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const out: string[] = [];
    for (const el of Array.from(document.querySelectorAll('body *'))) {
      const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent!.trim().length > 0);
      if (!own) continue;
      const s = getComputedStyle(el);
      const r = el.getBoundingClientRect();
      if (s.visibility === 'hidden' || r.width === 0 || s.opacity === '0' || el.closest('.sr-only')) continue;
      const fg = parse(s.color).slice(0, 3);
      const [a, b] = [lum(fg), lum(background(el))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      const large = parseFloat(s.fontSize) >= 24 || (parseFloat(s.fontSize) >= 18.66 && Number(s.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) out.push(`${ratio.toFixed(2)} "${el.textContent!.trim().slice(0, 40)}" (${s.color})`);
    }
    return out;
  });
  expect(failures, failures.join('\n')).toEqual([]);
});
