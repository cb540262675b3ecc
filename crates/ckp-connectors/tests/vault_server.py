#!/usr/bin/env python3
"""A small HTTP server speaking the parts of HashiCorp Vault's API that ckp's vault provider uses, for tests.

KV v2 mounted at `secret/`, KV v1 at `kv/`, the AppRole auth method at `auth/approle/`. Python 3 standard library
only. Prints `PORT <n>` on stdout once listening on 127.0.0.1 (port chosen by the OS).

Arguments: ROOT_TOKEN ROLE_ID SECRET_ID LEASE_SECONDS
Test hooks (root token only): POST /v1/sys/test/revoke (revokes every AppRole token), GET /v1/sys/test/stats.
"""

import json
import sys
import threading
import time
import uuid

from json_server import JsonHandler, serve

ROOT, ROLE_ID, SECRET_ID, LEASE = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
LOCK = threading.Lock()
KV2 = {}  # path -> dict
KV1 = {}
TOKENS = {}  # approle token -> expiry (monotonic)
STATS = {"logins": 0, "reads": 0, "denied": 0}


class Handler(JsonHandler):
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def token_ok(self, root_only=False):
        token = self.headers.get("X-Vault-Token", "")
        if token == ROOT:
            return True
        with LOCK:
            ok = not root_only and token in TOKENS and TOKENS[token] > time.monotonic()
            if not ok:
                STATS["denied"] += 1
        if not ok:
            self.reply(403, {"errors": ["permission denied"]})
        return ok

    def do_POST(self):
        path = self.path
        if path == "/v1/auth/approle/login":
            b = self.body()
            if b.get("role_id") != ROLE_ID or b.get("secret_id") != SECRET_ID:
                return self.reply(400, {"errors": ["invalid role or secret ID"]})
            token = "hvs." + uuid.uuid4().hex
            with LOCK:
                TOKENS[token] = time.monotonic() + LEASE
                STATS["logins"] += 1
            return self.reply(200, {"auth": {"client_token": token, "lease_duration": LEASE, "renewable": True}})
        if path == "/v1/sys/test/revoke":
            if self.token_ok(root_only=True):
                with LOCK:
                    TOKENS.clear()
                self.reply(204, {})
            return
        if not self.token_ok(root_only=True):
            return
        if path.startswith("/v1/secret/data/"):
            KV2[path[len("/v1/secret/data/"):]] = self.body()["data"]
            return self.reply(200, {"data": {"version": 1}})
        if path.startswith("/v1/kv/"):
            KV1[path[len("/v1/kv/"):]] = self.body()
            return self.reply(204, {})
        self.reply(404, {"errors": []})

    do_PUT = do_POST

    def do_GET(self):
        if self.path == "/v1/sys/test/stats":
            if self.token_ok(root_only=True):
                with LOCK:
                    self.reply(200, dict(STATS))
            return
        if not self.token_ok():
            return
        with LOCK:
            STATS["reads"] += 1
        if self.path.startswith("/v1/secret/data/"):
            data = KV2.get(self.path[len("/v1/secret/data/"):])
            if data is None:
                return self.reply(404, {"errors": []})
            return self.reply(200, {"data": {"data": data, "metadata": {"version": 1}}})
        if self.path.startswith("/v1/kv/"):
            data = KV1.get(self.path[len("/v1/kv/"):])
            if data is None:
                return self.reply(404, {"errors": []})
            return self.reply(200, {"data": data, "lease_duration": 2764800})
        self.reply(404, {"errors": []})


serve(Handler)
