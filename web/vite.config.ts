import { defineConfig } from 'vite';

// The console is served by `ckp serve` from the same origin. `npm run dev` proxies the API to a running ckp
// (CKP_URL, default http://127.0.0.1:8000) so streams stay unbuffered in development too.
const target = process.env.CKP_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
  esbuild: { jsx: 'automatic' },
  // `^/api/`, not `/api`: a prefix would also send the console's own /api-keys page to ckp.
  server: { proxy: { '^/api/': { target, changeOrigin: false } } },
  build: {
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
    // Report what the first screen ships (gzipped): checked by scripts/check-size.mjs after the build.
    reportCompressedSize: true,
    manifest: true,
  },
});
