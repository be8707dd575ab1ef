//! Reload (SPEC.md "Reload and shutdown"): SIGHUP, or a change to the config file or any file it
//! names (secret files, certificate, key, client CA), loads the config again — parsed and
//! validated in full, file secrets re-read, certificates checked — and swaps it in whole. A
//! broken new config is refused, logged with its errors and counted; the old one keeps serving.
//!
//! One watcher serves config, secrets and certificates: every [`POLL`] it fingerprints each
//! named path — the file the path resolves to *now* (every symlink followed again, so the
//! Kubernetes `..data` swap in the mounted directory shows as a new target), its device, inode,
//! size, mtime and ctime. Polling was chosen over inotify (the `notify` crate): an inotify watch
//! on a file keeps watching the old inode after a symlink swap or a rename-over, so it needs
//! watches on every directory of the symlink chain and re-arming after each swap; polling a few
//! paths once a second costs a handful of `stat` calls, works the same on every filesystem
//! (overlayfs, NFS, tmpfs projected volumes), and a second of latency is nothing next to the
//! kubelet's own sync period (about a minute). A change is acted on once the fingerprints have
//! stayed the same for [`QUIET`] (a burst of writes, cert then key, is one reload).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::config::{Config, ConfigErrors};

/// How often the watched paths are fingerprinted.
pub const POLL: Duration = Duration::from_secs(1);

/// How long the fingerprints must stay unchanged before a change is acted on.
pub const QUIET: Duration = Duration::from_millis(300);

/// Longest a burst of changes can delay a reload.
const MAX_SETTLE: Duration = Duration::from_secs(10);

/// What one path looks like right now; `None` in [`Fingerprints`] when it cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    target: PathBuf,
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Fingerprints of the watched paths, in order.
type Fingerprints = Vec<Option<Fingerprint>>;

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    let target = std::fs::canonicalize(path).ok()?;
    let m = std::fs::metadata(&target).ok()?;
    Some(Fingerprint {
        target,
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

fn fingerprints(paths: &[PathBuf]) -> Fingerprints {
    paths.iter().map(|p| fingerprint(p)).collect()
}

/// The config file and every file it names, without repeats.
pub fn watch_list(config: &Config) -> Vec<PathBuf> {
    let mut out = vec![config.source.clone()];
    for p in &config.watched_files {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// Why a reload happened, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP (or [`crate::app::App::request_reload`]).
    Signal,
    /// A watched file changed.
    FileChange,
}

impl Trigger {
    /// The log word (`signal`, `file_change`).
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "signal",
            Trigger::FileChange => "file_change",
        }
    }
}

/// What a reload hands its outcome to: the running sidecar ([`crate::app::App`]) puts a valid
/// new config in force, or counts a refused one. Reload itself only loads and validates.
pub trait Target: std::fmt::Debug + Send + Sync + 'static {
    /// Puts `config` (loaded and validated in full) in force.
    fn apply(&self, config: Config, trigger: Trigger);
    /// Counts a config that was refused; the running one keeps serving.
    fn refuse(&self, errors: &ConfigErrors);
}

/// Loads the config at `path` and, if it is valid, hands it to `target` to put in force; a
/// refused config is logged here and counted by `target`.
///
/// # Errors
/// The new config's problems; nothing was changed.
pub fn reload(
    target: &dyn Target,
    path: &Path,
    trigger: Trigger,
) -> Result<Vec<PathBuf>, ConfigErrors> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            target.refuse(&errors);
            for e in &errors.0 {
                tracing::error!(error = %e, "reload refused; the running config keeps serving");
            }
            tracing::error!(
                config = %path.display(),
                trigger = trigger.as_str(),
                errors = errors.0.len(),
                "reload refused"
            );
            return Err(errors);
        }
    };
    let paths = watch_list(&config);
    target.apply(config, trigger);
    Ok(paths)
}

