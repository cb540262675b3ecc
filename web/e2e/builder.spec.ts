// The visual builder and the author page, against a real `ckp serve`: a procedure built from an empty canvas with
// the mouse and the forms, saved as a version and run to its approval; an error typed in the CKP view shown on its
// node and gone on undo; every example opened in the builder and saved again unchanged; light and dark screenshots.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Locator, Page } from '@playwright/test';
import { bothThemes, expect, importProcedure, procedure, runStatus, test, unique } from './fixtures';

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples');

const canvasNode = (page: Page, id: string) => page.locator(`.react-flow__node[data-id="${id}"]`);
const inspector = (page: Page) => page.getByRole('complementary', { name: 'Inspector' });

/** Drags from a node's output handle of `kind` onto another node, with the mouse. */
async function connect(page: Page, from: string, kind: string, to: string) {
  const handle = canvasNode(page, from).locator(`.bh-out.k-${kind}`);
  const target = canvasNode(page, to);
  const a = (await handle.boundingBox())!;
  const b = (await target.boundingBox())!;
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
  await page.mouse.down();
  await page.mouse.move(a.x + 20, a.y + 40, { steps: 5 });
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 10 });
  await page.mouse.up();
}

/** Adds a node from the palette (a click), then renames it in the inspector. */
async function addNode(page: Page, type: string, id: string) {
  await page.getByRole('button', { name: `Add ${type} node` }).click();
  const idField = inspector(page).getByRole('textbox', { name: 'Node id' });
  await idField.fill(id);
  await idField.press('Enter');
  await expect(canvasNode(page, id)).toBeVisible();
}

/** The CKP view's whole text, copied as a person would (select all, copy): the editor draws only the lines near its
 * viewport, so the page does not hold all of it. */
async function ckpText(page: Page): Promise<string> {
  await page.getByRole('textbox', { name: 'CKP document' }).click();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.press('ControlOrMeta+c');
  return page.evaluate(() => navigator.clipboard.readText());
}

/** Replaces the CKP view's text, as a paste would. */
async function setCkpText(page: Page, text: string) {
  await page.getByRole('textbox', { name: 'CKP document' }).click();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.insertText(text);
}

test.use({ permissions: ['clipboard-read', 'clipboard-write'] });

async function fitView(page: Page) {
  await page.getByRole('button', { name: 'Fit view', exact: true }).click();
  await page.waitForTimeout(300); // the fit animates for 200 ms; the handles must be where they are drawn
}

async function section(scope: Locator, name: string | RegExp) {
  return scope.getByRole('group', { name });
}

test.use({ viewport: { width: 1440, height: 1000 } });

