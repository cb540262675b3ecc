"""What the test peers under this folder share (python3 standard library only): a quiet request handler that
answers JSON, and serving on 127.0.0.1 on a port chosen by the OS, printed as `PORT <n>` once listening (what
`tests/it/peers.rs` waits for)."""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print("PORT", server.server_address[1], flush=True)
    server.serve_forever()
