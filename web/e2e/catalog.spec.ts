// The catalog screens: procedures (import with diagnostics, filters in the URL), a procedure version's tabs, starting
// a run from the generated form, projects, the dashboard; axe-core on each, light and dark.
import { bothThemes, expect, expectAccessible, importProcedure, procedure, startRun, test, unique } from './fixtures';

test('an import with an error lists its diagnostics at their pointer, marks the text, and imports once fixed', async ({ page }) => {
  const id = unique('import');
  const doc = procedure('parse_order.ckp.json', id);
  const nodes = (doc.workflow_graph as { nodes: Record<string, Record<string, unknown>> }).nodes;
  nodes.parse.next_node = 'nowhere';
  const broken = JSON.stringify(doc, null, 2);

  await page.goto('/procedures');
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Import a procedure' });
  await dialog.getByRole('textbox', { name: 'CKP document (JSON)' }).fill(broken);
  await dialog.getByRole('button', { name: 'Import', exact: true }).click();

  const diagnostics = dialog.getByRole('list', { name: 'Diagnostics' });
  await expect(diagnostics).toContainText('edge-target-missing');
  await expect(diagnostics).toContainText('/workflow_graph/nodes/parse/next_node');
  await expect(dialog.getByRole('heading', { name: '1 problem(s) to fix' })).toBeVisible();
  // The editor shows the pasted text with the pointer's member marked, a marker in the gutter, the message on hover.
  const editor = dialog.getByRole('textbox', { name: 'CKP document' });
  await expect(editor).toContainText('"nowhere"');
  const mark = dialog.locator('.cm-lintRange-error');
  await expect(mark).toHaveText('"next_node": "nowhere"');
  await expect(dialog.locator('.cm-lint-marker-error')).toHaveCount(1);
  await mark.hover();
  await expect(dialog.locator('.cm-tooltip-lint')).toContainText('`nowhere`');
  await page.mouse.move(0, 0);
  await bothThemes(page, 'import diagnostics');
  await dialog.getByRole('button', { name: 'Show /workflow_graph/nodes/parse/next_node in the text' }).click();
  await expect(editor).toBeFocused();
  expect(await page.evaluate(() => window.getSelection()?.toString())).toBe('"next_node": "nowhere"');

  // Fix it in the editor and import again.
  await editor.click();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.insertText(broken.replace('"nowhere"', '"done"'));
  // The mark follows its pointer in the edited text until the next submit judges it.
  await expect(mark).toHaveText('"next_node": "done"');
  await dialog.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(page).toHaveURL(new RegExp(`/procedures/${id}/1\\.0\\.0$`));
  await expect(page.getByRole('heading', { level: 1, name: id })).toBeVisible();
  await expect(page.getByRole('status').filter({ hasText: `Imported ${id} 1.0.0` })).toBeVisible();
});

test('a JSON syntax error is shown at its line, a picked file fills the text, and the skeleton imports as it is', async ({ page }) => {
  await page.goto('/procedures');
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Import a procedure' });
  await dialog.getByRole('textbox', { name: 'CKP document (JSON)' }).fill('{\n  "procedure_id": oops\n}');
  await dialog.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(dialog.getByRole('list', { name: 'Diagnostics' })).toContainText('json-syntax');
  await expect(dialog.getByRole('list', { name: 'Diagnostics' })).toContainText('line 2');
  await dialog.getByRole('button', { name: 'Cancel' }).click();

  // A file picked fills the text.
  const picked = unique('picked');
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await dialog.getByLabel('CKP file').setInputFiles({
    name: 'picked.ckp.json',
    mimeType: 'application/json',
    buffer: Buffer.from(JSON.stringify(procedure('parse_order.ckp.json', picked))),
  });
  await expect(dialog.getByRole('textbox', { name: 'CKP document (JSON)' })).toHaveValue(new RegExp(picked));
  await dialog.getByRole('button', { name: 'Cancel' }).click();

  // The skeleton is a valid document: with a unique id it imports.
  const id = unique('skeleton');
  await page.getByRole('button', { name: 'Create from skeleton' }).click();
  const text = dialog.getByRole('textbox', { name: 'CKP document (JSON)' });
  await expect(text).toHaveValue(/"procedure_id": "new-procedure"/);
  await text.fill((await text.inputValue()).replace('"new-procedure"', `"${id}"`));
  await dialog.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(page).toHaveURL(new RegExp(`/procedures/${id}/1\\.0\\.0$`));
});

