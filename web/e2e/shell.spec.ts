// The shell: navigation, theme, unknown pages, and the sign-in page.
import { expect, expectAccessible, test } from './fixtures';

test('the sidebar reaches every section and the theme switch turns the page dark', async ({ page }) => {
  await page.goto('/');
  const nav = page.getByRole('navigation');
  for (const name of ['Procedures', 'Runs', 'Triggers', 'Approvals', 'Projects', 'Agents', 'Leases', 'Secrets', 'Health & metrics']) {
    await nav.getByRole('link', { name, exact: false }).first().click();
    await expect(page).toHaveURL(new RegExp(`/${name === 'Health & metrics' ? 'metrics' : name.toLowerCase()}`));
  }
  await page.getByRole('combobox', { name: 'Theme' }).selectOption('dark');
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  expect(bg).toBe('rgb(15, 18, 22)');
  await page.reload();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  await page.getByRole('combobox', { name: 'Theme' }).selectOption('system');
});

test('an unknown page says so inside the shell', async ({ page }) => {
  await page.goto('/no/such/page');
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await expectAccessible(page, 'not found');
});

test('the sign-in page is accessible in both themes', async ({ page }) => {
  await page.goto('/login');
  await expect(page.getByRole('heading', { name: 'Sign in to ckp' })).toBeVisible();
  await expectAccessible(page, 'login light');
  await page.emulateMedia({ colorScheme: 'dark' });
  await expectAccessible(page, 'login dark');
});
