// The run page: a live timeline over SSE, its filters, the Gantt and graph views, the failure banner, cancel, retry
// with modified inputs (a new run linked back to the original), and axe on every tab in both themes.
import type { APIRequestContext } from '@playwright/test';
import { expect, expectAccessible, importProcedure, procedure, runEvents, startRun, test, unique, waitForStatus, type Run } from './fixtures';

async function pendingApproval(api: APIRequestContext, runId: string): Promise<string> {
  let id = '';
  await expect
    .poll(async () => {
      const list = (await (await api.get(`/api/approvals?run_id=${runId}&status=pending`)).json()) as { approval_id: string }[];
      id = list[0]?.approval_id ?? '';
      return id;
    })
    .not.toBe('');
  return id;
}

async function waitingReview(api: APIRequestContext): Promise<{ id: string; run: Run }> {
  const id = unique('article-review');
  await importProcedure(api, procedure('article_review.ckp.json', id));
  const run = await startRun(api, id, { article_id: 7, review_depth: 'deep' });
  await waitForStatus(api, run.run_id, 'waiting_approval');
  return { id, run };
}

test('the timeline shows the run live: an approval given through the API completes it without a reload', async ({ page, api }) => {
  const { run } = await waitingReview(api);
  await page.goto(`/runs/${run.run_id}`);
  await expect(page.getByRole('heading', { name: /Run/ }).getByText('waiting approval')).toBeVisible();
  await expect(runEvents(page).getByText('node_paused')).toBeVisible();
  await expect(page.getByRole('status').filter({ hasText: 'Live: new events appear' })).toBeVisible();
  await expect(page.getByRole('region', { name: 'Waiting for approval' })).toContainText('Publish article 7?');
  await expect(runEvents(page).getByText('run_completed')).toHaveCount(0);

  const approval = await pendingApproval(api, run.run_id);
  const decided = await api.post(`/api/approvals/${approval}/decision`, { data: { decision: 'approve', decided_by: 'e2e' } });
  expect(decided.status(), await decided.text()).toBe(200);

  await expect(runEvents(page).getByText('run_completed')).toBeVisible();
  await expect(page.getByRole('heading', { name: /Run/ }).getByText('completed')).toBeVisible();
  await expect(page.getByText('Run ended: all events shown')).toBeVisible();
  await expect(page.getByRole('region', { name: 'Waiting for approval' })).toHaveCount(0);
  // The output variables arrived with the refetched run.
  await expect(page.getByRole('region', { name: 'Output variables' })).toContainText('published');
  // Per-node report: the approval node was entered once and completed.
  const report = page.getByRole('table', { name: /Nodes of this run/ });
  await expect(report.getByRole('row', { name: /editor_gate/ })).toContainText('completed');
});

test('the event type filter, the quick filters and the payloads', async ({ page, api }) => {
  const { run } = await waitingReview(api);
  await page.goto(`/runs/${run.run_id}`);
  await expect(runEvents(page).getByText('node_paused')).toBeVisible();
  await page.getByText('Event types', { exact: false }).first().click();
  await page.getByRole('checkbox', { name: /step_log/ }).click();
  await expect(page).toHaveURL(/types=step_log/);
  await expect(page.getByRole('checkbox', { name: /step_log/ })).toBeChecked();
  await expect(runEvents(page).getByRole('listitem')).toHaveCount(1);
  await expect(runEvents(page)).toContainText('Loaded article 7 for a deep review');
  await page.getByRole('checkbox', { name: /approval_requested/ }).click();
  await expect(runEvents(page).getByRole('listitem')).toHaveCount(2);
  await page.getByRole('button', { name: 'Clear types' }).click();
  await page.getByRole('button', { name: 'Nodes', exact: true }).click();
  await expect(page).toHaveURL(/filter=nodes/);
  await expect(runEvents(page).getByText('step_started')).toHaveCount(0);
  await expect(runEvents(page).getByText('node_started').first()).toBeVisible();
  // The filters survive a reload (they are in the URL).
  await page.reload();
  await expect(page.getByRole('button', { name: 'Nodes', exact: true })).toHaveAttribute('aria-pressed', 'true');
  // A payload opens.
  const show = page.getByRole('button', { name: /Show payload of event \d+ \(node_paused\)/ });
  await show.click();
  await expect(page.getByLabel(/Payload of event/)).toContainText('awaiting_approval');
});

