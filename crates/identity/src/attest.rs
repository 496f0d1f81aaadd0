//! Workload attestation ("software DNA"): what a local process *is*, read from the kernel.
//!
//! The sensor learns a caller's pid, uid and gid from the Unix socket itself (`SO_PEERCRED`,
//! which the kernel fills in at `connect`; the caller cannot forge it) and hands them to
//! [`Attestor::attest`], which reads, from `/proc/<pid>`:
//! - the SHA-256 of the binary the process is *running* — by opening `/proc/<pid>/exe`, which
//!   resolves to the executed inode even if the file at that path was since replaced, renamed
//!   or deleted, so swapping the file on disk after start does not change the answer;
//! - the path that binary was started from (for `unix:path:` selectors);
//! - the cgroup (container / service unit).
//!
//! **Pid reuse.** Between `connect` and our reads the caller could exit and its pid be reused by
//! another process. We read the process start time (`/proc/<pid>/stat`, field 22) and its real
//! uid/gid before and after hashing and refuse if anything changed or differs from the socket's
//! credentials; the sensor must also check, after attestation, that the caller's connection is
//! still open (a process that exited closed it), which closes the remaining window.
//!
//! **Digest cache.** Hashing a 100 MiB binary on every call would be slow, so digests are
//! cached by the file's identity as the kernel reports it for the opened inode: (device, inode,
//! size, mtime, ctime). Any write to the file changes mtime/ctime (and a replaced file is another
//! inode), so a stale digest is never served for changed content.
//!
//! All reads are plain `std::fs` calls: no `unsafe` is needed here.
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most digests kept; the cache is cleared when full (binaries on a node are few).
const CACHE_CAPACITY: usize = 4096;
/// Read buffer for hashing.
const HASH_CHUNK: usize = 64 * 1024;
/// Largest binary we hash: a caller must not make the sensor read a terabyte-sized sparse file.
pub const MAX_BINARY_BYTES: u64 = 1 << 30;
/// A file changed this recently may change again within the timestamp granularity of the
/// filesystem (a timer tick, or seconds on some filesystems) without its (mtime, ctime)
/// changing, so its digest is not cached (git's "racy clean" rule).
const RACY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// Credentials the kernel attached to the caller's socket (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What attestation established about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadFacts {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    /// SHA-256 of the running binary.
    pub binary_sha256: [u8; 32],
    /// The path the binary was executed from (as the kernel reports it; a deleted file keeps
    /// its old path with a ` (deleted)` suffix, which then matches no `unix:path:` selector).
    pub binary_path: PathBuf,
    /// The cgroup v2 path (`/system.slice/x.service`), or the first v1 path, when known.
    pub cgroup: Option<String>,
    /// When the process started, Unix milliseconds (boot time + its start in clock ticks),
    /// when `/proc/stat` gives the boot time. With the pid it names this one process run:
    /// instance documents are derived from it.
    pub started_at_ms: Option<i64>,
}

impl WorkloadFacts {
    pub fn binary_sha256_hex(&self) -> String {
        hex::encode(self.binary_sha256)
    }

    /// The selectors these facts exhibit, for matching registration entries. A path or cgroup
    /// that is not a valid selector value (not UTF-8, a deleted binary's suffix, too long) is
    /// left out: an entry that requires it then does not match, which fails closed.
    pub fn selectors(&self) -> Vec<crate::Selector> {
        use crate::Selector;
        let mut selectors = vec![
            Selector::UnixSha256(self.binary_sha256),
            Selector::UnixUid(self.uid),
            Selector::UnixGid(self.gid),
        ];
        if let Some(path) = self.binary_path.to_str()
            && let Ok(selector) = Selector::unix_path(path)
        {
            selectors.push(selector);
        }
        if let Some(cgroup) = &self.cgroup
            && let Ok(selector) = Selector::cgroup(cgroup)
        {
            selectors.push(selector);
        }
        selectors
    }
}

/// Why a process could not be attested. The caller gets no identity in every case; the
/// precise reason is for the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The process is gone (or never existed): nothing to attest.
    #[error("process {pid} is gone")]
    ProcessGone { pid: u32 },
    /// The pid now names another process, or its credentials no longer match the socket's.
    #[error("process {pid} changed during attestation ({what})")]
    ProcessChanged { pid: u32, what: &'static str },
    /// `/proc` could not be read for a reason other than the process being gone (permissions,
    /// no procfs): a deployment problem.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `/proc/<pid>/stat` did not have the expected shape.
    #[error("unexpected format of {path}")]
    Format { path: String },
    /// The binary is larger than [`MAX_BINARY_BYTES`]: not hashed.
    #[error("the binary of process {pid} is too large to attest ({bytes} bytes)")]
    TooLarge { pid: u32, bytes: u64 },
}

