// Shared test helpers: the server's address as baseURL, an API context on it, and an axe-core check.
import AxeBuilder from '@axe-core/playwright';
import { test as base, expect, type APIRequestContext, type Page } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const test = base.extend<{ api: APIRequestContext }>({
  baseURL: async ({}, use) => use(process.env.CKP_BASE_URL),
  api: async ({ playwright }, use) => {
    const ctx = await playwright.request.newContext({ baseURL: process.env.CKP_API_URL });
    await use(ctx);
    await ctx.dispose();
  },
});
export { expect };

/** A CKP document of e2e/procedures, with its procedure_id made unique for this test. */
export function procedure(file: string, id: string): Record<string, unknown> {
  const doc = JSON.parse(readFileSync(join(import.meta.dirname, 'procedures', file), 'utf8'));
  doc.procedure_id = id;
  return doc;
}

export async function importProcedure(api: APIRequestContext, doc: Record<string, unknown>): Promise<void> {
  const r = await api.post('/api/procedures', { data: { ckp_json: doc } });
  expect(r.status(), await r.text()).toBe(201);
}

export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}

/** axe-core on the page as it is: no serious or critical violation. */
export async function expectAccessible(page: Page, what: string): Promise<void> {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const text = bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('\n  ')}`).join('\n');
  expect(bad, `${what}: accessibility violations\n${text}`).toEqual([]);
}
