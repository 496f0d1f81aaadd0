//! Embedded SQLite backend with group commit.
//!
//! ## Durability
//! The database runs in WAL mode with `synchronous = FULL`: `COMMIT` appends the transaction's
//! frames to the WAL *and fsyncs the WAL* before it returns, and a job is answered only after
//! `COMMIT` returned. An acknowledged write (and the audit entry that was committed with it, which
//! is what gates the release of a secret) therefore survives not only the process being killed
//! (`kill -9`, panic, OOM) but also an OS crash or power loss (on storage that honours fsync):
//! the next open replays the WAL. `NORMAL` would skip that fsync and could silently lose the last
//! acknowledged transactions on power loss, so it is not used. The cost is one fsync per *batch*,
//! not per write: group commit (below) puts every write pending while the previous fsync ran into
//! the next transaction, so the fsync latency is amortised across concurrent callers.
//!
//! ## Group commit
//! One dedicated writer thread owns the only read-write connection. Callers send jobs over a
//! bounded channel; the writer drains everything pending (up to `MAX_BATCH`) into one
//! `BEGIN IMMEDIATE` transaction, runs each job inside its own `SAVEPOINT` (a failing job rolls
//! back alone and gets its own error), writes the audit chain head once, `COMMIT`s, and only then
//! answers every job through its oneshot channel. Sealing happens in the calling task, so the
//! writer thread only executes SQL and one HMAC per audit entry.
//!
//! Reads use a small pool of read-only connections on `spawn_blocking`; in WAL mode they never
//! block the writer and see every acknowledged write.
//!
//! Checkpoints (copying the WAL into the database file, with its fsyncs) run on a separate
//! checkpointer thread and connection (`PASSIVE`, nudged after each commit), so the writer never
//! waits for them. Under continuous writes that alone never lets the WAL restart from its
//! beginning (it restarts only when a write transaction begins with every frame already copied,
//! and new frames keep arriving while the checkpointer copies), so the WAL would grow until a
//! blocking truncation; therefore the writer itself runs a `PASSIVE` checkpoint between two
//! batches at most once per `WRITER_CHECKPOINT_INTERVAL`. Most frames are already copied by
//! then, so it costs the tail and one fsync, and the next transaction restarts the WAL. Should
//! the WAL still grow past `WAL_LIMIT_BYTES` (long-running readers) the writer truncates it. Write throughput is bounded by the single writer's CPU (roughly 25–30 µs per small
//! write; sealing happens in the callers) plus one WAL fsync per batch: with many concurrent
//! callers tens of thousands of writes/s (`examples/write_throughput`: ~59,000/s with 256 tasks
//! on the current 2-vCPU machine, ~7,300/s on an earlier, noisier one); a single sequential
//! caller waits one fsync per write.
//!
//! `secure_delete` is on, so a deleted share's (sealed) bytes are overwritten in the database
//! file; copies in the WAL are overwritten as the WAL is recycled after checkpoints.
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use daas_crypto::ObjectId;
use daas_crypto::storage::StorageKeys;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use tokio::sync::{Semaphore, mpsc, oneshot};
use zeroize::Zeroizing;

use crate::audit_log::{Chain, HeadRow, RawEntry, Verifier, to_db_seq};
use crate::codec::{
    self, AppRow, ObjectRow, RevokeBy, SecretRow, TOKEN_COLUMNS, TOKEN_KEY_COLUMNS, TokenKeyRow,
    TokenRow,
};
use crate::{
    AppDocumentRecord, AppRecord, AuditEntry, AuditEvent, AuditReport, EntryRecord,
    JoinTokenRecord, JoinTokenUse, NodeRecord, ObjectRecord, SecretRecord, SecretSummary,
    StoreError, schema,
};

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Jobs waiting for the writer before callers wait to enqueue (back-pressure).
const QUEUE_DEPTH: usize = 8192;
/// Read-only connections.
const READERS: usize = 4;
/// How long a connection waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Commits fsync the WAL before they return (see "Durability" in the module docs).
const SYNCHRONOUS: &str = "PRAGMA synchronous = FULL";
/// How often, at most, the background checkpointer copies the WAL into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// How often, at most, the writer finishes a checkpoint itself so the WAL can restart.
const WRITER_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// WAL size above which the writer truncates the WAL (blocking).
const WAL_LIMIT_BYTES: u64 = 256 << 20;
/// Batches between two checks of the WAL size.
const WAL_CHECK_EVERY: u64 = 64;

/// A database failure, described without SQL text or values.
#[derive(Debug, thiserror::Error)]
#[error("sqlite: {0}")]
struct SqliteFailure(String);

fn describe(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => {
            format!("{:?} (extended code {})", f.code, f.extended_code)
        }
        _ => "client error".to_owned(),
    }
}

/// Map a rusqlite error to the store's error classes. Never includes SQL or values.
fn db_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            // Only a duplicate key or a still-referenced row is the caller's conflict. A trigger's RAISE is the database
            // refusing the write (a policy or a full audit sink): unavailable, nothing changed.
            ErrorCode::ConstraintViolation
                if matches!(
                    f.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                        | rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
                ) =>
            {
                StoreError::Conflict
            }
            ErrorCode::ConstraintViolation
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER =>
            {
                tracing::warn!(error = %describe(&e), "sqlite refused the write");
                StoreError::Unavailable(Box::new(SqliteFailure(describe(&e))))
            }
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::OutOfMemory => {
                tracing::warn!(error = %describe(&e), "sqlite unavailable");
                StoreError::Unavailable(Box::new(SqliteFailure(describe(&e))))
            }
            _ => {
                tracing::error!(error = %describe(&e), "sqlite error");
                StoreError::Internal(format!("sqlite: {}", describe(&e)))
            }
        },
        _ => {
            tracing::error!(error = %describe(&e), "sqlite client error");
            StoreError::Internal("sqlite client error".into())
        }
    }
}

trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}
impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(db_err)
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable(Box::new(SqliteFailure("writer thread stopped".into())))
}

// ---------------------------------------------------------------- store

/// SQLite store: cheap to clone; the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    keys: StorageKeys,
    path: PathBuf,
    jobs: mpsc::Sender<Box<dyn Job>>,
    readers: Readers,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// What a job sees: the write connection inside its savepoint, and the audit chain.
pub(crate) struct WriteCtx<'a> {
    conn: &'a Connection,
    chain: &'a mut Chain,
    keys: &'a StorageKeys,
}

impl WriteCtx<'_> {
    /// Append `event` to the chain (same transaction as the job's data). Returns its seq.
    fn audit(&mut self, event: &AuditEvent) -> Result<u64, StoreError> {
        let e = self.chain.append(self.keys, event)?;
        self.conn
            .prepare_cached(
                "INSERT INTO audit (seq, time, actor, action, target, outcome, detail, mac)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .db()?
            .execute(params![
                to_db_seq(e.seq)?,
                e.time,
                e.event.actor,
                e.event.action,
                e.event.target,
                e.event.outcome,
                e.event.detail,
                e.mac
            ])
            .db()?;
        Ok(e.seq)
    }
}

trait Job: Send {
    /// Run inside the job's savepoint; `true` if it succeeded (savepoint released).
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> bool;
    /// Answer the caller once the batch's transaction has committed (or failed).
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct TypedJob<F, R> {
    work: Option<F>,
    result: Option<Result<R, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<F, R> Job for TypedJob<F, R>
where
    F: FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send,
    R: Send,
{
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| work(ctx))).unwrap_or_else(|_| {
                tracing::error!("sqlite write job panicked");
                Err(StoreError::Internal("storage write failed".into()))
            });
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match (self.result, commit) {
            // A job that failed on its own reports its own error.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Ok(_)) | None, Err(e)) => Err(e),
            (None, Ok(())) => Err(StoreError::Internal("storage write was not run".into())),
        };
        // The caller may have gone away (request cancelled); the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.execute_batch(sql).db()
}

fn load_chain(conn: &Connection, keys: &StorageKeys) -> Result<Chain, StoreError> {
    let row = conn
        .prepare_cached("SELECT seq, mac, tag FROM audit_head WHERE id = 1")
        .db()?
        .query_row([], |r| {
            Ok(HeadRow {
                seq: r.get(0)?,
                mac: r.get(1)?,
                tag: r.get(2)?,
            })
        })
        .optional()
        .db()?
        .ok_or_else(|| codec::integrity("audit_head", "seq"))?;
    Chain::from_head(keys, &row)
}

fn store_head(conn: &Connection, keys: &StorageKeys, chain: &Chain) -> Result<(), StoreError> {
    let head = chain.head_row(keys)?;
    conn.prepare_cached("UPDATE audit_head SET seq = ?1, mac = ?2, tag = ?3 WHERE id = 1")
        .db()?
        .execute(params![head.seq, head.mac, head.tag])
        .db()?;
    Ok(())
}

/// Run one batch in one transaction; `Ok` iff `COMMIT` returned successfully.
fn run_batch_tx(
    conn: &Connection,
    keys: &StorageKeys,
    jobs: &mut [Box<dyn Job>],
) -> Result<(), StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let result = (|| {
        let mut chain = load_chain(conn, keys)?;
        let start = chain;
        for job in jobs.iter_mut() {
            conn.prepare_cached("SAVEPOINT job")
                .db()?
                .execute([])
                .db()?;
            let before = chain;
            let ok = job.run(&mut WriteCtx {
                conn,
                chain: &mut chain,
                keys,
            });
            if ok {
                conn.prepare_cached("RELEASE job").db()?.execute([]).db()?;
            } else {
                exec(conn, "ROLLBACK TO job; RELEASE job")?;
                chain = before;
            }
        }
        if chain != start {
            store_head(conn, keys, &chain)?;
        }
        exec(conn, "COMMIT")
    })();
    if result.is_err()
        && !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(error = %describe(&e), "sqlite rollback failed");
    }
    result
}

fn writer_loop(
    conn: Connection,
    keys: StorageKeys,
    wal_path: PathBuf,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    checkpointer: std::sync::mpsc::SyncSender<()>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut batches: u64 = 0;
    let mut last_checkpoint = std::time::Instant::now();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch_tx(&conn, &keys, &mut batch);
        if let Err(e) = &commit {
            tracing::warn!(error = %e, jobs = batch.len(), "sqlite batch failed");
        }
        // Answer only now: COMMIT has returned (or failed) for the whole batch.
        for job in batch.drain(..) {
            job.finish(
                commit
                    .as_ref()
                    .map(|_| ())
                    .map_err(StoreError::for_each_job),
            );
        }
        // Ask for a background checkpoint (coalesced: at most one pending nudge).
        let _ = checkpointer.try_send(());
        if last_checkpoint.elapsed() >= WRITER_CHECKPOINT_INTERVAL {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %describe(&e), "sqlite checkpoint failed");
            }
            last_checkpoint = std::time::Instant::now();
        }
        batches = batches.wrapping_add(1);
        if batches.is_multiple_of(WAL_CHECK_EVERY) {
            limit_wal(&conn, &wal_path);
        }
    }
    tracing::debug!("sqlite writer stopped");
}

