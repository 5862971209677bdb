import { Page, TestInfo } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

export const hydrated = (info: TestInfo) => info.project.use.javaScriptEnabled !== false;

/** Waits for hydration when JavaScript is on. */
export async function ready(page: Page, info: TestInfo) {
  if (hydrated(info)) {
    await page.locator('body[data-hydrated="true"]').waitFor();
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
