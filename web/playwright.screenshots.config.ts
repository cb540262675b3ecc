// `npm run screenshots`: the console's main screens, light and dark, into docs/screenshots/ (for the README and
// docs/console.md). Not a test: it seeds a fresh server with a few runs and photographs the screens.
import base from './playwright.config';
import { defineConfig } from '@playwright/test';

export default defineConfig({
  ...base,
  testDir: './screenshots',
  timeout: 180_000,
  use: { ...base.use, viewport: { width: 1360, height: 820 }, deviceScaleFactor: 1 },
});
