// The CKP editor on the "Check CKP" page: diagnostics from the live validation marked at their value while typing,
// cleared once fixed; completion of node types, properties by node type, and node ids.
import { bothThemes, expect, procedure, test, unique } from './fixtures';
import type { Page } from '@playwright/test';
import { cursorContext } from '../src/features/ckp-editor/context';
import { actionNames } from '../src/features/ckp-editor/completion';
import { markRange } from '../src/features/ckp-editor/marks';
import { fieldAt } from '../src/features/ckp-editor/schema';
import { nodeOfPointer } from '../src/lib/jsonPointer';

const editor = (page: Page) => page.getByRole('textbox', { name: 'CKP document' });
const completions = (page: Page) => page.locator('.cm-tooltip-autocomplete li');

/** Selects the word of a string value on the line holding `line` by double-clicking it (scrolling the editor, which
 * draws only the lines near its viewport, until the line is there). */
async function pickValue(page: Page, line: string, value: string) {
  const target = page.locator('.cm-line', { hasText: line }).getByText(`"${value}"`, { exact: true });
  await page.locator('.cm-content').hover();
  for (let i = 0; i < 40 && !(await target.isVisible()); i++) await page.mouse.wheel(0, 200);
  await target.dblclick();
  expect(await page.evaluate(() => window.getSelection()?.toString())).toBe(value);
}

test('a next_node to a missing node is marked at its value while typing, and the mark goes once fixed', async ({ page }) => {
  const id = unique('check');
  await page.goto('/procedures/validate');
  await expect(page.getByRole('heading', { level: 1, name: 'Check CKP' })).toBeVisible();
  // A document opened from a file fills the editor; the compiler finds it valid.
  await page.getByLabel('Open file…').setInputFiles({
    name: 'order.ckp.json',
    mimeType: 'application/json',
    buffer: Buffer.from(JSON.stringify(procedure('parse_order.ckp.json', id), null, 2)),
  });
  await expect(editor(page)).toContainText(id);
  const status = page.getByRole('status').filter({ hasText: /valid|error|checking/ });
  await expect(status).toContainText('valid');
  await expect(status).toContainText(id);
  await expect(page.locator('.cm-lintRange-error')).toHaveCount(0);

  // Point `parse` at a node that does not exist, by typing.
  await pickValue(page, '"next_node": "done"', 'done');
  await page.keyboard.type('nowhere');
  const mark = page.locator('.cm-lintRange-error');
  await expect(mark).toHaveText('"nowhere"', { timeout: 3000 });
  await expect(status).toContainText('1 error');
  const findings = page.getByRole('list', { name: 'Diagnostics' });
  await expect(findings).toContainText('edge-target-missing');
  await expect(findings).toContainText('/workflow_graph/nodes/parse/next_node');
  // The gutter has a marker on that line, and hovering the mark tells why.
  await expect(page.locator('.cm-lint-marker-error')).toHaveCount(1);
  await mark.hover();
  await expect(page.locator('.cm-tooltip-lint')).toContainText('`nowhere`');
  await bothThemes(page, 'check ckp with an error');

  // "Show" selects the value in the text.
  await page.mouse.move(0, 0);
  await findings.getByRole('button', { name: 'Show /workflow_graph/nodes/parse/next_node in the text' }).click();
  await expect(editor(page)).toBeFocused();
  expect(await page.evaluate(() => window.getSelection()?.toString())).toBe('"nowhere"');

  // Fix it: the mark and the finding go.
  await pickValue(page, '"next_node": "nowhere"', 'nowhere');
  await page.keyboard.type('done');
  await expect(status).toContainText('valid', { timeout: 3000 });
  await expect(page.locator('.cm-lintRange-error')).toHaveCount(0);
  await expect(page.getByRole('list', { name: 'Diagnostics' })).toHaveCount(0);
  await expect(page.getByText('Nothing to report.')).toBeVisible();

  // A valid document goes on to the import dialog, text included.
  await page.getByRole('button', { name: 'Import…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Import a procedure' });
  await expect(dialog.getByRole('textbox', { name: 'CKP document (JSON)' })).toHaveValue(/"next_node": "done"/);
  await dialog.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(page).toHaveURL(new RegExp(`/procedures/${id}/1\\.0\\.0$`));
});

test('text that is not JSON is marked at the line and column the compiler gives', async ({ page }) => {
  await page.goto('/procedures/validate');
  await editor(page).click();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.insertText('{\n  "procedure_id": oops\n}');
  const findings = page.getByRole('list', { name: 'Diagnostics' });
  await expect(findings).toContainText('line 2');
  // One character is marked where the compiler stopped, on line 2.
  const mark = page.locator('.cm-lintRange-error');
  await expect(mark).toHaveCount(1);
  await expect(page.locator('.cm-line').nth(1).locator('.cm-lintRange-error')).toHaveCount(1);
});