test('catalog filters live in the URL and survive a reload; the status changes from the list', async ({ page, api }) => {
  const prefix = unique('filter');
  await importProcedure(api, procedure('parse_order.ckp.json', `${prefix}-a`));
  await importProcedure(api, procedure('parse_order.ckp.json', `${prefix}-b`));

  await page.goto('/procedures');
  await page.getByRole('searchbox', { name: 'Search' }).fill(prefix);
  await expect(page).toHaveURL(new RegExp(`search=${prefix}`));
  const table = page.getByRole('table', { name: 'Procedures' });
  await expect(table.getByRole('link')).toHaveCount(2);

  // Change b's status from the list, then filter on it.
  await page.getByRole('combobox', { name: `Status of ${prefix}-b 1.0.0` }).selectOption('active');
  await expect(page.getByRole('status').filter({ hasText: `${prefix}-b 1.0.0 is now active` })).toBeVisible();
  await page.getByRole('combobox', { name: 'Status', exact: true }).selectOption('active');
  await expect(page).toHaveURL(/status=active/);
  await expect(table.getByRole('link')).toHaveCount(1);
  await expect(table.getByRole('link', { name: `${prefix}-b` })).toBeVisible();

  await page.reload();
  await expect(page.getByRole('searchbox', { name: 'Search' })).toHaveValue(prefix);
  await expect(page.getByRole('combobox', { name: 'Status', exact: true })).toHaveValue('active');
  await expect(table.getByRole('link')).toHaveCount(1);
  await expect(table.getByRole('link', { name: `${prefix}-b` })).toBeVisible();
  await bothThemes(page, 'procedures catalog');

  await page.getByRole('button', { name: 'Clear filters' }).click();
  await expect(page).toHaveURL(/\/procedures$/);
});

test('the version page shows its graph, explain sections and JSON source in tabs', async ({ page, api }) => {
  const id = unique('tabs');
  await importProcedure(api, procedure('parse_order.ckp.json', id));
  await page.goto(`/procedures/${id}/1.0.0`);
  await expect(page.getByRole('heading', { level: 1, name: id })).toBeVisible();
  await expect(page.getByRole('table', { name: 'Variables' })).toContainText('order_json');
  await bothThemes(page, 'version overview');

  await page.getByRole('tab', { name: 'Graph' }).click();
  await expect(page).toHaveURL(/tab=graph/);
  const graph = page.getByRole('figure', { name: `Workflow graph of ${id}` });
  await expect(graph.getByText('Parse the order')).toBeVisible();
  await expect(graph.getByText('Done', { exact: true })).toBeVisible();
  await bothThemes(page, 'version graph');

  await page.getByRole('tab', { name: 'Explain' }).click();
  for (const name of ['Route', 'Variables', 'External calls', 'Policy', 'Nodes'])
    await expect(page.getByRole('heading', { level: 2, name })).toBeVisible();
  await expect(page.getByRole('list', { name: 'Route' })).toContainText('parse');
  await bothThemes(page, 'version explain');

  await page.getByRole('tab', { name: 'Source' }).click();
  const source = page.getByRole('textbox', { name: `CKP source of ${id} 1.0.0` });
  await expect(source).toContainText(`"procedure_id": "${id}"`);
  await expect(source).toHaveAttribute('aria-readonly', 'true');
  await source.click();
  await page.keyboard.type('zz');
  await expect(source).not.toContainText('zz');
  await expect(page.getByRole('button', { name: 'Copy CKP source' })).toBeVisible();
  await bothThemes(page, 'version source');

  // A tab is a deep link.
  await page.reload();
  await expect(page.getByRole('tab', { name: 'Source' })).toHaveAttribute('aria-selected', 'true');

  await page.getByRole('tab', { name: 'Versions' }).click();
  await expect(page.getByRole('table', { name: 'Versions' })).toContainText('1.0.0 (this version)');

  // Delete the version, after a confirm.
  await page.getByRole('button', { name: 'Delete version' }).click();
  await page.getByRole('dialog', { name: 'Delete this version?' }).getByRole('button', { name: 'Delete version' }).click();
  await expect(page).toHaveURL(/\/procedures$/);
  await expect(page.getByRole('status').filter({ hasText: `Deleted ${id} 1.0.0` })).toBeVisible();
  expect((await api.get(`/api/procedures/${id}/1.0.0`)).status()).toBe(404);
});

