//! Group commit for the writes on every request's path: `put_object` (each encrypt) and
//! `append_audit` (the release audit of each decrypt, and failure audits).
//!
//! Every audited write locks the one chain head (`audit_head ... FOR UPDATE`) until its
//! `COMMIT` has been flushed, so one transaction per request serialises requests end to end on
//! the head lock and PostgreSQL's commit fsync (about 1,400 writes/s on the reference machine,
//! whatever the number of connections). Here one task commits the writes waiting in a queue
//! together: the objects in one `INSERT ... SELECT FROM UNNEST`, then the chain head is locked
//! once, every audit entry is chained and inserted in one statement, and one `COMMIT` (one
//! fsync) acknowledges them all. While a batch commits, the next one gathers.
//!
//! Guarantees, as for the single-write path:
//! - a caller is answered only after `COMMIT` returned, so an acknowledged write is durable;
//! - a write that fails on its own (an object id that already exists) fails alone, with no
//!   audit entry: `ON CONFLICT DO NOTHING RETURNING id` tells which rows were inserted, and a
//!   repeated id within one batch goes in once, its later copies conflict;
//! - any other failure (the database unreachable, the commit refused) fails every write of the
//!   batch, and nothing of the batch is written;
//! - data statements run before the head is locked (the module invariant of `postgres.rs`), so
//!   the head lock is held only for the audit insert and the commit.
//!
//! A caller that goes away (request cancelled) does not cancel its write, as with SQLite.
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use daas_crypto::storage::StorageKeys;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

use super::{Pg, Tx, lock_chain, pool_err, store_entries, unavailable};
use crate::codec::ObjectRow;
use crate::{AuditEvent, StoreError};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 256;
/// Writes waiting for the committer; beyond this, callers wait to enqueue (backpressure).
const QUEUE: usize = 4096;
/// Longest a batch may take, from taking a pooled connection to `COMMIT`.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A write that can share a transaction with others.
pub(super) enum Write {
    /// A new object and the audit entry of its creation.
    Object(ObjectRow, AuditEvent),
    /// An audit entry alone.
    Audit(AuditEvent),
}

struct Job {
    write: Write,
    /// The job's audit seq once committed.
    reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// Handle to the committer task; the task ends when the last handle is dropped.
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Start the committer on the current tokio runtime.
    pub(super) fn start(pool: Pool, keys: StorageKeys) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(committer(pool, keys, queue));
        Self { jobs }
    }

    /// Queue `write` and wait until its batch has committed. Returns its audit seq.
    pub(super) async fn submit(&self, write: Write) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { write, reply })
            .await
            .map_err(|_| unavailable("group commit task stopped".into()))?;
        answer.await.unwrap_or_else(|_| {
            // The batch task ended without answering: it panicked (a bug). Whether the write
            // committed is unknown, so the caller gets an internal error, never a success.
            tracing::error!("postgres group commit ended without an answer");
            Err(StoreError::Internal("storage write failed".into()))
        })
    }
}

async fn committer(pool: Pool, keys: StorageKeys, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        // One batch at a time (they would only queue on the head lock), each in its own task
        // so that a panic answers its own callers with an error and leaves the committer alive.
        let (pool, keys) = (pool.clone(), keys.clone());
        let _ = tokio::spawn(async move { commit_and_answer(&pool, &keys, jobs).await }).await;
    }
}

async fn commit_and_answer(pool: &Pool, keys: &StorageKeys, jobs: Vec<Job>) {
    let writes: Vec<&Write> = jobs.iter().map(|j| &j.write).collect();
    let answers: Vec<Result<u64, StoreError>> = match commit_in_time(pool, keys, &writes).await {
        Ok(results) => results,
        // A database error that is not about reaching the database (a value it refuses, say)
        // may be one write's fault: nothing of the batch was written, so run each write alone
        // and let only the culprit fail. Unreachable means unreachable for all of them.
        Err(e) if writes.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
            tracing::warn!(error = %e, jobs = writes.len(), "postgres batch failed; retrying its writes one by one");
            let mut answers = Vec::with_capacity(writes.len());
            for write in &writes {
                let alone = commit_in_time(pool, keys, std::slice::from_ref(write)).await;
                answers.push(alone.and_then(|mut r| r.pop().unwrap_or_else(not_run)));
            }
            answers
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = writes.len(), "postgres batch failed");
            writes.iter().map(|_| Err(e.for_each_job())).collect()
        }
    };
    let mut answers = answers.into_iter();
    for job in jobs {
        // The caller may have gone away; the write stands regardless (as on SQLite: a cancelled
        // request must not be able to drop its own audit entry).
        let _ = job.reply.send(answers.next().unwrap_or_else(not_run));
    }
}

