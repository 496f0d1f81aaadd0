//! The shared storage suite on embedded SQLite (a fresh database file per test).
#[cfg(test)]
#[macro_use]
mod suite;

// Wrapped in a `cfg(test)` module so the test-code lint exemptions (clippy.toml) apply.
#[cfg(test)]
mod sqlite {
    use super::suite;
    use daas_store::{Store, StoreUrl};
    use suite::Backend;

    struct SqliteBackend {
        store: Store,
        path: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    async fn setup() -> Option<SqliteBackend> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daas.db");
        let store = Store::open(&StoreUrl::Sqlite(path.clone()), suite::keys(1))
            .await
            .unwrap();
        Some(SqliteBackend {
            store,
            path,
            _dir: dir,
        })
    }

    impl SqliteBackend {
        fn raw(&self) -> rusqlite::Connection {
            let conn = rusqlite::Connection::open(&self.path).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            conn
        }
    }

    impl Backend for SqliteBackend {
        fn store(&self) -> &Store {
            &self.store
        }

        fn url(&self) -> String {
            format!("sqlite:{}", self.path.display())
        }

        fn unavailable_url(&self) -> String {
            format!("sqlite:{}", self.path.join("no/such/dir/daas.db").display())
        }

        async fn exec(&self, sql: &str) {
            self.raw().execute_batch(sql).unwrap();
        }

        async fn query_i64(&self, sql: &str) -> i64 {
            self.raw().query_row(sql, [], |r| r.get(0)).unwrap()
        }

        async fn dump(&self) -> Vec<u8> {
            // The main file plus the WAL (where recent commits live until a checkpoint).
            let mut out = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let mut p = self.path.clone().into_os_string();
                p.push(suffix);
                if let Ok(bytes) = std::fs::read(&p) {
                    out.extend_from_slice(&bytes);
                }
            }
            out
        }

        async fn cleanup(self) {}
    }

    store_suite!(setup);

    /// SQLite specific: after a checkpoint, a deleted object's sealed share is not left in the file
    /// (`secure_delete`), so crypto-shredding does not depend on page reuse.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleted_share_is_overwritten_on_disk() {
        let b = setup().await.unwrap();
        let mut obj = suite::object_for(daas_crypto::ObjectId([0x42; 16]));
        obj.id = daas_crypto::ObjectId([0x42; 16]);
        b.store
            .put_object(&obj, &suite::ev("safe.encrypt", "x"))
            .await
            .unwrap();
        let sealed: Vec<u8> = b
            .raw()
            .query_row("SELECT share FROM objects", [], |r| r.get(0))
            .unwrap();
        b.exec("PRAGMA wal_checkpoint(TRUNCATE)").await;
        assert!(b.dump().await.windows(sealed.len()).any(|w| w == sealed));
        b.store
            .delete_object(&obj.id, &suite::ev("safe.delete", "x"))
            .await
            .unwrap();
        // A concurrent checkpoint by the store's checkpointer makes ours report busy: retry.
        let raw = b.raw();
        let mut tries = 0;
        loop {
            let busy: i64 = raw
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .unwrap();
            if busy == 0 {
                break;
            }
            tries += 1;
            assert!(tries < 100, "cannot checkpoint");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let main = std::fs::read(&b.path).unwrap();
        assert!(!main.windows(sealed.len()).any(|w| w == sealed));
    }

    /// The file really is in WAL mode and private to its owner.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_pragmas() {
        let b = setup().await.unwrap();
        let mode: String = b
            .raw()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&b.path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "database file is readable by others: {mode:o}"
            );
        }
    }
}
