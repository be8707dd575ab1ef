//! Measures the memory store's resident bytes per entry.
//!
//! Run with `cargo run --release --example replay_memory`. A store with capacity 1,000,000
//! receives 1M distinct ids, then 1M more; each id is begun and then finished as delivered, as
//! the proxy does for a 2xx, so the figure includes the stale in-flight records that wait for
//! compaction. Prints RSS growth per entry (from /proc/self/statm) and checks the bound.

use std::time::{Duration, Instant};

use hookseal::replay::memory::MemoryStore;
use hookseal::replay::{Begin, Key, ReplayStore};

const CAPACITY: usize = 1_000_000;
const INFLIGHT_TTL: Duration = Duration::from_secs(20);
const DONE_TTL: Duration = Duration::from_secs(600);

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm resident field");
    pages * 4096
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let evictions =
        prometheus::IntCounter::new("hookseal_replay_evictions_total", "evictions").expect("c");
    let mem = MemoryStore::new(CAPACITY, evictions.clone());
    let store = ReplayStore::Memory(mem.clone());
    let base = rss_bytes();
    println!(
        "capacity {CAPACITY}, baseline RSS {:.1} MiB",
        base as f64 / 1048576.0
    );

    let mut next = 0u64;
    for target in [1_000_000u64, 2_000_000] {
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
                assert!(mem.len() <= CAPACITY, "len {} > capacity", mem.len());
            }
        }
        let elapsed = started.elapsed();
        let len = mem.len();
        assert!(len <= CAPACITY, "len {len} > capacity");
        let grown = rss_bytes().saturating_sub(base);
        println!(
            "after {target:>9} ids: len {len:>9}, evictions {:>9}, RSS +{:.1} MiB = {:.1} bytes/entry, {:.0} ns per begin+finish",
            evictions.get(),
            grown as f64 / 1048576.0,
            grown as f64 / len as f64,
            elapsed.as_nanos() as f64 / 1_000_000.0,
        );
    }
    assert_eq!(evictions.get() + mem.len() as u64, next);
}