test('a run starts from the generated form: a missing input is shown at its field first, then the run page opens', async ({ page, api }) => {
  const id = unique('start');
  await importProcedure(api, procedure('parse_order.ckp.json', id));
  await page.goto(`/procedures/${id}/1.0.0`);
  await page.getByRole('button', { name: 'Start run' }).click();
  const dialog = page.getByRole('dialog', { name: `Start ${id} 1.0.0` });
  await expectAccessible(page, 'start run dialog');
  await dialog.getByRole('button', { name: 'Start run' }).click();
  const field = dialog.getByRole('textbox', { name: 'order_json *' });
  await expect(field).toHaveAttribute('aria-invalid', 'true');
  await expect(dialog.getByRole('alert')).toHaveText('This field is required');

  await field.fill('{"items": [{"price": 2, "qty": 3}]}');
  await dialog.getByRole('button', { name: 'Start run' }).click();
  await expect(page).toHaveURL(/\/runs\/[^/]+$/);
  const runId = decodeURIComponent(page.url().split('/runs/')[1]);
  const r = await api.get(`/api/runs/${runId}`);
  expect(r.status()).toBe(200);
  expect((await r.json()).input_vars.order_json).toContain('price');

  // The version's Runs tab lists it.
  await page.goto(`/procedures/${id}/1.0.0?tab=runs`);
  await expect(page.getByRole('link', { name: `Run ${runId}` })).toBeVisible();
});

test('the server checks the form too: its 422 is shown at the field', async ({ page, api }) => {
  // `(?i)` is a pattern JavaScript cannot read, so the form leaves it to the server, which answers 422 for the field.
  const id = unique('server422');
  const doc = procedure('parse_order.ckp.json', id);
  (doc.variables_schema as { required: Record<string, unknown> }).required.order_json = {
    type: 'string',
    validation: { regex: '(?i)order-[0-9]+' },
  };
  await importProcedure(api, doc);
  await page.goto(`/procedures/${id}/1.0.0`);
  await page.getByRole('button', { name: 'Start run' }).click();
  const dialog = page.getByRole('dialog', { name: `Start ${id} 1.0.0` });
  const field = dialog.getByRole('textbox', { name: 'order_json *' });
  await field.fill('no match');
  await dialog.getByRole('button', { name: 'Start run' }).click();
  await expect(dialog.getByRole('alert')).toHaveText('Does not match required pattern: (?i)order-[0-9]+');
  await expect(field).toHaveAttribute('aria-invalid', 'true');
  await expect(page).toHaveURL(new RegExp(`/procedures/${id}/1\\.0\\.0$`));

  await field.fill('ORDER-12');
  await dialog.getByRole('button', { name: 'Start run' }).click();
  await expect(page).toHaveURL(/\/runs\/[^/]+$/);
});