/// Attests local processes; cheap to share (`&self` methods, internal locking).
#[derive(Debug)]
pub struct Attestor {
    proc_root: PathBuf,
    cache: Mutex<HashMap<FileIdentity, [u8; 32]>>,
    hashes_computed: AtomicU64,
    /// `btime` of `/proc/stat`, read once: the kernel recomputes it from the wall clock on
    /// every read, so it may move by a second after a clock step; reading it once keeps a
    /// process's start time (and so its instance ID) stable for this sensor's lifetime.
    boot_time_secs: std::sync::OnceLock<Option<i64>>,
}

/// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, which is 100 on every
/// Linux architecture's user ABI (independent of the kernel's `CONFIG_HZ`).
const USER_HZ: u64 = 100;

impl Default for Attestor {
    fn default() -> Self {
        Self::new()
    }
}

/// The identity of an opened file's content, as far as the kernel tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: (i64, i64),
    ctime_ns: (i64, i64),
}

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: (meta.mtime(), meta.mtime_nsec()),
            ctime_ns: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Start time and real uid/gid: what must not change while we attest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessStamp {
    start_time: u64,
    uid: u32,
    gid: u32,
}

impl Attestor {
    /// An attestor reading the real `/proc`.
    pub fn new() -> Self {
        Self::with_proc_root("/proc")
    }

    /// An attestor reading another procfs mount (a sensor running in a container with the
    /// host's `/proc` mounted elsewhere).
    pub fn with_proc_root(root: impl Into<PathBuf>) -> Self {
        Self {
            proc_root: root.into(),
            cache: Mutex::new(HashMap::new()),
            hashes_computed: AtomicU64::new(0),
            boot_time_secs: std::sync::OnceLock::new(),
        }
    }

    /// How many binaries were hashed (cache misses) since this attestor was made.
    pub fn hashes_computed(&self) -> u64 {
        self.hashes_computed.load(Ordering::Relaxed)
    }

    /// Attest the process behind a socket's credentials.
    pub fn attest(&self, peer: PeerCredentials) -> Result<WorkloadFacts, AttestError> {
        let dir = self.proc_root.join(peer.pid.to_string());
        let before = self.stamp(&dir, peer.pid)?;
        if before.uid != peer.uid || before.gid != peer.gid {
            return Err(AttestError::ProcessChanged {
                pid: peer.pid,
                what: "credentials differ from the socket's",
            });
        }

        let exe_link = dir.join("exe");
        let binary_path =
            std::fs::read_link(&exe_link).map_err(|e| gone_or_io(peer.pid, &exe_link, e))?;
        let mut exe = File::open(&exe_link).map_err(|e| gone_or_io(peer.pid, &exe_link, e))?;
        let meta = exe
            .metadata()
            .map_err(|e| gone_or_io(peer.pid, &exe_link, e))?;
        let identity = FileIdentity::of(&meta);
        if meta.size() > MAX_BINARY_BYTES {
            return Err(AttestError::TooLarge {
                pid: peer.pid,
                bytes: meta.size(),
            });
        }
        let binary_sha256 = match self.cached(&identity) {
            Some(digest) => digest,
            None => {
                let started = std::time::SystemTime::now();
                let digest = hash_file(&mut exe).map_err(|e| io(&exe_link, e))?;
                self.hashes_computed.fetch_add(1, Ordering::Relaxed);
                // Cache only if the file did not change while we read it and is not "racy".
                let after = exe.metadata().map_err(|e| io(&exe_link, e))?;
                if FileIdentity::of(&after) == identity && !changed_recently(&after, started) {
                    self.remember(identity, digest);
                }
                digest
            }
        };
        let cgroup = read_cgroup(&dir.join("cgroup"));

        // The pid-reuse guard: the same process (start time) with the same credentials, still
        // executing the inode we hashed.
        let after = self.stamp(&dir, peer.pid)?;
        if after != before {
            return Err(AttestError::ProcessChanged {
                pid: peer.pid,
                what: "start time or credentials changed",
            });
        }
        let exe_now =
            std::fs::metadata(&exe_link).map_err(|e| gone_or_io(peer.pid, &exe_link, e))?;
        if (exe_now.dev(), exe_now.ino()) != (identity.dev, identity.ino) {
            return Err(AttestError::ProcessChanged {
                pid: peer.pid,
                what: "executable changed",
            });
        }

        let started_at_ms = self.boot_time_secs().and_then(|boot| {
            let since_boot_ms =
                i64::try_from(before.start_time.checked_mul(1000)? / USER_HZ).ok()?;
            boot.checked_mul(1000)?.checked_add(since_boot_ms)
        });
        Ok(WorkloadFacts {
            pid: peer.pid,
            uid: peer.uid,
            gid: peer.gid,
            binary_sha256,
            binary_path,
            cgroup,
            started_at_ms,
        })
    }

