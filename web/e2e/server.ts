// Global setup: starts `ckp serve` (CKP_BIN, built by cargo) on 127.0.0.1:0 with a fresh data directory, waits
// for "listening on http://ADDR", and hands the address to the tests in CKP_BASE_URL. Returns the teardown.
// With CKP_E2E_VITE=1 the pages come from Vite's dev server (proxying /api to that ckp) instead of the binary:
// for working on the console without rebuilding the binary.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default async function setup(): Promise<() => Promise<void>> {
  const bin = process.env.CKP_BIN;
  if (!bin) throw new Error('CKP_BIN must name the ckp binary (scripts/test sets it)');
  const dir = mkdtempSync(join(tmpdir(), 'ckp-e2e-'));
  const child = spawn(bin, ['serve', '--bind', '127.0.0.1:0', '--data-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // A fresh key sealing `/api/secrets` values (without one, secret writes answer 503).
    env: {
      ...process.env,
      CKP_LOG: process.env.CKP_LOG ?? 'warn',
      CKP_SECRETS_ENCRYPTION_KEY: process.env.CKP_SECRETS_ENCRYPTION_KEY ?? randomBytes(32).toString('hex'),
    },
  });
  let log = '';
  child.stderr.on('data', (d) => (log += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ckp serve did not start within 30 s:\n${log}`)), 30_000);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`ckp serve exited with ${code}:\n${log}`)));
  });
  process.env.CKP_API_URL = url;
  process.env.CKP_BASE_URL = url;
  process.env.CKP_E2E_DATA = dir;
  let vite: ReturnType<typeof spawn> | null = null;
  if (process.env.CKP_E2E_VITE === '1') {
    const port = String(20000 + Math.floor(Math.random() * 20000));
    vite = spawn(process.execPath, ['node_modules/vite/bin/vite.js', '--port', port, '--strictPort', '--host', '127.0.0.1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CKP_URL: url },
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('vite did not start within 30 s')), 30_000);
      vite!.stdout!.on('data', (d) => {
        if (String(d).includes(port)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    process.env.CKP_BASE_URL = `http://127.0.0.1:${port}`;
  }
  return async () => {
    vite?.kill('SIGTERM');
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  };
}
