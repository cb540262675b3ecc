// Operations screens: agents, secrets, API keys, users, health & metrics, leases, audit; axe in both themes.
import { bothThemes, expect, test, unique } from './fixtures';

test('agents: a refused URL is shown at its field; register, open, edit, delete; the action catalog searches', async ({ page, api }) => {
  const name = unique('agent');
  await page.goto('/agents');
  await expect(page.getByRole('heading', { name: 'Agents', level: 1 })).toBeVisible();
  await page.getByRole('button', { name: 'Register agent' }).click();
  const dialog = page.getByRole('dialog', { name: 'Register an agent' });
  await dialog.getByLabel('Name', { exact: true }).fill(name);
  await dialog.getByLabel('Channel').fill('web');
  // ckp refuses a loopback agent unless egress_allow lists it: the message lands at the Base URL field.
  await dialog.getByLabel('Base URL').fill('http://127.0.0.1:9');
  await dialog.getByRole('button', { name: 'Register agent' }).click();
  await expect(dialog.getByLabel('Base URL')).toHaveAttribute('aria-invalid', 'true');
  await expect(dialog.getByText(/egress to 127\.0\.0\.1:9 is refused/)).toBeVisible();
  await bothThemes(page, 'agent form with an error');
  // A name that never resolves passes the policy; the probe fails, so the agent is registered offline.
  await dialog.getByLabel('Base URL').fill('http://ckp-e2e-agent.invalid:9000');
  await dialog.getByLabel('Capabilities').fill('fill_form\nsync_crm, workflow');
  await dialog.getByRole('button', { name: 'Register agent' }).click();
  await expect(dialog).toBeHidden();
  const id = `web_${name}`;
  const row = page.getByRole('row', { name: new RegExp(id) });
  await expect(row).toContainText('offline');
  await expect(row).toContainText('0 / 1');
  await expect(row).toContainText('never');
  await expect(row).toContainText('fill_form');
  await bothThemes(page, 'agents list');

  // The detail opens from the list and from the URL.
  await row.getByRole('link', { name }).click();
  await expect(page).toHaveURL(new RegExp(`agent=${id}`));
  const detail = page.getByRole('region', { name: `Agent ${id}` });
  await expect(detail.getByRole('cell', { name: 'sync_crm' })).toBeVisible();
  await expect(detail.getByRole('cell', { name: 'workflow' })).toBeVisible();
  await page.reload();
  await expect(detail.getByRole('cell', { name: 'sync_crm' })).toBeVisible();
  await bothThemes(page, 'agent detail');

  await detail.getByRole('button', { name: 'Edit' }).click();
  const edit = page.getByRole('dialog', { name: `Edit agent ${id}` });
  await edit.getByLabel('Concurrency limit').fill('3');
  await edit.getByRole('button', { name: 'Save agent' }).click();
  await expect(edit).toBeHidden();
  await expect(page.getByRole('row', { name: new RegExp(id) })).toContainText('0 / 3');
  expect((await (await api.get(`/api/agents/${id}`)).json()).concurrency_limit).toBe(3);

  // The action catalog lists the agent's channel actions; the search is kept in the URL.
  await page.getByRole('tab', { name: 'Action catalog' }).click();
  await page.getByLabel('Search actions').fill('sync_c');
  await expect(page).toHaveURL(/q=sync_c/);
  await expect(page.getByRole('row', { name: /sync_crm\s+web/ })).toBeVisible();
  await expect(page.getByRole('row', { name: /parse_json/ })).toHaveCount(0);
  await bothThemes(page, 'action catalog');
  await page.getByRole('tab', { name: 'Agents', exact: true }).click();

  // Delete asks first; Cancel keeps it, confirming removes it.
  await page.getByRole('button', { name: `Delete ${id}` }).click();
  const ask = page.getByRole('dialog', { name: 'Delete agent' });
  await ask.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByRole('row', { name: new RegExp(id) })).toBeVisible();
  await page.getByRole('button', { name: `Delete ${id}` }).click();
  await ask.getByRole('button', { name: 'Delete agent' }).click();
  await expect(page.getByRole('row', { name: new RegExp(id) })).toHaveCount(0);
  await expect(page).not.toHaveURL(/agent=/);
  expect((await api.get(`/api/agents/${id}`)).status()).toBe(404);
});