test('build an invoice procedure from an empty canvas, save it, and run it to its approval', async ({ page, api }) => {
  const id = unique('built-invoice');
  await page.goto('/procedures');
  await page.getByRole('link', { name: 'New procedure' }).click();
  await page.getByRole('textbox', { name: 'Procedure id' }).fill(id);
  await expect(page.getByRole('radio', { name: /Empty procedure/ })).toBeChecked();
  await page.getByRole('button', { name: 'Open in the builder' }).click();
  await expect(page.getByRole('heading', { name: `New procedure ${id}` })).toBeVisible();

  // Procedure fields: a name and the input variable.
  const insp = inspector(page);
  await insp.getByRole('textbox', { name: 'Display name' }).fill('Invoice (built)');
  await insp.getByRole('button', { name: 'Add variable' }).click();
  const variable = await section(insp, /Variable var_1/);
  await variable.getByRole('textbox', { name: 'Name' }).fill('document_url');
  await variable.getByRole('textbox', { name: 'Name' }).blur();
  await expect(insp.getByRole('group', { name: /Variable document_url/ })).toBeVisible();

  // The ingest sequence: a log step written with {{ completion, and a set_variable step.
  await addNode(page, 'Sequence', 'ingest');
  await expect(canvasNode(page, 'ingest').getByText('start')).toBeVisible();
  const step1 = await section(insp, /^Step 1/);
  const message = step1.getByRole('combobox', { name: 'Value of message' });
  await message.fill('');
  await message.pressSequentially('Ingesting {{doc');
  await expect(page.getByRole('option', { name: 'document_url' })).toBeVisible();
  await message.press('Enter');
  await expect(message).toHaveValue('Ingesting {{document_url}}');
  await insp.getByRole('button', { name: 'Add step' }).click();
  const step2 = await section(insp, /^Step 2/);
  await step2.getByRole('combobox', { name: 'Action' }).fill('set_variable');
  // The new step's two parameters become `variable` and `value` (a JSON number).
  const keys = step2.getByRole('textbox', { name: 'Parameter' });
  await keys.nth(0).fill('variable');
  await keys.nth(0).blur();
  await step2.getByRole('combobox', { name: 'Value of variable' }).fill('amount');
  await keys.nth(1).fill('value');
  await keys.nth(1).blur();
  await step2.getByRole('checkbox', { name: 'JSON' }).nth(1).check();
  await step2.getByRole('textbox', { name: 'Value of value (JSON)' }).fill('1500');

  // A logic branch, a human approval and two ends.
  await addNode(page, 'Logic', 'route');
  await addNode(page, 'Human approval', 'manager_approval');
  await insp.getByRole('combobox', { name: 'Prompt' }).fill('Approve the invoice of {{amount}}?');
  await addNode(page, 'Terminate', 'done');
  await addNode(page, 'Terminate', 'rejected');
  await insp.getByRole('combobox', { name: 'Status' }).selectOption('failed');

  // Wire it with the mouse: ingest → route; route's rule → approval, default → done; approve → done, reject → rejected.
  await page.getByRole('button', { name: 'Auto layout' }).click();
  await fitView(page);
  await connect(page, 'ingest', 'next', 'route');
  await connect(page, 'route', 'rule', 'manager_approval');
  await connect(page, 'route', 'default', 'done');
  await connect(page, 'manager_approval', 'approve', 'done');
  await connect(page, 'manager_approval', 'reject', 'rejected');
  for (const [s, t] of [['ingest', 'route'], ['route', 'manager_approval'], ['route', 'done'], ['manager_approval', 'done'], ['manager_approval', 'rejected']]) {
    await expect(page.locator(`.react-flow__edge[aria-label*="from ${s} to ${t}"]`)).toHaveCount(1);
  }

  // The rule has no condition yet: the error is on the node, and the form fixes it (with completion again).
  await expect(canvasNode(page, 'route').locator('.bnode.has-error')).toBeVisible();
  await canvasNode(page, 'route').click();
  const rule = await section(insp, 'Rule 1');
  const condition = rule.getByRole('combobox', { name: 'Condition' });
  await condition.pressSequentially('{{am');
  await condition.press('Tab');
  await condition.pressSequentially(' > 1000');
  await expect(condition).toHaveValue('{{amount}} > 1000');
  await expect(canvasNode(page, 'route').locator('.bnode.has-error')).toHaveCount(0);
  await expect(page.getByRole('status', { name: 'Validation' })).toHaveText('Valid');

  // Save: the new procedure's first version.
  await page.getByRole('button', { name: 'Save as new version' }).click();
  const dialog = page.getByRole('dialog', { name: 'Save as new version' });
  await dialog.getByRole('button', { name: 'Save version 1.0.0' }).click();
  await expect(page).toHaveURL(new RegExp(`/procedures/${id}/1\\.0\\.0$`));

  // What was saved validates, and has the shape that was drawn.
  const saved = (await (await api.get(`/api/procedures/${id}/1.0.0`)).json()).ckp_json;
  const check = await (await api.post('/api/procedures/validate', { data: { ckp_json: saved } })).json();
  expect(check.errors).toEqual([]);
  expect(check.valid).toBe(true);
  expect(saved.workflow_graph.start_node).toBe('ingest');
  expect(saved.workflow_graph.nodes.route.rules).toEqual([{ condition: '{{amount}} > 1000', next_node: 'manager_approval' }]);
  expect(saved.workflow_graph.nodes.manager_approval).toMatchObject({ type: 'human_approval', on_approve: 'done', on_reject: 'rejected' });
  expect(saved.workflow_graph.nodes.ingest.steps[1]).toMatchObject({ action: 'set_variable', variable: 'amount', value: 1500 });
  expect(saved.variables_schema.required.document_url).toEqual({ type: 'string' });

  // Run it from the version page: it stops at the approval.
  await page.getByRole('button', { name: 'Start run' }).click();
  const form = page.getByRole('dialog', { name: /Start/ });
  await form.getByRole('textbox', { name: /document_url/ }).fill('https://example.com/invoice.pdf');
  await form.getByRole('button', { name: 'Start run' }).click();
  await expect(page).toHaveURL(/\/runs\/[^/?]+/);
  const runId = new URL(page.url()).pathname.split('/').pop()!;
  await expect.poll(() => runStatus(api, runId)).toBe('waiting_approval');
});

