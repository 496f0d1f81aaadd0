//! PostgreSQL backend (tokio-postgres + deadpool-postgres), for any number of server replicas
//! sharing one database.
//!
//! Transactions run at `READ COMMITTED`. Every mutating transaction does its data statements
//! first and then appends its audit entry, locking the one-row `audit_head` table with
//! `SELECT ... FOR UPDATE`: appends from all replicas are serialised, so the log stays one valid
//! chain, and the lock is held only from the append to `COMMIT`. Nothing waits for a row lock
//! while holding the head, so the head cannot take part in a deadlock. The writes on every
//! request's path (`put_object`, `append_audit`) share transactions through a group commit
//! (`group_commit.rs`), so the head is taken once per batch instead of once per request.
//!
//! Connections use `NoTls`: this is meant for a database on the same host or private network
//! segment. In production, reach PostgreSQL over a unix socket (`host=/var/run/postgresql`) or
//! put TLS in front of it; the data itself is sealed either way, but credentials and metadata
//! are not. A connect timeout of 2 s applies unless the URL sets `connect_timeout`.
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use daas_crypto::ObjectId;
use daas_crypto::storage::StorageKeys;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls, Row};
use zeroize::Zeroizing;

use crate::audit_log::{Chain, HeadRow, RawEntry, Verifier, to_db_seq};
use crate::codec::{
    self, AppRow, ObjectRow, RevokeBy, SecretRow, TOKEN_COLUMNS, TOKEN_KEY_COLUMNS, TokenKeyRow,
    TokenRow,
};
use group_commit::{GroupCommit, Write};

mod group_commit;

use crate::{
    AppDocumentRecord, AppRecord, AuditEntry, AuditEvent, AuditReport, EntryRecord,
    JoinTokenRecord, JoinTokenUse, NodeRecord, ObjectRecord, SecretRecord, SecretSummary,
    StoreError, schema,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const POOL_SIZE: usize = 16;
/// How long a caller waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// Rows per page when walking the audit log.
const VERIFY_PAGE: i64 = 1000;

/// A database failure, described without SQL text or values.
#[derive(Debug, thiserror::Error)]
#[error("postgres: {0}")]
struct PgFailure(String);

fn unavailable(what: String) -> StoreError {
    tracing::warn!(error = %what, "postgres unavailable");
    StoreError::Unavailable(Box::new(PgFailure(what)))
}

/// Map a driver error to the store's error classes. Server messages may quote values (e.g. the
/// key of a unique violation), so only the SQLSTATE code is kept for database errors.
fn pg_err(e: tokio_postgres::Error) -> StoreError {
    let Some(code) = e.code() else {
        // No SQLSTATE: I/O, closed connection, timeout, protocol.
        return unavailable(e.to_string());
    };
    if *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::FOREIGN_KEY_VIOLATION {
        return StoreError::Conflict;
    }
    let class = code.code().get(..2).unwrap_or_default();
    match class {
        // Connection exception, insufficient resources, operator intervention (shutdown,
        // cancel), transaction rollback (serialization failure, deadlock): retryable.
        "08" | "53" | "57" | "40" => unavailable(format!("sqlstate {}", code.code())),
        // Read-only transaction: we are talking to a standby (failover in progress).
        _ if *code == SqlState::READ_ONLY_SQL_TRANSACTION => {
            unavailable(format!("sqlstate {}", code.code()))
        }
        _ => {
            tracing::error!(sqlstate = code.code(), "postgres error");
            StoreError::Internal(format!("postgres error (sqlstate {})", code.code()))
        }
    }
}

fn pool_err(e: PoolError) -> StoreError {
    match e {
        // Failing to establish a connection is unavailability, whatever the server's reason
        // (refusing connections, shutting down, authentication or database gone).
        PoolError::Backend(e) => match pg_err(e) {
            StoreError::Internal(what) => unavailable(what),
            other => other,
        },
        PoolError::Timeout(t) => unavailable(format!("connection pool timeout ({t:?})")),
        PoolError::Closed => unavailable("connection pool closed".into()),
        other => unavailable(format!("connection pool: {other}")),
    }
}

trait Pg<T> {
    fn db(self) -> Result<T, StoreError>;
}
impl<T> Pg<T> for Result<T, tokio_postgres::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(pg_err)
    }
}

/// PostgreSQL store: cheap to clone (shares one connection pool).
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    keys: StorageKeys,
    /// The batched path of `put_object` and `append_audit`.
    writes: GroupCommit,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("PgStore")
            .field("pool_size", &status.size)
            .field("pool_max", &status.max_size)
            .finish_non_exhaustive()
    }
}