fn not_run() -> Result<u64, StoreError> {
    Err(StoreError::Internal("storage write was not run".into()))
}

/// [`commit`], failing closed after [`BATCH_TIMEOUT`] (a hung connection or a head lock held
/// elsewhere would otherwise stall every write of this server behind it). If the limit strikes
/// during `COMMIT` the outcome is unknown, as with any lost connection: the callers get
/// `Unavailable`, never a success.
async fn commit_in_time(
    pool: &Pool,
    keys: &StorageKeys,
    writes: &[&Write],
) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
    tokio::time::timeout(BATCH_TIMEOUT, commit(pool, keys, writes))
        .await
        .unwrap_or_else(|_| Err(unavailable("postgres batch timed out".into())))
}

/// Commit `writes` in one transaction: `Ok` holds each write's own outcome, in order (its seq,
/// or `Conflict` for an object id that exists); `Err` means nothing was written.
async fn commit(
    pool: &Pool,
    keys: &StorageKeys,
    writes: &[&Write],
) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let tx = client.transaction().await.db()?;
    // Distinct ids in id order: every batch takes its row locks in one global order, so two
    // replicas' batches waiting on each other's uncommitted ids cannot deadlock (callers choose
    // ids in client mode, so the order within a queue is theirs).
    let mut objects = BTreeMap::new();
    for write in writes {
        if let Write::Object(row, _) = write {
            objects.entry(row.id.as_str()).or_insert(row);
        }
    }
    let objects: Vec<&ObjectRow> = objects.into_values().collect();
    let inserted = insert_objects(&tx, &objects).await?;
    let mut chain = lock_chain(&tx, keys).await?;
    let mut claimed = HashSet::new();
    let mut entries = Vec::with_capacity(writes.len());
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        let event = match write {
            // Ours only if this batch inserted the row and no earlier write of the batch claimed
            // it: of several writes of one id in a batch, only the first is inserted (the
            // `or_insert` above) and acknowledged; the later ones conflict.
            Write::Object(row, event) => {
                if !inserted.contains(row.id.as_str()) || !claimed.insert(row.id.as_str()) {
                    results.push(Err(StoreError::Conflict));
                    continue;
                }
                event
            }
            Write::Audit(event) => event,
        };
        let entry = chain.append(keys, event)?;
        results.push(Ok(entry.seq));
        entries.push(entry);
    }
    if !entries.is_empty() {
        store_entries(&tx, keys, &entries, &chain).await?;
    }
    tx.commit().await.db()?;
    Ok(results)
}

/// Insert `rows` (distinct ids) in one statement; returns the ids that were inserted (the others
/// exist already).
async fn insert_objects(tx: &Tx<'_>, rows: &[&ObjectRow]) -> Result<HashSet<String>, StoreError> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let bytes = |f: fn(&ObjectRow) -> &[u8]| rows.iter().map(|r| f(r)).collect::<Vec<&[u8]>>();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO objects (id, share, commitment, access, owner, audience, meta, created_at)
             SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bytea[], $4::bytea[],
                                  $5::bytea[], $6::bytea[], $7::bytea[], $8::int8[])
             ON CONFLICT (id) DO NOTHING
             RETURNING id",
        )
        .await
        .db()?;
    let inserted = tx
        .query(
            &stmt,
            &[
                &rows.iter().map(|r| r.id.as_str()).collect::<Vec<&str>>(),
                &bytes(|r| r.share.as_slice()),
                &bytes(|r| r.commitment.as_slice()),
                &bytes(|r| r.access.as_slice()),
                &bytes(|r| r.owner.as_slice()),
                &bytes(|r| r.audience.as_slice()),
                &bytes(|r| r.meta.as_slice()),
                &rows.iter().map(|r| r.created_at).collect::<Vec<i64>>(),
            ],
        )
        .await
        .db()?;
    inserted.iter().map(|r| r.try_get(0).db()).collect()
}
