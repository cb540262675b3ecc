// Fails when src/api/schema.d.ts is not what openapi-typescript generates from openapi.json (the served API
// document, kept up to date by ckp-server's test `web_openapi_json_is_up_to_date`). Fix: `npm run gen:api`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'ckp-api-'));
const out = join(dir, 'schema.d.ts');
const r = spawnSync(process.execPath, ['node_modules/openapi-typescript/bin/cli.js', 'openapi.json', '-o', out], { encoding: 'utf8' });
if (r.status !== 0) {
  console.error(r.stdout, r.stderr);
  process.exit(1);
}
const fresh = readFileSync(out, 'utf8');
rmSync(dir, { recursive: true, force: true });
if (fresh !== readFileSync('src/api/schema.d.ts', 'utf8')) {
  console.error('web/src/api/schema.d.ts is stale: it does not match web/openapi.json. Run `npm run gen:api` in web/.');
  process.exit(1);
}
console.log('web/src/api/schema.d.ts matches web/openapi.json');
