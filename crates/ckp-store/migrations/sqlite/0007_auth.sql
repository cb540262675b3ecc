-- Authentication: users and their project grants, API keys, sign-in sessions, the server's signing keys and the
-- audit log. The store keeps hashes only (PHC strings for passwords, SHA-256 hex for API keys and refresh tokens).
-- Times are text as the store shows them (RFC 3339 UTC with microseconds), so text order is time order.
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    email         TEXT,
    full_name     TEXT,
    password_hash TEXT,
    role          TEXT,
    is_active     INTEGER NOT NULL DEFAULT 1,
    sso_provider  TEXT,
    sso_subject   TEXT,
    -- Incremented to end every session of the user.
    token_version INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    CONSTRAINT users_username UNIQUE (username)
) STRICT;
CREATE UNIQUE INDEX users_email ON users (email) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX users_identity ON users (sso_provider, sso_subject) WHERE sso_subject IS NOT NULL;

CREATE TABLE project_grants (
    user_id    TEXT NOT NULL REFERENCES users (user_id),
    project_id TEXT NOT NULL REFERENCES projects (project_id),
    role       TEXT NOT NULL,
    PRIMARY KEY (user_id, project_id)
) STRICT;
CREATE INDEX project_grants_project ON project_grants (project_id);

-- Keys outlive their owner (revoked when the owner is deleted), so `owner` is not a foreign key.
CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL,
    owner        TEXT,
    role         TEXT NOT NULL,
    project_id   TEXT,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT,
    CONSTRAINT api_keys_hash UNIQUE (hash)
) STRICT;
CREATE INDEX api_keys_owner ON api_keys (owner, created_at);

CREATE TABLE sessions (
    session_id    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (user_id),
    token_version INTEGER NOT NULL,
    refresh_hash  TEXT NOT NULL,
    method        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    revoked_at    TEXT
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE audit_events (
    event_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts            TEXT NOT NULL,
    category      TEXT NOT NULL,
    action        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    credential    TEXT,
    source_ip     TEXT,
    resource_type TEXT,
    resource_id   TEXT,
    outcome       INTEGER NOT NULL,
    description   TEXT NOT NULL,
    meta          TEXT NOT NULL
) STRICT;
CREATE INDEX audit_events_ts ON audit_events (ts);
