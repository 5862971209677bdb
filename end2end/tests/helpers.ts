import { Page, TestInfo } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';
import { browserLog } from './fixtures';

export const hydrated = (info: TestInfo) => info.project.use.javaScriptEnabled !== false;

/** Waits for hydration when JavaScript is on; says what the browser logged if it never comes. */
export async function ready(page: Page, info: TestInfo) {
  if (hydrated(info)) {
    try {
      await page.locator('body[data-hydrated="true"]').waitFor({ timeout: 20_000 });
    } catch (e) {
      const state = await page.evaluate(() => ({ url: location.href, readyState: document.readyState })).catch(() => null);
      throw new Error(`the page did not hydrate within 20 s (${JSON.stringify(state)}); browser log:\n${browserLog(page).join('\n') || '(nothing)'}`);
    }
  }
}

/** Parses "$1,234.56" into cents-free numbers for comparisons. */
export function dollars(text: string): number {
  const m = text.replace(/,/g, '').match(/-?\$(\d+(?:\.\d+)?)/);
  if (!m) throw new Error(`no dollar amount in "${text}"`);
  return Number(m[1]);
}

/** Saves a full-page screenshot under end2end/screenshots/. */
export async function shot(page: Page, info: TestInfo, name: string) {
  const dir = path.join(__dirname, '..', 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}-${info.project.name}.png`), fullPage: true });
}

export const DEMO = { email: 'demo@example.com', password: 'demo-password' };
export const ADMIN = { email: 'admin@example.com', password: 'admin-password' };

/** Signs in through the sign-in form (a plain form post: works without JS). */
export async function signIn(page: Page, who: { email: string; password: string }, next = '/') {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
}

export async function signOut(page: Page) {
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.waitForURL(/\/login/);
}