test('projects are created, edited, scope the catalog, and are deleted after a confirm; a cost summary per period', async ({ page, api }) => {
  const name = unique('Project');
  await page.goto('/projects');
  await page.getByRole('button', { name: 'New project' }).click();
  const dialog = page.getByRole('dialog', { name: 'New project' });
  await dialog.getByRole('button', { name: 'Create project' }).click();
  await expect(dialog.getByRole('alert')).toHaveText('A project needs a name');
  await dialog.getByRole('textbox', { name: 'Name' }).fill(name);
  await dialog.getByRole('textbox', { name: 'Description' }).fill('Made by the e2e test');
  await dialog.getByRole('button', { name: 'Create project' }).click();
  const table = page.getByRole('table', { name: 'Projects' });
  const row = table.getByRole('row').filter({ hasText: name });
  await expect(row).toContainText('Made by the e2e test');
  await expect(row).toContainText('$0.00');

  await page.getByRole('button', { name: '90 days' }).click();
  await expect(page).toHaveURL(/period=90/);
  await expect(table.getByRole('columnheader', { name: 'Cost (90 d)' })).toBeVisible();
  await bothThemes(page, 'projects');

  await row.getByRole('button', { name: `Edit ${name}` }).click();
  const edit = page.getByRole('dialog', { name: `Edit project ${name}` });
  await edit.getByRole('textbox', { name: 'Description' }).fill('Edited');
  await edit.getByRole('button', { name: 'Save' }).click();
  await expect(row).toContainText('Edited');

  // A procedure in the project: the project's link opens the catalog filtered on it.
  const projects = (await (await api.get('/api/projects')).json()) as { project_id: string; name: string }[];
  const projectId = projects.find((p) => p.name === name)!.project_id;
  const scoped = unique('scoped');
  const imported = await api.post('/api/procedures', { data: { ckp_json: procedure('parse_order.ckp.json', scoped), project_id: projectId } });
  expect(imported.status()).toBe(201);
  await row.getByRole('link', { name: `Procedures of ${name}` }).click();
  await expect(page).toHaveURL(new RegExp(`/procedures\\?project_id=${projectId}$`));
  await expect(page.getByRole('combobox', { name: 'Project' })).toHaveValue(projectId);
  const catalog = page.getByRole('table', { name: 'Procedures' });
  await expect(catalog.getByRole('link')).toHaveCount(1);
  await expect(catalog).toContainText(scoped);
  await page.goBack();

  // Cancel keeps it; the server refuses while the procedure belongs to it, and says why.
  await row.getByRole('button', { name: `Delete ${name}` }).click();
  const confirm = page.getByRole('dialog', { name: `Delete project ${name}?` });
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await expect(row).toBeVisible();
  await row.getByRole('button', { name: `Delete ${name}` }).click();
  await confirm.getByRole('button', { name: 'Delete project' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'is still used by 1 procedure(s) or run(s)' })).toBeVisible();
  await expect(row).toBeVisible();

  expect((await api.delete(`/api/procedures/${scoped}/1.0.0`)).status()).toBe(200);
  await row.getByRole('button', { name: `Delete ${name}` }).click();
  await confirm.getByRole('button', { name: 'Delete project' }).click();
  await expect(row).toHaveCount(0);
  await expect(page.getByRole('status').filter({ hasText: `Deleted project ${name}` })).toBeVisible();
});

test('the dashboard shows key figures, recent runs and its range in the URL', async ({ page, api }) => {
  const id = unique('dash');
  await importProcedure(api, procedure('parse_order.ckp.json', id));
  const run = await startRun(api, id, { order_json: '{}' });

  await page.goto('/');
  await expect(page.getByRole('heading', { level: 1, name: 'Dashboard' })).toBeVisible();
  const kpis = page.getByRole('region', { name: 'Key figures' });
  await expect(kpis.getByRole('link', { name: /Pending approvals/ })).toBeVisible();
  await expect(kpis.getByRole('link', { name: /Agents online/ })).toBeVisible();
  await expect(page.getByRole('table', { name: 'Recent runs' }).getByRole('link', { name: `Run ${run.run_id}` })).toBeVisible();
  // The run statistics endpoint is being added to the server: with it, the chart's text alternative counts this run;
  // without it, the dashboard says so and shows the rest.
  const stats = await api.get('/api/runs/stats?hours=24');
  if (stats.ok()) {
    const created = (await stats.json()).totals.created as number;
    expect(created).toBeGreaterThan(0);
    await expect(kpis.getByRole('link', { name: /Runs created \(24 h\)/ })).toContainText(created.toLocaleString('en-US'));
    await expect(page.getByRole('img', { name: /^Run activity: / })).toBeVisible();
    await page.getByText('Show as a table').click();
    await expect(page.getByRole('table', { name: 'Run activity' }).getByRole('row')).not.toHaveCount(1);
  } else {
    expect(stats.status()).toBe(404);
    await expect(page.getByText('This server does not report run statistics yet')).toBeVisible();
  }
  await page.getByRole('button', { name: '7 d' }).click();
  await expect(page).toHaveURL(/range=7d/);
  await expect(page.getByRole('button', { name: '7 d' })).toHaveAttribute('aria-pressed', 'true');
  await bothThemes(page, 'dashboard');
});
