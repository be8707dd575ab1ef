//! CPU per durably stored entry for the spool's steady state: every group commit inserts the
//! entries waiting for it and removes those of the commit before (delivered, acknowledged),
//! then makes itself durable before the clients waiting on it are answered.
//!
//!     spool-engines [SECS [ROUNDS [ENGINES [SIZES [CLIENTS]]]]]
//!     spool-engines 4 3 redb,fjall,sqlite 1200,65536 16,8
//!
//! CLIENTS threads each send an entry of SIZE bytes to the committer thread and wait for its
//! answer, in a loop, for SECS seconds. The committer takes every entry waiting, writes them
//! with the removals in one durable commit, then answers them all. Printed per row: entries
//! per second, entries per commit, the committer thread's CPU per entry and per commit, and
//! the whole process's CPU per entry (the committer plus the clients' channel hand-offs).
//! Files go in a fresh directory under `$SPOOL_ENGINES_DIR` (default: the system's temporary
//! directory); put it on the disk the spool would use.
//!
//! Engines, each durable at every commit:
//! - `redb`: one write transaction, `Durability::Immediate` (redb's default, as the spool).
//! - `fjall`: one write batch, then `Keyspace::persist(PersistMode::SyncData)`.
//! - `sqlite`: WAL, `synchronous = FULL`, one transaction, cached prepared statements.

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// One engine: writes `insert` and `remove` in one commit, durably.
trait Engine: Send {
    fn commit(&mut self, insert: &[(u64, Vec<u8>)], remove: &[u64]);
}

struct Redb(redb::Database);

const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("entries");

impl Engine for Redb {
    fn commit(&mut self, insert: &[(u64, Vec<u8>)], remove: &[u64]) {
        let tx = self.0.begin_write().expect("redb begin");
        {
            let mut t = tx.open_table(TABLE).expect("redb table");
            for (k, v) in insert {
                t.insert(*k, v.as_slice()).expect("redb insert");
            }
            for k in remove {
                t.remove(*k).expect("redb remove");
            }
        }
        tx.commit().expect("redb commit");
    }
}

struct Fjall {
    keyspace: fjall::Keyspace,
    entries: fjall::PartitionHandle,
}

impl Engine for Fjall {
    fn commit(&mut self, insert: &[(u64, Vec<u8>)], remove: &[u64]) {
        let mut b = self.keyspace.batch();
        for (k, v) in insert {
            b.insert(&self.entries, k.to_be_bytes(), v.as_slice());
        }
        for k in remove {
            b.remove(&self.entries, k.to_be_bytes());
        }
        b.commit().expect("fjall commit");
        self.keyspace
            .persist(fjall::PersistMode::SyncData)
            .expect("fjall persist");
    }
}

struct Sqlite(rusqlite::Connection);

impl Engine for Sqlite {
    fn commit(&mut self, insert: &[(u64, Vec<u8>)], remove: &[u64]) {
        let tx = self.0.transaction().expect("sqlite begin");
        {
            let mut ins = tx
                .prepare_cached("INSERT INTO entries (k, v) VALUES (?1, ?2)")
                .expect("prepare");
            for (k, v) in insert {
                ins.execute(rusqlite::params![*k as i64, v])
                    .expect("insert");
            }
            let mut del = tx
                .prepare_cached("DELETE FROM entries WHERE k = ?1")
                .expect("prepare");
            for k in remove {
                del.execute(rusqlite::params![*k as i64]).expect("delete");
            }
        }
        tx.commit().expect("sqlite commit");
    }
}

fn open(name: &str, dir: &Path) -> Box<dyn Engine> {
    match name {
        "redb" => Box::new(Redb(
            redb::Database::create(dir.join("spool.redb")).expect("redb open"),
        )),
        "fjall" => {
            let keyspace = fjall::Config::new(dir.join("fjall"))
                .open()
                .expect("fjall open");
            let entries = keyspace
                .open_partition("entries", fjall::PartitionCreateOptions::default())
                .expect("fjall partition");
            Box::new(Fjall { keyspace, entries })
        }
        "sqlite" => {
            let c = rusqlite::Connection::open(dir.join("spool.sqlite")).expect("sqlite open");
            c.pragma_update(None, "journal_mode", "WAL").expect("wal");
            c.pragma_update(None, "synchronous", "FULL").expect("sync");
            c.execute(
                "CREATE TABLE entries (k INTEGER PRIMARY KEY, v BLOB NOT NULL)",
                [],
            )
            .expect("create");
            Box::new(Sqlite(c))
        }
        other => panic!("unknown engine {other} (redb, fjall, sqlite)"),
    }
}

