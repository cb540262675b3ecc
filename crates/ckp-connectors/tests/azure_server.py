#!/usr/bin/env python3
"""A small HTTP server speaking the parts of Azure's identity platform and Key Vault REST API that ckp's azure
provider uses, for tests (python3 standard library only). It is both the authority (`POST /{tenant}/oauth2/v2.0/token`,
client-credentials grant) and the vault (`GET /secrets/{name}?api-version=7.4` with a bearer token). Prints
`PORT <n>` once listening on 127.0.0.1.

Arguments: TENANT CLIENT_ID CLIENT_SECRET NAME=VALUE...
Test hooks: POST /test/revoke (every token becomes invalid), GET /test/stats.
"""

import sys
import threading
import uuid
from urllib.parse import parse_qs, urlparse

from json_server import JsonHandler, serve

TENANT, CLIENT_ID, CLIENT_SECRET = sys.argv[1], sys.argv[2], sys.argv[3]
SECRETS = dict(arg.split("=", 1) for arg in sys.argv[4:])
LOCK = threading.Lock()
TOKENS = set()
STATS = {"tokens": 0, "unauthorized": 0}


class Handler(JsonHandler):
    def do_POST(self):
        url = urlparse(self.path)
        if url.path == "/test/revoke":
            with LOCK:
                TOKENS.clear()
            return self.reply(200, {})
        if url.path == f"/{TENANT}/oauth2/v2.0/token":
            n = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
            ok = (form.get("grant_type") == "client_credentials" and form.get("client_id") == CLIENT_ID
                  and form.get("client_secret") == CLIENT_SECRET
                  and form.get("scope") == "https://vault.azure.net/.default")
            if not ok:
                return self.reply(401, {"error": "invalid_client"})
            token = uuid.uuid4().hex
            with LOCK:
                TOKENS.add(token)
                STATS["tokens"] += 1
            return self.reply(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": token})
        self.reply(404, {"error": "not found"})

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/test/stats":
            with LOCK:
                return self.reply(200, dict(STATS))
        auth = self.headers.get("Authorization", "")
        with LOCK:
            valid = auth.startswith("Bearer ") and auth[7:] in TOKENS
            if not valid:
                STATS["unauthorized"] += 1
        if not valid:
            return self.reply(401, {"error": {"code": "Unauthorized"}})
        if url.path.startswith("/secrets/") and parse_qs(url.query).get("api-version") == ["7.4"]:
            name = url.path[len("/secrets/"):]
            if name not in SECRETS:
                return self.reply(404, {"error": {"code": "SecretNotFound"}})
            return self.reply(200, {"value": SECRETS[name], "id": f"https://vault/secrets/{name}/1"})
        self.reply(400, {"error": {"code": "BadParameter"}})


serve(Handler)
