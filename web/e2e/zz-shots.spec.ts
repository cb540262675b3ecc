import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, importProcedure, procedure, test } from './fixtures';

test('shots', async ({ page, api }) => {
  test.setTimeout(120_000);
  await page.setViewportSize({ width: 1360, height: 820 });
  const ex = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'examples', 'invoice_processing.ckp.json'), 'utf8'));
  ex.procedure_id = 'invoice';
  await importProcedure(api, ex);
  const v2 = structuredClone(ex);
  v2.version = '1.1.0';
  v2.workflow_graph.nodes.extract.description = 'Extract the invoice fields (v2)';
  v2.workflow_graph.nodes.update_erp.next_node = 'notify_customer';
  delete v2.workflow_graph.nodes.archive;
  v2.workflow_graph.nodes.notify_customer = { type: 'sequence', description: 'Tell the customer', steps: [{ step_id: 'tell', action: 'log', message: 'x' }], next_node: 'done' };
  await importProcedure(api, v2);
  await importProcedure(api, procedure('parse_order.ckp.json', 'parse-order'));
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.goto('/procedures/invoice/diff?from=1.0.0&to=1.1.0');
    await expect(page.locator('.gnode').first()).toBeVisible();
    await page.locator('.react-flow__node[data-id="update_erp"]').click();
    await page.waitForTimeout(500);
    await page.screenshot({ path: `/tmp/shots/diff-nodes-${scheme}.png` });
    await page.goto('/procedures/invoice/diff?from=1.0.0&to=1.1.0&view=text');
    await page.getByRole('button', { name: 'Next change' }).click();
    await page.getByRole('button', { name: 'Next change' }).click();
    await page.waitForTimeout(300);
    await page.screenshot({ path: `/tmp/shots/diff-text-${scheme}.png` });
    await page.goto('/procedures/validate');
    await page.getByLabel('Open file…').setInputFiles({ name: 'a.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify({ ...procedure('parse_order.ckp.json', 'x'), workflow_graph: { start_node: 'parse', nodes: { parse: { type: 'sequence', steps: [{ step_id: 'a', action: 'log', message: 'hi' }], next_node: 'nowhere' }, done: { type: 'terminate', status: 'success', next_node: 'parse' } } } }, null, 2)) });
    await expect(page.locator('.cm-lintRange-error')).toHaveCount(1);
    await page.locator('.cm-lintRange-error').hover();
    await page.waitForTimeout(600);
    await page.screenshot({ path: `/tmp/shots/check-${scheme}.png` });
    await page.locator('.cm-line', { hasText: '"status": "success"' }).getByText('"success"').dblclick();
    await page.keyboard.press('Backspace');
    await page.keyboard.press('Control+Space');
    await page.waitForTimeout(400);
    await page.screenshot({ path: `/tmp/shots/check-complete-${scheme}.png` });
  }
});