type Tx<'a> = deadpool_postgres::Transaction<'a>;

const OBJECT_COLUMNS: &str = "id, share, commitment, access, owner, audience, meta, created_at";

fn object_row(r: &Row, first: usize) -> Result<ObjectRow, StoreError> {
    Ok(ObjectRow {
        id: r.try_get(first).db()?,
        share: r.try_get(first + 1).db()?,
        commitment: r.try_get(first + 2).db()?,
        access: r.try_get(first + 3).db()?,
        owner: r.try_get(first + 4).db()?,
        audience: r.try_get(first + 5).db()?,
        meta: r.try_get(first + 6).db()?,
        created_at: r.try_get(first + 7).db()?,
    })
}

fn app_row(r: &Row) -> Result<AppRow, StoreError> {
    Ok(AppRow {
        id: r.try_get(0).db()?,
        name_hash: r.try_get(1).db()?,
        name: r.try_get(2).db()?,
        token_hash: r.try_get(3).db()?,
        created_at: r.try_get(4).db()?,
    })
}

fn token_key_row(r: &Row) -> Result<TokenKeyRow, StoreError> {
    Ok(TokenKeyRow {
        kid: r.try_get(0).db()?,
        purpose: r.try_get(1).db()?,
        material: r.try_get(2).db()?,
        created_at: r.try_get(3).db()?,
        retired_at: r.try_get(4).db()?,
    })
}

/// Insert a token key; with `unless_active`, nothing (0) when its purpose has an active key.
async fn insert_token_key(
    tx: &Tx<'_>,
    row: &TokenKeyRow,
    unless_active: bool,
) -> Result<u64, StoreError> {
    let sql = format!(
        "INSERT INTO token_keys ({TOKEN_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5){}",
        if unless_active {
            " ON CONFLICT DO NOTHING"
        } else {
            ""
        }
    );
    let stmt = tx.prepare_cached(&sql).await.db()?;
    tx.execute(
        &stmt,
        &[
            &row.kid,
            &row.purpose,
            &row.material,
            &row.created_at,
            &row.retired_at,
        ],
    )
    .await
    .db()
}

fn token_row(r: &Row) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        jti: r.try_get(0).db()?,
        status_idx: r.try_get(1).db()?,
        subject_hash: r.try_get(2).db()?,
        body: r.try_get(3).db()?,
        issued_at: r.try_get(4).db()?,
        chain_started_at: r.try_get(5).db()?,
        expires_at: r.try_get(6).db()?,
        revoked: r.try_get(7).db()?,
        replaced_by: r.try_get(8).db()?,
    })
}

/// Take the next status index (the counter row is locked until commit, so indexes are handed
/// out in commit order across replicas) and insert `row` under it; returns the index.
async fn insert_token_row(tx: &Tx<'_>, mut row: TokenRow) -> Result<i64, StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE token_status_counter SET next_idx = next_idx + 1 WHERE id = 1
             RETURNING next_idx - 1",
        )
        .await
        .db()?;
    row.status_idx = tx.query_one(&stmt, &[]).await.db()?.try_get(0).db()?;
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .await
        .db()?;
    tx.execute(
        &stmt,
        &[
            &row.jti,
            &row.status_idx,
            &row.subject_hash,
            &row.body,
            &row.issued_at,
            &row.chain_started_at,
            &row.expires_at,
            &row.revoked,
            &row.replaced_by,
        ],
    )
    .await
    .db()?;
    Ok(row.status_idx)
}

const ENTRY_COLUMNS: &str = "id, spiffe_id, parent_id, body, created_at";

fn entry_row(r: &Row) -> Result<EntryRecord, StoreError> {
    Ok(EntryRecord {
        id: r.try_get(0).db()?,
        spiffe_id: r.try_get(1).db()?,
        parent_id: r.try_get(2).db()?,
        body: r.try_get(3).db()?,
        created_at: r.try_get(4).db()?,
    })
}

fn node_row(r: &Row) -> Result<NodeRecord, StoreError> {
    Ok(NodeRecord {
        spiffe_id: r.try_get(0).db()?,
        created_at: r.try_get(1).db()?,
    })
}

fn raw_entry(r: &Row) -> Result<RawEntry, StoreError> {
    Ok(RawEntry {
        seq: r.try_get(0).db()?,
        time: r.try_get(1).db()?,
        event: AuditEvent {
            actor: r.try_get(2).db()?,
            action: r.try_get(3).db()?,
            target: r.try_get(4).db()?,
            outcome: r.try_get(5).db()?,
            detail: r.try_get(6).db()?,
        },
        mac: r.try_get(7).db()?,
    })
}

