// Seeds a server with procedures and runs in every state, then photographs the main screens in both themes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from '../e2e/fixtures';

const out = join(import.meta.dirname, '..', '..', 'docs', 'screenshots');
const doc = (file: string, id: string) => {
  const d = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'e2e', 'procedures', file), 'utf8'));
  d.procedure_id = id;
  return d;
};

test('screens', async ({ page, api }) => {
  for (const [file, id] of [['article_review.ckp.json', 'article-review'], ['parse_order.ckp.json', 'parse-order']]) {
    expect((await api.post('/api/procedures', { data: { ckp_json: doc(file, id) } })).status()).toBe(201);
  }
  const nightly = doc('parse_order.ckp.json', 'nightly-orders');
  nightly.trigger = { type: 'scheduled', schedule: '0 2 * * *', timezone: 'Europe/Paris', overlap: 'skip' };
  expect((await api.post('/api/procedures', { data: { ckp_json: nightly } })).status()).toBe(201);
  const invoice = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'examples', 'invoice_processing.ckp.json'), 'utf8'));
  await api.post('/api/procedures', { data: { ckp_json: invoice } });
  // A second version of the invoice procedure for the version diff: one node changed, one added.
  const next = structuredClone(invoice);
  next.version = '1.1.0';
  next.workflow_graph.nodes.ingest.description = 'Read the invoice and its attachments';
  next.workflow_graph.nodes.notify_finance = { type: 'terminate', status: 'success' };
  await api.post('/api/procedures', { data: { ckp_json: next } });
  const start = async (procedure_id: string, input_vars: Record<string, unknown>) =>
    ((await (await api.post('/api/runs', { data: { procedure_id, input_vars } })).json()) as { run_id: string }).run_id;
  const review: string[] = [];
  for (let i = 1; i <= 6; i++) review.push(await start('article-review', { article_id: i, review_depth: i % 2 ? 'deep' : 'light' }));
  for (let i = 0; i < 3; i++) await start('parse-order', { order_json: i === 0 ? 'oops' : '{"items": [1]}' });
  // Approve four of the reviews so the dashboard shows completed runs, leave two waiting.
  await expect.poll(async () => ((await (await api.get('/api/approvals?status=pending')).json()) as unknown[]).length).toBe(6);
  const pending = (await (await api.get('/api/approvals?status=pending')).json()) as { approval_id: string; run_id: string }[];
  for (const a of pending.filter((a) => review.slice(0, 4).includes(a.run_id))) {
    await api.post(`/api/approvals/${a.approval_id}/decision`, { data: { decision: 'approved', comment: 'ok' } });
  }
  const shots: [string, string, string?][] = [
    ['dashboard', '/'],
    ['procedures', '/procedures'],
    ['procedure-graph', '/procedures/article-review/1.0.0?tab=graph'],
    ['runs', '/runs'],
    ['run-timeline', `/runs/${review[0]}`],
    ['run-graph', `/runs/${review[1]}?tab=graph`],
    ['run-gantt', `/runs/${review[0]}?tab=gantt`],
    ['approvals', '/approvals'],
    ['triggers', '/triggers'],
    ['metrics', '/metrics'],
    ['builder', '/procedures/invoice-processing/1.0.0/edit'],
    ['version-diff', '/procedures/invoice-processing/diff?from=1.0.0&to=1.1.0'],
    ['check-ckp', '/procedures/validate'],
  ];
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const [name, path] of shots) {
      await page.goto(path);
      await page.waitForLoadState('networkidle', { timeout: 3000 }).catch(() => undefined);
      await expect(page.getByRole('status').filter({ hasText: /^Loading/ })).toHaveCount(0);
      // A run's tabs are below its header: show the tab, not the header.
      if (name.startsWith('run-'))
        await page.getByRole('main').evaluate((main) => {
          const tabs = main.querySelector('[role=tablist]');
          if (tabs) main.scrollTop += tabs.getBoundingClientRect().top - main.getBoundingClientRect().top - 12;
        });
      await page.waitForTimeout(600);
      await page.screenshot({ path: join(out, `${name}-${scheme}.png`) });
    }
  }
});
