// The triggers screens: the registrations page (next fires, disable and enable, pause, fire now, a webhook's URL)
// and the procedure version's Triggers tab; axe-core on each, light and dark.
import { bothThemes, expect, importProcedure, procedure, test, unique, type Run } from './fixtures';

function withTrigger(id: string, trigger: Record<string, unknown>): Record<string, unknown> {
  return { ...procedure('parse_order.ckp.json', id), trigger };
}

test('a scheduled trigger shows its next fires, is disabled, enabled, paused and fired now', async ({ page, api }) => {
  const id = unique('trig-sched');
  await importProcedure(api, withTrigger(id, { type: 'scheduled', schedule: '0 9 * * 1-5', timezone: 'Europe/Paris' }));

  await page.goto('/triggers');
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: `${id}@1.0.0` }) });
  await expect(row).toContainText('0 9 * * 1-5');
  await expect(row).toContainText('Europe/Paris');
  await expect(row).toContainText('enabled');
  const fires = row.getByRole('list', { name: `Next fires of ${id}@1.0.0` });
  await expect(fires.getByRole('listitem')).toHaveCount(5);
  // Each tick is 09:00 in Paris: shown in the browser's zone, the time the API gave in UTC.
  const api1 = await (await api.get(`/api/triggers/${id}/1.0.0`)).json();
  await expect(fires.locator('time').first()).toHaveAttribute('datetime', api1.next_fire_times[0]);
  await bothThemes(page, 'triggers page');

  // Disable (confirmed), then enable.
  await row.getByRole('button', { name: `Disable the trigger of ${id} 1.0.0` }).click();
  const confirm = page.getByRole('dialog', { name: 'Disable this trigger?' });
  await confirm.getByRole('button', { name: 'Disable' }).click();
  await expect(row).toContainText('disabled (operator)');
  await expect(row.getByRole('list', { name: `Next fires of ${id}@1.0.0` })).toHaveCount(0);
  let reg = await (await api.get(`/api/triggers/${id}/1.0.0`)).json();
  expect(reg.enabled).toBe(false);
  expect(reg.disabled_by).toBe('operator');
  await row.getByRole('button', { name: `Enable the trigger of ${id} 1.0.0` }).click();
  await expect(row).toContainText('enabled');
  await expect(row.getByRole('list', { name: `Next fires of ${id}@1.0.0` }).getByRole('listitem')).toHaveCount(5);
  reg = await (await api.get(`/api/triggers/${id}/1.0.0`)).json();
  expect(reg.enabled).toBe(true);

  // Pause with a note, then resume.
  await row.getByRole('button', { name: `Pause the schedule of ${id} 1.0.0` }).click();
  const pause = page.getByRole('dialog', { name: `Pause the schedule of ${id} 1.0.0` });
  await pause.getByRole('textbox', { name: 'Note (why)' }).fill('supplier closed');
  await pause.getByRole('button', { name: 'Pause' }).click();
  await expect(row).toContainText('paused');
  await expect(row).toContainText('supplier closed');
  reg = await (await api.get(`/api/triggers/${id}/1.0.0`)).json();
  expect(reg.paused).toBe(true);
  expect(reg.pause_note).toBe('supplier closed');
  await row.getByRole('button', { name: `Resume the schedule of ${id} 1.0.0` }).click();
  await expect(row).toContainText('enabled');

  // Fire now: the inputs form, then the run's link; the run exists with the manual trigger type.
  await row.getByRole('button', { name: `Fire the trigger of ${id} 1.0.0 now` }).click();
  const fire = page.getByRole('dialog', { name: `Fire ${id} 1.0.0 now` });
  await fire.getByRole('textbox', { name: 'order_json *' }).fill('{"lines": []}');
  await fire.getByRole('button', { name: 'Fire now' }).click();
  const link = fire.getByRole('status').getByRole('link');
  await expect(link).toBeVisible();
  const runId = (await link.textContent()) ?? '';
  const r = await api.get(`/api/runs/${runId}`);
  expect(r.status()).toBe(200);
  const run = (await r.json()) as Run & { trigger_type: string; triggered_by: string; procedure_id: string };
  expect(run.procedure_id).toBe(id);
  expect(run.trigger_type).toBe('manual');
  expect(run.triggered_by).toBe('api:manual');
  await fire.getByRole('button', { name: 'Close' }).click();
  // The last fire column links the run (the list refreshes after the fire).
  await page.reload();
  await expect(row).toContainText('(manual)');

  // The version page's tab shows the same registration.
  await page.getByRole('link', { name: `${id}@1.0.0` }).click();
  await expect(page.getByRole('tab', { name: 'Triggers' })).toHaveAttribute('aria-selected', 'true');
  const panel = page.getByRole('tabpanel');
  await expect(panel).toContainText('0 9 * * 1-5');
  await expect(panel.getByRole('list', { name: `Next fires of ${id}@1.0.0` }).getByRole('listitem')).toHaveCount(5);
  await expect(panel.getByRole('button', { name: `Fire the trigger of ${id} 1.0.0 now` })).toBeVisible();
  // Its recorded causes: the fire now above, with its run.
  const recent = panel.getByRole('table', { name: 'Recent fires' });
  await expect(recent.getByRole('row').filter({ hasText: 'fired' })).toHaveCount(1);
  await expect(recent.getByRole('link', { name: runId.slice(0, 8) })).toBeVisible();
  await bothThemes(page, 'version triggers tab');
});

test('a webhook trigger shows its URL with a copy button; a version without a trigger says so; sync answers', async ({ page, api }) => {
  const hook = unique('trig-hook');
  const plain = unique('trig-none');
  await importProcedure(api, withTrigger(hook, { type: 'webhook', webhook_secret: 'ORDERS_HOOK' }));
  await importProcedure(api, procedure('parse_order.ckp.json', plain));

  await page.goto('/triggers');
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: `${hook}@1.0.0` }) });
  await expect(row).toContainText('webhook');
  await expect(row).toContainText(`/api/triggers/webhook/${hook}`);
  await expect(row.getByRole('button', { name: `Copy the webhook URL of ${hook}` })).toBeVisible();
  await expect(row.getByRole('button', { name: `Pause the schedule of ${hook} 1.0.0` })).toHaveCount(0);

  await page.getByRole('button', { name: 'Sync' }).click();
  await expect(page.getByRole('status').filter({ hasText: /Synced: \d+ registrations/ })).toBeVisible();
  await bothThemes(page, 'triggers page with a webhook');

  await page.goto(`/procedures/${plain}/1.0.0?tab=triggers`);
  await expect(page.getByRole('tabpanel')).toContainText('This version declares no trigger.');
  await bothThemes(page, 'version without a trigger');
});
