// The runs list (filters in the URL, pages, bulk cancel and delete, history cleanup) and the approvals inbox (live
// over the stream, decided from the detail page), against a real `ckp serve`.
import type { APIRequestContext, Page } from '@playwright/test';
import { bothThemes, expect, importProcedure, procedure, runStatus, startRun, test, unique, type Run } from './fixtures';

async function articleReview(api: APIRequestContext): Promise<string> {
  const id = unique('runs-ui');
  await importProcedure(api, procedure('article_review.ckp.json', id));
  return id;
}

async function waitingRuns(api: APIRequestContext, procedureId: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await startRun(api, procedureId, { article_id: 10 + i })).run_id);
  for (const id of ids) await expect.poll(() => runStatus(api, id)).toBe('waiting_approval');
  return ids;
}

/** A filter of the runs list by its label. */
const filter = (page: Page, name: string) => page.getByRole('form', { name: 'Filters' }).getByRole('combobox', { name, exact: true });

/** The run rows shown, counted by their selection boxes. */
const runRows = (page: Page) => page.getByRole('checkbox', { name: /^Select run / });

test('the runs list filters by status on the server, keeps the filters in the URL, and pages', async ({ page, api }) => {
  const proc = await articleReview(api);
  const [first] = await waitingRuns(api, proc, 3);
  expect((await api.post(`/api/runs/${first}/cancel`)).status()).toBe(200);

  await page.goto(`/runs?procedure_id=${proc}`);
  await expect(runRows(page)).toHaveCount(3);
  await filter(page, 'Status').selectOption('canceled');
  await expect(page).toHaveURL(/status=canceled/);
  await expect(runRows(page)).toHaveCount(1);
  await expect(page.getByRole('link', { name: `Run ${first}` })).toBeVisible();

  await page.reload();
  await expect(filter(page, 'Status')).toHaveValue('canceled');
  await expect(filter(page, 'Procedure')).toHaveValue(proc);
  await expect(runRows(page)).toHaveCount(1);
  await expect(page.getByRole('cell', { name: 'canceled' })).toBeVisible();

  await filter(page, 'Status').selectOption('waiting_approval');
  await expect(runRows(page)).toHaveCount(2);
  await filter(page, 'Created').selectOption('1h');
  await expect(page).toHaveURL(/range=1h/);
  await expect(runRows(page)).toHaveCount(2);
  await bothThemes(page, 'runs list');

  // Pages of two: the first is full (Next on), the second has the last run (Next off).
  await page.goto(`/runs?procedure_id=${proc}&limit=2`);
  await expect(runRows(page)).toHaveCount(2);
  await expect(page.getByRole('button', { name: 'Previous' })).toBeDisabled();
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(page).toHaveURL(/offset=2/);
  await expect(runRows(page)).toHaveCount(1);
  await expect(page.getByRole('button', { name: 'Next' })).toBeDisabled();
  await page.getByRole('button', { name: 'Previous' }).click();
  await expect(runRows(page)).toHaveCount(2);
  await expect(page).not.toHaveURL(/offset=[1-9]/);
});

test('bulk cancel and bulk delete act on the selection and report each result', async ({ page, api }) => {
  const proc = await articleReview(api);
  const ids = await waitingRuns(api, proc, 2);

  await page.goto(`/runs?procedure_id=${proc}`);
  await expect(runRows(page)).toHaveCount(2);
  await page.getByRole('checkbox', { name: 'Select all runs on this page' }).check();
  await expect(page.getByText('2 selected')).toBeVisible();
  await page.getByRole('button', { name: 'Cancel selected' }).click();
  const confirm = page.getByRole('dialog', { name: 'Cancel runs' });
  await expect(confirm).toContainText('Cancel 2 selected runs?');
  await confirm.getByRole('button', { name: 'Cancel runs' }).click();
  await expect(page.getByText('2 canceled, 0 failed').first()).toBeVisible();
  await expect(page.getByRole('cell', { name: 'canceled' })).toHaveCount(2);
  for (const id of ids) expect(await runStatus(api, id)).toBe('canceled');

  // Canceling them again fails per run, with the server's reason.
  await page.getByRole('checkbox', { name: `Select run ${ids[0]}` }).check();
  await page.getByRole('button', { name: 'Cancel selected' }).click();
  await page.getByRole('dialog', { name: 'Cancel runs' }).getByRole('button', { name: 'Cancel runs' }).click();
  await expect(page.getByText('0 canceled, 1 failed').first()).toBeVisible();
  await expect(page.getByRole('listitem').filter({ hasText: ids[0].slice(0, 8) })).toBeVisible();

  await page.getByRole('checkbox', { name: 'Select all runs on this page' }).check();
  await page.getByRole('button', { name: 'Delete selected' }).click();
  await page.getByRole('dialog', { name: 'Delete runs' }).getByRole('button', { name: 'Delete runs' }).click();
  await expect(page.getByText('2 deleted, 0 failed').first()).toBeVisible();
  await expect(page.getByText('No run matches these filters.')).toBeVisible();
  for (const id of ids) expect(await runStatus(api, id)).toBe('http 404');
});