test('an error typed in the CKP view shows on its node; undo takes it away', async ({ page, api }) => {
  const id = unique('builder-undo');
  await importProcedure(api, procedure('article_review.ckp.json', id));
  await page.goto(`/procedures/${id}/1.0.0`);
  await page.getByRole('link', { name: 'Edit' }).click();
  await expect(page).toHaveURL(new RegExp(`/procedures/${id}/1\\.0\\.0/edit$`));
  await expect(canvasNode(page, 'load_article')).toBeVisible();
  await expect(page.getByRole('status', { name: 'Validation' })).toHaveText('Valid');

  await page.getByRole('button', { name: 'CKP', exact: true }).click();
  const source = await ckpText(page);
  expect(source).toContain('"next_node": "choose_depth"');
  await setCkpText(page, source.replace('"next_node": "choose_depth"', '"next_node": "no_such_node"'));
  // The CKP editor marks the value the compiler names; the problem picked in the panel is selected in the text.
  await page.getByRole('region', { name: 'Problems' }).getByRole('button', { name: /no_such_node/ }).click();
  await expect(page.getByRole('textbox', { name: 'CKP document' })).toBeFocused();
  expect(await page.evaluate(() => window.getSelection()?.toString())).toBe('"no_such_node"');
  await expect(page.locator('.cm-lintRange-error')).toHaveText('"no_such_node"');
  await page.getByRole('button', { name: 'Builder', exact: true }).click();

  const node = canvasNode(page, 'load_article');
  await expect(node.locator('.bnode.has-error')).toBeVisible();
  await expect(node.getByRole('note')).toHaveAttribute('aria-label', /no_such_node/);
  await node.getByRole('note').hover();
  await expect(node.getByText(/`next_node` points to node `no_such_node`/)).toBeVisible();
  const problems = page.getByRole('region', { name: 'Problems' });
  await problems.getByRole('button', { name: /no_such_node/ }).click();
  await expect(inspector(page).getByRole('textbox', { name: 'Node id' })).toHaveValue('load_article');

  await page.locator('.bcanvas .react-flow__pane').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('Control+z');
  await expect(node.locator('.bnode.has-error')).toHaveCount(0);
  await expect(problems.getByRole('button', { name: /no_such_node/ })).toHaveCount(0);
  await expect(page.getByRole('status', { name: 'Validation' })).toHaveText('Valid');
  await page.getByRole('button', { name: 'CKP', exact: true }).click();
  expect(await ckpText(page)).toContain('"next_node": "choose_depth"');
  // Redo brings the error back, in both views.
  await page.getByRole('button', { name: 'Redo' }).click();
  expect(await ckpText(page)).toContain('"next_node": "no_such_node"');
});