test('completion offers node types after "type": ", the properties of the node type, and node ids', async ({ page }) => {
  await page.goto('/procedures/validate');
  await editor(page).click();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.press('Delete');
  // Typed as a person types it (the editor closes quotes and brackets itself).
  await page.keyboard.type('{"workflow_graph": {"start_node": "a", "nodes": {"a": {"type": "');
  await expect(completions(page).first()).toBeVisible();
  const offered = await completions(page).locator('.cm-completionLabel').allTextContents();
  expect(offered.sort()).toEqual(
    ['human_approval', 'llm_action', 'logic', 'loop', 'parallel', 'processing', 'sequence', 'subflow', 'terminate', 'transform', 'verification'].sort(),
  );
  await page.keyboard.type('term');
  await expect(completions(page)).toHaveCount(1);
  // Picked with the mouse (Enter is refused for a few milliseconds after the list changes, which a robot beats).
  await completions(page).filter({ hasText: 'terminate' }).click();
  await expect(editor(page)).toContainText('"type": "terminate"');

  // The properties of a terminate node: status, not steps.
  await page.keyboard.type(', "');
  await expect(completions(page).first()).toBeVisible();
  const props = await completions(page).locator('.cm-completionLabel').allTextContents();
  expect(props).toContain('status');
  expect(props).toContain('outputs');
  expect(props).not.toContain('steps');
  expect(props).not.toContain('type'); // already written
  await page.keyboard.type('stat');
  await completions(page).filter({ hasText: /^status/ }).click();
  // Picking a property writes its value's start and offers its values.
  await expect(editor(page)).toContainText('"status": ""');
  await expect(completions(page).locator('.cm-completionLabel')).toHaveText(['failed', 'success'].sort());
  await page.keyboard.type('suc');
  await expect(completions(page)).toHaveCount(1);
  await completions(page).filter({ hasText: 'success' }).click();
  await expect(editor(page)).toContainText('"status": "success"');

  // Resting the pointer on a property's name tells what it is.
  // (Once the check of the last edit is in: a new answer redraws the marks under the pointer.)
  await expect(page.getByRole('status').filter({ hasText: /errors?/ })).toBeVisible();
  const name = page.locator('.cm-content').getByText('"status"', { exact: true });
  await expect(async () => {
    await page.mouse.move(0, 0);
    await name.hover();
    await expect(page.locator('.cm-ckp-doc')).toHaveText('status (one of success, failed): How the run ends', { timeout: 1500 });
  }).toPass();
});

test('node references complete with the ids of the document\'s nodes', async ({ page }) => {
  await page.goto('/procedures/validate');
  await page.getByLabel('Open file…').setInputFiles({
    name: 'order.ckp.json',
    mimeType: 'application/json',
    buffer: Buffer.from(JSON.stringify(procedure('parse_order.ckp.json', 'ids-of-nodes'), null, 2)),
  });
  await expect(editor(page)).toContainText('ids-of-nodes');
  await pickValue(page, '"start_node": "parse"', 'parse');
  await page.keyboard.press('Backspace');
  await page.keyboard.press('Control+Space');
  await expect(completions(page).locator('.cm-completionLabel')).toHaveText(['done', 'parse']);
  // Actions complete from GET /api/actions.
  await page.keyboard.press('Escape');
  await pickValue(page, '"action": "log"', 'log');
  await page.keyboard.type('parse_');
  await expect(completions(page).locator('.cm-completionLabel')).toContainText(['parse_csv', 'parse_json']);
});

test('templates complete with the variables: the inputs and what the nodes set', async ({ page }) => {
  await page.goto('/procedures/validate');
  await page.getByLabel('Open file…').setInputFiles({
    name: 'order.ckp.json',
    mimeType: 'application/json',
    buffer: Buffer.from(JSON.stringify(procedure('parse_order.ckp.json', 'templates'), null, 2)),
  });
  await expect(editor(page)).toContainText('templates');
  const line = page.locator('.cm-line', { hasText: '"message": "Parsed an order in {{currency}}"' });
  await page.locator('.cm-content').hover();
  for (let i = 0; i < 40 && !(await line.isVisible()); i++) await page.mouse.wheel(0, 200);
  await line.click();
  await page.keyboard.press('End');
  for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowLeft');
  for (let i = 0; i < 'currency'.length; i++) await page.keyboard.press('Backspace');
  await page.keyboard.press('Control+Space');
  const labels = completions(page).locator('.cm-completionLabel');
  await expect(labels).toHaveText(['currency', 'order', 'order_json']);
  const option = (label: string) => completions(page).filter({ has: page.locator('.cm-completionLabel', { hasText: new RegExp(`^${label}$`) }) });
  await expect(option('order_json')).toContainText('input (string)');
  await expect(option('order')).toContainText('set by parse');
  await page.keyboard.type('order_');
  await expect(completions(page)).toHaveCount(1);
  await option('order_json').click();
  await expect(editor(page)).toContainText('"message": "Parsed an order in {{order_json}}"');
});

