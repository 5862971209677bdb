import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { expect, test } from './fixtures';
import { ADMIN, hydrated, ready, shot, signIn } from './helpers';

/** LiteLLM's whole price map, as vendored for the Rust tests. */
function realMap(): Buffer {
  const gz = path.join(__dirname, '..', '..', 'src', 'server', 'testdata', 'litellm', 'model_prices_and_context_window_backup.json.gz');
  return zlib.gunzipSync(fs.readFileSync(gz));
}

test('admin previews a price map import, then applies it', async ({ page }, info) => {
  test.skip(!hydrated(info), 'the upload runs in the hydrated page');
  const stamp = Date.now();
  const model = `grok-e2e-${stamp}`;
  await signIn(page, ADMIN, '/admin/pricing');
  await ready(page, info);
  const section = page.getByTestId('price-import');

  // Nothing chosen, or a file that is not a price map: said in words.
  await section.getByTestId('import-preview').click();
  await expect(section.getByTestId('import-error')).toHaveText('Choose a price map file first.');
  await section.getByTestId('import-file').setInputFiles({ name: 'notes.json', mimeType: 'application/json', buffer: Buffer.from('[1, 2') });
  await section.getByTestId('import-preview').click();
  await expect(section.getByTestId('import-error')).toContainText('price map');

  // The whole real map (3.5 MB): a dry run lists thousands of new versions
  // and writes nothing.
  await section.getByTestId('import-file').setInputFiles({ name: 'litellm.json', mimeType: 'application/json', buffer: realMap() });
  await section.getByTestId('import-effective-from').fill('2099-01-01T00:00');
  await section.getByTestId('import-preview').click();
  const summary = section.getByTestId('import-summary');
  await expect(summary).toContainText('Preview:', { timeout: 20_000 });
  const wouldAdd = Number((await summary.innerText()).match(/Preview: ([\d,]+) price versions/)![1].replace(/,/g, ''));
  expect(wouldAdd).toBeGreaterThan(2000);
  await expect(summary).toContainText('from 2099-01-01 00:00:00 UTC');
  await expect(section.getByTestId('import-skipped')).toContainText('entries skipped');
  await expect(section.getByTestId('import-unsupported')).toContainText('price fields Tally does not model');
  // A model the demo prices shows what it costs now and what it would;
  // the list of thousands is searched.
  await section.getByTestId('import-filter').fill('gemini / gemini-2.5-flash');
  const flash = section.locator('[data-testid="import-changes"] tr[data-model="gemini-2.5-flash"]').first();
  await expect(flash).toHaveAttribute('data-kind', 'changed');
  await expect(flash).toContainText('Input / 1M $0.3');
  await section.getByTestId('import-filter').fill('xai / grok-4.3');
  await expect(section.locator('[data-testid="import-changes"] tr[data-model="grok-4.3"]')).toHaveAttribute('data-kind', 'new');
  await section.getByTestId('import-filter').fill('no-such-model-anywhere');
  await expect(section.getByText('No change matches.')).toBeVisible();
  await shot(page, info, 'admin-import-preview');
  await page.reload();
  await ready(page, info);
  await expect(page.locator('[data-testid="pricing-table"] tr[data-model="grok-4.3"]')).toHaveCount(0);

  // A small map with a provider beyond the built-in ten: preview, apply.
  const map = {
    sample_spec: { litellm_provider: 'openai', input_cost_per_token: 0 },
    [`xai/${model}`]: { litellm_provider: 'xai', input_cost_per_token: 2e-7, output_cost_per_token: 5e-7, cache_read_input_token_cost: 5e-8, output_cost_per_second: 0.1 },
  };
  await section.getByTestId('import-file').setInputFiles({ name: 'small.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(map)) });
  await section.getByTestId('import-effective-from').fill('2099-01-01T00:00');
  await section.getByTestId('import-preview').click();
  await expect(summary).toContainText('Preview: 1 price versions would be added');
  const row = section.locator(`[data-testid="import-changes"] tr[data-model="${model}"]`);
  await expect(row).toHaveAttribute('data-kind', 'new');
  await expect(row).toContainText('no price');
  await expect(row).toContainText('Input / 1M $0.2, Output / 1M $0.5, Cache read / 1M $0.05');
  await expect(section.getByTestId('import-skipped')).toContainText('sample_spec');
  await expect(section.getByTestId('import-unsupported')).toContainText('output_cost_per_second: 1 entries');
  await section.getByTestId('import-apply').click();
  await expect(summary).toContainText('Imported 1 price versions from 2099-01-01 00:00:00 UTC');
  await expect(section.getByTestId('import-apply')).toHaveCount(0);
  // The catalog above shows it, as scheduled, without a reload.
  const listed = page.locator(`[data-testid="pricing-table"] tr[data-model="${model}"]`);
  await expect(listed).toHaveAttribute('data-scheduled', 'true');
  await expect(listed).toContainText('(scheduled)');
  await expect(listed).toContainText('$0.2');
  await shot(page, info, 'admin-import-applied');

  // Importing the same map again changes nothing.
  await section.getByTestId('import-preview').click();
  await expect(summary).toContainText('Preview: 0 price versions would be added');
  await expect(summary).toContainText('1 unchanged');
  await expect(section.getByTestId('import-apply')).toHaveCount(0);

  // The audit log names the import.
  await page.goto('/admin/audit');
  await expect(page.getByTestId('audit-table')).toContainText('price.import');
});