    /// The boot time in Unix seconds, read from `/proc/stat` on first use.
    fn boot_time_secs(&self) -> Option<i64> {
        *self.boot_time_secs.get_or_init(|| {
            let stat = std::fs::read_to_string(self.proc_root.join("stat")).ok()?;
            parse_boot_time(&stat)
        })
    }

    fn cached(&self, identity: &FileIdentity) -> Option<[u8; 32]> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(identity)
            .copied()
    }

    fn remember(&self, identity: FileIdentity, digest: [u8; 32]) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(identity, digest);
    }

    fn stamp(&self, dir: &Path, pid: u32) -> Result<ProcessStamp, AttestError> {
        let stat_path = dir.join("stat");
        let stat =
            std::fs::read_to_string(&stat_path).map_err(|e| gone_or_io(pid, &stat_path, e))?;
        let start_time = parse_start_time(&stat).ok_or_else(|| AttestError::Format {
            path: stat_path.display().to_string(),
        })?;
        let status_path = dir.join("status");
        let status =
            std::fs::read_to_string(&status_path).map_err(|e| gone_or_io(pid, &status_path, e))?;
        let (uid, gid) = parse_real_ids(&status).ok_or_else(|| AttestError::Format {
            path: status_path.display().to_string(),
        })?;
        Ok(ProcessStamp {
            start_time,
            uid,
            gid,
        })
    }
}

/// Whether the file's mtime or ctime is within [`RACY_WINDOW`] of `reference` (or after it).
fn changed_recently(meta: &std::fs::Metadata, reference: std::time::SystemTime) -> bool {
    let stamp = |secs: i64, nanos: i64| {
        let secs = u64::try_from(secs).unwrap_or(0);
        let nanos = u32::try_from(nanos).unwrap_or(0);
        std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos)
    };
    let newest = stamp(meta.mtime(), meta.mtime_nsec()).max(stamp(meta.ctime(), meta.ctime_nsec()));
    newest + RACY_WINDOW > reference
}

fn hash_file(file: &mut File) -> std::io::Result<[u8; 32]> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; HASH_CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