/// CPU time (user + system) of `who` (`RUSAGE_SELF` or `RUSAGE_THREAD`), in seconds.
fn cpu(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct passed by pointer; all-zero is a valid rusage.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(who, &mut r), 0);
        r
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(r.ru_utime) + secs(r.ru_stime)
}

type Job = ((u64, Vec<u8>), mpsc::Sender<()>);

/// One row: returns its printed columns.
fn run(mut engine: Box<dyn Engine>, size: usize, clients: usize, secs: u64) -> String {
    let (tx, rx) = mpsc::channel::<Job>();
    let committer = thread::spawn(move || {
        let c0 = cpu(libc::RUSAGE_THREAD);
        let (mut commits, mut entries) = (0u64, 0u64);
        let mut delivered: Vec<u64> = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            jobs.extend(rx.try_iter());
            let (insert, answers): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
            engine.commit(&insert, &delivered);
            delivered = insert.iter().map(|(k, _)| *k).collect();
            for a in answers {
                let _ = a.send(());
            }
            commits += 1;
            entries += insert.len() as u64;
        }
        (entries, commits, cpu(libc::RUSAGE_THREAD) - c0)
    });
    let p0 = cpu(libc::RUSAGE_SELF);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let tx = tx.clone();
            thread::spawn(move || {
                let value: Vec<u8> = (0..size).map(|i| (i * 31 + c) as u8).collect();
                let (answer_tx, answer_rx) = mpsc::channel();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    // Keys grow over time, as the spool's sequence numbers do.
                    let key = (n << 8) | c as u64;
                    n += 1;
                    tx.send(((key, value.clone()), answer_tx.clone())).unwrap();
                    answer_rx.recv().unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for t in threads {
        t.join().unwrap();
    }
    let (entries, commits, committer_cpu) = committer.join().unwrap();
    let process_cpu = cpu(libc::RUSAGE_SELF) - p0;
    let per_entry = |s: f64| s / entries.max(1) as f64 * 1e6;
    format!(
        "| {:.0} | {:.1} | {:.1} | {:.0} | {:.1} |",
        entries as f64 / secs as f64,
        entries as f64 / commits.max(1) as f64,
        per_entry(committer_cpu),
        committer_cpu / commits.max(1) as f64 * 1e6,
        per_entry(process_cpu),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a.starts_with('-')) {
        println!("spool-engines [SECS [ROUNDS [ENGINES [SIZES [CLIENTS]]]]]  (see the source)");
        return;
    }
    let list = |i: usize, default: &str| -> Vec<String> {
        args.get(i)
            .map_or(default, String::as_str)
            .split(',')
            .map(str::to_owned)
            .collect()
    };
    let secs: u64 = args.first().map_or(4, |s| s.parse().expect("SECS"));
    let rounds: usize = args.get(1).map_or(3, |s| s.parse().expect("ROUNDS"));
    let engines = list(2, "redb,fjall,sqlite");
    let sizes = list(3, "1200,65536");
    let clients = list(4, "16");
    let base = std::env::var_os("SPOOL_ENGINES_DIR").map_or_else(std::env::temp_dir, Into::into);
    println!("| round | engine | entry bytes | clients | entries/s | entries/commit | committer µs/entry | committer µs/commit | process µs/entry |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for round in 1..=rounds {
        for size in &sizes {
            for c in &clients {
                for e in &engines {
                    let dir = tempfile::tempdir_in(&base).expect("tempdir");
                    let row = run(
                        open(e, dir.path()),
                        size.parse().expect("SIZE"),
                        c.parse().expect("CLIENTS"),
                        secs,
                    );
                    println!("| {round} | {e} | {size} | {c} {row}");
                }
            }
        }
    }
}