for (const file of readdirSync(EXAMPLES).filter((f) => f.endsWith('.ckp.json'))) {
  test(`round trip: ${file} opened in the builder and saved as a new version is unchanged`, async ({ page, api }) => {
    const original = JSON.parse(readFileSync(join(EXAMPLES, file), 'utf8'));
    const id = unique(`rt-${file.replace('.ckp.json', '').replace(/_/g, '-')}`);
    const doc = { ...original, procedure_id: id };
    await importProcedure(api, doc);
    const base = String(doc.version);
    await page.goto(`/procedures/${id}/${base}/edit`);
    const count = Object.keys(doc.workflow_graph.nodes).length;
    await expect(page.locator('.bcanvas .react-flow__node')).toHaveCount(count);
    // Through both views and back.
    await page.getByRole('button', { name: 'CKP', exact: true }).click();
    await expect(page.getByRole('textbox', { name: 'CKP document' })).toBeVisible();
    await page.getByRole('button', { name: 'Builder', exact: true }).click();
    await expect(page.locator('.bcanvas .react-flow__node')).toHaveCount(count);
    // Every node's form opened (by keyboard: focus, Enter) changes nothing by being looked at.
    for (const nodeId of Object.keys(doc.workflow_graph.nodes)) {
      // (React Flow keeps a node hidden until it has measured it; a hidden node takes no focus.)
      await expect(canvasNode(page, nodeId)).toBeVisible();
      await canvasNode(page, nodeId).focus();
      await page.keyboard.press('Enter');
      await expect(inspector(page).getByRole('textbox', { name: 'Node id' })).toHaveValue(nodeId);
    }
    await expect(page.getByRole('button', { name: 'Undo' })).toBeDisabled();

    await page.getByRole('button', { name: 'Save as new version' }).click();
    const dialog = page.getByRole('dialog', { name: 'Save as new version' });
    const next = base.replace(/(\d+)$/, (n) => String(Number(n) + 1));
    await dialog.getByRole('button', { name: `Save version ${next}` }).click();
    await expect(page).toHaveURL(new RegExp(`/procedures/${id}/${next.replace(/\./g, '\\.')}$`));
    const saved = (await (await api.get(`/api/procedures/${id}/${next}`)).json()).ckp_json;
    expect(saved).toEqual({ ...doc, version: next });
  });
}