test('the graph shows node states and the Gantt view draws bars', async ({ page, api }) => {
  const { run } = await waitingReview(api);
  await page.goto(`/runs/${run.run_id}?tab=graph`);
  const graph = page.getByRole('figure', { name: `Live graph of run ${run.run_id}` });
  await expect(graph).toBeVisible();
  await expect(graph.locator('[data-state="waiting"]')).toHaveCount(1);
  await expect(graph.locator('[data-state="completed"]')).toHaveCount(6);
  await expect(graph.getByText('◀ now')).toBeVisible();
  await page.getByText('Node states as a list').click();
  await expect(page.getByRole('listitem').filter({ hasText: 'editor_gate' })).toContainText('waiting');
  await expect(page.getByRole('listitem').filter({ hasText: 'light_review' })).toContainText('not reached');
  await page.getByRole('button', { name: 'load_article', exact: true }).click();
  const panel = page.getByRole('complementary', { name: /Node load_article/ });
  await expect(panel.getByRole('table', { name: 'Steps of load_article' })).toContainText('set_word_count');
  await expect(page).toHaveURL(/node=load_article/);

  await page.getByRole('tab', { name: 'Gantt' }).click();
  await expect(page).toHaveURL(/tab=gantt/);
  const bars = page.getByRole('list', { name: 'Nodes and steps on a time axis' });
  await expect(bars.getByRole('button', { name: /^Node load_article, completed/ })).toBeVisible();
  await expect(bars.getByRole('button', { name: /^Step of check_spelling: set_spelling, completed/ })).toBeVisible();
  const wait = bars.getByRole('button', { name: /^Wait at editor_gate \(awaiting approval\), still running/ });
  await expect(wait).toBeVisible();
  await wait.click();
  await expect(page.getByRole('region', { name: /Wait at editor_gate/ }).getByText('approval_requested')).toBeVisible();
});

async function failedOrder(api: APIRequestContext): Promise<Run> {
  const id = unique('parse-order');
  await importProcedure(api, procedure('parse_order.ckp.json', id));
  const run = await startRun(api, id, { order_json: 'not json' });
  await waitForStatus(api, run.run_id, 'failed');
  return run;
}

test('a failing run shows the failure banner and its error expanded', async ({ page, api }) => {
  const run = await failedOrder(api);
  await page.goto(`/runs/${run.run_id}`);
  const banner = page.getByRole('alert').filter({ hasText: 'Run failed' });
  await expect(banner).toContainText('not valid JSON');
  // Errors are expanded by default.
  await expect(page.getByRole('button', { name: /Hide payload of event \d+ \(run_failed\)/ })).toBeVisible();
  await page.getByRole('button', { name: 'Errors' }).click();
  await expect(runEvents(page).getByRole('listitem')).toHaveCount(2);
  // Retry in place: the same run runs again with the same inputs, and fails again.
  await page.getByRole('button', { name: 'Retry', exact: true }).click();
  await page.getByRole('dialog', { name: 'Retry this run?' }).getByRole('button', { name: 'Retry' }).click();
  await expect(runEvents(page).getByText('run_failed')).toHaveCount(2);
  await expect(page.getByRole('heading', { name: /Run/ }).getByText('failed')).toBeVisible();
});

