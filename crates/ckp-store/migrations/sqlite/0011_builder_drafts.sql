-- The console's builder drafts: one per procedure version (LangOrch's builder_draft_json), with a revision that
-- increases on every write so that two editors get a conflict instead of overwriting each other.
CREATE TABLE builder_drafts (
    procedure_id TEXT NOT NULL,
    version TEXT NOT NULL,
    draft_json TEXT NOT NULL,
    revision INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT,
    PRIMARY KEY (procedure_id, version)
) WITHOUT ROWID;
