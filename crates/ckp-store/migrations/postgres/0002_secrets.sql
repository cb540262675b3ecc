-- ckp's own secrets store (the `db` provider, /api/secrets): values sealed with AES-256-GCM by the server before
-- they reach the store, which never sees a clear value. Tags as a JSON array.
CREATE TABLE secrets (
    secret_id     text PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    sealed_value  text NOT NULL,
    description   text,
    provider_hint text NOT NULL DEFAULT 'db',
    tags          text NOT NULL DEFAULT '[]',
    created_by    text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
