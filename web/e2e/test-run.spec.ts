// Test runs from the procedure version page's "Test" tab (the panel the author page also uses): stopping at a node,
// mocked external calls, test data for a step, and the inputs of a past run filling the form.
import type { APIRequestContext, Page } from '@playwright/test';
import { bothThemes, expect, importProcedure, procedure, startRun, test, unique } from './fixtures';

interface Event {
  event_type: string;
  node_id: string | null;
  step_id: string | null;
}

async function openTestTab(page: Page, id: string) {
  await page.goto(`/procedures/${id}/1.0.0?tab=test`);
  await expect(page.getByRole('heading', { name: 'Test run', exact: true })).toBeVisible();
}

/** The run id the panel started, from its link to the run page. */
async function startedRunId(page: Page): Promise<string> {
  const href = await page.getByRole('link', { name: 'Open the run page' }).getAttribute('href');
  return decodeURIComponent(href!.split('/runs/')[1]);
}

const events = async (api: APIRequestContext, runId: string): Promise<Event[]> => (await api.get(`/api/runs/${runId}/events`)).json();

test('stop at a node: the run completes there, the node and what follows do not run', async ({ page, api }) => {
  const id = unique('notice');
  await importProcedure(api, procedure('customer_notice.ckp.json', id));
  await openTestTab(page, id);
  await page.getByLabel('customer_id *').fill('C-7');
  await page.getByLabel('Stop at node').selectOption('notify');
  await page.getByRole('button', { name: 'Run test' }).click();

  const status = page.getByRole('status', { name: 'Test run status' });
  await expect(status).toHaveText('completed');
  const runId = await startedRunId(page);
  const nodes = page.getByRole('table', { name: 'Nodes of the test run' });
  await expect(nodes.getByRole('row', { name: /^fetch/ })).toContainText('completed');
  await expect(nodes.getByRole('row', { name: /^score/ })).toContainText('completed');
  await expect(nodes.getByRole('row', { name: /^notify/ })).toContainText('stopped here');
  await expect(nodes.getByRole('row', { name: /^done/ })).toHaveCount(0);
  // The server agrees: a test snapshot version, completed, and the notice's step never started.
  const run = (await (await api.get(`/api/runs/${runId}`)).json()) as { status: string; procedure_version: string; input_vars: Record<string, unknown> };
  expect(run.status).toBe('completed');
  expect(run.procedure_version).toMatch(/^1\.0\.0\+test\.[0-9a-f]{8}$/);
  expect(run.input_vars).toMatchObject({ customer_id: 'C-7' });
  const list = await events(api, runId);
  expect(list.some((e) => e.step_id === 'send_notice')).toBe(false);
  expect(list.some((e) => e.node_id === 'done')).toBe(false);
  // The catalog still lists the one version.
  const versions = (await (await api.get(`/api/procedures/${id}/versions`)).json()) as unknown[];
  expect(versions).toHaveLength(1);
  await bothThemes(page, 'test run panel');
});

test('external calls are mocked by default, test data replaces a step, and the run page is linked', async ({ page, api }) => {
  const id = unique('notice');
  await importProcedure(api, procedure('customer_notice.ckp.json', id));
  await openTestTab(page, id);
  await expect(page.getByLabel('Mock external calls')).toBeChecked();
  await page.getByLabel('customer_id *').fill('C-8');
  await page.getByLabel('Test data by step (JSON)').fill('{"get_customer": {"name": "Ada", "tier": "gold"}}');
  await page.getByRole('button', { name: 'Run test' }).click();
  await expect(page.getByRole('status', { name: 'Test run status' })).toHaveText('completed');

  const log = page.getByRole('list', { name: 'Test run events' });
  // The email step is mocked; the CRM call gives the test data instead.
  await expect(log.getByRole('listitem').filter({ hasText: 'step_mock_applied' })).toHaveCount(1);
  await expect(log.getByRole('listitem').filter({ hasText: 'step_test_override_applied' })).toHaveCount(1);
  const nodes = page.getByRole('table', { name: 'Nodes of the test run' });
  await expect(nodes.getByRole('row', { name: /^fetch/ })).toContainText('"tier":"gold"');
  await expect(nodes.getByRole('row', { name: /^notify/ })).toContainText('"mocked":true');
  const runId = await startedRunId(page);
  const list = await events(api, runId);
  expect(list.filter((e) => e.event_type === 'step_mock_applied').map((e) => e.step_id)).toEqual(['send_notice']);

  await page.getByRole('link', { name: 'Open the run page' }).click();
  await expect(page).toHaveURL(new RegExp(`/runs/${runId}$`));

  // Without mocks the email step has no agent to go to: the run fails at it.
  await openTestTab(page, id);
  await page.getByLabel('Mock external calls').uncheck();
  await page.getByLabel('customer_id *').fill('C-9');
  await page.getByLabel('Test data by step (JSON)').fill('{"get_customer": {"name": "Bob"}}');
  await page.getByRole('button', { name: 'Run test' }).click();
  await expect(page.getByRole('status', { name: 'Test run status' })).toHaveText('failed');
  await expect(page.getByRole('table', { name: 'Nodes of the test run' }).getByRole('row', { name: /^notify/ })).toContainText('failed');
});

