-- ckp's own secrets store (the `db` provider, /api/secrets): values sealed with AES-256-GCM by the server before
-- they reach the store, which never sees a clear value.
CREATE TABLE secrets (
    secret_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    sealed_value TEXT NOT NULL,
    description TEXT,
    provider_hint TEXT NOT NULL DEFAULT 'db',
    tags TEXT NOT NULL DEFAULT '[]',
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
