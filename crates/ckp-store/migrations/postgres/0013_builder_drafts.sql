-- The console's builder drafts, as in the SQLite store's migration 0011.
CREATE TABLE builder_drafts (
    procedure_id text NOT NULL,
    version text NOT NULL,
    draft_json text NOT NULL,
    revision bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text,
    PRIMARY KEY (procedure_id, version)
);