// Needs `POST /api/runs/{id}/retry` with `{"input_vars"}` answering a new run with `rerun_of` (branch console-api).
test('retry with modified inputs starts a new run that completes and links back', async ({ page, api }) => {
  const run = await failedOrder(api);
  await page.goto(`/runs/${run.run_id}`);
  await page.getByRole('button', { name: 'Retry with modified inputs' }).click();
  const dialog = page.getByRole('dialog', { name: 'Retry with modified inputs' });
  const field = dialog.getByLabel('order_json *');
  await expect(field).toHaveValue('not json');
  await field.fill('{"items": [{"price": 2}]}');
  await dialog.getByRole('button', { name: 'Start new run' }).click();
  await expect(page).not.toHaveURL(new RegExp(run.run_id));
  await expect(page.getByRole('heading', { name: /Run/ }).getByText('completed')).toBeVisible();
  const original = page.getByRole('link', { name: `Original run ${run.run_id}` });
  await expect(original).toBeVisible();
  const newId = new URL(page.url()).pathname.split('/').pop()!;
  const created = (await (await api.get(`/api/runs/${newId}`)).json()) as Run;
  expect(created.rerun_of).toBe(run.run_id);
  await original.click();
  await expect(page.getByRole('link', { name: new RegExp(`Retry run ${newId}`) })).toBeVisible();
});

test('cancel a waiting run from the header', async ({ page, api }) => {
  const { run } = await waitingReview(api);
  await page.goto(`/runs/${run.run_id}`);
  await page.getByRole('button', { name: 'Cancel run' }).click();
  const confirm = page.getByRole('dialog', { name: 'Cancel this run?' });
  await confirm.getByRole('button', { name: 'Cancel run' }).click();
  await expect(page.getByRole('heading', { name: /Run/ }).getByText('canceled')).toBeVisible();
  await expect(runEvents(page).getByText('run_canceled')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Cancel run' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Retry', exact: true })).toBeVisible();
  await waitForStatus(api, run.run_id, 'canceled');
});

test('every tab of the run page is accessible in light and dark mode', async ({ page, api }) => {
  const { run } = await waitingReview(api);
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const tab of ['timeline', 'gantt', 'graph', 'artifacts', 'checkpoints', 'diagnostics']) {
      await page.goto(`/runs/${run.run_id}?tab=${tab}`);
      await expect(page.getByRole('tab', { selected: true })).toBeVisible();
      await expect(page.getByRole('tabpanel').getByRole('status').filter({ hasText: 'Loading' })).toHaveCount(0);
      if (tab === 'graph') await expect(page.getByRole('figure')).toBeVisible();
      if (tab === 'checkpoints') await page.getByRole('button', { name: /Show checkpoint/ }).first().click();
      await expectAccessible(page, `run page ${tab} (${scheme})`);
    }
  }
});

test('a run with 10,000 events stays responsive', async ({ page, api }) => {
  const id = unique('big-loop');
  await importProcedure(api, procedure('big_loop.ckp.json', id));
  const run = await startRun(api, id, { items: Array.from({ length: 1700 }, (_, i) => i) });
  await waitForStatus(api, run.run_id, 'completed');
  const total = ((await (await api.get(`/api/runs/${run.run_id}/diagnostics`)).json()) as { total_events: number }).total_events;
  expect(total).toBeGreaterThan(10_000);

  // No timing assertion (they flake on a loaded machine): the list must be virtualised, which is what keeps a
  // page of 10,000 events responsive, and filtering and scrolling must work on all of them.
  await page.goto(`/runs/${run.run_id}`);
  await expect(page.getByRole('status').filter({ hasText: `${total} events` })).toBeVisible();
  // Only the rows in view are in the document.
  expect(await runEvents(page).getByRole('listitem').count()).toBeLessThan(100);
  await page.getByRole('button', { name: 'Steps', exact: true }).click();
  await expect(page.getByRole('status').filter({ hasText: new RegExp(`of ${total} events`) })).toBeVisible();
  expect(await runEvents(page).getByRole('listitem').count()).toBeLessThan(100);
  await runEvents(page).evaluate((el) => (el.scrollTop = el.scrollHeight));
  await expect(runEvents(page).getByText('item 1699')).toBeVisible();
  await page.getByRole('tab', { name: 'Gantt' }).click();
  await expect(page.getByRole('button', { name: /^Node each, completed/ })).toBeVisible();
});