/// Keys whose new value cannot be applied to a running process.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let (o, n) = (&old.limits, &new.limits);
    let checks = [
        ("listen.address", old.listen.address != new.listen.address),
        (
            "listen.tls (on/off)",
            old.listen.tls.is_some() != new.listen.tls.is_some(),
        ),
        ("admin.address", old.admin.address != new.admin.address),
        (
            "limits.header_timeout",
            o.header_timeout != n.header_timeout,
        ),
        (
            "limits.max_connections",
            o.max_connections != n.max_connections,
        ),
        ("limits.max_headers", o.max_headers != n.max_headers),
        (
            "limits.max_header_bytes",
            o.max_header_bytes != n.max_header_bytes,
        ),
        (
            "limits.shutdown_grace",
            o.shutdown_grace != n.shutdown_grace,
        ),
        ("limits.drain_delay", o.drain_delay != n.drain_delay),
        ("limits.idle_timeout", o.idle_timeout != n.idle_timeout),
        (
            "limits.max_buffered_bytes",
            o.max_buffered_bytes != n.max_buffered_bytes,
        ),
        (
            "limits.max_concurrent_streams",
            o.max_concurrent_streams != n.max_concurrent_streams,
        ),
        ("limits.write_timeout", o.write_timeout != n.write_timeout),
        (
            "upstream.max_connections",
            old.upstream.max_connections != new.upstream.max_connections,
        ),
        (
            "upstream.connect_timeout",
            old.upstream.connect_timeout != new.upstream.connect_timeout,
        ),
        (
            "replay.store",
            old.replay.store.as_str() != new.replay.store.as_str(),
        ),
        (
            "replay.url",
            old.replay.store.url() != new.replay.store.url(),
        ),
        (
            "replay.capacity",
            old.replay.capacity != new.replay.capacity,
        ),
        (
            "replay.command_timeout",
            old.replay.command_timeout != new.replay.command_timeout,
        ),
        // The spool is opened once, at start.
        ("queue", old.queue != new.queue),
    ];
    for (key, changed) in checks {
        if changed {
            out.push(key);
        }
    }
    out
}

