//! Thread per core: single-threaded runtimes that the listener spreads connections over.
//!
//! Each connection lives on one thread from accept to close, with its request tasks and the
//! upstream connections it uses (the pool keeps one shard per thread, [`shard`]): no work
//! stealing, no cross-thread wake-ups per request. Measured against tokio's multi-threaded
//! scheduler in BENCHMARKS.md ("What was learned").
//!
//! The runtime that accepts (the process's main one, which also runs the admin port, the
//! reload watcher and the replay store's connection) takes its turn in the rotation, so
//! `threads` workers means `threads - 1` extra threads.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// The pool shard of the calling thread: 0 for any thread that is not a worker.
pub fn shard() -> usize {
    SHARD.with(Cell::get)
}

/// The extra runtimes, in rotation with the caller's own; empty: everything stays on the
/// runtime that accepts (tests, one CPU).
#[derive(Debug, Clone, Default)]
pub struct Workers {
    handles: Arc<Vec<Handle>>,
    next: Arc<AtomicUsize>,
}

impl Workers {
    /// Starts `threads - 1` threads, each running a single-threaded runtime until the process
    /// exits.
    ///
    /// # Errors
    /// A thread or runtime that cannot be created.
    pub fn start(threads: usize) -> std::io::Result<Workers> {
        let mut handles = Vec::new();
        for i in 1..threads {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            std::thread::Builder::new()
                // Linux shows 15 characters of a thread name.
                .name(format!("hookseal-w{i}"))
                .spawn(move || {
                    SHARD.with(|s| s.set(i));
                    rt.block_on(std::future::pending::<()>());
                })?;
        }
        Ok(Workers {
            handles: Arc::new(handles),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Threads serving connections, the accepting one included.
    pub fn threads(&self) -> usize {
        self.handles.len() + 1
    }

    /// Where the next connection goes: `None` for the caller's own runtime.
    pub(crate) fn pick(&self) -> Option<&Handle> {
        if self.handles.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) % (self.handles.len() + 1);
        n.checked_sub(1).map(|i| &self.handles[i])
    }
}

/// Threads to serve with: `HOOKSEAL_WORKERS` when set to a positive number, else the CPUs
/// this process may use (cgroup quota included, as `std::thread::available_parallelism`
/// reads it).
pub fn default_threads() -> usize {
    std::env::var("HOOKSEAL_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