/// If the background checkpointer cannot keep up (the WAL can only restart from the beginning
/// once it is fully checkpointed between two write transactions), checkpoint on the writer.
fn limit_wal(conn: &Connection, wal_path: &Path) {
    let size = std::fs::metadata(wal_path).map_or(0, |m| m.len());
    if size <= WAL_LIMIT_BYTES {
        return;
    }
    tracing::info!(
        wal_bytes = size,
        "sqlite wal over its limit; checkpointing on the writer"
    );
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %describe(&e), "sqlite checkpoint failed");
    }
}

/// Copies committed WAL frames into the database file off the write path, so the writer never
/// waits for the checkpoint's fsyncs. Stops (after a last checkpoint) when the writer stops.
fn checkpointer_loop(path: PathBuf, nudges: std::sync::mpsc::Receiver<()>) {
    let conn = match Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|c| {
        c.busy_timeout(BUSY_TIMEOUT)?;
        c.execute_batch(SYNCHRONOUS)?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %describe(&e), "sqlite checkpointer cannot open the database");
            return;
        }
    };
    let checkpoint = || {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %describe(&e), "sqlite checkpoint failed");
        }
    };
    while nudges.recv().is_ok() {
        // Coalesce: one checkpoint per interval however many commits arrived. Checkpointing
        // after every commit cost about a sixth of the server's CPU under load and doubled the
        // fsyncs; the WAL simply grows a little between checkpoints (and the writer still
        // truncates it itself past WAL_LIMIT).
        std::thread::sleep(CHECKPOINT_INTERVAL);
        while nudges.try_recv().is_ok() {}
        checkpoint();
    }
    checkpoint();
    tracing::debug!("sqlite checkpointer stopped");
}

// ---------------------------------------------------------------- readers

struct Readers {
    path: PathBuf,
    permits: Arc<Semaphore>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    Ok(conn)
}

impl Readers {
    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| writer_gone())?;
        let idle = Arc::clone(&self.idle);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pooled = idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&path)?,
            };
            let result = f(&conn);
            // Leave no read transaction open on a pooled connection.
            if conn.is_autocommit() {
                idle.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Internal("storage read task failed".into()))?
    }
}

// ---------------------------------------------------------------- open + migrate

fn create_private_file(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let unavailable = |e: std::io::Error| {
            tracing::warn!(error = %e, "cannot create sqlite database file");
            StoreError::Unavailable(Box::new(e))
        };
        // Create the file owner-only; SQLite gives its -wal and -shm files the same mode.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => {
                // A new database: make its directory entry durable too (SQLite syncs the
                // directory when it creates the WAL, but not for the main file we created).
                file.sync_all().map_err(unavailable)?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(unavailable)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(unavailable(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn open_writer(path: &Path, keys: &StorageKeys) -> Result<Connection, StoreError> {
    create_private_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(
            "sqlite: cannot enable write-ahead logging".into(),
        ));
    }
    // See "Durability" above: every COMMIT fsyncs the WAL before a write is acknowledged.
    exec(&conn, SYNCHRONOUS)?;
    exec(
        &conn,
        "PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA cache_size = -8192;
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = 67108864;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    migrate(&conn, keys)?;
    Ok(conn)
}

fn migrate(conn: &Connection, keys: &StorageKeys) -> Result<(), StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let result = (|| {
        exec(conn, schema::SCHEMA_VERSION_SQLITE)?;
        let current: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .db()?;
        for m in schema::pending(current)? {
            exec(conn, m.sqlite)?;
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                params![m.version, crate::audit_log::now_ms()],
            )
            .db()?;
            tracing::info!(version = m.version, "sqlite schema migrated");
        }
        let check: Option<Vec<u8>> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [codec::KEY_CHECK_ROW],
                |r| r.get(0),
            )
            .optional()
            .db()?;
        match check {
            Some(sealed) => codec::verify_key_check(keys, &sealed)?,
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                    params![codec::KEY_CHECK_ROW, codec::new_key_check(keys)?],
                )
                .db()?;
            }
        }
        let has_head: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM audit_head WHERE id = 1)",
                [],
                |r| r.get(0),
            )
            .db()?;
        if !has_head {
            let head = Chain::genesis().head_row(keys)?;
            conn.execute(
                "INSERT INTO audit_head (id, seq, mac, tag) VALUES (1, ?1, ?2, ?3)",
                params![head.seq, head.mac, head.tag],
            )
            .db()?;
        }
        exec(conn, "COMMIT")
    })();
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

// ---------------------------------------------------------------- row helpers

const OBJECT_COLUMNS: &str = "id, share, commitment, access, owner, audience, meta, created_at";

fn object_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow {
        id: r.get(first)?,
        share: r.get(first + 1)?,
        commitment: r.get(first + 2)?,
        access: r.get(first + 3)?,
        owner: r.get(first + 4)?,
        audience: r.get(first + 5)?,
        meta: r.get(first + 6)?,
        created_at: r.get(first + 7)?,
    })
}

fn app_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AppRow> {
    Ok(AppRow {
        id: r.get(0)?,
        name_hash: r.get(1)?,
        name: r.get(2)?,
        token_hash: r.get(3)?,
        created_at: r.get(4)?,
    })
}