fn head_row(r: &Row) -> Result<HeadRow, StoreError> {
    Ok(HeadRow {
        seq: r.try_get(0).db()?,
        mac: r.try_get(1).db()?,
        tag: r.try_get(2).db()?,
    })
}

/// Lock the chain head for the rest of `tx` and load it.
async fn lock_chain(tx: &Tx<'_>, keys: &StorageKeys) -> Result<Chain, StoreError> {
    let stmt = tx
        .prepare_cached("SELECT seq, mac, tag FROM audit_head WHERE id = 1 FOR UPDATE")
        .await
        .db()?;
    let row = tx
        .query_opt(&stmt, &[])
        .await
        .db()?
        .ok_or_else(|| codec::integrity("audit_head", "seq"))?;
    Chain::from_head(keys, &head_row(&row)?)
}

/// Insert chained entries (one statement however many) and move the head to `chain`.
async fn store_entries(
    tx: &Tx<'_>,
    keys: &StorageKeys,
    entries: &[AuditEntry],
    chain: &Chain,
) -> Result<(), StoreError> {
    let seqs = entries
        .iter()
        .map(|e| to_db_seq(e.seq))
        .collect::<Result<Vec<i64>, _>>()?;
    let column = |f: fn(&AuditEntry) -> &str| entries.iter().map(f).collect::<Vec<&str>>();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO audit (seq, time, actor, action, target, outcome, detail, mac)
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::text[])",
        )
        .await
        .db()?;
    tx.execute(
        &stmt,
        &[
            &seqs,
            &entries.iter().map(|e| e.time).collect::<Vec<i64>>(),
            &column(|e| e.event.actor.as_str()),
            &column(|e| e.event.action.as_str()),
            &column(|e| e.event.target.as_str()),
            &column(|e| e.event.outcome.as_str()),
            &column(|e| e.event.detail.as_str()),
            &column(|e| e.mac.as_str()),
        ],
    )
    .await
    .db()?;
    let head = chain.head_row(keys)?;
    let stmt = tx
        .prepare_cached("UPDATE audit_head SET seq = $1, mac = $2, tag = $3 WHERE id = 1")
        .await
        .db()?;
    tx.execute(&stmt, &[&head.seq, &head.mac, &head.tag])
        .await
        .db()?;
    Ok(())
}

/// Append `event` to the chain inside `tx` (locks the chain head until commit). Returns its seq.
async fn append(tx: &Tx<'_>, keys: &StorageKeys, event: &AuditEvent) -> Result<u64, StoreError> {
    let mut chain = lock_chain(tx, keys).await?;
    let e = chain.append(keys, event)?;
    store_entries(tx, keys, std::slice::from_ref(&e), &chain).await?;
    Ok(e.seq)
}

async fn insert_object(tx: &Tx<'_>, row: &ObjectRow) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO objects (id, share, commitment, access, owner, audience, meta, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await
        .db()?;
    tx.execute(
        &stmt,
        &[
            &row.id,
            &row.share,
            &row.commitment,
            &row.access,
            &row.owner,
            &row.audience,
            &row.meta,
            &row.created_at,
        ],
    )
    .await
    .db()?;
    Ok(())
}

