//! Versioned schema, identical (logically) on both backends.
//!
//! Migrations are applied in order at open, inside one transaction together with the rows in
//! `schema_version`; on PostgreSQL concurrent openers (replicas starting together) serialise on a
//! transaction-scoped advisory lock. A database whose version is newer than this build knows is
//! refused rather than written to.
//!
//! Only append new migrations; never edit a released one.
use crate::StoreError;

#[derive(Debug)]
pub(crate) struct Migration {
    pub version: i32,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

pub(crate) const SCHEMA_VERSION_SQLITE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
) STRICT";

pub(crate) const SCHEMA_VERSION_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
CREATE TABLE objects (
    id         TEXT PRIMARY KEY,
    share      BLOB NOT NULL,
    commitment BLOB NOT NULL,
    access     BLOB NOT NULL,
    owner      BLOB NOT NULL,
    audience   BLOB NOT NULL,
    meta       BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE secrets (
    name_hash  TEXT PRIMARY KEY,
    name       BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    object_id  TEXT NOT NULL REFERENCES objects (id),
    version    INTEGER NOT NULL,
    owner      BLOB NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX secrets_object_id ON secrets (object_id);
CREATE TABLE apps (
    id         TEXT PRIMARY KEY,
    name_hash  TEXT NOT NULL UNIQUE,
    name       BLOB NOT NULL,
    token_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE audit (
    seq     INTEGER PRIMARY KEY,
    time    INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail  TEXT NOT NULL,
    mac     TEXT NOT NULL
) STRICT;
CREATE TABLE audit_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    mac TEXT NOT NULL,
    tag TEXT NOT NULL
) STRICT;
",
        postgres: "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE objects (
    id         TEXT PRIMARY KEY,
    share      BYTEA NOT NULL,
    commitment BYTEA NOT NULL,
    access     BYTEA NOT NULL,
    owner      BYTEA NOT NULL,
    audience   BYTEA NOT NULL,
    meta       BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE secrets (
    name_hash  TEXT PRIMARY KEY,
    name       BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    object_id  TEXT NOT NULL REFERENCES objects (id),
    version    BIGINT NOT NULL,
    owner      BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX secrets_object_id ON secrets (object_id);
CREATE TABLE apps (
    id         TEXT PRIMARY KEY,
    name_hash  TEXT NOT NULL UNIQUE,
    name       BYTEA NOT NULL,
    token_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE audit (
    seq     BIGINT PRIMARY KEY,
    time    BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail  TEXT NOT NULL,
    mac     TEXT NOT NULL
);
CREATE TABLE audit_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    mac TEXT NOT NULL,
    tag TEXT NOT NULL
);
",
    },
    // Workload identity: the CA (sealed), registration entries, join tokens (hashes only) and
    // attested nodes. Entries and nodes are configuration, so their columns are plain.
    Migration {
        version: 2,
        sqlite: "
CREATE TABLE identity_ca (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    material   BLOB NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE TABLE entries (
    id         TEXT PRIMARY KEY,
    spiffe_id  TEXT NOT NULL,
    parent_id  TEXT NOT NULL,
    body       BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX entries_parent_id ON entries (parent_id);
CREATE TABLE join_tokens (
    token_hash TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE nodes (
    spiffe_id  TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) STRICT;
",
        postgres: "
CREATE TABLE identity_ca (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    material   BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE entries (
    id         TEXT PRIMARY KEY,
    spiffe_id  TEXT NOT NULL,
    parent_id  TEXT NOT NULL,
    body       BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX entries_parent_id ON entries (parent_id);
CREATE TABLE join_tokens (
    token_hash TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE nodes (
    spiffe_id  TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
",
    },
    // The current identity document of each app: instance documents are issued only under it,
    // so a re-issued (narrowed) document supersedes the old one at once. Versions only grow.
    Migration {
        version: 3,
        sqlite: "
CREATE TABLE app_documents (
    app_id     TEXT PRIMARY KEY REFERENCES apps (id),
    version    INTEGER NOT NULL,
    document   BLOB NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
",
        postgres: "
CREATE TABLE app_documents (
    app_id     TEXT PRIMARY KEY REFERENCES apps (id),
    version    BIGINT NOT NULL,
    document   BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
",
    },
    // Proof-of-possession tokens: signing keys (sealed private keys; one active key per
    // purpose, enforced by a partial unique index), issued-token records (binding, subject,
    // audience and scope sealed; the subject also as a lookup hash for revocation) and the
    // one-row counter that hands out status-list indexes.
    Migration {
        version: 4,
        sqlite: "
CREATE TABLE token_keys (
    kid        TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    material   BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
) STRICT;
CREATE UNIQUE INDEX token_keys_one_active ON token_keys (purpose) WHERE retired_at IS NULL;
CREATE TABLE tokens (
    jti              TEXT PRIMARY KEY,
    status_idx       INTEGER NOT NULL UNIQUE,
    subject_hash     TEXT NOT NULL,
    body             BLOB NOT NULL,
    issued_at        INTEGER NOT NULL,
    chain_started_at INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    revoked          INTEGER NOT NULL,
    replaced_by      TEXT
) STRICT;
CREATE INDEX tokens_subject_hash ON tokens (subject_hash);
CREATE TABLE token_status_counter (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    next_idx INTEGER NOT NULL
) STRICT;
INSERT INTO token_status_counter (id, next_idx) VALUES (1, 0);
",
        postgres: "
CREATE TABLE token_keys (
    kid        TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    material   BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE UNIQUE INDEX token_keys_one_active ON token_keys (purpose) WHERE retired_at IS NULL;
CREATE TABLE tokens (
    jti              TEXT PRIMARY KEY,
    status_idx       BIGINT NOT NULL UNIQUE,
    subject_hash     TEXT NOT NULL,
    body             BYTEA NOT NULL,
    issued_at        BIGINT NOT NULL,
    chain_started_at BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    revoked          BOOLEAN NOT NULL,
    replaced_by      TEXT
);
CREATE INDEX tokens_subject_hash ON tokens (subject_hash);
CREATE TABLE token_status_counter (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    next_idx BIGINT NOT NULL
);
INSERT INTO token_status_counter (id, next_idx) VALUES (1, 0);
",
    },
];

/// The newest version this build knows.
pub(crate) fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Migrations still to apply on a database at `current`; refuses a newer database.
pub(crate) fn pending(
    current: i64,
) -> Result<impl Iterator<Item = &'static Migration>, StoreError> {
    if current > i64::from(latest()) {
        return Err(StoreError::Internal(format!(
            "database schema version {current} is newer than this build supports ({})",
            latest()
        )));
    }
    Ok(MIGRATIONS
        .iter()
        .filter(move |m| i64::from(m.version) > current))
}