/// Waits until `poll` returns the same value twice `quiet` apart (or `max` has passed) and
/// returns that value.
async fn settle<T: PartialEq, F: Future<Output = T>>(
    mut last: T,
    quiet: Duration,
    max: Duration,
    mut poll: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        tokio::time::sleep(quiet).await;
        let now = poll().await;
        if now == last || tokio::time::Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// What the watched files looked like when a config was loaded; changes are seen against it.
#[derive(Debug, Clone)]
pub struct Baseline {
    source: PathBuf,
    paths: Vec<PathBuf>,
    seen: Fingerprints,
}

impl Baseline {
    /// Fingerprints the files of `config` (a few `stat` calls). Taken as soon as the config is
    /// loaded, so a change made while the listener starts is not missed.
    pub fn new(config: &Config) -> Baseline {
        let paths = watch_list(config);
        Baseline {
            source: config.source.clone(),
            seen: fingerprints(&paths),
            paths,
        }
    }
}

/// The reload loop of one running sidecar.
#[derive(Debug)]
pub struct Watcher {
    target: Arc<dyn Target>,
    source: PathBuf,
    paths: Vec<PathBuf>,
    seen: Fingerprints,
}

impl Watcher {
    /// A watcher reloading into `target`, starting from the baseline taken when its config
    /// was loaded.
    pub fn new(target: Arc<dyn Target>, baseline: Baseline) -> Watcher {
        Watcher {
            target,
            source: baseline.source,
            paths: baseline.paths,
            seen: baseline.seen,
        }
    }

    /// Reloads on a change or on `trigger`, until `stop` completes.
    pub async fn run(self, trigger: Arc<Notify>, stop: impl Future<Output = ()>) {
        watch(self, trigger, stop).await;
    }
}

async fn watch(w: Watcher, trigger: Arc<Notify>, stop: impl Future<Output = ()>) {
    let Watcher {
        target,
        source,
        mut paths,
        mut seen,
    } = w;
    tokio::pin!(stop);
    loop {
        let why = tokio::select! {
            () = &mut stop => return,
            () = trigger.notified() => Trigger::Signal,
            () = tokio::time::sleep(POLL) => Trigger::FileChange,
        };
        if why == Trigger::FileChange {
            let p = paths.clone();
            let Some(now) = blocking(move || fingerprints(&p)).await else {
                continue;
            };
            if now == seen {
                continue;
            }
            let changed: Vec<String> = paths
                .iter()
                .zip(now.iter().zip(seen.iter()))
                .filter(|(_, (a, b))| a != b)
                .map(|(p, _)| p.display().to_string())
                .collect();
            tracing::info!(files = %changed.join(", "), "watched files changed");
            let p = paths.clone();
            settle(now, QUIET, MAX_SETTLE, || {
                let p = p.clone();
                async move { blocking(move || fingerprints(&p)).await.unwrap_or_default() }
            })
            .await;
        }
        let (a, s, p) = (Arc::clone(&target), source.clone(), paths.clone());
        let started = SystemTime::now();
        let done = blocking(move || {
            // Fingerprints from before the load: a file that changes while it is being read
            // differs from them and is loaded again on the next poll.
            let before = fingerprints(&p);
            let result = reload(&*a, &s, why);
            (before, result)
        })
        .await;
        tracing::debug!(took = ?started.elapsed().unwrap_or_default(), "reload attempt done");
        match done {
            Some((before, Ok(new_paths))) => {
                let p = new_paths.clone();
                let after = blocking(move || fingerprints(&p)).await.unwrap_or_default();
                seen = new_paths
                    .iter()
                    .zip(after)
                    .map(|(path, fp)| match paths.iter().position(|o| o == path) {
                        Some(i) => before.get(i).cloned().flatten(),
                        None => fp,
                    })
                    .collect();
                paths = new_paths;
            }
            // A refused config is not retried until something changes again.
            Some((before, Err(_))) => seen = before,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn a_burst_settles_once_the_value_stops_changing() {
        let mut calls = 0u32;
        // Changes on the first three polls, then stays put.
        let v = settle(0u32, Q, Duration::from_secs(600), || {
            calls += 1;
            let v = calls.min(3);
            async move { v }
        })
        .await;
        assert_eq!(v, 3);
        assert_eq!(calls, 4, "polled until two polls in a row agreed");
    }

    #[tokio::test]
    async fn a_value_that_never_settles_is_taken_after_the_cap() {
        let mut calls = 0u32;
        let start = tokio::time::Instant::now();
        let cap = Duration::from_millis(50);
        let v = settle(0u32, Q, cap, || {
            calls += 1;
            let v = calls;
            async move { v }
        })
        .await;
        assert!(start.elapsed() >= cap);
        assert_eq!(v, calls);
    }

    #[test]
    fn a_symlink_swap_changes_the_fingerprint_of_the_path_through_it() {
        // The layout kubelet makes for a mounted Secret.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/tls.crt"), "one").unwrap();
        std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/tls.crt", d.join("tls.crt")).unwrap();
        let path = d.join("tls.crt");
        let before = fingerprint(&path).unwrap();
        assert_eq!(fingerprint(&path), Some(before.clone()), "stable");

        std::fs::create_dir(d.join("..v2")).unwrap();
        std::fs::write(d.join("..v2/tls.crt"), "two").unwrap();
        std::os::unix::fs::symlink("..v2", d.join("..tmp")).unwrap();
        std::fs::rename(d.join("..tmp"), d.join("..data")).unwrap();
        let after = fingerprint(&path).unwrap();
        assert_ne!(after, before);
        assert!(after.target.ends_with("..v2/tls.crt"), "{after:?}");

        std::fs::remove_dir_all(d.join("..v2")).unwrap();
        assert_eq!(fingerprint(&path), None, "a dangling link is a change too");
    }
}
