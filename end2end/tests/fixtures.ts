import { expect, Page, test as base } from '@playwright/test';

// Every test's page records what the browser complained about (console
// errors and warnings, uncaught exceptions, failed requests). A failing
// test prints it, so a flake on CI can be read, not guessed.
const logs = new WeakMap<Page, string[]>();

export const test = base.extend({
  page: async ({ page }, use, info) => {
    const lines: string[] = [];
    logs.set(page, lines);
    const at = () => new Date().toISOString().slice(11, 23);
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') lines.push(`${at()} console.${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => lines.push(`${at()} pageerror: ${e.message}`));
    page.on('requestfailed', (r) => lines.push(`${at()} requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`));
    page.on('framenavigated', (f) => { if (f === page.mainFrame()) lines.push(`${at()} navigated: ${f.url()}`); });
    await use(page);
    if (info.status !== info.expectedStatus) {
      console.log(`--- browser log of "${info.title}" (${info.project.name}) ---\n${lines.join('\n') || '(nothing)'}`);
    }
  },
});

/** What the page's browser logged so far. */
export function browserLog(page: Page): string[] {
  return logs.get(page) ?? [];
}

export { expect };
