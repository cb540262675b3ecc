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

/** axe-core in the light theme, then the dark one (the system preference), leaving the page light. */
export async function bothThemes(page: Page, what: string): Promise<void> {
  await page.emulateMedia({ colorScheme: 'light' });
  await expectAccessible(page, `${what} light`);
  await page.emulateMedia({ colorScheme: 'dark' });
  await expectAccessible(page, `${what} dark`);
  await page.emulateMedia({ colorScheme: 'light' });
}

/** The fields of `RunOut` the tests read (`rerun_of` links a retry with modified inputs to its original). */
export interface Run {
  run_id: string;
  status: string;
  rerun_of?: string | null;
}

/** Starts a run through the API (201 expected). */
export async function startRun(api: APIRequestContext, procedureId: string, inputs: Record<string, unknown>): Promise<Run> {
  const r = await api.post('/api/runs', { data: { procedure_id: procedureId, input_vars: inputs } });
  expect(r.status(), await r.text()).toBe(201);
  return r.json();
}

/** A run's status as the API tells it, or `http <code>` when it answers an error (404 once deleted). */
export async function runStatus(api: APIRequestContext, runId: string): Promise<string> {
  const r = await api.get(`/api/runs/${runId}`);
  return r.ok() ? ((await r.json()) as Run).status : `http ${r.status()}`;
}

export async function waitForStatus(api: APIRequestContext, runId: string, status: string): Promise<void> {
  await expect.poll(() => runStatus(api, runId), { timeout: 15_000 }).toBe(status);
}

/** The run page's event list. */
export const runEvents = (page: Page) => page.getByRole('list', { name: 'Run events' });