async fn delete_object_row(tx: &Tx<'_>, id: &str) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached("DELETE FROM objects WHERE id = $1")
        .await
        .db()?;
    if tx.execute(&stmt, &[&id]).await.db()? == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

impl PgStore {
    pub(crate) async fn open(url: &str, keys: StorageKeys) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|_| StoreError::InvalidUrl("malformed postgres url".into()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("daas");
        }
        config.keepalives(true);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT + Duration::from_secs(1)))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|_| {
                StoreError::Internal("cannot build the postgres connection pool".into())
            })?;
        let writes = GroupCommit::start(pool.clone(), keys.clone());
        let store = Self {
            inner: Arc::new(Inner { pool, keys, writes }),
        };
        store.migrate().await?;
        tracing::info!("postgres store open");
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.inner.pool.get().await.map_err(pool_err)
    }

    pub(crate) fn keys(&self) -> &StorageKeys {
        &self.inner.keys
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let keys = self.keys();
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        // Replicas opening together take turns (lock released at commit); per schema.
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(hashtext('daas-store-migrate'), hashtext(current_schema()))",
        )
        .await
        .db()?;
        tx.batch_execute(schema::SCHEMA_VERSION_POSTGRES)
            .await
            .db()?;
        let current: i32 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .await
            .db()?
            .try_get(0)
            .db()?;
        for m in schema::pending(i64::from(current))? {
            tx.batch_execute(m.postgres).await.db()?;
            tx.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                &[&m.version, &crate::audit_log::now_ms()],
            )
            .await
            .db()?;
            tracing::info!(version = m.version, "postgres schema migrated");
        }
        let check = tx
            .query_opt(
                "SELECT value FROM meta WHERE key = $1",
                &[&codec::KEY_CHECK_ROW],
            )
            .await
            .db()?;
        match check {
            Some(row) => {
                let sealed: Vec<u8> = row.try_get(0).db()?;
                codec::verify_key_check(keys, &sealed)?;
            }
            None => {
                let sealed = codec::new_key_check(keys)?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, $2)",
                    &[&codec::KEY_CHECK_ROW, &sealed],
                )
                .await
                .db()?;
            }
        }
        let head = Chain::genesis().head_row(keys)?;
        tx.execute(
            "INSERT INTO audit_head (id, seq, mac, tag) VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO NOTHING",
            &[&head.seq, &head.mac, &head.tag],
        )
        .await
        .db()?;
        tx.commit().await.db()
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.db()?;
        Ok(())
    }

    pub(crate) async fn put_object(
        &self,
        obj: &ObjectRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let row = ObjectRow::seal(self.keys(), obj)?;
        let write = Write::Object(row, audit.clone());
        self.inner.writes.submit(write).await.map(|_seq| ())
    }

    pub(crate) async fn get_object(&self, id: &ObjectId) -> Result<ObjectRecord, StoreError> {
        let id = codec::object_id_hex(id);
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {OBJECT_COLUMNS} FROM objects WHERE id = $1"
            ))
            .await
            .db()?;
        let row = client
            .query_opt(&stmt, &[&id])
            .await
            .db()?
            .ok_or(StoreError::NotFound)?;
        object_row(&row, 0)?.open(self.keys())
    }

    pub(crate) async fn set_object_access(
        &self,
        id: &ObjectId,
        access: &[String],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let id = codec::object_id_hex(id);
        let sealed = codec::seal_access(self.keys(), &id, access)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let stmt = tx
            .prepare_cached("UPDATE objects SET access = $1 WHERE id = $2")
            .await
            .db()?;
        if tx.execute(&stmt, &[&sealed, &id]).await.db()? == 0 {
            return Err(StoreError::NotFound);
        }
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()
    }

    pub(crate) async fn delete_object(
        &self,
        id: &ObjectId,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let id = codec::object_id_hex(id);
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        delete_object_row(&tx, &id).await?;
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()
    }

    pub(crate) async fn put_secret(
        &self,
        secret: &SecretRecord,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let keys = self.keys();
        let object = ObjectRow::seal(keys, &secret.object)?;
        let row = SecretRow::seal(keys, secret)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        insert_object(&tx, &object).await?;
        let select = tx
            .prepare_cached(
                "SELECT object_id, version FROM secrets WHERE name_hash = $1 FOR UPDATE",
            )
            .await
            .db()?;
        let mut version = None;
        // At most two rounds: if a concurrent writer creates the name between our SELECT and
        // INSERT, the INSERT does nothing and the next SELECT sees (and locks) its row.
        for _ in 0..2 {
            if let Some(existing) = tx.query_opt(&select, &[&row.name_hash]).await.db()? {
                let old_object: String = existing.try_get(0).db()?;
                let old_version: i64 = existing.try_get(1).db()?;
                let next = codec::u64_from_db(old_version, codec::SECRETS, "version")?
                    .checked_add(1)
                    .ok_or_else(|| StoreError::Internal("secret version exhausted".into()))?;
                let update = tx
                    .prepare_cached(
                        "UPDATE secrets SET name = $2, ciphertext = $3, object_id = $4,
                                version = $5, owner = $6, updated_at = $7
                         WHERE name_hash = $1",
                    )
                    .await
                    .db()?;
                tx.execute(
                    &update,
                    &[
                        &row.name_hash,
                        &row.name,
                        &row.ciphertext,
                        &row.object_id,
                        &codec::u64_to_db(next)?,
                        &row.owner,
                        &row.updated_at,
                    ],
                )
                .await
                .db()?;
                // Crypto-shred the previous version: its share is gone.
                delete_object_row(&tx, &old_object).await?;
                version = Some(next);
                break;
            }
            let insert = tx
                .prepare_cached(
                    "INSERT INTO secrets (name_hash, name, ciphertext, object_id, version, owner,
                                          updated_at)
                     VALUES ($1, $2, $3, $4, 1, $5, $6)
                     ON CONFLICT (name_hash) DO NOTHING",
                )
                .await
                .db()?;
            let inserted = tx
                .execute(
                    &insert,
                    &[
                        &row.name_hash,
                        &row.name,
                        &row.ciphertext,
                        &row.object_id,
                        &row.owner,
                        &row.updated_at,
                    ],
                )
                .await
                .db()?;
            if inserted == 1 {
                version = Some(1);
                break;
            }
        }
        let version = version.ok_or(StoreError::Conflict)?;
        append(&tx, keys, audit).await?;
        tx.commit().await.db()?;
        Ok(version)
    }

    pub(crate) async fn get_secret(&self, name: &str) -> Result<SecretRecord, StoreError> {
        let name_hash = codec::secret_name_hash(self.keys(), name);
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT s.name, s.ciphertext, s.version, s.updated_at,
                        o.id, o.share, o.commitment, o.access, o.owner, o.audience, o.meta,
                        o.created_at
                 FROM secrets s JOIN objects o ON o.id = s.object_id
                 WHERE s.name_hash = $1",
            )
            .await
            .db()?;
        let row = client
            .query_opt(&stmt, &[&name_hash])
            .await
            .db()?
            .ok_or(StoreError::NotFound)?;
        let name: Vec<u8> = row.try_get(0).db()?;
        let ciphertext: Vec<u8> = row.try_get(1).db()?;
        let version: i64 = row.try_get(2).db()?;
        let updated_at: i64 = row.try_get(3).db()?;
        let object = object_row(&row, 4)?;
        codec::open_secret(
            self.keys(),
            &name_hash,
            &name,
            &ciphertext,
            version,
            updated_at,
            &object,
        )
    }

    pub(crate) async fn delete_secret(
        &self,
        name: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let name_hash = codec::secret_name_hash(self.keys(), name);
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let stmt = tx
            .prepare_cached("DELETE FROM secrets WHERE name_hash = $1 RETURNING object_id")
            .await
            .db()?;
        let object_id: String = tx
            .query_opt(&stmt, &[&name_hash])
            .await
            .db()?
            .ok_or(StoreError::NotFound)?
            .try_get(0)
            .db()?;
        delete_object_row(&tx, &object_id).await?;
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()
    }

    pub(crate) async fn list_secrets(&self) -> Result<Vec<SecretSummary>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT name_hash, name, version, owner, updated_at FROM secrets")
            .await
            .db()?;
        let rows = client.query(&stmt, &[]).await.db()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let hash: String = r.try_get(0).db()?;
            let name: Vec<u8> = r.try_get(1).db()?;
            let version: i64 = r.try_get(2).db()?;
            let owner: Vec<u8> = r.try_get(3).db()?;
            let updated_at: i64 = r.try_get(4).db()?;
            out.push(codec::open_summary(
                self.keys(),
                &hash,
                &name,
                version,
                &owner,
                updated_at,
            )?);
        }
        codec::sort_summaries(&mut out);
        Ok(out)
    }

    pub(crate) async fn put_app(
        &self,
        app: &AppRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let row = AppRow::seal(self.keys(), app)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO apps (id, name_hash, name, token_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .await
            .db()?;
        tx.execute(
            &stmt,
            &[
                &row.id,
                &row.name_hash,
                &row.name,
                &row.token_hash,
                &row.created_at,
            ],
        )
        .await
        .db()?;
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()
    }

    pub(crate) async fn put_app_document(
        &self,
        doc: &AppDocumentRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let sealed = codec::seal_app_document(self.keys(), doc)?;
        let version = codec::u64_to_db(doc.version)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        // Lock the app row: a concurrent writer of the same app waits, then sees our version.
        let app = tx
            .prepare_cached("SELECT 1 FROM apps WHERE id = $1 FOR UPDATE")
            .await
            .db()?;
        if tx.query_opt(&app, &[&doc.app_id]).await.db()?.is_none() {
            return Err(StoreError::NotFound);
        }
        let stmt = tx
            .prepare_cached(
                "INSERT INTO app_documents (app_id, version, document, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (app_id) DO UPDATE
                 SET version = excluded.version, document = excluded.document,
                     updated_at = excluded.updated_at
                 WHERE excluded.version > app_documents.version",
            )
            .await
            .db()?;
        let written = tx
            .execute(&stmt, &[&doc.app_id, &version, &sealed, &doc.updated_at])
            .await
            .db()?;
        if written == 0 {
            return Err(StoreError::Conflict);
        }
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()
    }

    pub(crate) async fn get_app_document(
        &self,
        app_id: &str,
    ) -> Result<AppDocumentRecord, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT version, document, updated_at FROM app_documents WHERE app_id = $1",
            )
            .await
            .db()?;
        let row = client
            .query_opt(&stmt, &[&app_id])
            .await
            .db()?
            .ok_or(StoreError::NotFound)?;
        let version: i64 = row.try_get(0).db()?;
        let sealed: Vec<u8> = row.try_get(1).db()?;
        let updated_at: i64 = row.try_get(2).db()?;
        codec::open_app_document(self.keys(), app_id.to_owned(), version, &sealed, updated_at)
    }

    async fn get_app_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<AppRecord, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT id, name_hash, name, token_hash, created_at FROM apps WHERE {column} = $1"
            ))
            .await
            .db()?;
        let row = client
            .query_opt(&stmt, &[&value])
            .await
            .db()?
            .ok_or(StoreError::NotFound)?;
        app_row(&row)?.open(self.keys())
    }

    pub(crate) async fn get_app(&self, id: &str) -> Result<AppRecord, StoreError> {
        self.get_app_where("id", id).await
    }

    pub(crate) async fn get_app_by_name(&self, name: &str) -> Result<AppRecord, StoreError> {
        let hash = codec::app_name_hash(self.keys(), name);
        self.get_app_where("name_hash", &hash).await
    }

    pub(crate) async fn list_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT id, name_hash, name, token_hash, created_at FROM apps")
            .await
            .db()?;
        let rows = client.query(&stmt, &[]).await.db()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(app_row(r)?.open(self.keys())?);
        }
        codec::sort_apps(&mut out);
        Ok(out)
    }

    pub(crate) async fn get_identity_ca(&self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT material FROM identity_ca WHERE id = 1")
            .await
            .db()?;
        let Some(row) = client.query_opt(&stmt, &[]).await.db()? else {
            return Ok(None);
        };
        let sealed: Vec<u8> = row.try_get(0).db()?;
        codec::open_identity_ca(self.keys(), &sealed).map(Some)
    }

    pub(crate) async fn put_identity_ca(
        &self,
        material: &[u8],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let sealed = codec::seal_identity_ca(self.keys(), material)?;
        let updated_at = crate::audit_log::now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO identity_ca (id, material, updated_at) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE
                 SET material = excluded.material, updated_at = excluded.updated_at",
            )
            .await
            .db()?;
        tx.execute(&stmt, &[&sealed, &updated_at]).await.db()?;
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()
    }

    pub(crate) async fn create_identity_ca(
        &self,
        material: &[u8],
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let sealed = codec::seal_identity_ca(self.keys(), material)?;
        let updated_at = crate::audit_log::now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO identity_ca (id, material, updated_at) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO NOTHING",
            )
            .await
            .db()?;
        let inserted = tx.execute(&stmt, &[&sealed, &updated_at]).await.db()? == 1;
        if inserted {
            append(&tx, self.keys(), audit).await?;
        }
        tx.commit().await.db()?;
        Ok(inserted)
    }

    pub(crate) async fn put_entry(
        &self,
        entry: &EntryRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO entries (id, spiffe_id, parent_id, body, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .await
            .db()?;
        tx.execute(
            &stmt,
            &[
                &entry.id,
                &entry.spiffe_id,
                &entry.parent_id,
                &entry.body,
                &entry.created_at,
            ],
        )
        .await
        .db()?;
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()
    }

    pub(crate) async fn delete_entry(
        &self,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let stmt = tx
            .prepare_cached("DELETE FROM entries WHERE id = $1")
            .await
            .db()?;
        // Dropping the transaction rolls it back: no audit entry for a missing id.
        if tx.execute(&stmt, &[&id]).await.db()? == 0 {
            return Err(StoreError::NotFound);
        }
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()
    }

    pub(crate) async fn get_entry(&self, id: &str) -> Result<EntryRecord, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE id = $1"
            ))
            .await
            .db()?;
        let row = client
            .query_opt(&stmt, &[&id])
            .await
            .db()?
            .ok_or(StoreError::NotFound)?;
        entry_row(&row)
    }

    /// All entries, or those of one parent.
    pub(crate) async fn list_entries(
        &self,
        parent: Option<&str>,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        let client = self.client().await?;
        let rows = match parent {
            Some(parent) => {
                let stmt = client
                    .prepare_cached(&format!(
                        "SELECT {ENTRY_COLUMNS} FROM entries WHERE parent_id = $1"
                    ))
                    .await
                    .db()?;
                client.query(&stmt, &[&parent]).await.db()?
            }
            None => {
                let stmt = client
                    .prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM entries"))
                    .await
                    .db()?;
                client.query(&stmt, &[]).await.db()?
            }
        };
        let mut out = rows.iter().map(entry_row).collect::<Result<Vec<_>, _>>()?;
        codec::sort_entries(&mut out);
        Ok(out)
    }

    pub(crate) async fn put_join_token(
        &self,
        token: &JoinTokenRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let key = codec::join_token_key(&token.token_hash);
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO join_tokens (token_hash, expires_at, created_at)
                 VALUES ($1, $2, $3)",
            )
            .await
            .db()?;
        tx.execute(&stmt, &[&key, &token.expires_at, &token.created_at])
            .await
            .db()?;
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()
    }

    pub(crate) async fn consume_join_token(
        &self,
        token_hash: &[u8; 32],
        now_ms: i64,
        node: &NodeRecord,
        audit: &AuditEvent,
    ) -> Result<JoinTokenUse, StoreError> {
        let key = codec::join_token_key(token_hash);
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        // The DELETE takes the row lock: a concurrent consumer waits for our commit and then
        // finds no row (Unknown), or, if we roll back, deletes it itself. Exactly one wins.
        let stmt = tx
            .prepare_cached("DELETE FROM join_tokens WHERE token_hash = $1 RETURNING expires_at")
            .await
            .db()?;
        let Some(row) = tx.query_opt(&stmt, &[&key]).await.db()? else {
            // Nothing was changed; dropping the transaction rolls it back.
            return Ok(JoinTokenUse::Unknown);
        };
        let expires_at: i64 = row.try_get(0).db()?;
        if expires_at <= now_ms {
            // Keep the delete: an expired token can never be used anyway.
            tx.commit().await.db()?;
            return Ok(JoinTokenUse::Expired);
        }
        let stmt = tx
            .prepare_cached("INSERT INTO nodes (spiffe_id, created_at) VALUES ($1, $2)")
            .await
            .db()?;
        // A duplicate node is Conflict; dropping the transaction restores the token.
        tx.execute(&stmt, &[&node.spiffe_id, &node.created_at])
            .await
            .db()?;
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()?;
        Ok(JoinTokenUse::Consumed)
    }

    pub(crate) async fn get_node(&self, spiffe_id: &str) -> Result<NodeRecord, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT spiffe_id, created_at FROM nodes WHERE spiffe_id = $1")
            .await
            .db()?;
        let row = client
            .query_opt(&stmt, &[&spiffe_id])
            .await
            .db()?
            .ok_or(StoreError::NotFound)?;
        node_row(&row)
    }

    pub(crate) async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT spiffe_id, created_at FROM nodes")
            .await
            .db()?;
        let rows = client.query(&stmt, &[]).await.db()?;
        let mut out = rows.iter().map(node_row).collect::<Result<Vec<_>, _>>()?;
        codec::sort_nodes(&mut out);
        Ok(out)
    }

    pub(crate) async fn list_token_keys(&self) -> Result<Vec<TokenKeyRow>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {TOKEN_KEY_COLUMNS} FROM token_keys ORDER BY created_at, kid"
            ))
            .await
            .db()?;
        let rows = client.query(&stmt, &[]).await.db()?;
        rows.iter().map(token_key_row).collect()
    }

    pub(crate) async fn create_token_key(
        &self,
        row: TokenKeyRow,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        // The partial unique index allows one active key per purpose: the first wins.
        let inserted = insert_token_key(&tx, &row, true).await? == 1;
        if inserted {
            append(&tx, self.keys(), audit).await?;
        }
        tx.commit().await.db()?;
        Ok(inserted)
    }

    pub(crate) async fn rotate_token_key(
        &self,
        current_kid: &str,
        row: TokenKeyRow,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let stmt = tx
            .prepare_cached(
                "UPDATE token_keys SET retired_at = $1
                 WHERE kid = $2 AND purpose = $3 AND retired_at IS NULL",
            )
            .await
            .db()?;
        let retired = tx
            .execute(&stmt, &[&row.created_at, &current_kid, &row.purpose])
            .await
            .db()?;
        if retired != 1 {
            return Err(StoreError::Conflict);
        }
        insert_token_key(&tx, &row, false).await?;
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()
    }

    pub(crate) async fn insert_token(
        &self,
        row: TokenRow,
        audit: &AuditEvent,
    ) -> Result<i64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let idx = insert_token_row(&tx, row).await?;
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()?;
        Ok(idx)
    }

    pub(crate) async fn replace_token(
        &self,
        old_jti: &str,
        row: TokenRow,
        audit: &AuditEvent,
    ) -> Result<i64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        // The row lock makes concurrent replacements of one token queue here; the later one
        // re-checks `revoked` after the first commits and finds nothing to replace.
        let stmt = tx
            .prepare_cached(
                "UPDATE tokens SET revoked = TRUE, replaced_by = $1
                 WHERE jti = $2 AND NOT revoked",
            )
            .await
            .db()?;
        if tx.execute(&stmt, &[&row.jti, &old_jti]).await.db()? != 1 {
            return Err(StoreError::Conflict);
        }
        let idx = insert_token_row(&tx, row).await?;
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()?;
        Ok(idx)
    }

    pub(crate) async fn get_token(&self, jti: &str) -> Result<TokenRow, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE jti = $1"
            ))
            .await
            .db()?;
        let row = client
            .query_opt(&stmt, &[&jti])
            .await
            .db()?
            .ok_or(StoreError::NotFound)?;
        token_row(&row)
    }

    pub(crate) async fn revoke_tokens(
        &self,
        by: RevokeBy,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let (column, value) = match &by {
            RevokeBy::Jti(jti) => ("jti", jti),
            RevokeBy::SubjectHash(hash) => ("subject_hash", hash),
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let stmt = tx
            .prepare_cached(&format!("SELECT 1 FROM tokens WHERE {column} = $1 LIMIT 1"))
            .await
            .db()?;
        if tx.query_opt(&stmt, &[value]).await.db()?.is_none() {
            return Err(StoreError::NotFound);
        }
        let stmt = tx
            .prepare_cached(&format!(
                "UPDATE tokens SET revoked = TRUE WHERE {column} = $1 AND NOT revoked"
            ))
            .await
            .db()?;
        let n = tx.execute(&stmt, &[value]).await.db()?;
        append(&tx, self.keys(), audit).await?;
        tx.commit().await.db()?;
        Ok(n)
    }

    pub(crate) async fn token_status(&self) -> Result<(i64, Vec<i64>), StoreError> {
        let mut client = self.client().await?;
        // One snapshot for the counter and the revoked set.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .db()?;
        let stmt = tx
            .prepare_cached("SELECT next_idx FROM token_status_counter WHERE id = 1")
            .await
            .db()?;
        let allocated: i64 = tx.query_one(&stmt, &[]).await.db()?.try_get(0).db()?;
        let stmt = tx
            .prepare_cached("SELECT status_idx FROM tokens WHERE revoked")
            .await
            .db()?;
        let revoked = tx
            .query(&stmt, &[])
            .await
            .db()?
            .iter()
            .map(|r| r.try_get(0).db())
            .collect::<Result<Vec<i64>, _>>()?;
        tx.commit().await.db()?;
        Ok((allocated, revoked))
    }

    pub(crate) async fn append_audit(&self, audit: &AuditEvent) -> Result<u64, StoreError> {
        self.inner.writes.submit(Write::Audit(audit.clone())).await
    }

    pub(crate) async fn list_audit(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT seq, time, actor, action, target, outcome, detail, mac
                 FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .await
            .db()?;
        let rows = client
            .query(&stmt, &[&after, &i64::from(limit)])
            .await
            .db()?;
        rows.iter()
            .map(|r| raw_entry(r).and_then(RawEntry::into_entry))
            .collect()
    }

    pub(crate) async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let mut client = self.client().await?;
        // One snapshot for all pages and the head.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .db()?;
        let page = tx
            .prepare_cached(
                "SELECT seq, time, actor, action, target, outcome, detail, mac
                 FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .await
            .db()?;
        let mut verifier = Verifier::new(self.keys());
        let mut after = i64::MIN;
        loop {
            let rows = tx.query(&page, &[&after, &VERIFY_PAGE]).await.db()?;
            for r in &rows {
                let e = raw_entry(r)?;
                after = e.seq;
                verifier.feed(&e);
            }
            if rows.len() < usize::try_from(VERIFY_PAGE).unwrap_or(usize::MAX) {
                break;
            }
        }
        let head = tx
            .query_opt("SELECT seq, mac, tag FROM audit_head WHERE id = 1", &[])
            .await
            .db()?
            .map(|r| head_row(&r))
            .transpose()?;
        tx.commit().await.db()?;
        Ok(verifier.finish(head.as_ref()))
    }
}