fn token_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenKeyRow> {
    Ok(TokenKeyRow {
        kid: r.get(0)?,
        purpose: r.get(1)?,
        material: r.get(2)?,
        created_at: r.get(3)?,
        retired_at: r.get(4)?,
    })
}

/// Insert a token key; with `unless_active`, nothing (0) when its purpose has an active key.
fn insert_token_key(
    conn: &Connection,
    row: &TokenKeyRow,
    unless_active: bool,
) -> Result<usize, StoreError> {
    let sql = format!(
        "INSERT INTO token_keys ({TOKEN_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5){}",
        if unless_active {
            " ON CONFLICT DO NOTHING"
        } else {
            ""
        }
    );
    conn.prepare_cached(&sql)
        .db()?
        .execute(params![
            row.kid,
            row.purpose,
            row.material,
            row.created_at,
            row.retired_at
        ])
        .db()
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        jti: r.get(0)?,
        status_idx: r.get(1)?,
        subject_hash: r.get(2)?,
        body: r.get(3)?,
        issued_at: r.get(4)?,
        chain_started_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked: r.get(7)?,
        replaced_by: r.get(8)?,
    })
}

/// Take the next status index and insert `row` under it; returns the index.
fn insert_token_row(conn: &Connection, mut row: TokenRow) -> Result<i64, StoreError> {
    row.status_idx = conn
        .prepare_cached(
            "UPDATE token_status_counter SET next_idx = next_idx + 1 WHERE id = 1
             RETURNING next_idx - 1",
        )
        .db()?
        .query_row([], |r| r.get(0))
        .db()?;
    conn.prepare_cached(&format!(
        "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))
    .db()?
    .execute(params![
        row.jti,
        row.status_idx,
        row.subject_hash,
        row.body,
        row.issued_at,
        row.chain_started_at,
        row.expires_at,
        row.revoked,
        row.replaced_by
    ])
    .db()?;
    Ok(row.status_idx)
}

const ENTRY_COLUMNS: &str = "id, spiffe_id, parent_id, body, created_at";

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EntryRecord> {
    Ok(EntryRecord {
        id: r.get(0)?,
        spiffe_id: r.get(1)?,
        parent_id: r.get(2)?,
        body: r.get(3)?,
        created_at: r.get(4)?,
    })
}

fn node_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NodeRecord> {
    Ok(NodeRecord {
        spiffe_id: r.get(0)?,
        created_at: r.get(1)?,
    })
}

fn raw_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntry> {
    Ok(RawEntry {
        seq: r.get(0)?,
        time: r.get(1)?,
        event: AuditEvent {
            actor: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            outcome: r.get(5)?,
            detail: r.get(6)?,
        },
        mac: r.get(7)?,
    })
}

fn insert_object(conn: &Connection, row: &ObjectRow) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO objects (id, share, commitment, access, owner, audience, meta, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .db()?
    .execute(params![
        row.id,
        row.share,
        row.commitment,
        row.access,
        row.owner,
        row.audience,
        row.meta,
        row.created_at
    ])
    .db()?;
    Ok(())
}

fn delete_object_row(conn: &Connection, id: &str) -> Result<(), StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM objects WHERE id = ?1")
        .db()?
        .execute([id])
        .db()?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

// ---------------------------------------------------------------- operations

impl SqliteStore {
    pub(crate) async fn open(path: &Path, keys: StorageKeys) -> Result<Self, StoreError> {
        let p = path.to_path_buf();
        let k = keys.clone();
        let conn = tokio::task::spawn_blocking(move || open_writer(&p, &k))
            .await
            .map_err(|_| StoreError::Internal("storage open task failed".into()))??;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let (nudge, nudges) = std::sync::mpsc::sync_channel(1);
        let checkpoint_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("daas-sqlite-checkpoint".into())
            .spawn(move || checkpointer_loop(checkpoint_path, nudges))
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let writer_keys = keys.clone();
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal_path = PathBuf::from(wal_path);
        std::thread::Builder::new()
            .name("daas-sqlite-writer".into())
            .spawn(move || writer_loop(conn, writer_keys, wal_path, rx, nudge))
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        tracing::info!(path = %path.display(), "sqlite store open");
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                path: path.to_path_buf(),
                jobs: tx,
                readers: Readers {
                    path: path.to_path_buf(),
                    permits: Arc::new(Semaphore::new(READERS)),
                    idle: Arc::new(Mutex::new(Vec::with_capacity(READERS))),
                },
            }),
        })
    }

    /// Queue `work` for the writer; resolves after the batch containing it has committed.
    async fn write<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(TypedJob {
            work: Some(work),
            result: None,
            reply,
        });
        self.inner.jobs.send(job).await.map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection, &StorageKeys) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let keys = self.inner.keys.clone();
        self.inner.readers.read(move |conn| f(conn, &keys)).await
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        if self.inner.jobs.is_closed() {
            return Err(writer_gone());
        }
        self.read(|conn, _| conn.query_row("SELECT 1", [], |_| Ok(())).db())
            .await
    }

    pub(crate) async fn put_object(
        &self,
        obj: &ObjectRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let row = ObjectRow::seal(&self.inner.keys, obj)?;
        let audit = audit.clone();
        self.write(move |ctx| {
            insert_object(ctx.conn, &row)?;
            ctx.audit(&audit)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn get_object(&self, id: &ObjectId) -> Result<ObjectRecord, StoreError> {
        let id = codec::object_id_hex(id);
        self.read(move |conn, keys| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects WHERE id = ?1"
                ))
                .db()?
                .query_row([&id], |r| object_row(r, 0))
                .optional()
                .db()?
                .ok_or(StoreError::NotFound)?;
            row.open(keys)
        })
        .await
    }

    pub(crate) async fn set_object_access(
        &self,
        id: &ObjectId,
        access: &[String],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let id = codec::object_id_hex(id);
        let sealed = codec::seal_access(&self.inner.keys, &id, access)?;
        let audit = audit.clone();
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached("UPDATE objects SET access = ?1 WHERE id = ?2")
                .db()?
                .execute(params![sealed, id])
                .db()?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            ctx.audit(&audit)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn delete_object(
        &self,
        id: &ObjectId,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let id = codec::object_id_hex(id);
        let audit = audit.clone();
        self.write(move |ctx| {
            delete_object_row(ctx.conn, &id)?;
            ctx.audit(&audit)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn put_secret(
        &self,
        secret: &SecretRecord,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let keys = &self.inner.keys;
        let object = ObjectRow::seal(keys, &secret.object)?;
        let row = SecretRow::seal(keys, secret)?;
        let audit = audit.clone();
        self.write(move |ctx| {
            insert_object(ctx.conn, &object)?;
            let existing: Option<(String, i64)> = ctx
                .conn
                .prepare_cached("SELECT object_id, version FROM secrets WHERE name_hash = ?1")
                .db()?
                .query_row([&row.name_hash], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .db()?;
            let version = match existing {
                Some((old_object, old_version)) => {
                    let version = codec::u64_from_db(old_version, codec::SECRETS, "version")?
                        .checked_add(1)
                        .ok_or_else(|| StoreError::Internal("secret version exhausted".into()))?;
                    ctx.conn
                        .prepare_cached(
                            "UPDATE secrets SET name = ?2, ciphertext = ?3, object_id = ?4,
                                    version = ?5, owner = ?6, updated_at = ?7
                             WHERE name_hash = ?1",
                        )
                        .db()?
                        .execute(params![
                            row.name_hash,
                            row.name,
                            row.ciphertext,
                            row.object_id,
                            codec::u64_to_db(version)?,
                            row.owner,
                            row.updated_at
                        ])
                        .db()?;
                    // Crypto-shred the previous version: its share is gone.
                    delete_object_row(ctx.conn, &old_object)?;
                    version
                }
                None => {
                    ctx.conn
                        .prepare_cached(
                            "INSERT INTO secrets (name_hash, name, ciphertext, object_id, version,
                                                  owner, updated_at)
                             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)",
                        )
                        .db()?
                        .execute(params![
                            row.name_hash,
                            row.name,
                            row.ciphertext,
                            row.object_id,
                            row.owner,
                            row.updated_at
                        ])
                        .db()?;
                    1
                }
            };
            ctx.audit(&audit)?;
            Ok(version)
        })
        .await
    }

    pub(crate) async fn get_secret(&self, name: &str) -> Result<SecretRecord, StoreError> {
        let name_hash = codec::secret_name_hash(&self.inner.keys, name);
        self.read(move |conn, keys| {
            let (name, ciphertext, version, updated_at, object) = conn
                .prepare_cached(
                    "SELECT s.name, s.ciphertext, s.version, s.updated_at,
                            o.id, o.share, o.commitment, o.access, o.owner, o.audience, o.meta,
                            o.created_at
                     FROM secrets s JOIN objects o ON o.id = s.object_id
                     WHERE s.name_hash = ?1",
                )
                .db()?
                .query_row([&name_hash], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        object_row(r, 4)?,
                    ))
                })
                .optional()
                .db()?
                .ok_or(StoreError::NotFound)?;
            codec::open_secret(
                keys,
                &name_hash,
                &name,
                &ciphertext,
                version,
                updated_at,
                &object,
            )
        })
        .await
    }

    pub(crate) async fn delete_secret(
        &self,
        name: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let name_hash = codec::secret_name_hash(&self.inner.keys, name);
        let audit = audit.clone();
        self.write(move |ctx| {
            let object_id: String = ctx
                .conn
                .prepare_cached("SELECT object_id FROM secrets WHERE name_hash = ?1")
                .db()?
                .query_row([&name_hash], |r| r.get(0))
                .optional()
                .db()?
                .ok_or(StoreError::NotFound)?;
            ctx.conn
                .prepare_cached("DELETE FROM secrets WHERE name_hash = ?1")
                .db()?
                .execute([&name_hash])
                .db()?;
            delete_object_row(ctx.conn, &object_id)?;
            ctx.audit(&audit)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn list_secrets(&self) -> Result<Vec<SecretSummary>, StoreError> {
        self.read(|conn, keys| {
            let mut stmt = conn
                .prepare_cached("SELECT name_hash, name, version, owner, updated_at FROM secrets")
                .db()?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .db()?;
            let mut out = Vec::new();
            for row in rows {
                let (hash, name, version, owner, updated_at) = row.db()?;
                out.push(codec::open_summary(
                    keys, &hash, &name, version, &owner, updated_at,
                )?);
            }
            codec::sort_summaries(&mut out);
            Ok(out)
        })
        .await
    }

    pub(crate) async fn put_app(
        &self,
        app: &AppRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let row = AppRow::seal(&self.inner.keys, app)?;
        let audit = audit.clone();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO apps (id, name_hash, name, token_hash, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .db()?
                .execute(params![
                    row.id,
                    row.name_hash,
                    row.name,
                    row.token_hash,
                    row.created_at
                ])
                .db()?;
            ctx.audit(&audit)?;
            Ok(())
        })
        .await
    }

    async fn get_app_where(
        &self,
        column: &'static str,
        value: String,
    ) -> Result<AppRecord, StoreError> {
        self.read(move |conn, keys| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT id, name_hash, name, token_hash, created_at FROM apps WHERE {column} = ?1"
                ))
                .db()?
                .query_row([&value], app_row)
                .optional()
                .db()?
                .ok_or(StoreError::NotFound)?;
            row.open(keys)
        })
        .await
    }

    pub(crate) async fn get_app(&self, id: &str) -> Result<AppRecord, StoreError> {
        self.get_app_where("id", id.to_owned()).await
    }

    pub(crate) async fn get_app_by_name(&self, name: &str) -> Result<AppRecord, StoreError> {
        let hash = codec::app_name_hash(&self.inner.keys, name);
        self.get_app_where("name_hash", hash).await
    }

    pub(crate) async fn list_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        self.read(|conn, keys| {
            let mut stmt = conn
                .prepare_cached("SELECT id, name_hash, name, token_hash, created_at FROM apps")
                .db()?;
            let rows = stmt.query_map([], app_row).db()?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row.db()?.open(keys)?);
            }
            codec::sort_apps(&mut out);
            Ok(out)
        })
        .await
    }

    pub(crate) async fn put_app_document(
        &self,
        doc: &AppDocumentRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let sealed = codec::seal_app_document(&self.inner.keys, doc)?;
        let version = codec::u64_to_db(doc.version)?;
        let app_id = doc.app_id.clone();
        let updated_at = doc.updated_at;
        let audit = audit.clone();
        self.write(move |ctx| {
            let app_exists = ctx
                .conn
                .prepare_cached("SELECT 1 FROM apps WHERE id = ?1")
                .db()?
                .exists([&app_id])
                .db()?;
            if !app_exists {
                return Err(StoreError::NotFound);
            }
            let written = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO app_documents (app_id, version, document, updated_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (app_id) DO UPDATE
                     SET version = excluded.version, document = excluded.document,
                         updated_at = excluded.updated_at
                     WHERE excluded.version > app_documents.version",
                )
                .db()?
                .execute(params![app_id, version, sealed, updated_at])
                .db()?;
            if written == 0 {
                return Err(StoreError::Conflict);
            }
            ctx.audit(&audit)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn get_app_document(
        &self,
        app_id: &str,
    ) -> Result<AppDocumentRecord, StoreError> {
        let app_id = app_id.to_owned();
        self.read(move |conn, keys| {
            let (version, sealed, updated_at): (i64, Vec<u8>, i64) = conn
                .prepare_cached(
                    "SELECT version, document, updated_at FROM app_documents WHERE app_id = ?1",
                )
                .db()?
                .query_row([&app_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .db()?
                .ok_or(StoreError::NotFound)?;
            codec::open_app_document(keys, app_id, version, &sealed, updated_at)
        })
        .await
    }

    pub(crate) async fn get_identity_ca(&self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.read(|conn, keys| {
            let sealed: Option<Vec<u8>> = conn
                .prepare_cached("SELECT material FROM identity_ca WHERE id = 1")
                .db()?
                .query_row([], |r| r.get(0))
                .optional()
                .db()?;
            sealed
                .map(|sealed| codec::open_identity_ca(keys, &sealed))
                .transpose()
        })
        .await
    }

    pub(crate) async fn put_identity_ca(
        &self,
        material: &[u8],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        // Sealed here, in the calling task: the writer thread never sees the plaintext.
        let sealed = codec::seal_identity_ca(&self.inner.keys, material)?;
        let updated_at = crate::audit_log::now_ms();
        let audit = audit.clone();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO identity_ca (id, material, updated_at) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE
                     SET material = excluded.material, updated_at = excluded.updated_at",
                )
                .db()?
                .execute(params![sealed, updated_at])
                .db()?;
            ctx.audit(&audit)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn create_identity_ca(
        &self,
        material: &[u8],
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let sealed = codec::seal_identity_ca(&self.inner.keys, material)?;
        let updated_at = crate::audit_log::now_ms();
        let audit = audit.clone();
        self.write(move |ctx| {
            let inserted = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO identity_ca (id, material, updated_at) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO NOTHING",
                )
                .db()?
                .execute(params![sealed, updated_at])
                .db()?
                == 1;
            if inserted {
                ctx.audit(&audit)?;
            }
            Ok(inserted)
        })
        .await
    }

    pub(crate) fn keys(&self) -> &StorageKeys {
        &self.inner.keys
    }

    pub(crate) async fn put_entry(
        &self,
        entry: &EntryRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let entry = entry.clone();
        let audit = audit.clone();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO entries (id, spiffe_id, parent_id, body, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .db()?
                .execute(params![
                    entry.id,
                    entry.spiffe_id,
                    entry.parent_id,
                    entry.body,
                    entry.created_at
                ])
                .db()?;
            ctx.audit(&audit)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn delete_entry(
        &self,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let id = id.to_owned();
        let audit = audit.clone();
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached("DELETE FROM entries WHERE id = ?1")
                .db()?
                .execute([&id])
                .db()?;
            // An error rolls back the job's savepoint: no audit entry for a missing id.
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            ctx.audit(&audit)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn get_entry(&self, id: &str) -> Result<EntryRecord, StoreError> {
        let id = id.to_owned();
        self.read(move |conn, _| {
            conn.prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE id = ?1"
            ))
            .db()?
            .query_row([&id], entry_row)
            .optional()
            .db()?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// All entries, or those of one parent.
    pub(crate) async fn list_entries(
        &self,
        parent: Option<&str>,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        let parent = parent.map(str::to_owned);
        self.read(move |conn, _| {
            let mut stmt;
            let rows = match &parent {
                Some(parent) => {
                    stmt = conn
                        .prepare_cached(&format!(
                            "SELECT {ENTRY_COLUMNS} FROM entries WHERE parent_id = ?1"
                        ))
                        .db()?;
                    stmt.query_map([parent], entry_row).db()?
                }
                None => {
                    stmt = conn
                        .prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM entries"))
                        .db()?;
                    stmt.query_map([], entry_row).db()?
                }
            };
            let mut out = rows.collect::<rusqlite::Result<Vec<_>>>().db()?;
            codec::sort_entries(&mut out);
            Ok(out)
        })
        .await
    }

    pub(crate) async fn put_join_token(
        &self,
        token: &JoinTokenRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let key = codec::join_token_key(&token.token_hash);
        let (expires_at, created_at) = (token.expires_at, token.created_at);
        let audit = audit.clone();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO join_tokens (token_hash, expires_at, created_at)
                     VALUES (?1, ?2, ?3)",
                )
                .db()?
                .execute(params![key, expires_at, created_at])
                .db()?;
            ctx.audit(&audit)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn consume_join_token(
        &self,
        token_hash: &[u8; 32],
        now_ms: i64,
        node: &NodeRecord,
        audit: &AuditEvent,
    ) -> Result<JoinTokenUse, StoreError> {
        let key = codec::join_token_key(token_hash);
        let node = node.clone();
        let audit = audit.clone();
        // Atomic by construction: the single writer runs this job alone inside its savepoint,
        // so no other consumer can see the token between the lookup and the delete.
        self.write(move |ctx| {
            let expires_at: Option<i64> = ctx
                .conn
                .prepare_cached(
                    "DELETE FROM join_tokens WHERE token_hash = ?1 RETURNING expires_at",
                )
                .db()?
                .query_row([&key], |r| r.get(0))
                .optional()
                .db()?;
            let Some(expires_at) = expires_at else {
                return Ok(JoinTokenUse::Unknown);
            };
            if expires_at <= now_ms {
                // Returning Ok keeps the delete: an expired token can never be used anyway.
                return Ok(JoinTokenUse::Expired);
            }
            // A duplicate node fails the job, rolling its savepoint (and the delete) back.
            ctx.conn
                .prepare_cached("INSERT INTO nodes (spiffe_id, created_at) VALUES (?1, ?2)")
                .db()?
                .execute(params![node.spiffe_id, node.created_at])
                .db()?;
            ctx.audit(&audit)?;
            Ok(JoinTokenUse::Consumed)
        })
        .await
    }

    pub(crate) async fn get_node(&self, spiffe_id: &str) -> Result<NodeRecord, StoreError> {
        let spiffe_id = spiffe_id.to_owned();
        self.read(move |conn, _| {
            conn.prepare_cached("SELECT spiffe_id, created_at FROM nodes WHERE spiffe_id = ?1")
                .db()?
                .query_row([&spiffe_id], node_row)
                .optional()
                .db()?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    pub(crate) async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.read(|conn, _| {
            let mut stmt = conn
                .prepare_cached("SELECT spiffe_id, created_at FROM nodes")
                .db()?;
            let mut out = stmt
                .query_map([], node_row)
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            codec::sort_nodes(&mut out);
            Ok(out)
        })
        .await
    }

    pub(crate) async fn list_token_keys(&self) -> Result<Vec<TokenKeyRow>, StoreError> {
        self.read(|conn, _| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_KEY_COLUMNS} FROM token_keys ORDER BY created_at, kid"
                ))
                .db()?;
            let rows = stmt.query_map([], token_key_row).db()?;
            rows.map(Db::db).collect()
        })
        .await
    }

    pub(crate) async fn create_token_key(
        &self,
        row: TokenKeyRow,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let audit = audit.clone();
        self.write(move |ctx| {
            // The partial unique index allows one active key per purpose: the first wins.
            let inserted = insert_token_key(ctx.conn, &row, true)? == 1;
            if inserted {
                ctx.audit(&audit)?;
            }
            Ok(inserted)
        })
        .await
    }

    pub(crate) async fn rotate_token_key(
        &self,
        current_kid: &str,
        row: TokenKeyRow,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let current_kid = current_kid.to_owned();
        let audit = audit.clone();
        self.write(move |ctx| {
            let retired = ctx
                .conn
                .prepare_cached(
                    "UPDATE token_keys SET retired_at = ?1
                     WHERE kid = ?2 AND purpose = ?3 AND retired_at IS NULL",
                )
                .db()?
                .execute(params![row.created_at, current_kid, row.purpose])
                .db()?;
            if retired != 1 {
                return Err(StoreError::Conflict);
            }
            insert_token_key(ctx.conn, &row, false)?;
            ctx.audit(&audit)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn insert_token(
        &self,
        row: TokenRow,
        audit: &AuditEvent,
    ) -> Result<i64, StoreError> {
        let audit = audit.clone();
        self.write(move |ctx| {
            let idx = insert_token_row(ctx.conn, row)?;
            ctx.audit(&audit)?;
            Ok(idx)
        })
        .await
    }

    pub(crate) async fn replace_token(
        &self,
        old_jti: &str,
        row: TokenRow,
        audit: &AuditEvent,
    ) -> Result<i64, StoreError> {
        let old_jti = old_jti.to_owned();
        let audit = audit.clone();
        self.write(move |ctx| {
            let replaced = ctx
                .conn
                .prepare_cached(
                    "UPDATE tokens SET revoked = 1, replaced_by = ?1
                     WHERE jti = ?2 AND revoked = 0",
                )
                .db()?
                .execute(params![row.jti, old_jti])
                .db()?;
            if replaced != 1 {
                return Err(StoreError::Conflict);
            }
            let idx = insert_token_row(ctx.conn, row)?;
            ctx.audit(&audit)?;
            Ok(idx)
        })
        .await
    }

    pub(crate) async fn get_token(&self, jti: &str) -> Result<TokenRow, StoreError> {
        let jti = jti.to_owned();
        self.read(move |conn, _| {
            conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE jti = ?1"
            ))
            .db()?
            .query_row([&jti], token_row)
            .optional()
            .db()?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    pub(crate) async fn revoke_tokens(
        &self,
        by: RevokeBy,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let audit = audit.clone();
        self.write(move |ctx| {
            let (column, value) = match &by {
                RevokeBy::Jti(jti) => ("jti", jti),
                RevokeBy::SubjectHash(hash) => ("subject_hash", hash),
            };
            let exists = ctx
                .conn
                .prepare_cached(&format!("SELECT 1 FROM tokens WHERE {column} = ?1"))
                .db()?
                .exists([value])
                .db()?;
            if !exists {
                return Err(StoreError::NotFound);
            }
            let n = ctx
                .conn
                .prepare_cached(&format!(
                    "UPDATE tokens SET revoked = 1 WHERE {column} = ?1 AND revoked = 0"
                ))
                .db()?
                .execute([value])
                .db()?;
            ctx.audit(&audit)?;
            Ok(n as u64)
        })
        .await
    }

    pub(crate) async fn token_status(&self) -> Result<(i64, Vec<i64>), StoreError> {
        // One read transaction: the counter and the revoked set are one snapshot.
        self.read(|conn, _| {
            let tx = conn.unchecked_transaction().db()?;
            let allocated: i64 = tx
                .prepare_cached("SELECT next_idx FROM token_status_counter WHERE id = 1")
                .db()?
                .query_row([], |r| r.get(0))
                .db()?;
            let revoked = tx
                .prepare_cached("SELECT status_idx FROM tokens WHERE revoked = 1")
                .db()?
                .query_map([], |r| r.get(0))
                .db()?
                .map(Db::db)
                .collect::<Result<Vec<i64>, _>>()?;
            Ok((allocated, revoked))
        })
        .await
    }

    pub(crate) async fn append_audit(&self, audit: &AuditEvent) -> Result<u64, StoreError> {
        let audit = audit.clone();
        self.write(move |ctx| ctx.audit(&audit)).await
    }

    pub(crate) async fn list_audit(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        // Past i64::MAX there is nothing (sequence numbers are stored as i64).
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        self.read(move |conn, _| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, time, actor, action, target, outcome, detail, mac
                     FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .db()?;
            let rows = stmt
                .query_map(params![after, i64::from(limit)], raw_entry)
                .db()?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row.db()?.into_entry()?);
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        self.read(|conn, keys| {
            // One read transaction: the entries and the head come from the same snapshot.
            exec(conn, "BEGIN")?;
            let result = (|| {
                let mut verifier = Verifier::new(keys);
                {
                    let mut stmt = conn
                        .prepare_cached(
                            "SELECT seq, time, actor, action, target, outcome, detail, mac
                             FROM audit ORDER BY seq",
                        )
                        .db()?;
                    let rows = stmt.query_map([], raw_entry).db()?;
                    for row in rows {
                        verifier.feed(&row.db()?);
                    }
                }
                let head = conn
                    .query_row(
                        "SELECT seq, mac, tag FROM audit_head WHERE id = 1",
                        [],
                        |r| {
                            Ok(HeadRow {
                                seq: r.get(0)?,
                                mac: r.get(1)?,
                                tag: r.get(2)?,
                            })
                        },
                    )
                    .optional()
                    .db()?;
                Ok(verifier.finish(head.as_ref()))
            })();
            let end = exec(conn, "COMMIT");
            let report = result?;
            end?;
            Ok(report)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daas_crypto::Key256;

    fn keys() -> StorageKeys {
        StorageKeys::derive(&Key256::from_bytes([3; 32]))
    }

    /// `PRAGMA synchronous` reads 2 for FULL (1 = NORMAL, 3 = EXTRA).
    fn synchronous(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    }

    /// Acknowledged writes must survive power loss: the writer connection (the only one that
    /// commits) fsyncs the WAL on every COMMIT.
    #[test]
    fn writer_connection_is_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("daas.db"), &keys()).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(synchronous(&conn), 2, "writer must run synchronous = FULL");
        // Reopening an existing database applies it again (the pragma is per connection).
        drop(conn);
        let conn = open_writer(&dir.path().join("daas.db"), &keys()).unwrap();
        assert_eq!(synchronous(&conn), 2);
    }

    /// The pragma we apply to every read-write connection is FULL (the checkpointer uses it too).
    #[test]
    fn synchronous_pragma_is_full() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA synchronous = OFF").unwrap();
        conn.execute_batch(SYNCHRONOUS).unwrap();
        assert_eq!(synchronous(&conn), 2);
    }

    /// A database file we create is private to its owner.
    #[cfg(unix)]
    #[test]
    fn created_database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daas.db");
        create_private_file(&path).unwrap();
        create_private_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}