test('the version to save is a bump of the base and never an existing one', async ({ page, api }) => {
  const id = unique('builder-versions');
  const doc = procedure('parse_order.ckp.json', id);
  await importProcedure(api, doc);
  await importProcedure(api, { ...doc, version: '1.0.1' });
  await page.goto(`/procedures/${id}/1.0.0/edit`);
  await page.getByRole('button', { name: 'Save as new version' }).click();
  const dialog = page.getByRole('dialog', { name: 'Save as new version' });
  await expect(dialog.getByRole('radio', { name: /1\.0\.2 \(patch/ })).toBeChecked();
  await expect(dialog.getByRole('radio', { name: /1\.1\.0 \(minor\)/ })).toBeVisible();
  await expect(dialog.getByRole('radio', { name: /2\.0\.0 \(major\)/ })).toBeVisible();
  await dialog.getByRole('textbox', { name: 'Other version' }).fill('1.0.1');
  await expect(dialog.getByText('Version 1.0.1 exists already')).toBeVisible();
  await expect(dialog.getByRole('button', { name: 'Save version 1.0.1' })).toBeDisabled();
  await dialog.getByRole('radio', { name: /1\.1\.0 \(minor\)/ }).check();
  await dialog.getByRole('button', { name: 'Save version 1.1.0' }).click();
  await expect(page).toHaveURL(new RegExp(`/procedures/${id}/1\\.1\\.0$`));
});

test('the draft is kept on the server, restored on return, and a conflicting write shows both sides', async ({ page, api }) => {
  const id = unique('builder-draft');
  await importProcedure(api, procedure('parse_order.ckp.json', id));
  await page.goto(`/procedures/${id}/1.0.0/edit`);
  const desc = inspector(page).getByRole('textbox', { name: 'Display name' });
  await desc.fill('Renamed in the draft');
  await expect(page.getByRole('status', { name: 'Draft state' })).toHaveText('Draft saved');
  const stored = await (await api.get(`/api/procedures/${id}/1.0.0/builder-draft`)).json();
  expect(stored.draft.ckp.name).toBe('Renamed in the draft');
  expect(stored.draft.base_version).toBe('1.0.0');

  await page.reload();
  await expect(page.getByText('Your draft of this version is restored')).toBeVisible();
  await expect(inspector(page).getByRole('textbox', { name: 'Display name' })).toHaveValue('Renamed in the draft');

  // Someone else writes the draft meanwhile: the next autosave conflicts.
  const theirs = { ...stored.draft, ckp: { ...stored.draft.ckp, name: 'Their name' } };
  const w = await api.put(`/api/procedures/${id}/1.0.0/builder-draft`, { data: { draft: theirs } });
  expect(w.status()).toBe(200);
  await inspector(page).getByRole('textbox', { name: 'Display name' }).fill('My name');
  const dialog = page.getByRole('dialog', { name: 'The draft changed on the server' });
  await expect(dialog).toBeVisible();
  await expect(dialog.getByText('name: changed')).toBeVisible();
  // Escape closes it without choosing; autosave waits, and the bar offers it again.
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  await expect(page.getByRole('status', { name: 'Draft state' })).toHaveText('Draft conflict');
  await page.getByRole('button', { name: 'Resolve the conflict' }).click();
  await dialog.getByRole('button', { name: "Take the server's draft" }).click();
  await expect(inspector(page).getByRole('textbox', { name: 'Display name' })).toHaveValue('Their name');
  // Undo returns to mine; it is saved over theirs (the revision is now known).
  await page.getByRole('button', { name: 'Undo' }).click();
  await expect(inspector(page).getByRole('textbox', { name: 'Display name' })).toHaveValue('My name');
  await expect(page.getByRole('status', { name: 'Draft state' })).toHaveText('Draft saved');
  expect((await (await api.get(`/api/procedures/${id}/1.0.0/builder-draft`)).json()).draft.ckp.name).toBe('My name');
});

test('screenshots of the builder, light and dark', async ({ page, api }, info) => {
  const id = unique('builder-shot');
  const doc = JSON.parse(readFileSync(join(EXAMPLES, 'invoice_processing.ckp.json'), 'utf8'));
  await importProcedure(api, { ...doc, procedure_id: id });
  await page.setViewportSize({ width: 1440, height: 900 });
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.goto(`/procedures/${id}/1.0.0/edit`);
    await expect(canvasNode(page, 'route')).toBeVisible();
    await canvasNode(page, 'manager_approval').click();
    await expect(inspector(page).getByRole('textbox', { name: 'Node id' })).toHaveValue('manager_approval');
    await page.screenshot({ path: info.outputPath(`builder-${scheme}.png`) });
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await bothThemes(page, 'builder with a node selected');
  await page.getByRole('button', { name: 'CKP', exact: true }).click();
  await bothThemes(page, 'builder CKP view');
  await page.getByRole('button', { name: 'Save as new version' }).click();
  await bothThemes(page, 'save dialog');
  await page.goto('/procedures/new');
  await bothThemes(page, 'new procedure page');
});

test('canvas editing: drop from the palette, copy and paste, rename, delete an edge and a node, undo and redo', async ({ page, api }) => {
  const id = unique('builder-canvas');
  await importProcedure(api, procedure('parse_order.ckp.json', id));
  const doc = procedure('parse_order.ckp.json', id) as { workflow_graph: { start_node: string; nodes: Record<string, Record<string, unknown>> } };
  const start = doc.workflow_graph.start_node;
  const next = String(doc.workflow_graph.nodes[start].next_node);
  await page.goto(`/procedures/${id}/1.0.0/edit`);
  const nodes = page.locator('.bcanvas .react-flow__node');
  const count = Object.keys(doc.workflow_graph.nodes).length;
  await expect(nodes).toHaveCount(count);

  // Drag a palette item onto the canvas.
  await page.getByRole('button', { name: 'Add Verification node' }).dragTo(page.locator('.bcanvas .react-flow__pane'), { targetPosition: { x: 80, y: 80 } });
  await expect(nodes).toHaveCount(count + 1);
  await expect(inspector(page).getByRole('textbox', { name: 'Node id' })).toHaveValue('verification');

  // Copy and paste the start node: a copy with a fresh id, its edge to outside the copy kept.
  await canvasNode(page, start).click();
  await page.keyboard.press('Control+c');
  await page.keyboard.press('Control+v');
  await expect(canvasNode(page, `${start}_copy`)).toBeVisible();
  await expect(page.locator(`.react-flow__edge[aria-label="next edge from ${start}_copy to ${next}"]`)).toHaveCount(1);

  // Rename the original: the start mark and the edges follow.
  const idField = inspector(page).getByRole('textbox', { name: 'Node id' });
  await canvasNode(page, start).click();
  await idField.fill('first');
  await idField.press('Enter');
  await expect(canvasNode(page, 'first').getByText('start', { exact: true })).toBeVisible();
  await expect(page.locator(`.react-flow__edge[aria-label="next edge from first to ${next}"]`)).toHaveCount(1);

  // Delete the edge with the keyboard: the field is cleared.
  await page.locator(`.react-flow__edge[aria-label="next edge from first to ${next}"]`).click({ force: true });
  await expect(inspector(page).getByRole('heading', { name: 'next edge' })).toBeVisible();
  await expect(inspector(page).getByRole('combobox', { name: 'To' })).toHaveValue(next);
  await page.keyboard.press('Delete');
  await expect(page.locator(`.react-flow__edge[aria-label="next edge from first to ${next}"]`)).toHaveCount(0);
  await page.getByRole('button', { name: 'CKP', exact: true }).click();
  let text = JSON.parse(await ckpText(page));
  expect(text.workflow_graph.nodes.first.next_node).toBeUndefined();
  expect(text.workflow_graph.start_node).toBe('first');
  await page.getByRole('button', { name: 'Builder', exact: true }).click();

  // Delete the pasted node, then undo the deletion and the edge's, and redo one.
  await canvasNode(page, `${start}_copy`).click();
  await page.keyboard.press('Delete');
  await expect(canvasNode(page, `${start}_copy`)).toHaveCount(0);
  await page.keyboard.press('Control+z');
  await expect(canvasNode(page, `${start}_copy`)).toBeVisible();
  await page.keyboard.press('Control+z');
  await expect(page.locator(`.react-flow__edge[aria-label="next edge from first to ${next}"]`)).toHaveCount(1);
  await page.keyboard.press('Control+Shift+z');
  await expect(page.locator(`.react-flow__edge[aria-label="next edge from first to ${next}"]`)).toHaveCount(0);

  // Set the copy as the start node from the inspector.
  await canvasNode(page, `${start}_copy`).click();
  await inspector(page).getByRole('button', { name: 'Set as start node' }).click();
  await expect(canvasNode(page, `${start}_copy`).getByText('start', { exact: true })).toBeVisible();
  await page.getByRole('button', { name: 'CKP', exact: true }).click();
  text = JSON.parse(await ckpText(page));
  expect(text.workflow_graph.start_node).toBe(`${start}_copy`);
  expect(text.workflow_graph.nodes.verification.type).toBe('verification');
});

test('a new procedure from the invoice template: leaving unsaved asks first; saved, it is the example under its new id', async ({ page, api }) => {
  const id = unique('from-template');
  await page.goto('/procedures/new');
  await page.getByRole('textbox', { name: 'Procedure id' }).fill(id);
  await page.getByRole('radio', { name: /Invoice processing/ }).check();
  await page.getByRole('button', { name: 'Open in the builder' }).click();
  const example = JSON.parse(readFileSync(join(EXAMPLES, 'invoice_processing.ckp.json'), 'utf8'));
  await expect(page.locator('.bcanvas .react-flow__node')).toHaveCount(Object.keys(example.workflow_graph.nodes).length);
  await expect(inspector(page).getByRole('textbox', { name: 'Procedure id' })).toHaveValue(id);

  // An edit, then a link out: the builder asks; staying keeps the edit, undo takes it back.
  await inspector(page).getByRole('textbox', { name: 'Display name' }).fill('Invoices');
  await page.getByRole('navigation').getByRole('link', { name: 'Runs' }).click();
  const ask = page.getByRole('dialog', { name: 'Leave the builder?' });
  await ask.getByRole('button', { name: 'Cancel' }).click();
  await expect(page).toHaveURL(/\/procedures\/new\?/);
  await expect(inspector(page).getByRole('textbox', { name: 'Display name' })).toHaveValue('Invoices');
  await page.keyboard.press('Control+z');
  await expect(inspector(page).getByRole('textbox', { name: 'Display name' })).toHaveValue('');

  await page.getByRole('button', { name: 'Save as new version' }).click();
  const dialog = page.getByRole('dialog', { name: 'Save as new version' });
  await expect(dialog.getByRole('radio', { name: /1\.0\.0 \(the document's version\)/ })).toBeChecked();
  await dialog.getByRole('button', { name: 'Save version 1.0.0' }).click();
  await expect(page).toHaveURL(new RegExp(`/procedures/${id}/1\\.0\\.0$`));
  const saved = (await (await api.get(`/api/procedures/${id}/1.0.0`)).json()).ckp_json;
  expect(saved).toEqual({ ...example, procedure_id: id });
});
