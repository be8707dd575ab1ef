//! Measures the memory the disk spool holds for the entries waiting in it.
//!
//! Run with `cargo run --release --example spool_memory [-- ENTRIES [BODY_BYTES]]` (default
//! 1,000,000 entries of 256 bytes). Prints, from /proc/self/statm:
//! 1. the RSS growth of the spool's in-memory index alone with ENTRIES entries, per entry
//!    (`disk::INDEX_BYTES_PER_ENTRY` is this figure, rounded up);
//! 2. a real spool: ENTRIES entries enqueued (64 tasks, group commits), the spool closed, the
//!    RSS before and after opening it again (the index rebuilt from the file, plus whatever
//!    the storage engine keeps of the pages it read), and the time the open took.

use std::time::Instant;

use bytes::Bytes;
use hookseal::queue::disk::{self, DiskSpool};
use hookseal::queue::{Entry, Limits, Spool};

#[path = "support/rss.rs"]
mod rss;
use rss::rss_bytes;

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("ENTRIES"));
    let body: usize = args.next().map_or(256, |a| a.parse().expect("BODY_BYTES"));

    let base = rss_bytes();
    let index = disk::index_of(n);
    let grown = rss_bytes().saturating_sub(base);
    println!(
        "index alone: {n} entries, RSS +{:.1} MiB = {:.0} bytes/entry (INDEX_BYTES_PER_ENTRY = {})",
        mib(grown),
        grown as f64 / n as f64,
        disk::INDEX_BYTES_PER_ENTRY
    );
    drop(index);

    let dir = tempfile::tempdir().expect("temp dir");
    let limits = Limits {
        max_bytes: 1 << 40,
        max_entries: n + 1,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    rt.block_on(async {
        let spool = Spool::Disk(DiskSpool::open(dir.path(), limits).expect("open"));
        let body = Bytes::from(vec![b'x'; body]);
        let tasks: Vec<_> = (0..64u64)
            .map(|t| {
                let spool = spool.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let mut i = t;
                    while i < n {
                        let e = Entry::new(
                            format!("msg_{i:016x}"),
                            "route",
                            "POST",
                            "/hook",
                            vec![(b"content-type".to_vec(), b"application/json".to_vec())],
                            body.clone(),
                            1_700_000_000_000 + i,
                        );
                        spool.enqueue(e).await.expect("enqueue");
                        i += 64;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
    });
    let file = std::fs::metadata(dir.path().join(disk::FILE_NAME)).map_or(0, |m| m.len());
    println!(
        "filled: {n} entries of {body} bytes in {:.1} s, file {:.1} MiB",
        started.elapsed().as_secs_f64(),
        mib(file)
    );
    let before = rss_bytes();
    let started = Instant::now();
    let spool = DiskSpool::open(dir.path(), limits).expect("reopen");
    let took = started.elapsed();
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "reopened in {:.2} s: RSS +{:.1} MiB = {:.0} bytes/entry (process {:.1} MiB)",
        took.as_secs_f64(),
        mib(grown),
        grown as f64 / n as f64,
        mib(rss_bytes())
    );
    drop(spool);
}
