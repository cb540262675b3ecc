import { defineConfig } from 'vite';

// The console is served by `ckp serve` from the same origin. `npm run dev` proxies the API to a running ckp
// (CKP_URL, default http://127.0.0.1:8000) so streams stay unbuffered in development too.
const target = process.env.CKP_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
  esbuild: { jsx: 'automatic' },
  server: {
    // The builder's templates import the CKP documents of ../examples.
    fs: { allow: ['.', '../examples'] },
    proxy: {
      // `^/api/`, not `/api`: a prefix would also send the console's own /api-keys page to ckp.
      '^/api/': {
        target,
        changeOrigin: false,
        // Node sends a response's headers with its first body chunk: an event stream with nothing to say yet would
        // stay "connecting" (EventSource opens on the headers). Send them at once.
        configure: (proxy) =>
          proxy.on('proxyRes', (proxyRes, _req, res) => {
            if (!String(proxyRes.headers['content-type'] ?? '').startsWith('text/event-stream')) return;
            res.writeHead(proxyRes.statusCode ?? 200, proxyRes.headers);
            res.flushHeaders();
          }),
      },
    },
  },
  build: {
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
    // Report what the first screen ships (gzipped): checked by scripts/check-size.mjs after the build.
    reportCompressedSize: true,
    manifest: true,
  },
});