test('secrets: create, update and delete; the value never appears in the page', async ({ page, api }) => {
  const name = unique('e2e.secret');
  const first = `first-${unique('v')}`;
  const second = `second-${unique('v')}`;
  const leaked = async () => {
    const html = await page.content();
    return html.includes(first) || html.includes(second);
  };
  await page.goto('/secrets');
  await page.getByRole('button', { name: 'Create secret' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a secret' });
  await dialog.getByLabel('Name').fill(name);
  const value = dialog.getByLabel('Value');
  await expect(value).toHaveAttribute('type', 'password');
  await value.fill(first);
  await dialog.getByLabel('Tags').fill('e2e, crm');
  await dialog.getByLabel('Description').fill('CRM password');
  await dialog.getByRole('button', { name: 'Create secret' }).click();
  await expect(dialog).toBeHidden();
  const row = page.getByRole('row', { name: new RegExp(name.replace(/\./g, '\\.')) });
  await expect(row).toContainText('CRM password');
  await expect(row).toContainText('db');
  expect(await leaked()).toBe(false);
  await bothThemes(page, 'secrets list');

  // A taken name is refused at the Name field.
  await page.getByRole('button', { name: 'Create secret' }).click();
  await dialog.getByLabel('Name').fill(name);
  await dialog.getByLabel('Value').fill(first);
  await dialog.getByRole('button', { name: 'Create secret' }).click();
  await expect(dialog.getByLabel('Name')).toHaveAttribute('aria-invalid', 'true');
  await expect(dialog.getByLabel('Value')).toHaveValue('');
  expect(await leaked()).toBe(false);
  await dialog.getByRole('button', { name: 'Cancel' }).click();

  await page.getByRole('button', { name: `Update ${name}` }).click();
  const update = page.getByRole('dialog', { name: `Update secret ${name}` });
  await expect(update.getByLabel('New value')).toHaveValue('');
  await expect(update.getByLabel('New value')).toHaveAttribute('type', 'password');
  await update.getByLabel('New value').fill(second);
  await update.getByLabel('Description').fill('CRM password, rotated');
  await update.getByRole('button', { name: 'Save secret' }).click();
  await expect(update).toBeHidden();
  await expect(row).toContainText('CRM password, rotated');
  expect(await leaked()).toBe(false);
  const stored = await (await api.get(`/api/secrets/${name}`)).text();
  expect(stored).not.toContain(second);

  await page.getByRole('button', { name: `Delete ${name}` }).click();
  await page.getByRole('dialog', { name: 'Delete secret' }).getByRole('button', { name: 'Delete secret' }).click();
  await expect(row).toHaveCount(0);
  expect((await api.get(`/api/secrets/${name}`)).status()).toBe(404);
});

test('API keys: the new key is shown once, listed by prefix, then revoked', async ({ page, api }) => {
  const name = unique('ci-key');
  await page.goto('/api-keys');
  await page.getByRole('button', { name: 'Create API key' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create an API key' });
  await dialog.getByLabel('Name').fill(name);
  await dialog.getByLabel('Role').selectOption('operator');
  await dialog.getByLabel('Expires in (days)').fill('soon');
  await dialog.getByRole('button', { name: 'Create key' }).click();
  await expect(dialog.getByText('A whole number of days')).toBeVisible();
  await dialog.getByLabel('Expires in (days)').fill('30');
  await dialog.getByRole('button', { name: 'Create key' }).click();
  const shown = page.getByRole('dialog', { name: 'API key created' });
  const key = (await shown.getByLabel('New API key').textContent()) ?? '';
  expect(key).toMatch(/^ckp_/);
  await expect(shown.getByRole('button', { name: 'Copy API key' })).toBeVisible();
  await bothThemes(page, 'new API key');
  // The key works.
  const me = await api.get('/api/auth/me', { headers: { Authorization: `Bearer ${key}` } });
  expect(me.status()).toBe(200);
  await shown.getByRole('button', { name: 'Done' }).click();
  await expect(shown).toBeHidden();
  expect(await page.content()).not.toContain(key);
  const row = page.getByRole('row', { name: new RegExp(name) });
  await expect(row).toContainText('operator');
  await expect(row).toContainText('active');
  await expect(row).toContainText(key.split('_').slice(0, 2).join('_'));
  await bothThemes(page, 'API keys list');

  await row.getByRole('button', { name: `Revoke ${name}` }).click();
  await page.getByRole('dialog', { name: 'Revoke API key' }).getByRole('button', { name: 'Revoke key' }).click();
  await expect(row).toHaveCount(0);
  await page.getByLabel('Show revoked keys').click();
  await expect(page).toHaveURL(/revoked=1/);
  await expect(page.getByLabel('Show revoked keys')).toBeChecked();
  await expect(page.getByRole('row', { name: new RegExp(name) })).toContainText('revoked');
  const keys: { name: string; revoked_at: string | null }[] = await (await api.get('/api/api-keys')).json();
  expect(keys.find((k) => k.name === name)?.revoked_at).toBeTruthy();
});

test('users: a weak password is refused at its field; create, disable, delete', async ({ page, api }) => {
  const username = unique('ann');
  await page.goto('/users');
  await page.getByRole('button', { name: 'Create user' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a user' });
  await dialog.getByLabel('Username').fill(username);
  await dialog.getByLabel('Password').fill('short');
  await dialog.getByLabel('Global role').selectOption('operator');
  await dialog.getByRole('button', { name: 'Create user' }).click();
  await expect(dialog.getByLabel('Password')).toHaveAttribute('aria-invalid', 'true');
  await expect(dialog.getByText('at least 8 characters').last()).toBeVisible();
  await bothThemes(page, 'user form with an error');
  await dialog.getByLabel('Password').fill('a long enough password');
  await dialog.getByLabel('Full name').fill('Ann Example');
  await dialog.getByRole('button', { name: 'Create user' }).click();
  await expect(dialog).toBeHidden();
  const row = page.getByRole('row', { name: new RegExp(username) });
  await expect(row).toContainText('operator');
  await expect(row).toContainText('active');
  await bothThemes(page, 'users list');

  await row.getByRole('button', { name: `Disable ${username}` }).click();
  await page.getByRole('dialog', { name: 'Disable user' }).getByRole('button', { name: 'Disable user' }).click();
  await expect(row).toContainText('disabled');
  const users: { username: string; is_active: boolean }[] = await (await api.get('/api/users')).json();
  expect(users.find((u) => u.username === username)?.is_active).toBe(false);
  await row.getByRole('button', { name: `Enable ${username}` }).click();
  await expect(row).toContainText('active');

  await row.getByRole('button', { name: `Delete ${username}` }).click();
  await page.getByRole('dialog', { name: 'Delete user' }).getByRole('button', { name: 'Delete user' }).click();
  await expect(row).toHaveCount(0);
});

test('health & metrics shows the health and the queue table; the period is in the URL', async ({ page }) => {
  await page.goto('/metrics');
  await expect(page.getByRole('heading', { name: 'Health & metrics' })).toBeVisible();
  const health = page.getByRole('region', { name: 'Health' });
  await expect(health.getByText('ok', { exact: true })).toBeVisible();
  await expect(health.getByText(/^yes: this process runs/)).toBeVisible();
  const queue = page.getByRole('table', { name: 'Queue depth by state' });
  await expect(queue.getByRole('columnheader', { name: 'Jobs' })).toBeVisible();
  await expect(queue.getByRole('row', { name: /pending/ })).toBeVisible();
  await page.getByRole('button', { name: '7 d' }).click();
  await expect(page).toHaveURL(/period=7d/);
  await expect(page.getByRole('button', { name: '7 d' })).toHaveAttribute('aria-pressed', 'true');
  await page.reload();
  await expect(page.getByRole('button', { name: '7 d' })).toHaveAttribute('aria-pressed', 'true');
  await bothThemes(page, 'metrics');
});

test('leases page renders its empty state', async ({ page }) => {
  await page.goto('/leases');
  await expect(page.getByRole('heading', { name: 'Leases' })).toBeVisible();
  await expect(page.getByText('No active lease')).toBeVisible();
  // The checkbox follows the URL, which the router updates a moment after the click.
  await page.getByLabel('Show released and expired').click();
  await expect(page).toHaveURL(/all=1/);
  await expect(page.getByLabel('Show released and expired')).toBeChecked();
  await bothThemes(page, 'leases');
});

test('audit log lists what the console did, filtered through the URL', async ({ page, api }) => {
  const name = unique('audited');
  expect((await api.post('/api/projects', { data: { name, project_id: name } })).status()).toBe(201);
  await page.goto('/audit');
  await expect(page.getByRole('heading', { name: 'Audit log' })).toBeVisible();
  await page.getByLabel('Category').selectOption('projects');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await expect(page).toHaveURL(/category=projects/);
  const rows = page.getByRole('table', { name: 'Audit events' }).getByRole('row');
  await expect(rows.filter({ hasText: 'POST /api/projects' }).first()).toBeVisible();
  await expect(rows.filter({ hasText: /\bsecrets\b/ })).toHaveCount(0);
  await bothThemes(page, 'audit');
});
