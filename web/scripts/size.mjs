// What the first screen ships, gzipped: the entry chunk and the dashboard page's chunk (the page `/` shows), each
// with every chunk and style sheet it imports statically, read from Vite's build manifest.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const BUDGET_GZIP_BYTES = 300 * 1024;
const FIRST_PAGE = 'src/pages/Dashboard.tsx';

export function firstScreenBytes(outDir) {
  const manifest = JSON.parse(readFileSync(join(outDir, '.vite', 'manifest.json'), 'utf8'));
  const files = new Set();
  const visit = (key) => {
    const chunk = manifest[key];
    if (!chunk || files.has(chunk.file)) return;
    files.add(chunk.file);
    for (const css of chunk.css ?? []) files.add(css);
    for (const dep of chunk.imports ?? []) visit(dep);
  };
  for (const [key, chunk] of Object.entries(manifest)) if (chunk.isEntry) visit(key);
  visit(FIRST_PAGE);
  const list = [...files].map((path) => ({ path, gzip: gzipSync(readFileSync(join(outDir, path)), { level: 9 }).length }));
  return { files: list, gzip: list.reduce((n, f) => n + f.gzip, 0) };
}