test('the inputs of a past run fill the form', async ({ page, api }) => {
  const id = unique('notice');
  await importProcedure(api, procedure('customer_notice.ckp.json', id));
  const past = await startRun(api, id, { customer_id: 'C-42', crm_url: 'https://crm.example.test' });
  await openTestTab(page, id);
  await expect(page.getByLabel('customer_id *')).toHaveValue('');
  const picker = page.getByLabel("Start from a past run's inputs");
  await expect(picker.locator('option')).toHaveCount(2);
  await picker.selectOption(past.run_id);
  await expect(page.getByLabel('customer_id *')).toHaveValue('C-42');
  await expect(page.getByLabel('crm_url')).toHaveValue('https://crm.example.test');
  await expect(page.getByText(/Inputs filled from run/)).toBeVisible();
  // And a test run started from them carries them.
  await page.getByLabel('Stop at node').selectOption('score');
  await page.getByRole('button', { name: 'Run test' }).click();
  await expect(page.getByRole('status', { name: 'Test run status' })).toHaveText('completed');
  const run = (await (await api.get(`/api/runs/${await startedRunId(page)}`)).json()) as { input_vars: Record<string, unknown> };
  expect(run.input_vars).toEqual({ customer_id: 'C-42', crm_url: 'https://crm.example.test' });
});

test('the overlay reads each node\'s status, input, output and error from the events', async () => {
  const { overlayFromEvents } = await import('../src/features/test-run/overlay');
  let id = 0;
  const ev = (event_type: string, node_id: string | null, step_id: string | null = null, payload: Record<string, unknown> = {}) =>
    ({ event_id: ++id, run_id: 'r', event_type, node_id, step_id, payload, created_at: '2026-01-01T00:00:00Z' }) as never;
  const doc = procedure('customer_notice.ckp.json', 'x');
  const events = [
    ev('node_started', 'fetch'),
    ev('step_started', 'fetch', 'get_customer', { action: 'http_request' }),
    ev('step_test_override_applied', 'fetch', 'get_customer', { override: { name: 'Ada' } }),
    ev('step_completed', 'fetch', 'get_customer', { output_variable: 'customer' }),
    ev('node_completed', 'fetch'),
    ev('node_started', 'score'),
    ev('node_completed', 'score'),
    ev('node_started', 'notify'),
    ev('step_mock_applied', 'notify', 'send_notice', { action: 'send_email', binding: 'agent_http:EMAIL' }),
    ev('node_error', 'notify', null, { error: 'boom' }),
  ];
  const o = overlayFromEvents(events, { doc, finalVars: { customer: { name: 'Ada' }, score: 7 } });
  expect([...o.keys()]).toEqual(['fetch', 'score', 'notify']);
  expect(o.get('fetch')).toEqual({
    status: 'completed',
    input: { get_customer: { action: 'http_request', method: 'GET', url: '{{crm_url}}/customers/{{customer_id}}' } },
    output: { get_customer: { name: 'Ada' } },
  });
  expect(o.get('score')).toMatchObject({ status: 'completed', input: { operations: [{ action: 'set_variable', variable: 'score', value: 7 }] } });
  expect(o.get('notify')).toMatchObject({ status: 'failed', error: 'boom', output: { send_notice: { mocked: true, action: 'send_email' } } });
  // Live: a node entered and not left is running; a run that fails there marks it failed with the run's error.
  const live = overlayFromEvents(events.slice(0, 6));
  expect(live.get('score')).toEqual({ status: 'running' });
  const failed = overlayFromEvents([...events.slice(0, 6), ev('run_failed', null, null, { error: { message: 'stopped' } })]);
  expect(failed.get('score')).toEqual({ status: 'failed', error: 'stopped' });
  // A node entered again starts over.
  const again = overlayFromEvents([...events, ev('node_started', 'notify')]);
  expect(again.get('notify')).toEqual({ status: 'running' });
});

test('the author page tests its draft and shows the run on the canvas', async ({ page, api }) => {
  const id = unique('notice');
  await importProcedure(api, procedure('customer_notice.ckp.json', id));
  await page.goto(`/procedures/${id}/1.0.0/edit`);
  await expect(page.locator('.react-flow__node[data-id="fetch"]')).toBeVisible();
  await page.getByRole('button', { name: 'Test', exact: true }).click();
  await page.getByLabel('customer_id *').fill('C-5');
  await page.getByLabel('Stop at node').selectOption('notify');
  await page.getByRole('button', { name: 'Run test' }).click();
  await expect(page.getByRole('status', { name: 'Test run status' })).toHaveText('completed');
  await bothThemes(page, 'author page, test view');

  // Back on the canvas, each node the run went through shows how it went.
  await page.getByRole('button', { name: 'Builder', exact: true }).click();
  const overlay = (node: string) => page.locator(`.react-flow__node[data-id="${node}"] .bnode-overlay`);
  await expect(overlay('fetch')).toContainText('completed');
  await expect(overlay('fetch')).toContainText('mocked');
  await expect(overlay('score')).toContainText('completed');
  await expect(overlay('done')).toHaveCount(0);
  await expect(page.getByText(/Showing test run/)).toBeVisible();
  // The Test view kept the run and the form.
  await page.getByRole('button', { name: 'Test', exact: true }).click();
  await expect(page.getByLabel('customer_id *')).toHaveValue('C-5');
  await expect(page.getByRole('status', { name: 'Test run status' })).toHaveText('completed');
  await page.getByRole('button', { name: 'Builder', exact: true }).click();
  await page.getByRole('button', { name: 'Clear' }).click();
  await expect(overlay('fetch')).toHaveCount(0);
});
