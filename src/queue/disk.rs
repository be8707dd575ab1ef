//! The embedded spool: one redb file, `<path>/spool.redb`, and an index of it in memory.
//!
//! # Durability and group commit
//!
//! Every change (enqueue, claim, ack, reschedule, dead letter, retry, purge) is a command sent
//! to one committer thread. The thread takes every command waiting and applies them all
//! together. A batch that holds anything but claims and acks is applied in one write
//! transaction committed with redb's default `Durability::Immediate` (an fsync before `commit`
//! returns), and only then is each caller answered: an enqueue that returned `Ok` is on disk,
//! and concurrent enqueuers share one fsync. A batch of only claims and acks opens no write
//! transaction: it changes the in-memory index at once (a claimed entry is leased, an
//! acknowledged one is gone from the index and its id free), answers, and leaves the rows
//! they change — the claim's attempt count, the acknowledged entry's removal — waiting in
//! [`Index::lazy`]. They are written by the next write transaction: the next enqueue's, or one
//! of their own at most [`LAZY_WINDOW`] later, or when the spool closes
//! ([`DiskSpool::persist`] at shutdown). So a crash (`kill -9`, power loss) only forgets the
//! claims and acks of that last window: an entry acknowledged in it is delivered again, and an
//! attempt counted in it is counted again (the repeat may carry the same
//! `x-hookseal-attempt`). Both are within at-least-once; no acknowledged enqueue is ever lost.
//! One exception keeps crash loops bounded: a claim of an entry that was already in the file
//! when it was opened is written durably before it is handed out, so an entry whose delivery
//! keeps ending in a crash still counts its attempts to `max_attempts`. If a write fails,
//! every command of its batch gets [`QueueError::Unavailable`] and nothing of it is kept, in
//! the file or in memory (the index undoes the batch's changes); what waited is tried again
//! with the next write.
//!
//! # Tables
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"schema_version"` | [`SCHEMA_VERSION`] |
//! | `entries` | sequence number | encoded [`Entry`] (waiting or in flight) |
//! | `attempts` | seq | attempts begun, once claimed (a claim writes these four bytes, not the entry) |
//! | `dead` | (route, seq) | encoded [`Entry`] |
//! | `quarantine` | seq | bytes of an entry that did not decode |
//!
//! The file holds the entries and nothing derived from them. What finds them — the claim order
//! per route (next attempt time, seq), the oldest entry per route, the dedupe of undelivered
//! ids, each entry's size and attempts — is an [`Index`] in memory, rebuilt from `entries` and
//! `attempts` when the file is opened. So an enqueue writes one row, a claim reads one and
//! writes four bytes, an acknowledgement removes two, and a commit dirties at most three
//! tables (the first layout, [`SCHEMA_VERSION`] 1, kept these indexes as three more tables:
//! about sixteen B-tree operations over five tables per delivered request, BENCHMARKS.md §13).
//! The cost is memory: about [`INDEX_BYTES_PER_ENTRY`] bytes per entry waiting or in flight
//! (dead letters cost none), measured by `examples/spool_memory.rs`. A file of layout 1 is
//! upgraded when it is opened (its three index tables dropped, its entries kept).
//!
//! Leases live in memory: a restart releases them, so an entry that was in flight when the
//! process died is claimed again (its attempt count, written at claim, says it was tried,
//! unless the crash came within [`LAZY_WINDOW`] of the claim). An entry's `attempts` field is
//! the count as of its last rewrite (retry, dead letter); the `attempts` row, when there is
//! one, is newer.
//!
//! # A damaged spool
//!
//! Opening never deletes or rewrites a file it cannot read, and never panics. These are errors
//! naming the file ([`QueueError::Corrupt`]), and hookseal does not start until the operator
//! moves the file aside (keeping it) or restores it:
//! - not a redb file, or a redb file format this build does not read;
//! - a truncated file: redb cannot recover any entry from one (tested: cut at 100 bytes, 4 KiB,
//!   half, all but one byte; redb errs or panics, and the panic is caught);
//! - a `schema_version` other than 1 or [`SCHEMA_VERSION`], or entries without one;
//! - another process holding the file.
//!
//! A crash, `kill -9` or power loss in the middle of a commit is not damage: redb checksums its
//! commits and falls back to the last complete one, which holds every acknowledged entry
//! (tested with SIGKILL). An entry whose bytes do not decode (a bug, a foreign writer) does not
//! stop the spool: on open it is moved to the `quarantine` table (kept, never delivered), its
//! id freed, with a warning naming the file and the count; every other entry is kept and
//! delivered.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use tokio::sync::oneshot;

use super::{Claimed, DeadInfo, Entry, EntryMeta, Failure, Lease, Limits, QueueError, RouteStats};

/// The layout version this build writes, kept in the `meta` table. It also opens layout 1
/// (the same entries, with the indexes as tables) and upgrades it.
pub const SCHEMA_VERSION: u64 = 2;
/// The spool file's name inside `[queue] path`.
pub const FILE_NAME: &str = "spool.redb";
/// Memory the index holds per entry waiting or in flight, as measured with a million entries
/// (`cargo run --release --example spool_memory`; BENCHMARKS.md §17).
pub const INDEX_BYTES_PER_ENTRY: u64 = 160;

/// The storage engine's page cache. redb's default is 1 GiB, and opening the spool reads
/// every entry: a full spool's file would stay in memory whole after a restart
/// (measured: +154 MiB for 200,000 entries of 256 bytes, 806 bytes per entry with the index).
/// The pages the spool works on — entries just written, claimed and acknowledged — are few.
const CACHE_BYTES: usize = 32 << 20;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const DEAD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead");
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
const ATTEMPTS: TableDefinition<u64, u32> = TableDefinition::new("attempts");
/// Layout 1's index tables, dropped when such a file is opened: (route, next attempt, seq),
/// (route, queued_at, seq), (route, id) → seq.
const V1_DUE: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("due");
const V1_QUEUED: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("queued");
const V1_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("ids");

/// The longest a claim or acknowledgement stays written but not yet durable (see the module
/// docs): a crash forgets at most this much of them.
pub const LAZY_WINDOW: Duration = Duration::from_millis(250);

/// The embedded spool. Cheap to clone: clones share the file and the committer thread.
#[derive(Clone)]
pub struct DiskSpool {
    inner: Arc<Shared>,
}

struct Shared {
    db: Arc<Database>,
    file: PathBuf,
    counts: Counts,
    /// `None` once closing.
    commands: std::sync::Mutex<Option<mpsc::Sender<Command>>>,
    committer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    quarantined: u64,
}

impl Drop for Shared {
    /// Stops the committer (it finishes the batch it holds) and waits for it, so the file is
    /// closed when the last clone is dropped and can be opened again at once.
    fn drop(&mut self) {
        lock(&self.commands).take();
        if let Some(t) = lock(&self.committer).take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for DiskSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskSpool")
            .field("file", &self.inner.file)
            .finish_non_exhaustive()
    }
}

/// One route's numbers as of the last commit, for `stats` (read without the committer).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Published {
    depth: u64,
    dead: u64,
    /// `queued_at` of the oldest entry waiting or in flight.
    oldest: Option<u64>,
}

/// route → its numbers as of the last commit.
type Counts = Arc<std::sync::Mutex<HashMap<String, Published>>>;

/// The committer's small state, copied for each batch and kept only if the batch commits.
#[derive(Clone, Default)]
struct State {
    next_seq: u64,
    /// Entries held, dead letters included.
    entries: u64,
    /// Encoded bytes held, dead letters included.
    bytes: u64,
    /// seq → when it was claimed (unix ms)
    leases: HashMap<u64, u64>,
    /// Entries below this sequence number were in the file when it was opened: their claims
    /// are made durable at once, so that an entry whose attempts end in a crash (again and
    /// again) still counts them toward `max_attempts`.
    durable_below: u64,
    /// Set by a claim of such an entry: this batch is committed durably.
    force_durable: bool,
}

/// What the index knows of an entry waiting or in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    /// The route's number in [`Index::routes`].
    route: u32,
    /// Attempts begun: the newer of the entry's own count and its `attempts` row.
    attempts: u32,
    /// The encoded entry's length.
    len: u64,
    queued_at: u64,
    next_at: u64,
    /// [`Index::id_hash`] of (route, id).
    id_hash: u64,
}

/// One route's part of the index.
#[derive(Default)]
struct RouteIndex {
    name: String,
    /// (next attempt time, seq): the claim order.
    due: BTreeSet<(u64, u64)>,
    /// (queued_at, seq): the oldest entry.
    queued: BTreeSet<(u64, u64)>,
    /// Dead letters (they are in the `dead` table, not in the index).
    dead: u64,
}

/// A row change of a claim or an acknowledgement, waiting for the next write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lazy {
    /// Claimed: the `attempts` row becomes this.
    Attempts(u32),
    /// Acknowledged: the entry and its `attempts` row are removed.
    Gone,
}

/// A change to the index, recorded so that a batch whose commit fails can be undone.
enum Undo {
    /// The entry's meta before the change (`None`: it was not there).
    Meta(u64, Option<Meta>),
    /// A route's dead count before the change.
    Dead(u32, u64),
    /// The entry's waiting row change before the change.
    Lazy(u64, Option<Lazy>),
}

/// The in-memory index of the spool's entries (see the module docs). The ids are kept as a
/// keyed hash of (route, id): a match is confirmed against the stored entry, so two ids
/// whose hashes meet are still told apart.
struct Index {
    metas: HashMap<u64, Meta>,
    routes: Vec<RouteIndex>,
    route_ids: HashMap<String, u32>,
    /// id hash → seq
    ids: HashMap<u64, u64>,
    /// (id hash, seq) of entries whose hash was already in `ids` when they came (almost
    /// always empty).
    collided: Vec<(u64, u64)>,
    hasher: RandomState,
    /// seq → the row change of a claim or acknowledgement not written yet (see the module
    /// docs): written with the next write transaction.
    lazy: HashMap<u64, Lazy>,
    /// Every id hashes alike: the tests' way to make every id meet another.
    #[cfg(test)]
    collide: bool,
    /// The changes of the batch being applied.
    journal: Vec<Undo>,
}

impl Index {
    fn new() -> Index {
        Index {
            metas: HashMap::new(),
            routes: Vec::new(),
            route_ids: HashMap::new(),
            ids: HashMap::new(),
            collided: Vec::new(),
            hasher: RandomState::new(),
            lazy: HashMap::new(),
            #[cfg(test)]
            collide: false,
            journal: Vec::new(),
        }
    }

    /// The route's number, given one if it has none.
    fn route(&mut self, name: &str) -> u32 {
        if let Some(&r) = self.route_ids.get(name) {
            return r;
        }
        let r = u32::try_from(self.routes.len()).expect("fewer than 2^32 routes");
        self.routes.push(RouteIndex {
            name: name.to_owned(),
            ..RouteIndex::default()
        });
        self.route_ids.insert(name.to_owned(), r);
        r
    }

    fn id_hash(&self, route: u32, id: &str) -> u64 {
        #[cfg(test)]
        if self.collide {
            return 7;
        }
        self.hasher.hash_one((route, id))
    }

    /// The entries whose (route, id) hash is `hash`: the candidates for a duplicate.
    fn with_hash(&self, hash: u64) -> Vec<u64> {
        let mut out: Vec<u64> = self.ids.get(&hash).copied().into_iter().collect();
        if !self.collided.is_empty() {
            out.extend(
                self.collided
                    .iter()
                    .filter(|(h, _)| *h == hash)
                    .map(|(_, s)| *s),
            );
        }
        out
    }

    fn insert(&mut self, seq: u64, m: Meta) {
        self.journal.push(Undo::Meta(seq, None));
        self.put(seq, m);
    }

    fn remove(&mut self, seq: u64) -> Option<Meta> {
        let m = self.take(seq)?;
        self.journal.push(Undo::Meta(seq, Some(m)));
        Some(m)
    }

    /// Changes entry `seq`'s meta (and its place in the index with it).
    fn update(&mut self, seq: u64, change: impl FnOnce(&mut Meta)) {
        if let Some(mut m) = self.take(seq) {
            self.journal.push(Undo::Meta(seq, Some(m)));
            change(&mut m);
            self.put(seq, m);
        }
    }

    /// Sets entry `seq`'s attempt count (not part of any ordering: changed in place).
    fn set_attempts(&mut self, seq: u64, attempts: u32) {
        if let Some(m) = self.metas.get_mut(&seq) {
            self.journal.push(Undo::Meta(seq, Some(*m)));
            m.attempts = attempts;
        }
    }

    /// Sets (`Some`) or drops (`None`) the row change waiting for entry `seq`.
    fn set_lazy(&mut self, seq: u64, op: Option<Lazy>) {
        let old = match op {
            Some(op) => self.lazy.insert(seq, op),
            None => self.lazy.remove(&seq),
        };
        if old != op {
            self.journal.push(Undo::Lazy(seq, old));
        }
    }

    fn add_dead(&mut self, route: u32, delta: i64) {
        let r = &mut self.routes[route as usize];
        self.journal.push(Undo::Dead(route, r.dead));
        r.dead = r.dead.saturating_add_signed(delta);
    }

    /// Forgets the journal: the batch committed.
    fn keep(&mut self) {
        self.journal.clear();
    }

    /// Undoes the batch's changes: its commit failed.
    fn undo(&mut self) {
        while let Some(u) = self.journal.pop() {
            match u {
                Undo::Meta(seq, old) => {
                    self.take(seq);
                    if let Some(m) = old {
                        self.put(seq, m);
                    }
                }
                Undo::Dead(route, n) => self.routes[route as usize].dead = n,
                Undo::Lazy(seq, old) => match old {
                    Some(op) => drop(self.lazy.insert(seq, op)),
                    None => drop(self.lazy.remove(&seq)),
                },
            }
        }
    }

    fn put(&mut self, seq: u64, m: Meta) {
        let r = &mut self.routes[m.route as usize];
        r.due.insert((m.next_at, seq));
        r.queued.insert((m.queued_at, seq));
        match self.ids.entry(m.id_hash) {
            std::collections::hash_map::Entry::Occupied(_) => self.collided.push((m.id_hash, seq)),
            std::collections::hash_map::Entry::Vacant(v) => drop(v.insert(seq)),
        }
        self.metas.insert(seq, m);
    }

    fn take(&mut self, seq: u64) -> Option<Meta> {
        let m = self.metas.remove(&seq)?;
        let r = &mut self.routes[m.route as usize];
        r.due.remove(&(m.next_at, seq));
        r.queued.remove(&(m.queued_at, seq));
        if self.ids.get(&m.id_hash) == Some(&seq) {
            self.ids.remove(&m.id_hash);
            if let Some(i) = self.collided.iter().position(|(h, _)| *h == m.id_hash) {
                let (h, s) = self.collided.swap_remove(i);
                self.ids.insert(h, s);
            }
        } else {
            self.collided.retain(|&(h, s)| (h, s) != (m.id_hash, seq));
        }
        Some(m)
    }

    fn published(&self, r: &RouteIndex) -> Published {
        Published {
            depth: r.due.len() as u64,
            dead: r.dead,
            oldest: r.queued.first().map(|(at, _)| *at),
        }
    }
}

/// An index of `n` entries on one route, as `examples/spool_memory.rs` measures it: what the
/// spool holds in memory per entry waiting or in flight. Not part of the API.
#[doc(hidden)]
pub fn index_of(n: u64) -> Box<dyn std::any::Any> {
    let mut ix = Index::new();
    let route = ix.route("route");
    for seq in 0..n {
        let id_hash = ix.id_hash(route, &format!("msg_{seq:016x}"));
        let at = 1_700_000_000_000 + seq;
        ix.put(
            seq,
            Meta {
                route,
                attempts: 0,
                len: 1024,
                queued_at: at,
                next_at: at,
                id_hash,
            },
        );
    }
    Box::new(ix)
}

type Reply<T> = oneshot::Sender<Result<T, QueueError>>;

/// An entry to store, encoded by the caller (off the committer thread).
struct NewEntry {
    route: String,
    id: String,
    queued_at: u64,
    next_attempt_at: u64,
    attempts: u32,
    bytes: Vec<u8>,
}

enum Command {
    Enqueue(NewEntry, Reply<()>),
    Claim {
        route: String,
        max: usize,
        now: u64,
        reply: Reply<Vec<Claimed>>,
    },
    Reclaim {
        route: String,
        older_than: u64,
        max: usize,
        now: u64,
        reply: Reply<Vec<Claimed>>,
    },
    Ack(u64, Reply<()>),
    Reschedule(u64, u64, Failure, Reply<()>),
    Dead(u64, Failure, Reply<()>),
    Retry {
        route: String,
        id: Option<String>,
        now: u64,
        reply: Reply<u64>,
    },
    Purge(String, Reply<u64>),
    /// Makes every commit so far durable.
    Persist(Reply<()>),
}

impl Command {
    /// Whether the batch holding this command must be durable before anyone is answered.
    /// Claims and acknowledgements are not (a crash can forget the last [`LAZY_WINDOW`] of
    /// them: a repeat, which at-least-once allows); everything else is.
    fn durable(&self) -> bool {
        !matches!(
            self,
            Command::Claim { .. } | Command::Reclaim { .. } | Command::Ack(..)
        )
    }
}

/// A command's answer, held until the batch's commit decides whether it stands.
enum Answer {
    Unit(Reply<()>, Result<(), QueueError>),
    Claimed(Reply<Vec<Claimed>>, Result<Vec<Claimed>, QueueError>),
    Count(Reply<u64>, Result<u64, QueueError>),
}

impl Answer {
    fn send(self) {
        match self {
            Answer::Unit(r, v) => drop(r.send(v)),
            Answer::Claimed(r, v) => drop(r.send(v)),
            Answer::Count(r, v) => drop(r.send(v)),
        }
    }

    fn fail(self, why: &str) {
        match self {
            Answer::Unit(r, _) => drop(r.send(failed(why))),
            Answer::Claimed(r, _) => drop(r.send(failed(why))),
            Answer::Count(r, _) => drop(r.send(failed(why))),
        }
    }
}

fn failed<T>(why: &str) -> Result<T, QueueError> {
    Err(QueueError::Unavailable(why.to_owned()))
}

impl DiskSpool {
    /// Opens (or creates) the spool in directory `dir`, creating the directory if needed.
    /// Blocking: call it at start-up, before serving.
    ///
    /// # Errors
    ///
    /// [`QueueError::Corrupt`] naming the file when it cannot be opened or read (see the module
    /// docs), or another process holds it; never a panic.
    pub fn open(dir: &Path, limits: Limits) -> Result<DiskSpool, QueueError> {
        DiskSpool::open_with(dir, limits, Index::new())
    }

    fn open_with(dir: &Path, limits: Limits, index: Index) -> Result<DiskSpool, QueueError> {
        let file = dir.join(FILE_NAME);
        let bad = |detail: String| QueueError::Corrupt {
            file: file.clone(),
            detail,
        };
        create_private_dir(dir).map_err(|e| bad(format!("cannot create directory: {e}")))?;
        // redb reports most damage as errors, but panics on some truncated files (measured:
        // cut at 4 KiB or at half its length): the catch turns that into the same error.
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| open_file(&file, index)))
            .unwrap_or_else(|panic| {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("");
                Err(format!(
                    "unreadable (truncated or corrupt?): the storage engine failed: {why}"
                ))
            });
        let (db, state, index, quarantined) = opened.map_err(bad)?;
        // The spool holds verified bodies and the headers sent with them: owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(file = %file.display(), error = %e, "cannot make the spool file owner-only");
            }
        }
        if quarantined > 0 {
            tracing::warn!(
                file = %file.display(),
                entries = quarantined,
                "spool entries that do not decode were moved to the quarantine table"
            );
        }
        let db = Arc::new(db);
        let counts: Counts = Arc::default();
        let (tx, rx) = mpsc::channel();
        let committer = Committer {
            db: db.clone(),
            state,
            index,
            limits,
            counts: counts.clone(),
            lazy_since: None,
        };
        committer.publish();
        let thread = std::thread::Builder::new()
            .name("hookseal-spool".into())
            .spawn(move || committer.run(&rx))
            .map_err(|e| bad(format!("cannot start the spool thread: {e}")))?;
        Ok(DiskSpool {
            inner: Arc::new(Shared {
                db,
                file,
                counts,
                commands: std::sync::Mutex::new(Some(tx)),
                committer: std::sync::Mutex::new(Some(thread)),
                quarantined,
            }),
        })
    }

    /// The spool file.
    pub fn file(&self) -> &Path {
        &self.inner.file
    }

    /// Entries moved to the quarantine table when the spool was opened.
    pub fn quarantined(&self) -> u64 {
        self.inner.quarantined
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, QueueError> {
        let (tx, rx) = oneshot::channel();
        let sent = lock(&self.inner.commands)
            .as_ref()
            .is_some_and(|c| c.send(make(tx)).is_ok());
        if !sent {
            return Err(QueueError::Unavailable("spool thread stopped".into()));
        }
        rx.await
            .unwrap_or_else(|_| Err(QueueError::Unavailable("spool thread stopped".into())))
    }

    pub(super) async fn enqueue(&self, entry: &Entry) -> Result<(), QueueError> {
        let new = NewEntry {
            route: entry.route.clone(),
            id: entry.id.clone(),
            queued_at: entry.queued_at,
            next_attempt_at: entry.next_attempt_at,
            attempts: entry.attempts,
            bytes: entry.encode(),
        };
        self.call(|r| Command::Enqueue(new, r)).await
    }

    /// Makes every change so far durable (claims and acknowledgements are committed without
    /// waiting for the disk; this waits for it).
    pub(super) async fn persist(&self) -> Result<(), QueueError> {
        self.call(Command::Persist).await
    }

    pub(super) async fn claim(
        &self,
        route: &str,
        max: usize,
        now: u64,
    ) -> Result<Vec<Claimed>, QueueError> {
        let route = route.to_owned();
        self.call(|reply| Command::Claim {
            route,
            max,
            now,
            reply,
        })
        .await
    }

    pub(super) async fn reclaim(
        &self,
        route: &str,
        claim_after_ms: u64,
        max: usize,
    ) -> Result<Vec<Claimed>, QueueError> {
        let route = route.to_owned();
        let now = super::policy::unix_ms(std::time::SystemTime::now());
        self.call(|reply| Command::Reclaim {
            route,
            older_than: now.saturating_sub(claim_after_ms),
            max,
            now,
            reply,
        })
        .await
    }

    pub(super) async fn ack(&self, c: &Claimed) -> Result<(), QueueError> {
        let seq = seq(c)?;
        self.call(|r| Command::Ack(seq, r)).await
    }

    pub(super) async fn reschedule(
        &self,
        c: &Claimed,
        next_attempt_at: u64,
        failure: &Failure,
    ) -> Result<(), QueueError> {
        let seq = seq(c)?;
        let failure = failure.clone();
        self.call(|r| Command::Reschedule(seq, next_attempt_at, failure, r))
            .await
    }

    pub(super) async fn dead_letter(
        &self,
        c: &Claimed,
        failure: &Failure,
    ) -> Result<(), QueueError> {
        let seq = seq(c)?;
        let failure = failure.clone();
        self.call(|r| Command::Dead(seq, failure, r)).await
    }

    pub(super) async fn retry_dead(
        &self,
        route: &str,
        id: Option<&str>,
        now: u64,
    ) -> Result<u64, QueueError> {
        let (route, id) = (route.to_owned(), id.map(str::to_owned));
        self.call(|reply| Command::Retry {
            route,
            id,
            now,
            reply,
        })
        .await
    }

    pub(super) async fn purge_dead(&self, route: &str) -> Result<u64, QueueError> {
        let route = route.to_owned();
        self.call(|r| Command::Purge(route, r)).await
    }

    /// The route's numbers as of the last commit (from memory: no read of the file).
    pub(super) async fn stats(&self, route: &str, now: u64) -> Result<RouteStats, QueueError> {
        let p = lock(&self.inner.counts)
            .get(route)
            .copied()
            .unwrap_or_default();
        Ok(RouteStats {
            depth: p.depth,
            dead: p.dead,
            oldest_ms: p.oldest.map_or(0, |q| now.saturating_sub(q)),
        })
    }

    pub(super) async fn dead(
        &self,
        route: &str,
        limit: usize,
    ) -> Result<Vec<DeadInfo>, QueueError> {
        let route = route.to_owned();
        self.read(move |db| {
            let tx = db.begin_read()?;
            let dead = tx.open_table(DEAD)?;
            let mut out = Vec::new();
            for row in dead
                .range((route.as_str(), 0)..=(route.as_str(), u64::MAX))?
                .take(limit)
            {
                let (_, v) = row?;
                if let Ok(e) = Entry::decode(v.value()) {
                    out.push(DeadInfo::of(&e));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|_| QueueError::Unavailable("spool read failed".into()))?
            .map_err(|e| QueueError::Unavailable(format!("spool read: {e}")))
    }
}

/// A redb error, boxed (redb's own is 160 bytes, too big to pass around in every `Result`).
struct DbError(Box<redb::Error>);

impl<E: Into<redb::Error>> From<E> for DbError {
    fn from(e: E) -> DbError {
        DbError(Box::new(e.into()))
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Creates `dir` (and its parents) if missing; a directory it creates is owner-only on unix.
/// An existing directory (a mounted volume) is left as it is.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn seq(c: &Claimed) -> Result<u64, QueueError> {
    match c.lease {
        Lease::Disk(seq) => Ok(seq),
        Lease::Redis { .. } => Err(QueueError::Unavailable(
            "entry was claimed from another store".into(),
        )),
    }
}

/// Opens the file, checks the schema version (upgrading layout 1), quarantines undecodable
/// entries and builds the index and the state. The error is the detail for
/// [`QueueError::Corrupt`].
fn open_file(file: &Path, mut index: Index) -> Result<(Database, State, Index, u64), String> {
    let db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(file)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                "already open (another hookseal process uses this spool)".to_owned()
            }
            redb::DatabaseError::UpgradeRequired(v) => {
                format!("redb file format {v} is not the one this build reads")
            }
            e => format!("cannot open: {e}"),
        })?;
    let msg = |e: DbError| format!("cannot read: {e}");
    let tx = db.begin_write().map_err(|e| msg(e.into()))?;
    let quarantined;
    let mut state = State::default();
    {
        let mut meta = tx.open_table(META).map_err(|e| msg(e.into()))?;
        let mut entries = tx.open_table(ENTRIES).map_err(|e| msg(e.into()))?;
        let found = meta
            .get("schema_version")
            .map_err(|e| msg(e.into()))?
            .map(|v| v.value());
        match found {
            Some(SCHEMA_VERSION) => {}
            Some(1) => {
                // Layout 1: the same entries, plus index tables this build keeps in memory.
                for deleted in [
                    tx.delete_table(V1_DUE),
                    tx.delete_table(V1_QUEUED),
                    tx.delete_table(V1_IDS),
                ] {
                    deleted.map_err(|e| msg(e.into()))?;
                }
                meta.insert("schema_version", SCHEMA_VERSION)
                    .map_err(|e| msg(e.into()))?;
            }
            Some(v) => {
                return Err(format!(
                    "spool schema version {v}, this hookseal reads versions 1 and {SCHEMA_VERSION}"
                ))
            }
            None if entries.len().map_err(|e| msg(e.into()))? > 0 => {
                return Err("entries without a schema version: not a hookseal spool".to_owned())
            }
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)
                    .map_err(|e| msg(e.into()))?;
            }
        }
        let mut bad = Vec::new();
        for row in entries.iter().map_err(|e| msg(e.into()))? {
            let (k, v) = row.map_err(|e| msg(e.into()))?;
            let seq = k.value();
            state.next_seq = state.next_seq.max(seq + 1);
            match Entry::decode(v.value()) {
                Ok(e) => {
                    let len = v.value().len() as u64;
                    state.entries += 1;
                    state.bytes += len;
                    let route = index.route(&e.route);
                    let id_hash = index.id_hash(route, &e.id);
                    index.put(
                        seq,
                        Meta {
                            route,
                            attempts: e.attempts,
                            len,
                            queued_at: e.queued_at,
                            next_at: e.next_attempt_at,
                            id_hash,
                        },
                    );
                }
                Err(_) => bad.push((seq, v.value().to_vec())),
            }
        }
        let mut q = tx.open_table(QUARANTINE).map_err(|e| msg(e.into()))?;
        for (seq, bytes) in &bad {
            q.insert(*seq, bytes.as_slice())
                .map_err(|e| msg(e.into()))?;
            entries.remove(*seq).map_err(|e| msg(e.into()))?;
        }
        quarantined = bad.len() as u64;
        if let Some(last) = q.last().map_err(|e| msg(e.into()))? {
            state.next_seq = state.next_seq.max(last.0.value() + 1);
        }
        // The newer attempt counts; rows of entries that are gone (quarantined) are dropped.
        let mut attempts = tx.open_table(ATTEMPTS).map_err(|e| msg(e.into()))?;
        let mut orphans = Vec::new();
        for row in attempts.iter().map_err(|e| msg(e.into()))? {
            let (k, v) = row.map_err(|e| msg(e.into()))?;
            match index.metas.get_mut(&k.value()) {
                Some(m) => m.attempts = m.attempts.max(v.value()),
                None => orphans.push(k.value()),
            }
        }
        for seq in orphans {
            attempts.remove(seq).map_err(|e| msg(e.into()))?;
        }
        let dead = tx.open_table(DEAD).map_err(|e| msg(e.into()))?;
        for row in dead.iter().map_err(|e| msg(e.into()))? {
            let (k, v) = row.map_err(|e| msg(e.into()))?;
            let (route, seq) = k.value();
            state.next_seq = state.next_seq.max(seq + 1);
            state.entries += 1;
            state.bytes += v.value().len() as u64;
            let route = index.route(route);
            index.routes[route as usize].dead += 1;
        }
    }
    tx.commit().map_err(|e| msg(e.into()))?;
    state.durable_below = state.next_seq;
    Ok((db, state, index, quarantined))
}

struct Committer {
    db: Arc<Database>,
    state: State,
    index: Index,
    limits: Limits,
    counts: Counts,
    /// Since when claims or acknowledgements wait in [`Index::lazy`] (`None`: none waits).
    lazy_since: Option<Instant>,
}

impl Committer {
    fn run(mut self, rx: &mpsc::Receiver<Command>) {
        loop {
            let first = match self.lazy_since {
                None => match rx.recv() {
                    Ok(c) => c,
                    Err(_) => break,
                },
                Some(since) => match rx.recv_timeout(LAZY_WINDOW.saturating_sub(since.elapsed())) {
                    Ok(c) => c,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.write_batch(Vec::new());
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
            };
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let window_over = self.lazy_since.is_some_and(|t| t.elapsed() >= LAZY_WINDOW);
            if window_over || batch.iter().any(Command::durable) {
                self.write_batch(batch);
            } else {
                self.lazy_batch(batch);
            }
        }
        // Closing: the claims and acknowledgements still waiting are written.
        if self.lazy_since.is_some() {
            self.write_batch(Vec::new());
        }
    }

    /// Every route's numbers into the shared counts, for `stats`.
    fn publish(&self) {
        let mut counts = lock(&self.counts);
        for r in &self.index.routes {
            let p = self.index.published(r);
            match counts.get_mut(&r.name) {
                Some(c) => *c = p,
                None => drop(counts.insert(r.name.clone(), p)),
            }
        }
    }

    /// Applies `batch` in one durable transaction, with every claim and acknowledgement
    /// waiting in [`Index::lazy`], on a copy of the state and on the index (which records
    /// how to undo it); answers only after the commit, and keeps the changes only if it
    /// succeeded. An empty batch writes what waits.
    fn write_batch(&mut self, batch: Vec<Command>) {
        let mut state = self.state.clone();
        let mut answers = Vec::with_capacity(batch.len());
        let mut failed = None;
        let outcome = match self.db.begin_write() {
            Err(e) => {
                answers.extend(batch.into_iter().map(answer_of));
                Err(format!("spool write: {e}"))
            }
            Ok(tx) => {
                match open_tables(&tx) {
                    Err(e) => {
                        failed = Some(format!("spool write: {e}"));
                        answers.extend(batch.into_iter().map(answer_of));
                    }
                    Ok(mut tables) => {
                        let mut cx = Cx {
                            store: Store::Write(&mut tables),
                            st: &mut state,
                            ix: &mut self.index,
                            limits: &self.limits,
                        };
                        apply_all(&mut cx, batch, &mut answers, &mut failed);
                        // Every write is durable: a claim that asked for it is served.
                        state.force_durable = false;
                        if failed.is_none() {
                            if let Err(e) = write_lazy(&mut tables, &self.index.lazy) {
                                failed = Some(format!("spool write: {e}"));
                            }
                        }
                    }
                }
                match failed {
                    Some(why) => {
                        let _ = tx.abort();
                        Err(why)
                    }
                    None => tx.commit().map_err(|e| format!("spool commit: {e}")),
                }
            }
        };
        match outcome {
            Ok(()) => {
                self.index.keep();
                self.index.lazy.clear();
                self.lazy_since = None;
                self.state = state;
                self.publish();
                answers.into_iter().for_each(Answer::send);
            }
            Err(why) => {
                // What waited in `lazy` still waits (it is tried again with the next write).
                self.index.undo();
                if self.lazy_since.is_some() && answers.is_empty() {
                    tracing::warn!(error = %why, "spool: cannot write acknowledged deliveries");
                }
                answers.into_iter().for_each(|a| a.fail(&why));
            }
        }
    }

    /// Applies a batch of only claims and acknowledgements without a write transaction: the
    /// index changes at once, the rows they change wait in [`Index::lazy`] for the next
    /// write (the next enqueue's, or one at most [`LAZY_WINDOW`] later). A claim reads its
    /// entry through a read transaction. A claim of an entry from before the spool was
    /// opened is written durably before anyone is answered (see the module docs).
    fn lazy_batch(&mut self, batch: Vec<Command>) {
        let mut state = self.state.clone();
        let mut answers = Vec::with_capacity(batch.len());
        let mut failed = None;
        let claims = batch
            .iter()
            .any(|c| matches!(c, Command::Claim { .. } | Command::Reclaim { .. }));
        let read = if claims {
            self.db
                .begin_read()
                .map_err(DbError::from)
                .and_then(|tx| tx.open_table(ENTRIES).map_err(DbError::from))
                .map(Some)
        } else {
            Ok(None)
        };
        match read {
            Err(e) => {
                failed = Some(format!("spool read: {e}"));
                answers.extend(batch.into_iter().map(answer_of));
            }
            Ok(table) => {
                let mut cx = Cx {
                    store: Store::Read(table.as_ref()),
                    st: &mut state,
                    ix: &mut self.index,
                    limits: &self.limits,
                };
                apply_all(&mut cx, batch, &mut answers, &mut failed);
            }
        }
        if failed.is_none() && std::mem::take(&mut state.force_durable) {
            failed = self.write_lazy_now().err();
        }
        match failed {
            None => {
                self.index.keep();
                if self.index.lazy.is_empty() {
                    self.lazy_since = None;
                } else if self.lazy_since.is_none() {
                    self.lazy_since = Some(Instant::now());
                }
                self.state = state;
                self.publish();
                answers.into_iter().for_each(Answer::send);
            }
            Some(why) => {
                self.index.undo();
                answers.into_iter().for_each(|a| a.fail(&why));
            }
        }
    }

    /// Writes what waits in [`Index::lazy`] in a durable transaction of its own.
    fn write_lazy_now(&mut self) -> Result<(), String> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| format!("spool write: {e}"))?;
        let written = open_tables(&tx).and_then(|mut t| write_lazy(&mut t, &self.index.lazy));
        match written {
            Ok(()) => tx.commit().map_err(|e| format!("spool commit: {e}"))?,
            Err(e) => {
                let _ = tx.abort();
                return Err(format!("spool write: {e}"));
            }
        }
        self.index.lazy.clear();
        Ok(())
    }
}

/// Applies each command of a batch in turn; after a storage error the rest are only failed.
fn apply_all(
    cx: &mut Cx<'_, '_>,
    batch: Vec<Command>,
    answers: &mut Vec<Answer>,
    failed: &mut Option<String>,
) {
    for c in batch {
        if failed.is_some() {
            answers.push(answer_of(c));
            continue;
        }
        match cx.apply(c) {
            Ok(a) => answers.push(a),
            Err((a, e)) => {
                answers.push(a);
                *failed = Some(format!("spool write: {e}"));
            }
        }
    }
}

/// Writes the rows of the claims and acknowledgements that wait, in key order.
fn write_lazy(t: &mut Tables<'_>, lazy: &HashMap<u64, Lazy>) -> Result<(), DbError> {
    let mut ops: Vec<(u64, Lazy)> = lazy.iter().map(|(s, l)| (*s, *l)).collect();
    ops.sort_unstable_by_key(|(s, _)| *s);
    for (seq, op) in ops {
        match op {
            Lazy::Attempts(n) => drop(t.attempts.insert(seq, n)?),
            Lazy::Gone => {
                t.entries.remove(seq)?;
                t.attempts.remove(seq)?;
            }
        }
    }
    Ok(())
}

/// An answer that will only ever be failed (its command was not applied).
fn answer_of(c: Command) -> Answer {
    match c {
        Command::Enqueue(_, r)
        | Command::Ack(_, r)
        | Command::Reschedule(_, _, _, r)
        | Command::Persist(r) => Answer::Unit(r, failed("")),
        Command::Dead(_, _, r) => Answer::Unit(r, failed("")),
        Command::Claim { reply, .. } | Command::Reclaim { reply, .. } => {
            Answer::Claimed(reply, failed(""))
        }
        Command::Retry { reply, .. } | Command::Purge(_, reply) => Answer::Count(reply, failed("")),
    }
}

type Applied = Result<Answer, (Answer, DbError)>;

/// The tables a batch writes, opened once per transaction (opening them per command cost
/// more than the writes themselves: BENCHMARKS.md "Spool store choice").
struct Tables<'t> {
    entries: redb::Table<'t, u64, &'static [u8]>,
    dead: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    attempts: redb::Table<'t, u64, u32>,
}

fn open_tables(tx: &WriteTransaction) -> Result<Tables<'_>, DbError> {
    Ok(Tables {
        entries: tx.open_table(ENTRIES)?,
        dead: tx.open_table(DEAD)?,
        attempts: tx.open_table(ATTEMPTS)?,
    })
}

/// A storage error fails the whole batch; a logical one (full, duplicate) only its command.
fn wrap<T>(
    r: Result<Result<T, QueueError>, DbError>,
    make: impl FnOnce(Result<T, QueueError>) -> Answer,
) -> Applied {
    match r {
        Ok(v) => Ok(make(v)),
        Err(e) => Err((make(Err(QueueError::Unavailable(String::new()))), e)),
    }
}

type Step<T> = Result<Result<T, QueueError>, DbError>;

enum Finish {
    Ack,
    Retry(u64, Failure),
    Dead(Failure),
}

/// Where a batch reads and writes rows: a write transaction's tables, or (a batch of only
/// claims and acknowledgements) a read transaction's entries, if it needs any.
enum Store<'a, 't> {
    Write(&'a mut Tables<'t>),
    Read(Option<&'a redb::ReadOnlyTable<u64, &'static [u8]>>),
}

impl<'t> Store<'_, 't> {
    /// `f` of the stored bytes of entry `seq`, if there is one.
    fn entry<R>(&self, seq: u64, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, DbError> {
        Ok(match self {
            Store::Write(t) => t.entries.get(seq)?.map(|v| f(v.value())),
            Store::Read(Some(t)) => t.get(seq)?.map(|v| f(v.value())),
            Store::Read(None) => None,
        })
    }

    /// The tables to write; only a write batch has them (the batch is chosen by its
    /// commands, [`Command::durable`]).
    fn tables(&mut self) -> Result<&mut Tables<'t>, DbError> {
        match self {
            Store::Write(t) => Ok(t),
            Store::Read(_) => Err(DbError(Box::new(redb::Error::Corrupted(
                "spool: a write outside a write transaction".into(),
            )))),
        }
    }
}

/// What a batch's commands work on: where the rows are, the copy of the state, the index.
struct Cx<'a, 't> {
    store: Store<'a, 't>,
    st: &'a mut State,
    ix: &'a mut Index,
    limits: &'a Limits,
}

impl Cx<'_, '_> {
    fn apply(&mut self, c: Command) -> Applied {
        match c {
            Command::Enqueue(e, r) => wrap(self.enqueue(&e), |v| Answer::Unit(r, v)),
            Command::Claim {
                route,
                max,
                now,
                reply,
            } => wrap(self.claim(&route, max, now), |v| Answer::Claimed(reply, v)),
            Command::Reclaim {
                route,
                older_than,
                max,
                now,
                reply,
            } => wrap(self.reclaim(&route, older_than, max, now), |v| {
                Answer::Claimed(reply, v)
            }),
            Command::Ack(seq, r) => wrap(self.finish(seq, Finish::Ack), |v| Answer::Unit(r, v)),
            Command::Reschedule(seq, at, f, r) => {
                wrap(self.finish(seq, Finish::Retry(at, f)), |v| {
                    Answer::Unit(r, v)
                })
            }
            Command::Dead(seq, f, r) => {
                wrap(self.finish(seq, Finish::Dead(f)), |v| Answer::Unit(r, v))
            }
            Command::Retry {
                route,
                id,
                now,
                reply,
            } => wrap(self.retry(&route, id.as_deref(), now), |v| {
                Answer::Count(reply, v)
            }),
            Command::Purge(route, r) => wrap(self.purge(&route), |v| Answer::Count(r, v)),
            Command::Persist(r) => Ok(Answer::Unit(r, Ok(()))),
        }
    }

    /// The entry of `route` with `id` that is waiting or in flight, if any: the index's
    /// candidates, each confirmed against its stored entry.
    fn queued_id(&self, route: u32, route_name: &str, id: &str) -> Result<Option<u64>, DbError> {
        for seq in self.ix.with_hash(self.ix.id_hash(route, id)) {
            let same = self.store.entry(seq, |v| {
                EntryMeta::read(v).is_ok_and(|m| m.id == id && m.route == route_name)
            })?;
            if same == Some(true) {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }

    fn enqueue(&mut self, e: &NewEntry) -> Step<()> {
        let route = self.ix.route(&e.route);
        if self.queued_id(route, &e.route, &e.id)?.is_some() {
            return Ok(Err(QueueError::AlreadyQueued));
        }
        let len = e.bytes.len() as u64;
        let st = &mut *self.st;
        if st.entries + 1 > self.limits.max_entries || st.bytes + len > self.limits.max_bytes {
            return Ok(Err(QueueError::Full));
        }
        let seq = st.next_seq;
        self.store
            .tables()?
            .entries
            .insert(seq, e.bytes.as_slice())?;
        st.next_seq += 1;
        st.entries += 1;
        st.bytes += len;
        let id_hash = self.ix.id_hash(route, &e.id);
        self.ix.insert(
            seq,
            Meta {
                route,
                attempts: e.attempts,
                len,
                queued_at: e.queued_at,
                next_at: e.next_attempt_at,
                id_hash,
            },
        );
        Ok(Ok(()))
    }

    /// Counts one more attempt on entry `seq` (in its small `attempts` row, written with the
    /// next write: the entry itself is not rewritten), leases it.
    fn lease(&mut self, seq: u64, now: u64) -> Result<Option<Claimed>, DbError> {
        let Some(m) = self.ix.metas.get(&seq).copied() else {
            return Ok(None);
        };
        let Some(Ok(mut e)) = self.store.entry(seq, Entry::decode)? else {
            return Ok(None);
        };
        e.attempts = m.attempts.saturating_add(1);
        self.ix.set_lazy(seq, Some(Lazy::Attempts(e.attempts)));
        self.ix.set_attempts(seq, e.attempts);
        self.st.leases.insert(seq, now);
        self.st.force_durable |= seq < self.st.durable_below;
        Ok(Some(Claimed {
            entry: e,
            lease: Lease::Disk(seq),
        }))
    }

    fn claim(&mut self, route: &str, max: usize, now: u64) -> Step<Vec<Claimed>> {
        let Some(&r) = self.ix.route_ids.get(route) else {
            return Ok(Ok(Vec::new()));
        };
        let seqs: Vec<u64> = self.ix.routes[r as usize]
            .due
            .range(..=(now, u64::MAX))
            .map(|(_, seq)| *seq)
            .filter(|seq| !self.st.leases.contains_key(seq))
            .take(max)
            .collect();
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            out.extend(self.lease(seq, now)?);
        }
        Ok(Ok(out))
    }

    fn reclaim(
        &mut self,
        route: &str,
        older_than: u64,
        max: usize,
        now: u64,
    ) -> Step<Vec<Claimed>> {
        let Some(&r) = self.ix.route_ids.get(route) else {
            return Ok(Ok(Vec::new()));
        };
        let mut stale: Vec<u64> = self
            .st
            .leases
            .iter()
            .filter(|(seq, &at)| {
                at <= older_than && self.ix.metas.get(seq).is_some_and(|m| m.route == r)
            })
            .map(|(&seq, _)| seq)
            .collect();
        stale.sort_unstable();
        let mut out = Vec::new();
        for seq in stale.into_iter().take(max) {
            out.extend(self.lease(seq, now)?);
        }
        Ok(Ok(out))
    }

    fn finish(&mut self, seq: u64, how: Finish) -> Step<()> {
        self.st.leases.remove(&seq);
        let Some(m) = self.ix.metas.get(&seq).copied() else {
            // Already finished (e.g. acknowledged twice): nothing to do.
            return Ok(Ok(()));
        };
        // An acknowledgement needs nothing of the stored entry (its rows are removed with
        // the next write); a retry or dead letter rewrites it now.
        let (f, mut e) = match how {
            Finish::Ack => {
                self.ix.set_lazy(seq, Some(Lazy::Gone));
                self.ix.remove(seq);
                self.st.entries = self.st.entries.saturating_sub(1);
                self.st.bytes = self.st.bytes.saturating_sub(m.len);
                return Ok(Ok(()));
            }
            Finish::Retry(_, ref f) | Finish::Dead(ref f) => {
                let Some(Ok(e)) = self.store.entry(seq, Entry::decode)? else {
                    return Ok(Ok(()));
                };
                (f.clone(), e)
            }
        };
        e.attempts = m.attempts;
        e.last_status = f.status;
        e.last_error = f.error;
        // The rewrite carries the attempts: a waiting `attempts` row is not needed.
        self.ix.set_lazy(seq, None);
        let t = self.store.tables()?;
        t.attempts.remove(seq)?;
        if let Finish::Retry(at, _) = how {
            e.next_attempt_at = at;
            let bytes = e.encode();
            t.entries.insert(seq, bytes.as_slice())?;
            let len = bytes.len() as u64;
            self.st.bytes = self.st.bytes.saturating_sub(m.len) + len;
            self.ix.update(seq, |m| {
                m.next_at = at;
                m.len = len;
            });
            return Ok(Ok(()));
        }
        let bytes = e.encode();
        let route_name = &self.ix.routes[m.route as usize].name;
        t.dead
            .insert((route_name.as_str(), seq), bytes.as_slice())?;
        t.entries.remove(seq)?;
        self.st.bytes = self.st.bytes.saturating_sub(m.len) + bytes.len() as u64;
        self.ix.remove(seq);
        self.ix.add_dead(m.route, 1);
        Ok(Ok(()))
    }

    fn retry(&mut self, route: &str, id: Option<&str>, now: u64) -> Step<u64> {
        let mut found = Vec::new();
        for row in self
            .store
            .tables()?
            .dead
            .range((route, 0)..=(route, u64::MAX))?
        {
            let (k, v) = row?;
            let Ok(e) = Entry::decode(v.value()) else {
                continue;
            };
            if id.is_none_or(|id| id == e.id) {
                found.push((k.value().1, e, v.value().len() as u64));
            }
        }
        let r = self.ix.route(route);
        let mut n = 0;
        for (seq, mut e, old_len) in found {
            if self.queued_id(r, route, &e.id)?.is_some() {
                continue; // queued again meanwhile: the dead letter stays
            }
            e.next_attempt_at = now;
            let bytes = e.encode();
            let t = self.store.tables()?;
            t.dead.remove((route, seq))?;
            t.entries.insert(seq, bytes.as_slice())?;
            let len = bytes.len() as u64;
            self.st.bytes = self.st.bytes.saturating_sub(old_len) + len;
            let id_hash = self.ix.id_hash(r, &e.id);
            self.ix.insert(
                seq,
                Meta {
                    route: r,
                    attempts: e.attempts,
                    len,
                    queued_at: e.queued_at,
                    next_at: now,
                    id_hash,
                },
            );
            self.ix.add_dead(r, -1);
            n += 1;
        }
        Ok(Ok(n))
    }

    fn purge(&mut self, route: &str) -> Step<u64> {
        let t = self.store.tables()?;
        let rows: Vec<(u64, u64)> = t
            .dead
            .range((route, 0)..=(route, u64::MAX))?
            .map(|r| r.map(|(k, v)| (k.value().1, v.value().len() as u64)))
            .collect::<Result<_, _>>()?;
        for (seq, len) in &rows {
            t.dead.remove((route, *seq))?;
            self.st.entries = self.st.entries.saturating_sub(1);
            self.st.bytes = self.st.bytes.saturating_sub(*len);
        }
        let n = rows.len() as u64;
        if n > 0 {
            let r = self.ix.route(route);
            self.ix.add_dead(r, -(n as i64));
        }
        Ok(Ok(n))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command as Process, Stdio};
    use std::time::{Duration, Instant};

    use super::super::conformance::{self, entry, T0};
    use super::super::{Failure, Spool};
    use super::*;

    fn open(dir: &Path) -> Spool {
        Spool::Disk(DiskSpool::open(dir, Limits::default()).unwrap())
    }

    #[tokio::test]
    async fn disk_spool_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path());
        assert_eq!(spool.kind(), "disk");
        conformance::check_semantics(&spool).await;
    }

    /// The same semantics when every (route, id) hashes alike: each dedupe is decided by
    /// the stored entry, never by the hash alone.
    #[tokio::test]
    async fn disk_spool_semantics_when_every_id_hash_collides() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = Index::new();
        index.collide = true;
        let spool =
            Spool::Disk(DiskSpool::open_with(dir.path(), Limits::default(), index).unwrap());
        conformance::check_semantics(&spool).await;
        // Distinct ids all stored, a repeat refused, freed ids taken again.
        for id in ["x", "y", "z"] {
            spool.enqueue(&entry("c", id, b"1")).await.unwrap();
        }
        assert!(matches!(
            spool.enqueue(&entry("c", "y", b"2")).await,
            Err(QueueError::AlreadyQueued)
        ));
        let c = spool.claim("c", "w", 10, T0).await.unwrap();
        spool.ack(&c[1]).await.unwrap();
        spool.enqueue(&entry("c", "y", b"3")).await.unwrap();
        assert!(matches!(
            spool.enqueue(&entry("c", "x", b"4")).await,
            Err(QueueError::AlreadyQueued)
        ));
    }

    /// What the index holds, in a comparable form.
    fn snapshot(ix: &Index) -> impl PartialEq + std::fmt::Debug {
        let mut metas: Vec<(u64, Meta)> = ix.metas.iter().map(|(s, m)| (*s, *m)).collect();
        metas.sort_unstable_by_key(|(s, _)| *s);
        let routes: Vec<_> = ix
            .routes
            .iter()
            .map(|r| (r.name.clone(), r.due.clone(), r.queued.clone(), r.dead))
            .collect();
        let mut ids: Vec<(u64, u64)> = ix.ids.iter().map(|(h, s)| (*h, *s)).collect();
        ids.extend(ix.collided.iter().copied());
        ids.sort_unstable();
        (metas, routes, ids)
    }

    /// A batch whose commit fails leaves the index as it was: every change undone, in
    /// reverse, hash collisions included.
    #[test]
    fn index_undo_restores_every_change() {
        let mut ix = Index::new();
        let r = ix.route("r");
        let q = ix.route("q");
        let meta = |route, at, hash| Meta {
            route,
            attempts: 0,
            len: 10,
            queued_at: at,
            next_at: at,
            id_hash: hash,
        };
        for seq in 0..6 {
            ix.put(
                seq,
                meta(if seq % 2 == 0 { r } else { q }, 100 + seq, seq % 3),
            );
        }
        ix.add_dead(r, 2);
        ix.keep();
        let before = snapshot(&ix);
        // A batch: new entries (one colliding), removals (one that owns a hash another
        // collided on), a reschedule, attempts, dead counts.
        ix.insert(6, meta(r, 50, 0));
        ix.insert(7, meta(q, 60, 9));
        assert_eq!(ix.remove(0).map(|m| m.id_hash), Some(0));
        assert_eq!(ix.with_hash(0).len(), 2, "3 and 6 share hash 0");
        ix.update(4, |m| m.next_at = 1);
        ix.set_attempts(5, 3);
        ix.remove(7);
        ix.add_dead(q, 1);
        ix.add_dead(r, -1);
        assert_ne!(snapshot(&ix), before);
        ix.undo();
        assert_eq!(snapshot(&ix), before);
        assert!(ix.journal.is_empty());
    }

    /// A spool of the first layout (index tables on disk) opens: its entries, attempts and
    /// dead letters are kept, its index tables are dropped, it is version 2 from then on.
    #[tokio::test]
    async fn layout_1_spool_is_upgraded_keeping_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let tx = db.begin_write().unwrap();
            {
                tx.open_table(META)
                    .unwrap()
                    .insert("schema_version", 1)
                    .unwrap();
                let mut entries = tx.open_table(ENTRIES).unwrap();
                let mut due = tx.open_table(V1_DUE).unwrap();
                let mut queued = tx.open_table(V1_QUEUED).unwrap();
                let mut ids = tx.open_table(V1_IDS).unwrap();
                for (seq, id, at) in [(0u64, "a", T0 + 5), (1, "b", T0), (2, "c", T0 + 9)] {
                    let mut e = entry("r", id, id.as_bytes());
                    e.next_attempt_at = at;
                    entries.insert(seq, e.encode().as_slice()).unwrap();
                    due.insert(("r", at, seq), ()).unwrap();
                    queued.insert(("r", T0, seq), ()).unwrap();
                    ids.insert(("r", id), seq).unwrap();
                }
                tx.open_table(ATTEMPTS).unwrap().insert(1, 4).unwrap();
                let dead = entry("r", "d", b"d").encode();
                tx.open_table(DEAD)
                    .unwrap()
                    .insert(("r", 3), dead.as_slice())
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        let spool = open(dir.path());
        let s = spool.stats(&["r"], T0 + 10).await.unwrap();
        assert_eq!((s["r"].depth, s["r"].dead, s["r"].oldest_ms), (3, 1, 10));
        assert!(matches!(
            spool.enqueue(&entry("r", "c", b"again")).await,
            Err(QueueError::AlreadyQueued)
        ));
        let c = spool.claim("r", "w", 10, T0 + 10).await.unwrap();
        let got: Vec<_> = c
            .iter()
            .map(|c| (c.entry.id.as_str(), c.entry.attempts))
            .collect();
        assert_eq!(
            got,
            [("b", 5), ("a", 1), ("c", 1)],
            "due order, attempts kept"
        );
        // A new entry is numbered after the dead letter's 3.
        spool.enqueue(&entry("r", "e", b"e")).await.unwrap();
        drop(c);
        drop(spool);
        let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
        let tx = db.begin_read().unwrap();
        let names: Vec<String> = tx
            .list_tables()
            .unwrap()
            .map(|t| redb::TableHandle::name(&t).to_owned())
            .collect();
        for old in ["due", "queued", "ids"] {
            assert!(!names.iter().any(|n| n == old), "{old} left: {names:?}");
        }
        let version = tx
            .open_table(META)
            .unwrap()
            .get("schema_version")
            .unwrap()
            .unwrap()
            .value();
        assert_eq!(version, SCHEMA_VERSION);
        assert!(tx.open_table(ENTRIES).unwrap().get(4).unwrap().is_some());
    }

    #[tokio::test]
    async fn disk_spool_caps() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::Disk(
            DiskSpool::open(
                dir.path(),
                Limits {
                    max_bytes: 1 << 20,
                    max_entries: 4,
                },
            )
            .unwrap(),
        );
        conformance::check_full(&spool).await;

        // The byte cap: an entry that would pass max_bytes is refused, a smaller one fits.
        let dir = tempfile::tempdir().unwrap();
        let small = Limits {
            max_bytes: 3000,
            max_entries: 100,
        };
        let spool = Spool::Disk(DiskSpool::open(dir.path(), small).unwrap());
        spool
            .enqueue(&entry("r", "a", &[b'x'; 1500]))
            .await
            .unwrap();
        assert!(matches!(
            spool.enqueue(&entry("r", "b", &[b'x'; 1500])).await,
            Err(QueueError::Full)
        ));
        spool
            .enqueue(&entry("r", "c", &[b'x'; 1000]))
            .await
            .unwrap();
        drop(spool);
        // The usage is rebuilt on open: still full.
        let spool = Spool::Disk(DiskSpool::open(dir.path(), small).unwrap());
        assert!(matches!(
            spool.enqueue(&entry("r", "d", &[b'x'; 600])).await,
            Err(QueueError::Full)
        ));
    }

    /// Closing and opening again: entries, attempts, schedules and dead letters are kept;
    /// leases are not (an entry in flight when the process stopped is claimed again).
    #[tokio::test]
    async fn reopen_keeps_entries_and_attempts_releases_leases() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path());
        for id in ["a", "b", "c", "d"] {
            spool.enqueue(&entry("r", id, id.as_bytes())).await.unwrap();
        }
        let c = spool.claim("r", "w", 3, T0).await.unwrap();
        spool
            .reschedule(&c[1], T0 + 1000, &Failure::default())
            .await
            .unwrap();
        spool.dead_letter(&c[2], &Failure::default()).await.unwrap();
        drop(spool);

        let spool = open(dir.path());
        let s = spool.stats(&["r"], T0 + 10).await.unwrap();
        assert_eq!((s["r"].depth, s["r"].dead, s["r"].oldest_ms), (3, 1, 10));
        assert!(matches!(
            spool.enqueue(&entry("r", "d", b"dup")).await,
            Err(QueueError::AlreadyQueued)
        ));
        let again = spool.claim("r", "w", 10, T0).await.unwrap();
        let got: Vec<_> = again
            .iter()
            .map(|c| (c.entry.id.as_str(), c.entry.attempts))
            .collect();
        assert_eq!(got, [("a", 2), ("d", 1)], "b waits for T0 + 1000");
        let b = spool.claim("r", "w", 10, T0 + 1000).await.unwrap();
        assert_eq!((b[0].entry.id.as_str(), b[0].entry.attempts), ("b", 2));
        assert_eq!(spool.dead("r", 10).await.unwrap()[0].id, "c");
        // A fresh entry after reopening gets a new sequence number (ordered after the rest).
        spool.enqueue(&entry("r", "e", b"e")).await.unwrap();
        let e = spool.claim("r", "w", 10, T0).await.unwrap();
        assert_eq!(e[0].entry.id, "e");
    }

    #[tokio::test]
    async fn reclaim_takes_over_stale_leases() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path());
        spool.enqueue(&entry("r", "a", b"a")).await.unwrap();
        spool.enqueue(&entry("q", "a", b"a")).await.unwrap();
        let c = spool.claim("r", "w", 10, T0).await.unwrap();
        assert_eq!(c.len(), 1);
        // The lease was taken at T0 (the claim's clock), long before now: stale.
        assert!(spool
            .reclaim("r", "w2", u64::MAX, 10)
            .await
            .unwrap()
            .is_empty());
        let r = spool.reclaim("r", "w2", 1000, 10).await.unwrap();
        assert_eq!(r.len(), 1, "only route r's lease");
        assert_eq!(r[0].entry.attempts, 2);
        spool.ack(&r[0]).await.unwrap();
        // The first worker's late ack is harmless.
        spool.ack(&c[0]).await.unwrap();
        assert_eq!(spool.stats(&["r"], T0).await.unwrap()["r"].depth, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_enqueues_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path());
        let tasks: Vec<_> = (0..32)
            .map(|t| {
                let spool = spool.clone();
                tokio::spawn(async move {
                    for i in 0..10 {
                        spool
                            .enqueue(&entry("r", &format!("{t}-{i}"), b"x"))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        drop(spool);
        let spool = open(dir.path());
        assert_eq!(spool.stats(&["r"], T0).await.unwrap()["r"].depth, 320);
    }

    /// Runs the test `name` of this module again in a child process with `env` set to `dir`
    /// (the test's child half), and returns it with the lines of its stdout.
    fn spawn_child(
        name: &str,
        env: &str,
        dir: &Path,
    ) -> (
        std::process::Child,
        std::io::Lines<BufReader<std::process::ChildStdout>>,
    ) {
        let mut child = Process::new(std::env::current_exe().unwrap())
            .args([
                &format!("queue::disk::tests::{name}"),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(env, dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        (child, lines)
    }

    /// [`spawn_child`], then SIGKILL once the child printed `ready`.
    fn kill_when_ready(name: &str, env: &str, dir: &Path) {
        let (mut child, mut lines) = spawn_child(name, env, dir);
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("ready"));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(ready, "the child stopped early: {status:?}");
    }

    const CHILD_ENV: &str = "HOOKSEAL_TEST_SPOOL_WRITER_DIR";

    /// The child half of `acked_entries_survive_sigkill`: enqueue from 8 tasks, print
    /// `acked <id>` once each enqueue has returned, until killed (or 60 s, so it never lingers).
    fn writer(dir: &Path) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let spool = open(dir);
            let deadline = Instant::now() + Duration::from_secs(60);
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let spool = spool.clone();
                    tokio::spawn(async move {
                        let mut i = 0u64;
                        while Instant::now() < deadline {
                            let id = format!("w{t}-{i}");
                            spool
                                .enqueue(&entry("r", &id, &[b'k'; 1024]))
                                .await
                                .unwrap();
                            let mut out = std::io::stdout().lock();
                            writeln!(out, "acked {id}").unwrap();
                            out.flush().unwrap();
                            i += 1;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
    }

    /// Runs this test binary again as a writer, SIGKILLs it mid-stream, reopens the spool:
    /// every id the writer printed as acknowledged is there.
    #[test]
    fn acked_entries_survive_sigkill() {
        if let Some(dir) = std::env::var_os(CHILD_ENV) {
            writer(Path::new(&dir));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (mut child, mut lines) =
            spawn_child("acked_entries_survive_sigkill", CHILD_ENV, dir.path());
        let mut acked = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.len() < 300 {
            assert!(
                Instant::now() < deadline,
                "the writer acknowledged only {}",
                acked.len()
            );
            match lines.next() {
                Some(Ok(l)) => acked.extend(l.strip_prefix("acked ").map(str::to_owned)),
                _ => panic!("the writer stopped after {} acks", acked.len()),
            }
        }
        child.kill().unwrap(); // SIGKILL
                               // What it printed before dying was acknowledged too.
        for l in lines.map_while(Result::ok) {
            acked.extend(l.strip_prefix("acked ").map(str::to_owned));
        }
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "the writer was killed, not finished: {status:?}"
        );

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let spool = open(dir.path());
            let mut stored = std::collections::HashSet::new();
            loop {
                let c = spool.claim("r", "w", 1000, u64::MAX).await.unwrap();
                if c.is_empty() {
                    break;
                }
                for c in c {
                    assert_eq!(c.entry.body.len(), 1024);
                    stored.insert(c.entry.id);
                }
            }
            let missing: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
            assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
            assert!(stored.len() >= acked.len());
        });
    }

    const LAZY_CHILD_ENV: &str = "HOOKSEAL_TEST_SPOOL_LAZY_DIR";

    /// The child half of `lazy_claims_and_acks_are_durable_after_the_window`: 30 entries,
    /// all claimed, 0..10 acknowledged; then, past the lazy window, 10..20 acknowledged
    /// just before it prints `ready` and waits to be killed (60 s at most).
    fn lazy_writer(dir: &Path) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let spool = open(dir);
            for i in 0..30 {
                spool
                    .enqueue(&entry("r", &format!("e{i:02}"), b"x"))
                    .await
                    .unwrap();
            }
            let c = spool.claim("r", "w", 100, T0).await.unwrap();
            assert_eq!(c.len(), 30);
            for c in &c[..10] {
                spool.ack(c).await.unwrap();
            }
            tokio::time::sleep(LAZY_WINDOW * 8).await;
            for c in &c[10..20] {
                spool.ack(c).await.unwrap();
            }
            println!("ready");
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
    }

    /// Claims and acknowledgements are committed without an fsync of their own, and are
    /// durable within LAZY_WINDOW. A SIGKILL after the window: the acknowledged entries are
    /// gone and the claimed ones carry their attempt. Acknowledgements made just before the
    /// kill may be forgotten (the entry is delivered again: at-least-once), never an entry
    /// that was not acknowledged.
    #[test]
    fn lazy_claims_and_acks_are_durable_after_the_window() {
        if let Some(dir) = std::env::var_os(LAZY_CHILD_ENV) {
            lazy_writer(Path::new(&dir));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        kill_when_ready(
            "lazy_claims_and_acks_are_durable_after_the_window",
            LAZY_CHILD_ENV,
            dir.path(),
        );

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let spool = open(dir.path());
            let c = spool.claim("r", "w", 100, T0).await.unwrap();
            let left: Vec<(&str, u32)> = c
                .iter()
                .map(|c| (c.entry.id.as_str(), c.entry.attempts))
                .collect();
            // e00..e09: acknowledged long before the kill, gone.
            assert!(
                left.iter().all(|(id, _)| id.as_bytes()[1] != b'0'),
                "{left:?}"
            );
            // e20..e29: claimed (durably, past the window), never acknowledged: kept, and
            // this is their second attempt.
            for i in 20..30 {
                let id = format!("e{i}");
                assert!(left.contains(&(id.as_str(), 2)), "{id}: {left:?}");
            }
            // e10..e19: acknowledged just before the kill: gone or delivered again.
            assert!(left.len() <= 20);
        });
    }

    const REOPEN_CHILD_ENV: &str = "HOOKSEAL_TEST_SPOOL_REOPEN_DIR";

    /// The child half of `claims_of_entries_from_before_a_restart_are_durable_at_once`.
    fn reopen_claimer(dir: &Path) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let spool = open(dir);
            for i in 0..10 {
                spool
                    .enqueue(&entry("r", &format!("p{i}"), b"x"))
                    .await
                    .unwrap();
            }
            drop(spool);
            let spool = open(dir);
            assert_eq!(spool.claim("r", "w", 100, T0).await.unwrap().len(), 10);
            println!("ready");
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
    }

    /// An entry that was in the file when it was opened (it may be the one whose delivery
    /// crashed the process last time) has its claim made durable before it is handed out:
    /// a SIGKILL right after the claim still counts the attempt, so a crash loop ends in
    /// `max_attempts`, not in endless attempts numbered 1.
    #[test]
    fn claims_of_entries_from_before_a_restart_are_durable_at_once() {
        if let Some(dir) = std::env::var_os(REOPEN_CHILD_ENV) {
            reopen_claimer(Path::new(&dir));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // SIGKILL, well within the lazy window of the claim.
        kill_when_ready(
            "claims_of_entries_from_before_a_restart_are_durable_at_once",
            REOPEN_CHILD_ENV,
            dir.path(),
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let spool = open(dir.path());
            let c = spool.claim("r", "w", 100, T0).await.unwrap();
            assert_eq!(c.len(), 10);
            assert!(c.iter().all(|c| c.entry.attempts == 2), "{c:?}");
        });
    }

    /// An acknowledgement answers without a write of its own: the entry leaves the index at
    /// once (its id is free) and the file with the next write — an enqueue's, or one of its
    /// own within LAZY_WINDOW.
    #[tokio::test]
    async fn acknowledgements_are_written_with_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskSpool::open(dir.path(), Limits::default()).unwrap();
        let stored = |disk: &DiskSpool| -> Vec<u64> {
            let tx = disk.inner.db.begin_read().unwrap();
            let t = tx.open_table(ENTRIES).unwrap();
            t.iter().unwrap().map(|r| r.unwrap().0.value()).collect()
        };
        let spool = Spool::Disk(disk.clone());
        for id in ["a", "b"] {
            spool.enqueue(&entry("r", id, b"x")).await.unwrap();
        }
        let c = spool.claim("r", "w", 10, T0).await.unwrap();
        spool.ack(&c[0]).await.unwrap();
        assert_eq!(stored(&disk), [0, 1], "not written yet");
        assert_eq!(spool.stats(&["r"], T0).await.unwrap()["r"].depth, 1);
        spool.enqueue(&entry("r", "a", b"again")).await.unwrap();
        assert_eq!(stored(&disk), [1, 2], "written with the enqueue");
        spool.ack(&c[1]).await.unwrap();
        assert_eq!(stored(&disk), [1, 2]);
        tokio::time::sleep(LAZY_WINDOW * 3).await;
        assert_eq!(stored(&disk), [2], "written within the window");
        let attempts = {
            let tx = disk.inner.db.begin_read().unwrap();
            let t = tx.open_table(ATTEMPTS).unwrap();
            t.len().unwrap()
        };
        assert_eq!(attempts, 0, "the acknowledged entries' attempts rows went with them");
    }

    /// Closing the spool makes the lazy acknowledgements durable: after a clean stop
    /// nothing acknowledged is delivered again.
    #[tokio::test]
    async fn closing_makes_the_last_acknowledgements_durable() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path());
        for id in ["a", "b"] {
            spool.enqueue(&entry("r", id, b"x")).await.unwrap();
        }
        let c = spool.claim("r", "w", 10, T0).await.unwrap();
        spool.ack(&c[0]).await.unwrap();
        spool.persist().await.unwrap();
        spool.ack(&c[1]).await.unwrap();
        drop(c);
        drop(spool);
        let spool = open(dir.path());
        assert!(spool.claim("r", "w", 10, T0).await.unwrap().is_empty());
    }

    fn open_err(dir: &Path) -> String {
        let e = DiskSpool::open(dir, Limits::default()).unwrap_err();
        assert!(matches!(e, QueueError::Corrupt { .. }), "{e:?}");
        let msg = e.to_string();
        let file = dir.join(FILE_NAME);
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        msg
    }

    #[cfg(unix)]
    #[test]
    fn spool_directory_and_file_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("a/spool");
        drop(DiskSpool::open(&dir, Limits::default()).unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(FILE_NAME)), 0o600);
    }

    #[test]
    fn not_a_spool_file_is_an_error_naming_it_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        let junk = b"this is not a redb file, and it must not be overwritten".repeat(100);
        std::fs::write(&file, &junk).unwrap();
        open_err(dir.path());
        assert_eq!(std::fs::read(&file).unwrap(), junk, "never rewritten");
    }

    /// redb cannot open a cut file (it errs or panics, both become the error); the file is
    /// left as it was for the operator. An empty file is a new spool.
    #[tokio::test]
    async fn truncated_spool_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path());
        for i in 0..200 {
            spool
                .enqueue(&entry("r", &format!("m{i}"), &[b'z'; 2048]))
                .await
                .unwrap();
        }
        drop(spool);
        let file = dir.path().join(FILE_NAME);
        let full = std::fs::read(&file).unwrap();
        for keep in [0, 100, 4096, full.len() / 2, full.len() - 1] {
            std::fs::write(&file, &full[..keep]).unwrap();
            match DiskSpool::open(dir.path(), Limits::default()) {
                Err(e) => {
                    assert!(keep > 0);
                    let msg = e.to_string();
                    assert!(msg.contains(&file.display().to_string()), "{msg}");
                    assert_eq!(std::fs::read(&file).unwrap().len(), keep, "left alone");
                }
                Ok(s) => {
                    assert_eq!(keep, 0, "a spool cut to {keep} bytes opened");
                    let spool = Spool::Disk(s);
                    assert_eq!(spool.stats(&["r"], T0).await.unwrap()["r"].depth, 0);
                }
            }
        }
    }

    #[test]
    fn other_schema_version_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(DiskSpool::open(dir.path(), Limits::default()).unwrap());
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("schema_version", 99)
                .unwrap();
            tx.commit().unwrap();
        }
        let msg = open_err(dir.path());
        assert!(msg.contains("schema version 99"), "{msg}");

        // Entries but no version at all: not ours.
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .remove("schema_version")
                .unwrap();
            tx.open_table(ENTRIES)
                .unwrap()
                .insert(1, b"x".as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let msg = open_err(dir.path());
        assert!(msg.contains("without a schema version"), "{msg}");
    }

    #[test]
    fn second_open_of_the_same_spool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DiskSpool::open(dir.path(), Limits::default()).unwrap();
        let msg = open_err(dir.path());
        assert!(msg.contains("already open"), "{msg}");
    }

    #[tokio::test]
    async fn undecodable_entry_is_quarantined_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path());
        for id in ["a", "b", "c"] {
            spool.enqueue(&entry("r", id, b"ok")).await.unwrap();
        }
        drop(spool);
        // Damage b's bytes (as a bug or a foreign writer would), leaving its index rows.
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(ENTRIES).unwrap();
                let mut b = t.get(1).unwrap().unwrap().value().to_vec();
                b.truncate(b.len() / 2);
                t.insert(1, b.as_slice()).unwrap();
            }
            tx.commit().unwrap();
        }
        let disk = DiskSpool::open(dir.path(), Limits::default()).unwrap();
        assert_eq!(disk.quarantined(), 1);
        let spool = Spool::Disk(disk);
        let c = spool.claim("r", "w", 10, T0).await.unwrap();
        let ids: Vec<_> = c.iter().map(|c| c.entry.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        // Its id is free again (the sender's retry is accepted), and its bytes are kept.
        spool.enqueue(&entry("r", "b", b"again")).await.unwrap();
        drop(c);
        drop(spool);
        let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
        let tx = db.begin_read().unwrap();
        assert_eq!(tx.open_table(QUARANTINE).unwrap().len().unwrap(), 1);
    }
}