test.describe('pieces (no browser)', () => {
  /** The context at the `|` of a text. */
  const at = (t: string) => {
    const c = cursorContext(t.replace('|', ''), t.indexOf('|'));
    return c && { path: c.path, where: c.where, key: c.key, quoted: c.quoted, prefix: c.prefix };
  };

  test('the cursor context of text being typed: the container path, key or value, what is typed', () => {
    expect(at('{"workflow_graph": {"nodes": {"a": {"type": "|')).toEqual({ path: ['workflow_graph', 'nodes', 'a'], where: 'value', key: 'type', quoted: true, prefix: '' });
    expect(at('{"workflow_graph": {"nodes": {"a": {"type": "seq|"}}}}')).toMatchObject({ where: 'value', key: 'type', prefix: 'seq' });
    expect(at('{"a": {"steps": [{"action": "x"}, {"ac|')).toEqual({ path: ['a', 'steps', 1], where: 'key', key: undefined, quoted: true, prefix: 'ac' });
    expect(at('{"branches": ["x", "|')).toMatchObject({ path: ['branches'], where: 'item', quoted: true });
    expect(at('{"a": tr|')).toMatchObject({ where: 'value', key: 'a', quoted: false, prefix: 'tr' });
    expect(at('{"a\\"b": {"|')).toMatchObject({ path: ['a"b'], where: 'key' });
    // Between a key and its colon, or after a value, nothing is typed.
    expect(at('{"a" |')).toBeNull();
    expect(at('{"a": 1 |')).toBeNull();
  });

  test('the fields at a place: a node\'s depend on its type, free maps give their values\' shape', () => {
    const typeOf = (id: string) => ({ t: 'terminate', l: 'logic' })[id];
    expect(Object.keys(fieldAt(['workflow_graph', 'nodes', 't'], typeOf)!.fields!)).toContain('status');
    expect(Object.keys(fieldAt(['workflow_graph', 'nodes', 't'], typeOf)!.fields!)).not.toContain('steps');
    expect(fieldAt(['workflow_graph', 'nodes', 'l', 'rules', 0, 'next_node'], typeOf)).toMatchObject({ ref: 'node' });
    // No type: a sequence, as the compiler reads it.
    expect(fieldAt(['workflow_graph', 'nodes', 'x', 'steps', 3, 'action'], typeOf)).toMatchObject({ ref: 'action' });
    expect(fieldAt(['workflow_graph', 'nodes', 'x', 'error_handlers', 0, 'recovery_steps', 0, 'retry_policy', 'strategy'], typeOf)!.values).toContain('fibonacci');
    expect(fieldAt(['variables_schema', 'required', 'anything', 'validation'], typeOf)!.fields).toHaveProperty('regex');
    expect(fieldAt(['nonsense'], typeOf)).toBeNull();
  });

  test('marks land on the value of a member, on the first line of a multi-line target, else at line and column', () => {
    const text = '{\n  "a": {"next_node": "x"},\n  "b": {\n    "c": 1\n  }\n}';
    const mark = (pointer: string, line = 0, column = 0) => {
      const r = markRange(text, { pointer, line, column });
      return r && text.slice(r.from, r.to);
    };
    expect(mark('/a/next_node')).toBe('"x"');
    expect(mark('/b')).toBe('"b": {');
    expect(mark('/b/missing')).toBe('"b": {');
    expect(markRange('{"a": oops', { pointer: '/a', line: 1, column: 7 })).toEqual({ from: 6, to: 7 });
    expect(nodeOfPointer('/workflow_graph/nodes/a~1b~0c/steps/0')).toBe('a/b~c');
    expect(nodeOfPointer('/workflow_graph/start_node')).toBeNull();
  });

  test('actions: internal ones, agent capabilities, MCP tools, each once', () => {
    expect(
      actionNames({ internal: ['log', 'wait'], WEB: ['click', 'log'], mcp_servers: { fs: { transport: 'stdio', tools: { 'mcp:fs/read': {} } }, bad: { error: 'x' } } }),
    ).toEqual([
      { name: 'log', channel: 'internal' },
      { name: 'wait', channel: 'internal' },
      { name: 'click', channel: 'WEB' },
      { name: 'mcp:fs/read', channel: 'mcp fs' },
    ]);
  });
});
