// The version diff: the pure comparison functions (no browser), then the page against a real server: an example
// imported as 1.0.0 and a copy with exactly two nodes changed, one added and one removed as 1.1.0.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { diffNodes, documentChanges, lineDiff, sideBySide, stableStringify } from '../src/features/diff/diff';
import { bothThemes, expect, importProcedure, test, unique } from './fixtures';

type Doc = { procedure_id: string; version: string; workflow_graph: { nodes: Record<string, Record<string, unknown>> } } & Record<string, unknown>;
const example = (): Doc => JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'examples', 'invoice_processing.ckp.json'), 'utf8'));

/** 1.1.0 of the invoice example: extract and update_erp changed, notify_customer added, archive removed. */
function nextVersion(doc: Doc): Doc {
  const d: Doc = structuredClone(doc);
  d.version = '1.1.0';
  const nodes = d.workflow_graph.nodes;
  nodes.extract.description = 'Extract the invoice fields (v2)';
  nodes.update_erp.next_node = 'notify_customer';
  delete nodes.archive;
  nodes.notify_customer = {
    type: 'sequence',
    description: 'Tell the customer',
    steps: [{ step_id: 'tell', action: 'log', level: 'INFO', message: 'Invoice {{document_url}} processed' }],
    next_node: 'done',
  };
  return d;
}

test.describe('comparison functions', () => {
  test('nodes added, removed and changed, with the fields that changed; key order does not count', () => {
    const before = example();
    const after = nextVersion(before);
    // Reordering a node's keys changes nothing.
    after.workflow_graph.nodes.done = Object.fromEntries(Object.entries(after.workflow_graph.nodes.done).reverse());
    const d = diffNodes(before, after);
    expect(d.added).toEqual(['notify_customer']);
    expect(d.removed).toEqual(['archive']);
    expect(d.changed).toEqual([
      { id: 'extract', fields: ['description'] },
      { id: 'update_erp', fields: ['next_node'] },
    ]);
    expect(d.unchanged).toContain('done');
    expect(documentChanges(before, after)).toEqual(['version']);
    // A field that appears or goes counts; so does the start node.
    const moved = structuredClone(after);
    (moved.workflow_graph as Record<string, unknown>).start_node = 'extract';
    delete moved.workflow_graph.nodes.extract.description;
    expect(diffNodes(after, moved).changed).toEqual([{ id: 'extract', fields: ['description'] }]);
    expect(documentChanges(after, moved)).toEqual(['workflow_graph.start_node']);
  });

  test('the line diff is a shortest edit script that rebuilds both sides, laid out side by side', () => {
    const check = (a: string[], b: string[]) => {
      const ops = lineDiff(a, b);
      expect(ops.filter((o) => o.op !== 'add').map((o) => a[o.a!])).toEqual(a);
      expect(ops.filter((o) => o.op !== 'del').map((o) => b[o.b!])).toEqual(b);
      return ops.filter((o) => o.op !== 'same').length;
    };
    // The classic example: 5 edits.
    expect(check('abcabba'.split(''), 'cbabac'.split(''))).toBe(5);
    expect(check([], ['x'])).toBe(1);
    expect(check(['x'], [])).toBe(1);
    expect(check(['a', 'b'], ['a', 'b'])).toBe(0);
    let seed = 7;
    const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let t = 0; t < 300; t++) {
      const gen = () => Array.from({ length: Math.floor(rnd() * 10) }, () => 'abc'[Math.floor(rnd() * 3)]);
      check(gen(), gen());
    }
    const { rows, changes } = sideBySide(['a', 'b', 'c', 'd'], ['a', 'x', 'c', 'd', 'e']);
    expect(changes).toBe(2);
    expect(rows.map((r) => r.kind)).toEqual(['same', 'changed', 'same', 'same', 'added']);
    expect(rows[1]).toMatchObject({ left: { n: 2, text: 'b' }, right: { n: 2, text: 'x' }, change: 0 });
    expect(stableStringify({ b: 1, a: { d: [2, 1], c: null } })).toBe('{\n  "a": {\n    "c": null,\n    "d": [\n      2,\n      1\n    ]\n  },\n  "b": 1\n}');
  });
});

