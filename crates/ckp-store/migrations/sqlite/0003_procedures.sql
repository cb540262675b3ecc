-- Imported procedures: one row per (procedure_id, version), the CKP document kept verbatim.
CREATE TABLE procedures (
    procedure_id       TEXT NOT NULL,
    version            TEXT NOT NULL,
    name               TEXT NOT NULL,
    status             TEXT NOT NULL,
    effective_date     TEXT,
    description        TEXT,
    project_id         TEXT,
    ckp_json           TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (procedure_id, version)
) STRICT;
CREATE INDEX procedures_by_age ON procedures (procedure_id, created_at);
