// An operator's day through the browser only (the API is read only to check what the screens claim): import a
// procedure, start it from the generated form, watch it live, approve it in the inbox, see it completed on the run
// page and in the runs list; a failing run retried with modified inputs; all in dark mode, axe on every stop.
import { expect, expectAccessible, importProcedure, procedure, runEvents, test, unique } from './fixtures';

test('import → start from the form → live timeline → approve in the inbox → completed everywhere', async ({ page, api }) => {
  const id = unique('journey');
  const doc = procedure('article_review.ckp.json', id);

  // Import by paste.
  await page.goto('/procedures');
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  const importDialog = page.getByRole('dialog', { name: 'Import a procedure' });
  await importDialog.getByRole('textbox', { name: 'CKP document (JSON)' }).fill(JSON.stringify(doc, null, 2));
  await importDialog.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(page).toHaveURL(new RegExp(`/procedures/${id}/1\\.0\\.0$`));
  await expectAccessible(page, 'version page');

  // Start it from the form generated from variables_schema: the range check speaks first.
  await page.getByRole('button', { name: 'Start run' }).click();
  const form = page.getByRole('dialog', { name: /Start/ });
  await form.getByRole('spinbutton', { name: 'article_id *' }).fill('500');
  await form.getByRole('button', { name: 'Start run' }).click();
  await expect(form.getByText('Must be at most 100')).toBeVisible();
  await form.getByRole('spinbutton', { name: 'article_id *' }).fill('42');
  await form.getByRole('button', { name: 'Start run' }).click();
  await expect(page).toHaveURL(/\/runs\/[^/?]+/);
  const runId = new URL(page.url()).pathname.split('/').pop()!;

  // The live timeline reaches the approval without a reload.
  await expect(runEvents(page).getByText('node_paused')).toBeVisible();
  await expect(page.getByRole('heading', { name: /Run/ }).getByText('waiting approval')).toBeVisible();
  await expectAccessible(page, 'run page waiting');

  // Approve it in the inbox.
  await page.getByRole('navigation').getByRole('link', { name: /^Approvals/ }).click();
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: `Run ${runId}` }) });
  await expect(row).toBeVisible();
  await expectAccessible(page, 'approvals inbox');
  await row.getByRole('button', { name: 'Approve: Publish article 42?' }).click();
  await expect(row).toHaveCount(0);

  // Completed on the run page (its timeline ends with run_completed) and in the runs list.
  await page.goto(`/runs/${runId}`);
  await expect(page.getByRole('heading', { name: /Run/ }).getByText('completed')).toBeVisible();
  await expect(runEvents(page).getByText('run_completed')).toBeVisible();
  await page.getByRole('navigation').getByRole('link', { name: /^Runs/ }).click();
  await page.getByRole('combobox', { name: 'Status' }).selectOption('completed');
  const listed = page.getByRole('row').filter({ has: page.getByRole('link', { name: `Run ${runId}` }) });
  await expect(listed).toContainText('completed');
  await expectAccessible(page, 'runs list');
  expect(((await (await api.get(`/api/runs/${runId}`)).json()) as { status: string }).status).toBe('completed');
});

test('a failing run retried with modified inputs completes as a new run linked to the first', async ({ page, api }) => {
  await page.emulateMedia({ colorScheme: 'dark' });
  const id = unique('journey-fail');
  await importProcedure(api, procedure('parse_order.ckp.json', id));

  await page.goto(`/procedures/${id}/1.0.0`);
  await page.getByRole('button', { name: 'Start run' }).click();
  const form = page.getByRole('dialog', { name: /Start/ });
  await form.getByRole('textbox', { name: 'order_json *' }).fill('not json');
  await form.getByRole('button', { name: 'Start run' }).click();
  await expect(page).toHaveURL(/\/runs\//);
  const first = new URL(page.url()).pathname.split('/').pop()!;
  await expect(page.getByRole('heading', { name: /Run/ }).getByText('failed')).toBeVisible();
  await expect(page.getByRole('alert').filter({ hasText: /JSON/ }).first()).toBeVisible();
  await expectAccessible(page, 'failed run (dark)');

  await page.getByRole('button', { name: 'Retry with modified inputs' }).click();
  const retry = page.getByRole('dialog', { name: 'Retry with modified inputs' });
  await retry.getByLabel('order_json *').fill('{"items": [1, 2]}');
  await retry.getByRole('button', { name: 'Start new run' }).click();
  await expect(page).not.toHaveURL(new RegExp(first));
  await expect(page.getByRole('heading', { name: /Run/ }).getByText('completed')).toBeVisible();
  await expect(page.getByRole('link', { name: `Original run ${first}` })).toBeVisible();
  const second = new URL(page.url()).pathname.split('/').pop()!;
  expect(((await (await api.get(`/api/runs/${second}`)).json()) as { rerun_of: string }).rerun_of).toBe(first);
  // The original still failed, untouched.
  expect(((await (await api.get(`/api/runs/${first}`)).json()) as { status: string }).status).toBe('failed');
});
