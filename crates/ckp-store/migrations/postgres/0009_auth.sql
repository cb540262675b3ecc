-- Authentication: users and their project grants, API keys, sign-in sessions, the server's signing keys and the
-- audit log, as in the SQLite store's migration 0007. The store keeps hashes only (PHC strings for passwords,
-- SHA-256 hex for API keys and refresh tokens).
CREATE TABLE users (
    user_id       text PRIMARY KEY,
    username      text NOT NULL,
    email         text,
    full_name     text,
    password_hash text,
    role          text,
    is_active     boolean NOT NULL DEFAULT true,
    sso_provider  text,
    sso_subject   text,
    -- Incremented to end every session of the user.
    token_version bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT users_username UNIQUE (username)
);
-- The store maps a violation of these constraints to a conflict by their names.
CREATE UNIQUE INDEX users_email ON users (email) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX users_identity ON users (sso_provider, sso_subject) WHERE sso_subject IS NOT NULL;

CREATE TABLE project_grants (
    user_id    text NOT NULL REFERENCES users (user_id),
    project_id text NOT NULL REFERENCES projects (project_id),
    role       text NOT NULL,
    PRIMARY KEY (user_id, project_id)
);
CREATE INDEX project_grants_project ON project_grants (project_id);

-- Keys outlive their owner (revoked when the owner is deleted), so `owner` is not a foreign key.
CREATE TABLE api_keys (
    key_id       text PRIMARY KEY,
    name         text NOT NULL,
    prefix       text NOT NULL,
    hash         text NOT NULL,
    owner        text,
    role         text NOT NULL,
    project_id   text,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_hash UNIQUE (hash)
);
CREATE INDEX api_keys_owner ON api_keys (owner, created_at);

CREATE TABLE sessions (
    session_id    text PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users (user_id),
    token_version bigint NOT NULL,
    refresh_hash  text NOT NULL,
    method        text NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE server_keys (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE audit_events (
    event_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts            timestamptz NOT NULL,
    category      text NOT NULL,
    action        text NOT NULL,
    actor         text NOT NULL,
    credential    text,
    source_ip     text,
    resource_type text,
    resource_id   text,
    outcome       bigint NOT NULL,
    description   text NOT NULL,
    meta          text NOT NULL
);
CREATE INDEX audit_events_ts ON audit_events (ts);
