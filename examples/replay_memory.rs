//! Measures the memory store's resident bytes per entry.
//!
//! Run with `cargo run --release --example replay_memory [-- CAPACITY]`. A store with capacity
//! CAPACITY (default 1,000,000) receives CAPACITY distinct ids, then as many more; each id is
//! begun and then finished as delivered, as the proxy does for a 2xx, so the figure includes the
//! stale in-flight records that wait for compaction. Prints RSS growth per entry and the whole
//! process's RSS (from /proc/self/statm) and checks the bound.

use std::time::{Duration, Instant};

use hookseal::replay::memory::MemoryStore;
use hookseal::replay::{Begin, Key, ReplayStore};

const DEFAULT_CAPACITY: usize = 1_000_000;
const INFLIGHT_TTL: Duration = Duration::from_secs(20);
const DONE_TTL: Duration = Duration::from_secs(600);

#[path = "support/rss.rs"]
mod rss;
use rss::rss_bytes;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let capacity = match std::env::args().nth(1) {
        Some(a) => a
            .parse::<usize>()
            .expect("CAPACITY: a whole number of entries"),
        None => DEFAULT_CAPACITY,
    };
    let evictions =
        prometheus::IntCounter::new("hookseal_replay_evictions_total", "evictions").expect("c");
    let mem = MemoryStore::new(capacity, evictions.clone());
    let store = ReplayStore::Memory(mem.clone());
    let base = rss_bytes();
    println!(
        "capacity {capacity}, baseline RSS {:.1} MiB",
        base as f64 / 1048576.0
    );

    let mut next = 0u64;
    for target in [capacity as u64, 2 * capacity as u64] {
        let started = Instant::now();
        while next < target {
            let key = Key::new("bench", format!("msg_{next:016x}").as_bytes());
            let begun = store
                .begin(&key, INFLIGHT_TTL)
                .await
                .expect("memory never fails");
            assert_eq!(begun, Begin::Fresh);
            store
                .finish(&key, true, DONE_TTL)
                .await
                .expect("memory never fails");
            next += 1;
            if next % 10_000 == 0 {
                assert!(mem.len() <= capacity, "len {} > capacity", mem.len());
            }
        }
        let elapsed = started.elapsed();
        let len = mem.len();
        assert!(len <= capacity, "len {len} > capacity");
        let rss = rss_bytes();
        let grown = rss.saturating_sub(base);
        println!(
            "after {target:>9} ids: len {len:>9}, evictions {:>9}, RSS +{:.1} MiB = {:.1} bytes/entry (process {:.1} MiB), {:.0} ns per begin+finish",
            evictions.get(),
            grown as f64 / 1048576.0,
            grown as f64 / len as f64,
            rss as f64 / 1048576.0,
            elapsed.as_nanos() as f64 / 1_000_000.0,
        );
    }
    assert_eq!(evictions.get() + mem.len() as u64, next);
}