test('the diff page shows exactly the nodes changed, added and removed, on the graph and in the list', async ({ page, api }) => {
  const id = unique('invoice');
  const v1 = { ...example(), procedure_id: id, version: '1.0.0' };
  await importProcedure(api, v1);
  await importProcedure(api, nextVersion(v1));

  // From the version page: Compare… picks the other version; the older one goes on the left.
  await page.goto(`/procedures/${id}/1.1.0`);
  await page.getByRole('button', { name: 'Compare…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Compare 1.1.0 with…' });
  await expect(dialog.getByLabel('Other version')).toHaveValue('1.0.0');
  await dialog.getByRole('button', { name: 'Compare', exact: true }).click();
  await expect(page).toHaveURL(new RegExp(`/procedures/${id}/diff\\?from=1\\.0\\.0&to=1\\.1\\.0`));
  await expect(page.getByLabel('From (old)')).toHaveValue('1.0.0');
  await expect(page.getByLabel('To (new)')).toHaveValue('1.1.0');
  // The versions tab links each other version to the same page.
  await page.goto(`/procedures/${id}/1.0.0?tab=versions`);
  await page.getByRole('link', { name: 'Compare 1.1.0 with 1.0.0' }).click();
  await expect(page).toHaveURL(new RegExp(`/procedures/${id}/diff\\?from=1\\.0\\.0&to=1\\.1\\.0`));

  const summary = page.getByRole('region', { name: 'Summary of the changes' });
  await expect(summary).toContainText('2 changed');
  await expect(summary).toContainText('1 added');
  await expect(summary).toContainText('1 removed');
  await expect(summary).toContainText('version');

  // The list: exactly these four nodes, the changed ones with their fields.
  const list = page.getByRole('list', { name: 'Nodes that differ' });
  const item = (kind: string) => list.locator(`li[data-kind="${kind}"]`);
  await expect(list.getByRole('listitem')).toHaveCount(4);
  await expect(item('changed')).toHaveCount(2);
  await expect(item('changed').nth(0)).toHaveAttribute('data-node', 'extract');
  await expect(item('changed').nth(1)).toHaveAttribute('data-node', 'update_erp');
  await expect(page.getByLabel('Fields of extract that changed')).toHaveText('description');
  await expect(page.getByLabel('Fields of update_erp that changed')).toHaveText('next_node');
  await expect(item('added')).toHaveAttribute('data-node', 'notify_customer');
  await expect(item('removed')).toHaveAttribute('data-node', 'archive');

  // The graph: the new version's nodes plus the removed one, coloured; every other node plain.
  const graph = page.getByRole('figure', { name: /changes between the versions/ });
  await expect(graph.locator('.gnode')).toHaveCount(17);
  // React Flow's node boxes carry the node id.
  const marked = (kind: string) =>
    graph.locator(`.react-flow__node:has(.gnode[data-diff="${kind}"])`).evaluateAll((els) => els.map((e) => e.getAttribute('data-id')).sort());
  await expect(graph.locator('.gnode[data-diff]')).toHaveCount(4);
  expect(await marked('changed')).toEqual(['extract', 'update_erp']);
  expect(await marked('added')).toEqual(['notify_customer']);
  expect(await marked('removed')).toEqual(['archive']);

  // Picking a changed node on the graph shows each changed field, old and new; picking it in the list again hides it.
  await graph.locator('.react-flow__node[data-id="extract"]').click();
  await expect(item('changed').nth(0).getByRole('button', { name: 'extract', exact: true })).toHaveAttribute('aria-pressed', 'true');
  const fields = item('changed').nth(0).getByRole('table');
  await expect(fields.getByRole('row', { name: /description/ })).toContainText('Extract invoice fields');
  await expect(fields.getByRole('row', { name: /description/ })).toContainText('Extract the invoice fields (v2)');
  await bothThemes(page, 'version diff, nodes');
  await item('changed').nth(0).getByRole('button', { name: 'extract', exact: true }).click();
  await expect(fields).toHaveCount(0);

  // The text: sorted keys, the changes counted, next change jumps to them.
  await item('removed').getByRole('button', { name: 'Show archive in the text' }).click();
  await expect(page).toHaveURL(/view=text/);
  const text = page.getByRole('region', { name: 'CKP text diff' });
  // version, archive, extract, notify_customer, update_erp: five places in the sorted text.
  await expect(text.getByRole('status')).toHaveText('5 changes');
  await expect(text.locator('tr.removed', { hasText: '"archive": {' })).toBeVisible();
  await expect(text.locator('tr.changed', { hasText: '"version"' })).toHaveCount(1);
  await expect(text.locator('tr.changed', { hasText: '"1.1.0"' })).toBeVisible();
  // "Show in text" made the archive change current (the 2nd); next is extract's.
  await expect(text).toContainText('change 2 of 5');
  await text.getByRole('button', { name: 'Next change' }).click();
  await expect(text).toContainText('change 3 of 5');
  await expect(text.locator('tr.current')).toContainText('"description": "Extract the invoice fields (v2)"');
  await expect(text.locator('tr.current').first()).toBeInViewport();
  await text.getByRole('button', { name: 'Previous change' }).click();
  await text.getByRole('button', { name: 'Previous change' }).click();
  await expect(text.locator('tr.current')).toContainText('"version": "1.1.0"');
  await bothThemes(page, 'version diff, text');
});
