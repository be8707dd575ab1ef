//! Spool store choice: durable-append throughput and ack latency of the embedded engines.
//!
//!     cargo bench --bench spool_store                 # every row, 1 KiB and 64 KiB
//!     cargo bench --bench spool_store -- redb 1KiB    # rows whose label holds every word
//!
//! Each row: 16 client threads each append an entry and wait for its acknowledgement, in a
//! loop, for `SECS` seconds. One committer thread per engine drains whatever has queued up,
//! writes it as one transaction, makes it durable (fsync), then acknowledges every entry of that
//! batch: group commit, as the spool does. So the latency is what a sender's 202 would wait for.
//! The files live in a fresh directory under the system temporary directory (ext4 here).
//!
//! Rows:
//! - `redb`: the engine alone: one write transaction per batch, `Durability::Immediate` (the
//!   default), from a committer thread of this file.
//! - `redb4`: the same, each entry written with the spool's three index rows (`due`, `queued`,
//!   `ids`), to tell the index tables' share of the spool's cost from the rest.
//! - `spool`: `hookseal::queue::Spool::enqueue` on the disk spool (redb underneath, its own
//!   committer thread), from 16 tokio tasks instead of threads: what the proxy will pay.
//!
//! BENCHMARKS.md "Spool store choice" has the measurements, fjall and SQLite included (their
//! variants of this bench are in the commit that added that section).

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;
const SECS: u64 = 5;
const SIZES: &[(usize, &str)] = &[(1024, "1KiB"), (64 * 1024, "64KiB")];

/// One engine: writes a batch of (key, value) pairs durably.
trait Engine: Send {
    fn write(&mut self, batch: &[(u64, Vec<u8>)]);
}

struct Redb {
    db: redb::Database,
}

const REDB_TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("spool");

impl Redb {
    fn open(dir: &Path) -> Redb {
        Redb {
            db: redb::Database::create(dir.join("spool.redb")).expect("redb open"),
        }
    }
}

impl Engine for Redb {
    fn write(&mut self, batch: &[(u64, Vec<u8>)]) {
        let tx = self.db.begin_write().expect("redb begin");
        {
            let mut t = tx.open_table(REDB_TABLE).expect("redb table");
            for (k, v) in batch {
                t.insert(*k, v.as_slice()).expect("redb insert");
            }
        }
        tx.commit().expect("redb commit");
    }
}

/// `redb4`: the same batch written as the spool lays it out (the entry plus three index
/// tables: due, queued, ids), to tell the engine's share of the spool's cost from the rest.
struct Redb4 {
    db: redb::Database,
}

const DUE: redb::TableDefinition<(&str, u64, u64), ()> = redb::TableDefinition::new("due");
const QUEUED: redb::TableDefinition<(&str, u64, u64), ()> = redb::TableDefinition::new("queued");
const IDS: redb::TableDefinition<(&str, &str), u64> = redb::TableDefinition::new("ids");

impl Engine for Redb4 {
    fn write(&mut self, batch: &[(u64, Vec<u8>)]) {
        let tx = self.db.begin_write().expect("redb begin");
        {
            let mut t = tx.open_table(REDB_TABLE).expect("redb table");
            let mut due = tx.open_table(DUE).expect("due");
            let mut queued = tx.open_table(QUEUED).expect("queued");
            let mut ids = tx.open_table(IDS).expect("ids");
            for (k, v) in batch {
                let id = format!("{}-{}", k >> 40, k & 0xff_ffff_ffff);
                t.insert(*k, v.as_slice()).expect("redb insert");
                due.insert(("bench", 0, *k), ()).expect("due insert");
                queued.insert(("bench", 0, *k), ()).expect("queued insert");
                ids.insert(("bench", id.as_str()), *k).expect("ids insert");
            }
        }
        tx.commit().expect("redb commit");
    }
}

type Job = ((u64, Vec<u8>), mpsc::Sender<()>);

/// Runs one row; returns (acks per second, p50, p99, mean batch size).
fn run(mut engine: Box<dyn Engine>, size: usize) -> (f64, Duration, Duration, f64) {
    let (tx, rx) = mpsc::channel::<Job>();
    let committer = thread::spawn(move || {
        let (mut batches, mut entries) = (0u64, 0u64);
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            jobs.extend(rx.try_iter());
            let (items, acks): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
            engine.write(&items);
            for a in acks {
                let _ = a.send(());
            }
            batches += 1;
            entries += items.len() as u64;
        }
        entries as f64 / batches.max(1) as f64
    });
    let deadline = Instant::now() + Duration::from_secs(SECS);
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let tx = tx.clone();
            thread::spawn(move || {
                let value: Vec<u8> = (0..size).map(|i| (i * 31 + c) as u8).collect();
                let (ack_tx, ack_rx) = mpsc::channel();
                let mut lat = Vec::new();
                let mut seq = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let key = ((c as u64) << 40) | seq;
                    seq += 1;
                    tx.send(((key, value.clone()), ack_tx.clone())).unwrap();
                    ack_rx.recv().unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    drop(tx);
    let mut lat: Vec<Duration> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    let mean_batch = committer.join().unwrap();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        mean_batch,
    )
}

fn main() {
    // `cargo bench` passes `--bench`; every other argument is a word the label must hold.
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    println!(
        "| engine | body | acks/s | p50 ms | p99 ms | entries per commit |\n|---|---|---|---|---|---|"
    );
    type Open = fn(&Path) -> Box<dyn Engine>;
    let engines: &[(&str, Open)] = &[
        ("redb", |d| Box::new(Redb::open(d))),
        ("redb4", |d| {
            Box::new(Redb4 {
                db: redb::Database::create(d.join("spool4.redb")).expect("redb open"),
            })
        }),
    ];
    for (name, open) in engines {
        for (size, size_label) in SIZES {
            let label = format!("{name} {size_label}");
            if !words.iter().all(|w| label.contains(w.as_str())) {
                continue;
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let (rate, p50, p99, batch) = run(open(dir.path()), *size);
            row(name, size_label, rate, p50, p99, &format!("{batch:.1}"));
        }
    }
    for (size, size_label) in SIZES {
        let label = format!("spool {size_label}");
        if !words.iter().all(|w| label.contains(w.as_str())) {
            continue;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (rate, p50, p99) = run_spool(dir.path(), *size);
        row("spool", size_label, rate, p50, p99, "-");
    }
}

fn row(name: &str, size: &str, rate: f64, p50: Duration, p99: Duration, batch: &str) {
    println!(
        "| {name} | {size} | {rate:.0} | {:.2} | {:.2} | {batch} |",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

/// The `spool` row: (acks per second, p50, p99).
fn run_spool(dir: &Path, size: usize) -> (f64, Duration, Duration) {
    use hookseal::queue::{disk::DiskSpool, Entry, Limits, Spool};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let spool = Spool::Disk(DiskSpool::open(dir, Limits::default()).expect("open spool"));
    let body = bytes::Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(SECS);
    let mut lat: Vec<Duration> = rt.block_on(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (spool, body) = (spool.clone(), body.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut seq = 0u64;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let e = Entry::new(
                            format!("{c}-{seq}"),
                            "bench",
                            "POST",
                            "/hook",
                            vec![(b"content-type".to_vec(), b"application/json".to_vec())],
                            body.clone(),
                            0,
                        );
                        seq += 1;
                        spool.enqueue(e).await.expect("enqueue");
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    let elapsed = started.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
    )
}
