//! Rough throughput of concurrent durable `put_object` calls (group commit on either backend).
//! Not a benchmark harness, just a one-shot measurement:
//!
//! ```text
//! cargo run --release -p daas-store --example write_throughput -- [TASKS] [WRITES_PER_TASK] [STORE_URL]
//! ```
//!
//! Without `STORE_URL` it writes to SQLite in a temporary directory; with one (for example
//! `postgres://daas:daas@127.0.0.1/daas_tp`) it writes there, so give it an empty database.
#![expect(
    clippy::print_stdout,
    reason = "an example program reporting its measurement"
)]

use std::time::Instant;

use daas_crypto::storage::StorageKeys;
use daas_crypto::{Key256, ObjectId};
use daas_store::{AuditEvent, ObjectMode, ObjectRecord, Store, StoreUrl};

fn object(n: u64) -> ObjectRecord {
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    ObjectRecord {
        id: ObjectId(id),
        owner: "admin".into(),
        audience: String::new(),
        key_version: 1,
        suite: 2,
        mode: ObjectMode::Server,
        server_share: Key256::from_bytes([7; 32]),
        commitment: [9; 32],
        access: vec!["admin".into(), "app:web".into()],
        created_at: 1_700_000_000_000,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tasks: u64 = args.next().map_or(Ok(256), |a| a.parse())?;
    let each: u64 = args.next().map_or(Ok(200), |a| a.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let url = match args.next() {
            Some(url) => url.parse::<StoreUrl>()?,
            None => StoreUrl::Sqlite(dir.path().join("bench.db")),
        };
        let store = Store::open(&url, StorageKeys::derive(&Key256::from_bytes([1; 32]))).await?;
        let event = AuditEvent {
            actor: "admin".into(),
            action: "safe.encrypt".into(),
            target: "bench".into(),
            outcome: "ok".into(),
            detail: String::new(),
        };
        let start = Instant::now();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            let event = event.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..each {
                    store.put_object(&object(t * 1_000_000 + i), &event).await?;
                }
                Ok::<_, daas_store::StoreError>(())
            }));
        }
        for h in handles {
            h.await??;
        }
        let elapsed = start.elapsed();
        let total = tasks * each;
        let report = store.verify_audit().await?;
        println!(
            "{total} durable put_object from {tasks} concurrent tasks in {:.2?}: {:.0} writes/s \
             (audit chain: {} entries, first_broken = {:?})",
            elapsed,
            total as f64 / elapsed.as_secs_f64(),
            report.entries,
            report.first_broken,
        );
        Ok(())
    })
}
