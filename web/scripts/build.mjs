// Builds the console: type check, `vite build` (extra arguments, such as `--outDir DIR --emptyOutDir`, are passed
// to it), then measures what the first screen ships and fails when it is over the budget.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { firstScreenBytes, BUDGET_GZIP_BYTES } from './size.mjs';

const args = process.argv.slice(2);
const run = (cmd, argv) => {
  const r = spawnSync(cmd, argv, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.']);
run(process.execPath, ['node_modules/vite/bin/vite.js', 'build', ...args]);

const i = args.indexOf('--outDir');
const outDir = resolve(i >= 0 ? args[i + 1] : 'dist');
const { files, gzip } = firstScreenBytes(outDir);
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
console.log(`first screen: ${files.length} files, ${kb(gzip)} gzipped (budget ${kb(BUDGET_GZIP_BYTES)})`);
if (gzip > BUDGET_GZIP_BYTES) {
  console.error(`the first screen ships ${kb(gzip)} gzipped, over the ${kb(BUDGET_GZIP_BYTES)} budget:`);
  for (const f of files) console.error(`  ${f.path} ${kb(f.gzip)}`);
  process.exit(1);
}