/// The `btime` line of `/proc/stat`: boot time in Unix seconds.
fn parse_boot_time(stat: &str) -> Option<i64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v > 0)
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may itself contain spaces and parentheses, so fields are counted after the LAST `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the comm: field 3 (state) is the first; starttime is field 22, i.e. index 19.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// The real uid and gid (first values of the `Uid:` and `Gid:` lines of `/proc/<pid>/status`).
fn parse_real_ids(status: &str) -> Option<(u32, u32)> {
    let mut uid = None;
    let mut gid = None;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            uid = rest.split_whitespace().next()?.parse().ok();
        } else if let Some(rest) = line.strip_prefix("Gid:") {
            gid = rest.split_whitespace().next()?.parse().ok();
        }
    }
    Some((uid?, gid?))
}

/// The unified (v2, `0::PATH`) cgroup path, else the first non-root v1 path.
fn read_cgroup(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_cgroup(&text)
}

fn parse_cgroup(text: &str) -> Option<String> {
    let mut first_v1 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(hierarchy), Some(controllers), Some(path)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if path.is_empty() {
            continue;
        }
        if hierarchy == "0" && controllers.is_empty() {
            return Some(path.to_owned());
        }
        if first_v1.is_none() && path != "/" {
            first_v1 = Some(path.to_owned());
        }
    }
    first_v1
}

fn gone_or_io(pid: u32, path: &Path, e: std::io::Error) -> AttestError {
    // ENOENT / ESRCH: the process exited (its /proc directory vanished).
    if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(3) {
        AttestError::ProcessGone { pid }
    } else {
        io(path, e)
    }
}

fn io(path: &Path, source: std::io::Error) -> AttestError {
    AttestError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn facts_become_selectors_and_invalid_paths_are_left_out() {
        let mut facts = WorkloadFacts {
            pid: 1,
            uid: 1000,
            gid: 100,
            binary_sha256: [0xab; 32],
            binary_path: PathBuf::from("/usr/bin/app"),
            cgroup: Some("/system.slice/app.service".to_owned()),
            started_at_ms: None,
        };
        let text: Vec<String> = facts.selectors().iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                format!("unix:sha256:{}", "ab".repeat(32)),
                "unix:uid:1000".to_owned(),
                "unix:gid:100".to_owned(),
                "unix:path:/usr/bin/app".to_owned(),
                "cgroup:/system.slice/app.service".to_owned(),
            ]
        );
        // A relative or control-character path matches no path selector: it is left out.
        facts.binary_path = PathBuf::from("relative/app");
        facts.cgroup = None;
        assert_eq!(facts.selectors().len(), 3);
    }
    use super::*;
    use std::process::{Command, Stdio};

    fn sha256_of(path: &Path) -> [u8; 32] {
        let bytes = std::fs::read(path).unwrap();
        let mut out = [0u8; 32];
        out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes).as_ref());
        out
    }

    fn me() -> PeerCredentials {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let (uid, gid) = parse_real_ids(&status).unwrap();
        PeerCredentials {
            pid: std::process::id(),
            uid,
            gid,
        }
    }

    /// A child running a private copy of `sleep`, so tests can change the file.
    struct Child {
        child: std::process::Child,
        path: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Child {
        fn spawn_copy_of_sleep() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("workload");
            std::fs::copy("/bin/sleep", &path).unwrap();
            let child = Command::new(&path)
                .arg("30")
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            Self {
                child,
                path,
                _dir: dir,
            }
        }
        fn peer(&self) -> PeerCredentials {
            PeerCredentials {
                pid: self.child.id(),
                ..me()
            }
        }
    }

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn attests_the_running_binary_with_its_path_and_credentials() {
        let child = Child::spawn_copy_of_sleep();
        let attestor = Attestor::new();
        let facts = attestor.attest(child.peer()).unwrap();
        assert_eq!(facts.binary_sha256, sha256_of(&child.path));
        assert_eq!(facts.binary_path, child.path);
        assert_eq!(facts.pid, child.child.id());
        assert_eq!(facts.binary_sha256_hex().len(), 64);
    }

    #[test]
    fn the_start_time_is_stable_and_close_to_now() {
        let spawned_at = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let child = Child::spawn_copy_of_sleep();
        let attestor = Attestor::new();
        let first = attestor
            .attest(child.peer())
            .unwrap()
            .started_at_ms
            .unwrap();
        let again = attestor
            .attest(child.peer())
            .unwrap()
            .started_at_ms
            .unwrap();
        assert_eq!(first, again);
        // Boot time has one-second resolution; allow a generous margin for clock steps.
        assert!(
            (first - spawned_at).abs() < 120_000,
            "{first} vs {spawned_at}"
        );
    }

    #[test]
    fn the_digest_is_of_what_runs_not_of_what_is_on_disk_now() {
        let child = Child::spawn_copy_of_sleep();
        let attestor = Attestor::new();
        let original = attestor.attest(child.peer()).unwrap().binary_sha256;
        // Replace the file at the same path with other content (a new inode): the running
        // process still executes the original bytes, and that is what attestation reports.
        std::fs::remove_file(&child.path).unwrap();
        std::fs::write(&child.path, b"#!/bin/sh\necho something else\n").unwrap();
        let facts = attestor.attest(child.peer()).unwrap();
        assert_eq!(facts.binary_sha256, original);
        // ... and its path no longer equals the path of the file now there.
        assert_ne!(facts.binary_path, child.path);
    }

    #[test]
    fn byte_different_copies_have_different_digests() {
        let a = Child::spawn_copy_of_sleep();
        let dir = tempfile::tempdir().unwrap();
        let patched = dir.path().join("patched");
        let mut bytes = std::fs::read("/bin/sleep").unwrap();
        bytes.extend_from_slice(b"\0one more byte");
        std::fs::write(&patched, &bytes).unwrap();
        std::fs::set_permissions(
            &patched,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut b = Command::new(&patched).arg("30").spawn().unwrap();
        let attestor = Attestor::new();
        let fa = attestor.attest(a.peer()).unwrap();
        let fb = attestor
            .attest(PeerCredentials {
                pid: b.id(),
                ..me()
            })
            .unwrap();
        let _ = b.kill();
        let _ = b.wait();
        assert_ne!(fa.binary_sha256, fb.binary_sha256);
        assert_eq!(fb.binary_sha256, sha256_of(&patched));
    }

    #[test]
    fn digests_are_cached_by_file_identity_unless_the_file_just_changed() {
        // /bin/sleep has not changed for a while: cached.
        let mut sleeper = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let peer = PeerCredentials {
            pid: sleeper.id(),
            ..me()
        };
        let attestor = Attestor::new();
        attestor.attest(peer).unwrap();
        attestor.attest(peer).unwrap();
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert_eq!(
            attestor.hashes_computed(),
            1,
            "second call served from the cache"
        );
        // A copy written a moment ago is "racy": hashed every time until it settles, because a
        // same-size rewrite within the timestamp granularity would keep its cache key.
        let fresh = Child::spawn_copy_of_sleep();
        attestor.attest(fresh.peer()).unwrap();
        attestor.attest(fresh.peer()).unwrap();
        assert_eq!(attestor.hashes_computed(), 3);
    }

    #[test]
    fn recently_changed_files_are_racy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(changed_recently(&meta, std::time::SystemTime::now()));
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
        assert!(!changed_recently(&meta, later));
    }

    #[test]
    fn a_modified_file_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, b"version one").unwrap();
        let mut file = File::open(&path).unwrap();
        let first = FileIdentity::of(&file.metadata().unwrap());
        let d1 = hash_file(&mut file).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"version two").unwrap();
        let mut file = File::open(&path).unwrap();
        let second = FileIdentity::of(&file.metadata().unwrap());
        assert_ne!(first, second, "a rewrite changes the cache key");
        assert_ne!(d1, hash_file(&mut file).unwrap());
    }

    #[test]
    fn an_exited_process_is_gone() {
        let mut child = Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let err = Attestor::new()
            .attest(PeerCredentials { pid, ..me() })
            .unwrap_err();
        assert!(
            matches!(err, AttestError::ProcessGone { pid: p } if p == pid),
            "{err}"
        );
    }

    #[test]
    fn credentials_that_differ_from_the_socket_are_refused() {
        let mut peer = me();
        peer.uid = peer.uid.wrapping_add(1);
        let err = Attestor::new().attest(peer).unwrap_err();
        assert!(matches!(err, AttestError::ProcessChanged { .. }), "{err}");
    }

    #[test]
    fn boot_time_parsing() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nintr 5\nbtime 1764950000\nprocesses 9\n"),
            Some(1_764_950_000)
        );
        for bad in [
            "",
            "btime\n",
            "btime x\n",
            "btime -5\n",
            "xbtime 5\n",
            "btime 0\n",
        ] {
            assert_eq!(parse_boot_time(bad), None, "{bad:?}");
        }
        let real = std::fs::read_to_string("/proc/stat").unwrap();
        assert!(parse_boot_time(&real).is_some());
    }

    #[test]
    fn start_time_parsing_survives_hostile_command_names() {
        // comm may contain spaces and parentheses: count fields after the last ')'.
        let mut fields = vec!["S".to_owned()];
        fields.extend((4..=52).map(|i| i.to_string()));
        let stat = format!("1234 (evil) 1 2 (x) {}", fields.join(" "));
        assert_eq!(parse_start_time(&stat), Some(22));
        assert_eq!(parse_start_time("1234 (no fields)"), None);
        assert_eq!(parse_start_time("garbage"), None);
        let real = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_start_time(&real).is_some());
    }

    #[test]
    fn real_ids_and_cgroups_parse() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t100\t0\t0\t0\n";
        assert_eq!(parse_real_ids(status), Some((1000, 100)));
        assert_eq!(parse_real_ids("Uid:\tx\n"), None);
        assert_eq!(
            parse_cgroup("0::/system.slice/app.service\n").as_deref(),
            Some("/system.slice/app.service")
        );
        assert_eq!(
            parse_cgroup("12:pids:/docker/abc\n11:cpu:/docker/abc\n0::/\n").as_deref(),
            Some("/")
        );
        assert_eq!(
            parse_cgroup("12:pids:/docker/abc\n1:name=systemd:/\n").as_deref(),
            Some("/docker/abc")
        );
        assert_eq!(parse_cgroup(""), None);
    }

    proptest::proptest! {
        #[test]
        fn proc_parsers_never_panic(s in ".{0,400}") {
            let _ = parse_start_time(&s);
            let _ = parse_real_ids(&s);
            let _ = parse_cgroup(&s);
        }
    }
}