test('history cleanup previews the count, then deletes', async ({ page, api }) => {
  // The preview is a dry run on the server: it counts and deletes nothing.
  const probe = await api.delete('/api/runs/cleanup/history?before=1970-01-02T00:00:00Z&dry_run=true');
  expect(((await probe.json()) as { dry_run?: boolean }).dry_run).toBe(true);

  const proc = await articleReview(api);
  const ids = await waitingRuns(api, proc, 2);
  for (const id of ids) expect((await api.post(`/api/runs/${id}/cancel`)).status()).toBe(200);
  const before = new Date(Date.now() + 5 * 60_000);
  const local = (d: Date) => {
    const p = (n: number) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  };
  const listed = await api.get(`/api/runs?status=canceled&created_to=${before.toISOString()}&limit=1000`);
  const expected = ((await listed.json()) as Run[]).length;
  expect(expected).toBeGreaterThanOrEqual(2);

  await page.goto('/runs');
  await page.getByRole('button', { name: 'Clean up history…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Clean up run history' });
  await dialog.getByLabel('Created before').fill(local(before));
  await dialog.getByLabel('Status').selectOption('canceled');
  await bothThemes(page, 'cleanup dialog');
  await dialog.getByRole('button', { name: 'Preview' }).click();
  await expect(dialog.getByRole('status')).toHaveText(`${expected} runs would be deleted.`);
  for (const id of ids) expect(await runStatus(api, id)).toBe('canceled');

  await dialog.getByRole('button', { name: `Delete ${expected} runs` }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete run history' });
  await expect(confirm).toContainText(`Delete ${expected} runs`);
  await confirm.getByRole('button', { name: 'Delete runs' }).click();
  await expect(dialog.getByRole('status')).toHaveText(`Deleted ${expected} runs.`);
  for (const id of ids) expect(await runStatus(api, id)).toBe('http 404');
});

test('a new approval appears in the inbox live and is approved with a comment from its page', async ({ page, api }) => {
  const proc = await articleReview(api);
  await page.goto('/approvals');
  await expect(page.getByRole('tab', { name: /Pending/ })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByText('Live', { exact: true })).toBeVisible();

  const runId = (await startRun(api, proc, { article_id: 77 })).run_id;
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: `Run ${runId}` }) });
  await expect(row).toBeVisible();
  await expect(row).toContainText('Publish article 77?');
  await expect(row).toContainText('editor_gate');
  await expect(row.getByRole('link', { name: `${proc}@1.0.0` })).toBeVisible();
  // The countdown ticks in the browser.
  const expiry = row.getByRole('cell', { name: /^in \d+ min/ });
  const shown = await expiry.textContent();
  await expect(expiry).not.toHaveText(shown ?? '');
  await bothThemes(page, 'approvals inbox');

  await row.getByRole('link', { name: 'Publish article 77?' }).click();
  await expect(page.getByRole('heading', { name: 'Publish article 77?' })).toBeVisible();
  await expect(page.getByRole('link', { name: runId })).toBeVisible();
  await page.getByText('Context data (JSON)').click();
  await expect(page.getByText('"word_count": 1200')).toBeVisible();
  await bothThemes(page, 'approval detail');
  await page.getByLabel('Comment').fill('Looks good to me');
  await page.getByRole('button', { name: 'Approve', exact: true }).click();

  await expect(page).toHaveURL(/\/approvals$/);
  await expect(page.getByText(/Decision recorded: Approved/)).toBeVisible();
  await expect(page.getByRole('link', { name: `Run ${runId}` })).toHaveCount(0);
  await expect.poll(() => runStatus(api, runId)).toBe('completed');
  const approvals = (await (await api.get(`/api/approvals?run_id=${runId}`)).json()) as { status: string; comment: string }[];
  expect(approvals).toEqual([expect.objectContaining({ status: 'approved', comment: 'Looks good to me' })]);

  await page.getByRole('tab', { name: 'Resolved' }).click();
  await expect(page).toHaveURL(/tab=resolved/);
  const resolved = page.getByRole('row').filter({ has: page.getByRole('link', { name: `Run ${runId}` }) });
  await expect(resolved).toContainText('approved');
  await page.reload();
  await expect(page.getByRole('tab', { name: 'Resolved' })).toHaveAttribute('aria-selected', 'true');
  await bothThemes(page, 'approvals resolved');
});
