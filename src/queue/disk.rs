//! The embedded spool: one redb file, `<path>/spool.redb`, and an index of it in memory.
//!
//! # Who does what
//!
//! What the spool knows in memory — the [`Index`] of the entries waiting or in flight, the
//! leases, the counts — is one [`Core`] behind a mutex, shared by the callers and one
//! committer thread that alone writes the file.
//!
//! - **Enqueue, reschedule, dead letter, retry, purge** are commands sent to the committer.
//!   It takes every command waiting, plans them against the core (ids, caps, sequence
//!   numbers), writes them in one write transaction without holding the core, commits it with
//!   redb's default `Durability::Immediate` (an fsync before `commit` returns), and only then
//!   changes the core and answers each caller. So an enqueue that returned `Ok` is on disk,
//!   concurrent enqueuers share one fsync, and an entry is claimable only once it is durable.
//!   If the write fails, every command of the batch gets [`QueueError::Unavailable`] and
//!   nothing of it is kept, in the file or in memory.
//! - **Claims and acknowledgements** are done by the caller on the core, at once: a claimed
//!   entry is leased and its attempt counted, an acknowledged one leaves the index (its id is
//!   free). The rows they change — the claim's attempt count, the acknowledged entry's
//!   removal — wait in [`Index::lazy`] and are written with the next write transaction: the
//!   next enqueue's, or one of their own at most [`LAZY_WINDOW`] later, or when the spool
//!   closes ([`DiskSpool::persist`] at shutdown). A claim hands out the entry kept in memory
//!   since it was stored ([`RECENT_BYTES`] of them at most), or reads it from the file.
//!
//! So a crash (`kill -9`, power loss) only forgets the claims and acks of that last window: an
//! entry acknowledged in it is delivered again, and an attempt counted in it is counted again
//! (the repeat may carry the same `x-hookseal-attempt`). Both are within at-least-once; no
//! acknowledged enqueue is ever lost. One exception keeps crash loops bounded: a claim of an
//! entry that was already in the file when it was opened is written durably before it is
//! handed out, so an entry whose delivery keeps ending in a crash still counts its attempts to
//! `max_attempts`.
//!
//! # Tables
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"schema_version"` | [`SCHEMA_VERSION`] |
//! | `entries` | sequence number | encoded [`Entry`] (waiting or in flight), a large body's rest only |
//! | `bodies` | seq | a large body's first part (see [`body_cut`]) |
//! | `attempts` | seq | attempts begun, once claimed (a claim writes these four bytes, not the entry) |
//! | `dead` | (route, seq) | encoded [`Entry`], its body whole |
//! | `quarantine` | seq | bytes of an entry that did not decode |
//!
//! The file holds the entries and nothing derived from them. What finds them — the claim order
//! per route (next attempt time, seq), the oldest entry per route, the dedupe of undelivered
//! ids, each entry's size and attempts — is the [`Index`], rebuilt from `entries` and
//! `attempts` when the file is opened. So an enqueue writes one row (two for a large body, its
//! first part apart: [`body_cut`]), a claim at most four bytes, an acknowledgement removes
//! two rows (three), and a commit dirties at most four tables (the first layout,
//! [`SCHEMA_VERSION`] 1, kept these indexes as three more tables: about sixteen B-tree
//! operations over five tables per delivered request, BENCHMARKS.md §13). The cost is
//! memory: about [`INDEX_BYTES_PER_ENTRY`] bytes per entry waiting or in flight (dead letters
//! cost none), measured by `examples/spool_memory.rs`. A file of layout 1 is upgraded when it
//! is opened (its three index tables dropped, its entries kept); one of layout 2 (no
//! `bodies`) opens as it is.
//!
//! Leases live in memory: a restart releases them, so an entry that was in flight when the
//! process died is claimed again (its attempt count, written with the claim, says it was
//! tried, unless the crash came within [`LAZY_WINDOW`] of the claim). An entry's `attempts`
//! field is the count as of its last rewrite (retry, dead letter); the `attempts` row, when
//! there is one, is newer.
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
//! stop the spool: on open it is moved to the `quarantine` table (kept, never delivered; its
//! body's first part, if apart, stays in `bodies` under its never reused seq), its id freed,
//! with a warning naming the file and the count; every other entry is kept and delivered.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use tokio::sync::oneshot;

use super::{Claimed, DeadInfo, Entry, EntryMeta, Failure, Lease, Limits, QueueError, RouteStats};

/// The layout version this build writes, kept in the `meta` table. It also opens layout 1
/// (the same entries, with the indexes as tables) and layout 2 (no `bodies` table: every
/// body whole in its entry) and upgrades them.
pub const SCHEMA_VERSION: u64 = 3;
/// The spool file's name inside `[queue] path`.
pub const FILE_NAME: &str = "spool.redb";
/// Memory the index holds per entry waiting or in flight: the most measured, with a million
/// entries (`cargo run --release --example spool_memory`; 175–230 by how full its hash
/// tables are).
pub const INDEX_BYTES_PER_ENTRY: u64 = 230;
/// Encoded bytes of the entries kept in memory from their enqueue to their first claim, so
/// that a claim need not read them back (past it, a claim reads the file).
pub const RECENT_BYTES: u64 = 8 << 20;

/// The storage engine's page cache. redb's default is 1 GiB, and opening the spool reads
/// every entry: a full spool's file would stay in memory whole after a restart
/// (measured: +154 MiB for 200,000 entries of 256 bytes, 806 bytes per entry with the index).
/// The pages the spool works on — entries just written, claimed and acknowledged — are few.
const CACHE_BYTES: usize = 16 << 20;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("bodies");
const DEAD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead");
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
const ATTEMPTS: TableDefinition<u64, u32> = TableDefinition::new("attempts");
/// Layout 1's index tables, dropped when such a file is opened: (route, next attempt, seq),
/// (route, queued_at, seq), (route, id) → seq.
const V1_DUE: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("due");
const V1_QUEUED: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("queued");
const V1_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("ids");

/// The longest a claim or acknowledgement stays unwritten (see the module docs): a crash
/// forgets at most this much of them.
pub const LAZY_WINDOW: Duration = Duration::from_millis(250);

/// The embedded spool. Cheap to clone: clones share the file, the core and the committer.
#[derive(Clone)]
pub struct DiskSpool {
    inner: Arc<Shared>,
}

struct Shared {
    db: Arc<Database>,
    file: PathBuf,
    core: Arc<Mutex<Core>>,
    /// `None` once closing.
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    quarantined: u64,
}

impl Drop for Shared {
    /// Stops the committer (it finishes the batch it holds and writes what waits) and waits
    /// for it, so the file is closed when the last clone is dropped and can be opened again.
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

/// What the spool knows in memory (see the module docs).
struct Core {
    index: Index,
    next_seq: u64,
    /// Entries held, dead letters included.
    entries: u64,
    /// Encoded bytes held, dead letters included.
    bytes: u64,
    /// seq → when it was claimed (unix ms)
    leases: HashMap<u64, u64>,
    /// Entries below this sequence number were in the file when it was opened: their claims
    /// are written durably before they are handed out, so that an entry whose attempts end
    /// in a crash (again and again) still counts them toward `max_attempts`.
    durable_below: u64,
    /// seq → the entry as stored (and the headers as the proxy held them), from its enqueue
    /// to its first claim.
    recent: HashMap<u64, Recent>,
    /// Encoded bytes of `recent`.
    recent_bytes: u64,
}

/// An entry kept from its enqueue to its first claim, and its headers as the proxy held them.
type Recent = (Entry, Option<http::HeaderMap>);

impl Core {
    fn forget_recent(&mut self, seq: u64) -> Option<Recent> {
        let e = self.recent.remove(&seq)?;
        let len = self.index.metas.get(&seq).map_or(0, |m| m.len);
        self.recent_bytes = self.recent_bytes.saturating_sub(len);
        Some(e)
    }

    /// Leases entry `seq` and counts one more attempt on it (the `attempts` row waits in
    /// `lazy`). Its entry, if it is still in memory; else `None` (read it from the file).
    fn lease(&mut self, seq: u64, now: u64) -> (u32, Option<Recent>) {
        let entry = self.forget_recent(seq);
        let attempts = self.index.metas.get(&seq).map_or(1, |m| m.attempts + 1);
        self.index.set_attempts(seq, attempts);
        self.index.lazy.insert(seq, Lazy::Attempts(attempts));
        self.leases.insert(seq, now);
        (attempts, entry)
    }
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
    /// Its `attempts` row is in the file (an acknowledgement must remove it).
    row: bool,
    /// Its body's first part is a `bodies` row (removed with the entry).
    split: bool,
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
    /// Acknowledged: the entry is removed, and its `attempts` row if it has one (a claim
    /// acknowledged within the window never wrote one).
    Gone { row: bool, split: bool },
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
    /// docs).
    lazy: HashMap<u64, Lazy>,
    /// Every id hashes alike: the tests' way to make every id meet another.
    #[cfg(test)]
    collide: bool,
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

    /// Moves entry `seq` to its next attempt time (rewritten: `len` long, no attempts row).
    fn reschedule(&mut self, seq: u64, next_at: u64, len: u64) {
        if let Some(mut m) = self.take(seq) {
            m.next_at = next_at;
            m.len = len;
            m.row = false;
            self.put(seq, m);
        }
    }

    /// Sets entry `seq`'s attempt count (not part of any ordering: changed in place).
    fn set_attempts(&mut self, seq: u64, attempts: u32) {
        if let Some(m) = self.metas.get_mut(&seq) {
            m.attempts = attempts;
        }
    }

    /// Forgets the row changes of `written` that are still what they were when written; an
    /// entry whose attempts row was written has one now (if it was acknowledged meanwhile,
    /// its removal takes the row too).
    fn written(&mut self, written: &[(u64, Lazy)]) {
        for (seq, op) in written {
            if self.lazy.get(seq) == Some(op) {
                self.lazy.remove(seq);
            }
            if let Lazy::Attempts(_) = op {
                if let Some(m) = self.metas.get_mut(seq) {
                    m.row = true;
                } else if let Some(Lazy::Gone { row, .. }) = self.lazy.get_mut(seq) {
                    *row = true;
                }
            }
        }
    }

    fn stats(&self, route: &str, now: u64) -> RouteStats {
        let Some(r) = self.route_ids.get(route).map(|&r| &self.routes[r as usize]) else {
            return RouteStats::default();
        };
        RouteStats {
            depth: r.due.len() as u64,
            dead: r.dead,
            oldest_ms: r
                .queued
                .first()
                .map_or(0, |(at, _)| now.saturating_sub(*at)),
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
                row: false,
                split: false,
            },
        );
    }
    Box::new(ix)
}

type Reply<T> = oneshot::Sender<Result<T, QueueError>>;

/// An entry to store: the entry, its row (made on the caller's thread) and its headers as
/// the proxy held them.
struct NewEntry {
    entry: Entry,
    row: Row,
    head: Option<http::HeaderMap>,
}

/// How an entry is stored: its encoding, less the first `cut` bytes of its body, which go
/// to a `bodies` row of their own when `cut > 0`.
struct Row {
    bytes: Vec<u8>,
    cut: usize,
}

impl Row {
    fn of(e: &Entry) -> Row {
        let cut = body_cut(e.body.len(), e.encoded_len());
        Row {
            bytes: e.encode_with_body(&e.body[cut..]),
            cut,
        }
    }

    /// The entry's whole encoded length (what the caps count).
    fn len(&self) -> u64 {
        (self.bytes.len() + self.cut) as u64
    }
}

/// What redb adds to a value alone in a leaf page (measured 16 bytes with redb 2.6 and a
/// `u64` key; a margin above it).
const PAGE_OVERHEAD: usize = 64;
/// redb's page size: smaller rows share leaf pages.
const PAGE: usize = 4096;

/// How many bytes of a body to store apart, in a `bodies` row, so that the file grows by
/// less: 0 to keep the body whole in its entry.
///
/// redb stores a value that does not share a leaf in a page of a power-of-two size, so an
/// entry of a 64 KiB body and its head (`encoded` bytes in all) took a 128 KiB page, every
/// byte of it zeroed, checksummed, written and synced. Cut from the body the largest part
/// that fills a page of its own, and the entry with the rest of the body is small (or in a
/// page half the size): 64 KiB + a few hundred bytes instead of 128 KiB for a 64 KiB body
/// (BENCHMARKS.md §22). A cut is made only when it saves more than a page (the second row
/// costs a B-tree insert).
fn body_cut(body: usize, encoded: usize) -> usize {
    fn stored(n: usize) -> usize {
        if n + PAGE_OVERHEAD <= PAGE {
            n
        } else {
            (n + PAGE_OVERHEAD).next_power_of_two()
        }
    }
    let cost = |cut: usize| match cut {
        0 => stored(encoded),
        cut => stored(cut) + stored(encoded - cut) + PAGE,
    };
    // The largest page the body can fill (less what redb adds), or the whole body apart.
    let fill = match body + PAGE_OVERHEAD {
        n if n > 2 * PAGE => (1 << (usize::BITS - 1 - n.leading_zeros())) - PAGE_OVERHEAD,
        _ => 0,
    };
    [fill, body].into_iter().fold(
        0,
        |best, cut| if cost(cut) < cost(best) { cut } else { best },
    )
}

/// The committer's commands: every one writes the file.
enum Command {
    Enqueue(Box<NewEntry>, Reply<()>),
    Reschedule(u64, u64, Failure, Reply<()>),
    Dead(u64, Failure, Reply<()>),
    Retry {
        route: String,
        id: Option<String>,
        now: u64,
        reply: Reply<u64>,
    },
    Purge(String, Reply<u64>),
    /// Writes what waits in `lazy`, durably.
    Persist(Reply<()>),
    /// Something waits in `lazy`: write it within [`LAZY_WINDOW`]. No answer.
    Wake,
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
        let (db, core, quarantined) = opened.map_err(bad)?;
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
        let core = Arc::new(Mutex::new(core));
        let (tx, rx) = mpsc::channel();
        let committer = Committer {
            db: db.clone(),
            core: core.clone(),
            limits,
        };
        let thread = std::thread::Builder::new()
            .name("hookseal-spool".into())
            .spawn(move || committer.run(&rx))
            .map_err(|e| bad(format!("cannot start the spool thread: {e}")))?;
        Ok(DiskSpool {
            inner: Arc::new(Shared {
                db,
                file,
                core,
                commands: Mutex::new(Some(tx)),
                committer: Mutex::new(Some(thread)),
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

    fn core(&self) -> MutexGuard<'_, Core> {
        lock(&self.inner.core)
    }

    fn send(&self, c: Command) -> bool {
        lock(&self.inner.commands)
            .as_ref()
            .is_some_and(|tx| tx.send(c).is_ok())
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, QueueError> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)) {
            return Err(QueueError::Unavailable("spool thread stopped".into()));
        }
        rx.await
            .unwrap_or_else(|_| Err(QueueError::Unavailable("spool thread stopped".into())))
    }

    pub(super) async fn enqueue(
        &self,
        entry: Entry,
        head: Option<http::HeaderMap>,
    ) -> Result<(), QueueError> {
        let row = Row::of(&entry);
        let new = Box::new(NewEntry { entry, row, head });
        self.call(|r| Command::Enqueue(new, r)).await
    }

    /// Writes every claim and acknowledgement so far, durably (they wait for the next write
    /// otherwise; this is for shutdown).
    pub(super) async fn persist(&self) -> Result<(), QueueError> {
        self.call(Command::Persist).await
    }

    pub(super) async fn claim(
        &self,
        route: &str,
        max: usize,
        now: u64,
    ) -> Result<Vec<Claimed>, QueueError> {
        let leased = {
            let mut core = self.core();
            let Some(&r) = core.index.route_ids.get(route) else {
                return Ok(Vec::new());
            };
            let seqs: Vec<u64> = core.index.routes[r as usize]
                .due
                .range(..=(now, u64::MAX))
                .map(|(_, seq)| *seq)
                .filter(|seq| !core.leases.contains_key(seq))
                .take(max)
                .collect();
            self.lease_all(&mut core, seqs, now)
        };
        self.hand_out(leased).await
    }

    pub(super) async fn reclaim(
        &self,
        route: &str,
        claim_after_ms: u64,
        max: usize,
    ) -> Result<Vec<Claimed>, QueueError> {
        let now = super::policy::unix_ms(std::time::SystemTime::now());
        let older_than = now.saturating_sub(claim_after_ms);
        let leased = {
            let mut core = self.core();
            let Some(&r) = core.index.route_ids.get(route) else {
                return Ok(Vec::new());
            };
            let mut stale: Vec<u64> = core
                .leases
                .iter()
                .filter(|(seq, &at)| {
                    at <= older_than && core.index.metas.get(seq).is_some_and(|m| m.route == r)
                })
                .map(|(&seq, _)| seq)
                .collect();
            stale.sort_unstable();
            stale.truncate(max);
            self.lease_all(&mut core, stale, now)
        };
        self.hand_out(leased).await
    }

    /// Leases `seqs` on the locked core: (seq, attempts, the entry if it is in memory).
    fn lease_all(&self, core: &mut Core, seqs: Vec<u64>, now: u64) -> Leased {
        let was_idle = core.index.lazy.is_empty();
        let mut durable = false;
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let (attempts, entry) = core.lease(seq, now);
            durable |= seq < core.durable_below;
            out.push((seq, attempts, entry));
        }
        if was_idle && !out.is_empty() {
            self.send(Command::Wake);
        }
        Leased { out, durable }
    }

    /// The claimed entries: from memory, or read from the file; written durably first when
    /// one of them is from before the spool was opened.
    async fn hand_out(&self, leased: Leased) -> Result<Vec<Claimed>, QueueError> {
        let Leased { out, durable } = leased;
        let missing: Vec<u64> = out
            .iter()
            .filter(|(_, _, e)| e.is_none())
            .map(|(seq, _, _)| *seq)
            .collect();
        let mut read = HashMap::new();
        if !missing.is_empty() {
            let db = self.inner.db.clone();
            let got = tokio::task::spawn_blocking(move || read_entries(&db, &missing)).await;
            match got {
                Ok(Ok(m)) => read = m,
                Ok(Err(e)) => return Err(self.release(&out, format!("spool read: {e}"))),
                Err(_) => return Err(self.release(&out, "spool read failed".into())),
            }
        }
        if durable {
            if let Err(e) = self.persist().await {
                return Err(self.release(&out, e.to_string()));
            }
        }
        let mut claimed = Vec::with_capacity(out.len());
        let mut unreadable = Vec::new();
        for (seq, attempts, kept) in out {
            match kept.or_else(|| read.remove(&seq).map(|e| (e, None))) {
                Some((mut entry, head)) => {
                    entry.attempts = attempts;
                    claimed.push(Claimed {
                        entry,
                        lease: Lease::Disk(seq),
                        head,
                    });
                }
                None => unreadable.push(seq),
            }
        }
        if !unreadable.is_empty() {
            // Gone from the file (or no longer decodes): not handed out, not leased.
            let mut core = self.core();
            for seq in unreadable {
                core.leases.remove(&seq);
            }
        }
        Ok(claimed)
    }

    /// Gives up the leases of a claim that could not be handed out.
    fn release(&self, out: &[(u64, u32, Option<Recent>)], why: String) -> QueueError {
        let mut core = self.core();
        for (seq, _, _) in out {
            core.leases.remove(seq);
        }
        QueueError::Unavailable(why)
    }

    pub(super) async fn ack(&self, c: &Claimed) -> Result<(), QueueError> {
        let seq = seq(c)?;
        let wake = {
            let mut core = self.core();
            core.leases.remove(&seq);
            core.forget_recent(seq);
            match core.index.take(seq) {
                // Already finished (e.g. acknowledged twice): nothing to do.
                None => false,
                Some(m) => {
                    core.entries = core.entries.saturating_sub(1);
                    core.bytes = core.bytes.saturating_sub(m.len);
                    let was_idle = core.index.lazy.is_empty();
                    let gone = Lazy::Gone {
                        row: m.row,
                        split: m.split,
                    };
                    core.index.lazy.insert(seq, gone);
                    was_idle
                }
            }
        };
        if wake {
            self.send(Command::Wake);
        }
        Ok(())
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

    /// The route's numbers (from memory: no read of the file).
    pub(super) async fn stats(&self, route: &str, now: u64) -> Result<RouteStats, QueueError> {
        Ok(self.core().index.stats(route, now))
    }

    pub(super) async fn dead(
        &self,
        route: &str,
        limit: usize,
    ) -> Result<Vec<DeadInfo>, QueueError> {
        let route = route.to_owned();
        let db = self.inner.db.clone();
        let read = move || -> Result<Vec<DeadInfo>, DbError> {
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
        };
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|_| QueueError::Unavailable("spool read failed".into()))?
            .map_err(|e| QueueError::Unavailable(format!("spool read: {e}")))
    }
}

/// What a claim leased: (seq, attempts, the entry if it was in memory), and whether it must
/// be written durably before it is handed out.
struct Leased {
    out: Vec<(u64, u32, Option<Recent>)>,
    durable: bool,
}

/// Reads and decodes entries `seqs` (those that are there and decode).
fn read_entries(db: &Database, seqs: &[u64]) -> Result<HashMap<u64, Entry>, DbError> {
    let tx = db.begin_read()?;
    let (entries, bodies) = (tx.open_table(ENTRIES)?, tx.open_table(BODIES)?);
    let mut out = HashMap::with_capacity(seqs.len());
    for &seq in seqs {
        if let Some((mut e, _)) = get_row(&entries, seq)? {
            join_body(&bodies, seq, &mut e)?;
            out.insert(seq, e);
        }
    }
    Ok(out)
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
/// entries and builds the core. The error is the detail for [`QueueError::Corrupt`].
fn open_file(file: &Path, mut index: Index) -> Result<(Database, Core, u64), String> {
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
    let (mut next_seq, mut entries_n, mut bytes) = (0u64, 0u64, 0u64);
    {
        let mut meta = tx.open_table(META).map_err(|e| msg(e.into()))?;
        let mut entries = tx.open_table(ENTRIES).map_err(|e| msg(e.into()))?;
        let found = meta
            .get("schema_version")
            .map_err(|e| msg(e.into()))?
            .map(|v| v.value());
        match found {
            Some(SCHEMA_VERSION) => {}
            Some(2) => {
                // Layout 2: the same tables, no body apart yet.
                meta.insert("schema_version", SCHEMA_VERSION)
                    .map_err(|e| msg(e.into()))?;
            }
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
                    "spool schema version {v}, this hookseal reads versions 1 to {SCHEMA_VERSION}"
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
            next_seq = next_seq.max(seq + 1);
            match Entry::decode(v.value()) {
                Ok(e) => {
                    let len = v.value().len() as u64;
                    entries_n += 1;
                    bytes += len;
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
                            row: false,
                            split: false,
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
            next_seq = next_seq.max(last.0.value() + 1);
        }
        // The newer attempt counts; rows of entries that are gone (quarantined) are dropped.
        let mut attempts = tx.open_table(ATTEMPTS).map_err(|e| msg(e.into()))?;
        let mut orphans = Vec::new();
        for row in attempts.iter().map_err(|e| msg(e.into()))? {
            let (k, v) = row.map_err(|e| msg(e.into()))?;
            match index.metas.get_mut(&k.value()) {
                Some(m) => {
                    m.attempts = m.attempts.max(v.value());
                    m.row = true;
                }
                None => orphans.push(k.value()),
            }
        }
        for seq in orphans {
            attempts.remove(seq).map_err(|e| msg(e.into()))?;
        }
        // The first parts of large bodies. One whose entry did not decode (quarantined)
        // stays where it is, under a sequence number never used again.
        let bodies = tx.open_table(BODIES).map_err(|e| msg(e.into()))?;
        for row in bodies.iter().map_err(|e| msg(e.into()))? {
            let (k, v) = row.map_err(|e| msg(e.into()))?;
            next_seq = next_seq.max(k.value() + 1);
            if let Some(m) = index.metas.get_mut(&k.value()) {
                let len = v.value().len() as u64;
                m.len += len;
                m.split = true;
                bytes += len;
            }
        }
        let dead = tx.open_table(DEAD).map_err(|e| msg(e.into()))?;
        for row in dead.iter().map_err(|e| msg(e.into()))? {
            let (k, v) = row.map_err(|e| msg(e.into()))?;
            let (route, seq) = k.value();
            next_seq = next_seq.max(seq + 1);
            entries_n += 1;
            bytes += v.value().len() as u64;
            let route = index.route(route);
            index.routes[route as usize].dead += 1;
        }
    }
    tx.commit().map_err(|e| msg(e.into()))?;
    let core = Core {
        index,
        next_seq,
        entries: entries_n,
        bytes,
        leases: HashMap::new(),
        durable_below: next_seq,
        recent: HashMap::new(),
        recent_bytes: 0,
    };
    Ok((db, core, quarantined))
}

struct Committer {
    db: Arc<Database>,
    core: Arc<Mutex<Core>>,
    limits: Limits,
}

impl Committer {
    fn run(self, rx: &mpsc::Receiver<Command>) {
        // When what waits in `lazy` must be written at the latest.
        let mut deadline: Option<Instant> = None;
        loop {
            let got = match deadline {
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
            };
            let first = match got {
                Ok(c) => c,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.write(Vec::new());
                    deadline = self.next_deadline();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch: Vec<Command> = std::iter::once(first).chain(rx.try_iter()).collect();
            batch.retain(|c| !matches!(c, Command::Wake));
            if batch.is_empty() {
                // Only wake-ups: the window starts (or runs on).
                deadline.get_or_insert_with(|| Instant::now() + LAZY_WINDOW);
                continue;
            }
            self.write(batch);
            deadline = self.next_deadline();
        }
        // Closing: the claims and acknowledgements still waiting are written.
        self.write(Vec::new());
    }

    /// A write within [`LAZY_WINDOW`] if something still waits in `lazy`.
    fn next_deadline(&self) -> Option<Instant> {
        (!lock(&self.core).index.lazy.is_empty()).then(|| Instant::now() + LAZY_WINDOW)
    }

    /// Writes `batch` and what waits in `lazy` in one durable transaction (see the module
    /// docs): planned on the core, written without it, applied to it only once committed.
    fn write(&self, batch: Vec<Command>) {
        let mut plan = Plan::default();
        let lazy: Vec<(u64, Lazy)> = {
            let mut core = lock(&self.core);
            for c in batch {
                plan.add(&mut core, &self.limits, c);
            }
            let mut lazy: Vec<(u64, Lazy)> =
                core.index.lazy.iter().map(|(s, l)| (*s, *l)).collect();
            lazy.sort_unstable_by_key(|(s, _)| *s);
            lazy
        };
        if plan.steps.is_empty() && lazy.is_empty() {
            plan.answers.into_iter().for_each(Answer::send);
            return;
        }
        match self.transaction(&mut plan, &lazy) {
            Ok(done) => {
                let mut core = lock(&self.core);
                core.index.written(&lazy);
                for d in done {
                    d.apply(&mut core);
                }
                drop(core);
                plan.answers.into_iter().for_each(Answer::send);
            }
            Err(why) => {
                if plan.answers.is_empty() {
                    tracing::warn!(error = %why, "spool: cannot write acknowledged deliveries");
                }
                plan.answers.into_iter().for_each(|a| a.fail(&why));
            }
        }
    }

    /// Writes the plan's steps and the waiting row changes, and commits.
    fn transaction(&self, plan: &mut Plan, lazy: &[(u64, Lazy)]) -> Result<Vec<Done>, String> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| format!("spool write: {e}"))?;
        let written = open_tables(&tx).and_then(|mut t| {
            write_lazy(&mut t, lazy)?;
            let mut done = Vec::with_capacity(plan.steps.len());
            for step in std::mem::take(&mut plan.steps) {
                step.write(&mut t, &self.core, plan, &mut done)?;
            }
            Ok(done)
        });
        match written {
            Ok(done) => {
                tx.commit().map_err(|e| format!("spool commit: {e}"))?;
                Ok(done)
            }
            Err(e) => {
                let _ = tx.abort();
                Err(format!("spool write: {e}"))
            }
        }
    }
}

/// A command's answer, held until the batch's commit decides whether it stands.
enum Answer {
    Unit(Reply<()>, Result<(), QueueError>),
    Count(Reply<u64>, Result<u64, QueueError>),
}

impl Answer {
    fn send(self) {
        match self {
            Answer::Unit(r, v) => drop(r.send(v)),
            Answer::Count(r, v) => drop(r.send(v)),
        }
    }

    fn fail(self, why: &str) {
        match self {
            Answer::Unit(r, _) => drop(r.send(failed(why))),
            Answer::Count(r, _) => drop(r.send(failed(why))),
        }
    }

    /// Sets the result the answer will carry if the batch commits.
    fn set_count(&mut self, n: u64) {
        if let Answer::Count(_, v) = self {
            *v = Ok(n);
        }
    }
}

/// A batch planned on the core: the steps to write and one answer per command.
#[derive(Default)]
struct Plan {
    steps: Vec<Step>,
    answers: Vec<Answer>,
    /// Entries and bytes the batch's enqueues add so far (for the caps).
    add_entries: u64,
    add_bytes: u64,
    /// (id hash, seq) of the batch's enqueues, for the dedupe of a later one.
    pending: Vec<(u64, u64)>,
}

/// One command's write, with what it needs from the core.
enum Step {
    Enqueue {
        seq: u64,
        meta: Meta,
        new: Box<NewEntry>,
        /// Entries that may hold the same (route, id): each is read to confirm.
        candidates: Vec<u64>,
        answer: usize,
    },
    Reschedule {
        seq: u64,
        meta: Meta,
        at: u64,
        failure: Failure,
    },
    Dead {
        seq: u64,
        meta: Meta,
        route: String,
        failure: Failure,
    },
    Retry {
        route: String,
        id: Option<String>,
        now: u64,
        answer: usize,
    },
    Purge {
        route: String,
        answer: usize,
    },
}

/// What a step changed in the file, applied to the core once the commit succeeded.
// The inserts carry their entry (moved into `Core::recent`): boxing it would cost an
// allocation per enqueue for a list that lives one batch.
#[allow(clippy::large_enum_variant)]
enum Done {
    /// A new entry (or a dead letter back in the queue, `from_dead` with its old length).
    Insert {
        seq: u64,
        meta: Meta,
        entry: Option<Recent>,
        from_dead: Option<u64>,
    },
    Reschedule {
        seq: u64,
        at: u64,
        old_len: u64,
        len: u64,
    },
    Dead {
        seq: u64,
        old_len: u64,
        len: u64,
    },
    Purged {
        route: u32,
        n: u64,
        bytes: u64,
    },
}

impl Plan {
    /// Plans command `c` on the core; what can be answered now (full, unknown entry) is.
    fn add(&mut self, core: &mut Core, limits: &Limits, c: Command) {
        match c {
            Command::Enqueue(new, reply) => {
                let (entry, len) = (&new.entry, new.row.len());
                if core.entries + self.add_entries + 1 > limits.max_entries
                    || core.bytes + self.add_bytes + len > limits.max_bytes
                {
                    return drop(reply.send(Err(QueueError::Full)));
                }
                let route = core.index.route(&entry.route);
                let id_hash = core.index.id_hash(route, &entry.id);
                let mut candidates = core.index.with_hash(id_hash);
                candidates.extend(
                    self.pending
                        .iter()
                        .filter(|(h, _)| *h == id_hash)
                        .map(|(_, s)| *s),
                );
                let seq = core.next_seq;
                core.next_seq += 1;
                self.add_entries += 1;
                self.add_bytes += len;
                self.pending.push((id_hash, seq));
                let meta = Meta {
                    route,
                    attempts: entry.attempts,
                    len,
                    queued_at: entry.queued_at,
                    next_at: entry.next_attempt_at,
                    id_hash,
                    row: false,
                    split: new.row.cut > 0,
                };
                self.answers.push(Answer::Unit(reply, Ok(())));
                self.steps.push(Step::Enqueue {
                    seq,
                    meta,
                    new,
                    candidates,
                    answer: self.answers.len() - 1,
                });
            }
            Command::Reschedule(seq, at, failure, reply) => {
                self.answers.push(Answer::Unit(reply, Ok(())));
                // Unknown (already finished): nothing to do.
                if let Some(&meta) = core.index.metas.get(&seq) {
                    self.steps.push(Step::Reschedule {
                        seq,
                        meta,
                        at,
                        failure,
                    });
                }
            }
            Command::Dead(seq, failure, reply) => {
                self.answers.push(Answer::Unit(reply, Ok(())));
                if let Some(&meta) = core.index.metas.get(&seq) {
                    let route = core.index.routes[meta.route as usize].name.clone();
                    self.steps.push(Step::Dead {
                        seq,
                        meta,
                        route,
                        failure,
                    });
                }
            }
            Command::Retry {
                route,
                id,
                now,
                reply,
            } => {
                self.answers.push(Answer::Count(reply, Ok(0)));
                self.steps.push(Step::Retry {
                    route,
                    id,
                    now,
                    answer: self.answers.len() - 1,
                });
            }
            Command::Purge(route, reply) => {
                self.answers.push(Answer::Count(reply, Ok(0)));
                self.steps.push(Step::Purge {
                    route,
                    answer: self.answers.len() - 1,
                });
            }
            Command::Persist(reply) => self.answers.push(Answer::Unit(reply, Ok(()))),
            Command::Wake => {}
        }
    }
}

impl Step {
    /// Writes the step in the transaction's tables; what it changed goes to `done`.
    fn write(
        self,
        t: &mut Tables<'_>,
        core: &Mutex<Core>,
        plan: &mut Plan,
        done: &mut Vec<Done>,
    ) -> Result<(), DbError> {
        match self {
            Step::Enqueue {
                seq,
                meta,
                new,
                candidates,
                answer,
            } => {
                if same_id(t, &candidates, &new.entry.route, &new.entry.id)? {
                    if let Answer::Unit(_, v) = &mut plan.answers[answer] {
                        *v = Err(QueueError::AlreadyQueued);
                    }
                    return Ok(());
                }
                t.put(seq, &new.entry, &new.row)?;
                let NewEntry { entry, head, .. } = *new;
                done.push(Done::Insert {
                    seq,
                    meta,
                    entry: Some((entry, head)),
                    from_dead: None,
                });
            }
            Step::Reschedule {
                seq,
                meta,
                at,
                failure,
            } => {
                let Some((mut e, old_row)) = failed_attempt(t, seq, &meta, failure)? else {
                    return Ok(());
                };
                e.next_attempt_at = at;
                // The entry's row only: the body's first part, if apart, is unchanged.
                let bytes = e.encode();
                t.entries.insert(seq, bytes.as_slice())?;
                // The rewrite carries the attempts.
                t.attempts.remove(seq)?;
                done.push(Done::Reschedule {
                    seq,
                    at,
                    old_len: meta.len,
                    len: meta.len.saturating_sub(old_row as u64) + bytes.len() as u64,
                });
            }
            Step::Dead {
                seq,
                meta,
                route,
                failure,
            } => {
                let Some((mut e, _)) = failed_attempt(t, seq, &meta, failure)? else {
                    return Ok(());
                };
                // A dead letter is stored whole (they are few, and read back whole).
                if meta.split {
                    join_body(&t.bodies, seq, &mut e)?;
                }
                let bytes = e.encode();
                t.dead.insert((route.as_str(), seq), bytes.as_slice())?;
                t.remove(seq, meta.split)?;
                t.attempts.remove(seq)?;
                done.push(Done::Dead {
                    seq,
                    old_len: meta.len,
                    len: bytes.len() as u64,
                });
            }
            Step::Retry {
                route,
                id,
                now,
                answer,
            } => {
                let mut found = Vec::new();
                for row in t
                    .dead
                    .range((route.as_str(), 0)..=(route.as_str(), u64::MAX))?
                {
                    let (k, v) = row?;
                    let Ok(e) = Entry::decode(v.value()) else {
                        continue;
                    };
                    if id.as_deref().is_none_or(|id| id == e.id) {
                        found.push((k.value().1, e, v.value().len() as u64));
                    }
                }
                let mut n = 0;
                for (seq, mut e, old_len) in found {
                    let (r, id_hash, mut candidates) = {
                        let mut core = lock(core);
                        let r = core.index.route(&route);
                        let h = core.index.id_hash(r, &e.id);
                        (r, h, core.index.with_hash(h))
                    };
                    candidates.extend(
                        plan.pending
                            .iter()
                            .filter(|(h, _)| *h == id_hash)
                            .map(|(_, s)| *s),
                    );
                    if same_id(t, &candidates, &route, &e.id)? {
                        continue; // queued again meanwhile: the dead letter stays
                    }
                    e.next_attempt_at = now;
                    let row = Row::of(&e);
                    t.dead.remove((route.as_str(), seq))?;
                    t.put(seq, &e, &row)?;
                    plan.pending.push((id_hash, seq));
                    done.push(Done::Insert {
                        seq,
                        meta: Meta {
                            route: r,
                            attempts: e.attempts,
                            len: row.len(),
                            queued_at: e.queued_at,
                            next_at: now,
                            id_hash,
                            row: false,
                            split: row.cut > 0,
                        },
                        entry: None,
                        from_dead: Some(old_len),
                    });
                    n += 1;
                }
                plan.answers[answer].set_count(n);
            }
            Step::Purge { route, answer } => {
                let rows: Vec<(u64, u64)> = t
                    .dead
                    .range((route.as_str(), 0)..=(route.as_str(), u64::MAX))?
                    .map(|r| r.map(|(k, v)| (k.value().1, v.value().len() as u64)))
                    .collect::<Result<_, _>>()?;
                for (seq, _) in &rows {
                    t.dead.remove((route.as_str(), *seq))?;
                }
                let n = rows.len() as u64;
                if n > 0 {
                    let r = lock(core).index.route(&route);
                    done.push(Done::Purged {
                        route: r,
                        n,
                        bytes: rows.iter().map(|(_, l)| l).sum(),
                    });
                }
                plan.answers[answer].set_count(n);
            }
        }
        Ok(())
    }
}

impl Done {
    fn apply(self, core: &mut Core) {
        match self {
            Done::Insert {
                seq,
                meta,
                entry,
                from_dead,
            } => {
                match from_dead {
                    None => {
                        core.entries += 1;
                        core.bytes += meta.len;
                    }
                    Some(old_len) => {
                        core.bytes = core.bytes.saturating_sub(old_len) + meta.len;
                        let r = &mut core.index.routes[meta.route as usize];
                        r.dead = r.dead.saturating_sub(1);
                    }
                }
                if let Some(e) = entry {
                    if core.recent_bytes + meta.len <= RECENT_BYTES {
                        core.recent_bytes += meta.len;
                        core.recent.insert(seq, e);
                    }
                }
                core.index.put(seq, meta);
            }
            Done::Reschedule {
                seq,
                at,
                old_len,
                len,
            } => {
                core.leases.remove(&seq);
                core.forget_recent(seq);
                if let Some(Lazy::Attempts(_)) = core.index.lazy.get(&seq) {
                    core.index.lazy.remove(&seq);
                }
                core.bytes = core.bytes.saturating_sub(old_len) + len;
                // The rewritten entry carries its attempts; its row was removed.
                core.index.reschedule(seq, at, len);
            }
            Done::Dead { seq, old_len, len } => {
                core.leases.remove(&seq);
                core.forget_recent(seq);
                core.index.lazy.remove(&seq);
                core.bytes = core.bytes.saturating_sub(old_len) + len;
                if let Some(m) = core.index.take(seq) {
                    core.index.routes[m.route as usize].dead += 1;
                }
            }
            Done::Purged { route, n, bytes } => {
                let r = &mut core.index.routes[route as usize];
                r.dead = r.dead.saturating_sub(n);
                core.entries = core.entries.saturating_sub(n);
                core.bytes = core.bytes.saturating_sub(bytes);
            }
        }
    }
}

/// Whether one of `candidates` is the stored entry of `route` with `id`.
fn same_id(t: &Tables<'_>, candidates: &[u64], route: &str, id: &str) -> Result<bool, DbError> {
    for &seq in candidates {
        if let Some(v) = t.entries.get(seq)? {
            if EntryMeta::read(v.value()).is_ok_and(|m| m.id == id && m.route == route) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Entry `seq`'s row as stored (if it is there and decodes) with its attempts and the failure
/// of its last one, and the row's length: what a reschedule or a dead letter writes. A split
/// entry's body is its rest only ([`join_body`] puts the first part back).
fn failed_attempt(
    t: &Tables<'_>,
    seq: u64,
    meta: &Meta,
    failure: Failure,
) -> Result<Option<(Entry, usize)>, DbError> {
    let Some((mut e, len)) = get_row(&t.entries, seq)? else {
        return Ok(None);
    };
    e.attempts = meta.attempts;
    e.last_status = failure.status;
    e.last_error = failure.error;
    Ok(Some((e, len)))
}

/// Entry `seq`'s row (if it is there and decodes), and its length: the whole entry, or, when
/// its body's first part is apart, the entry with the rest of its body.
fn get_row(
    entries: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
) -> Result<Option<(Entry, usize)>, DbError> {
    let Some(row) = entries.get(seq)? else {
        return Ok(None);
    };
    let row = row.value();
    Ok(Entry::decode(row).ok().map(|e| (e, row.len())))
}

/// Puts the first part of entry `seq`'s body back in front of `e.body`, if it is apart.
fn join_body(
    bodies: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
    e: &mut Entry,
) -> Result<(), DbError> {
    if let Some(first) = bodies.get(seq)? {
        let first = first.value();
        let mut body = Vec::with_capacity(first.len() + e.body.len());
        body.extend_from_slice(first);
        body.extend_from_slice(&e.body);
        e.body = body.into();
    }
    Ok(())
}

/// The tables a batch writes, opened once per transaction (opening them per command cost
/// more than the writes themselves: BENCHMARKS.md "Spool store choice").
struct Tables<'t> {
    entries: redb::Table<'t, u64, &'static [u8]>,
    bodies: redb::Table<'t, u64, &'static [u8]>,
    dead: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    attempts: redb::Table<'t, u64, u32>,
}

impl Tables<'_> {
    /// Stores entry `seq` as `row` says: its row, and its body's first part apart.
    fn put(&mut self, seq: u64, e: &Entry, row: &Row) -> Result<(), DbError> {
        if row.cut > 0 {
            self.bodies.insert(seq, &e.body[..row.cut])?;
        }
        self.entries.insert(seq, row.bytes.as_slice())?;
        Ok(())
    }

    /// Removes entry `seq`, and its body's first part if it was `split`.
    fn remove(&mut self, seq: u64, split: bool) -> Result<(), DbError> {
        self.entries.remove(seq)?;
        if split {
            self.bodies.remove(seq)?;
        }
        Ok(())
    }
}

fn open_tables(tx: &WriteTransaction) -> Result<Tables<'_>, DbError> {
    Ok(Tables {
        entries: tx.open_table(ENTRIES)?,
        bodies: tx.open_table(BODIES)?,
        dead: tx.open_table(DEAD)?,
        attempts: tx.open_table(ATTEMPTS)?,
    })
}

/// Writes the row changes of the claims and acknowledgements that wait, in key order.
fn write_lazy(t: &mut Tables<'_>, lazy: &[(u64, Lazy)]) -> Result<(), DbError> {
    for &(seq, op) in lazy {
        match op {
            Lazy::Attempts(n) => drop(t.attempts.insert(seq, n)?),
            Lazy::Gone { row, split } => {
                t.remove(seq, split)?;
                if row {
                    t.attempts.remove(seq)?;
                }
            }
        }
    }
    Ok(())
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
            spool.enqueue(entry("c", id, b"1")).await.unwrap();
        }
        assert!(matches!(
            spool.enqueue(entry("c", "y", b"2")).await,
            Err(QueueError::AlreadyQueued)
        ));
        let c = spool.claim("c", "w", 10, T0).await.unwrap();
        spool.ack(&c[1]).await.unwrap();
        spool.enqueue(entry("c", "y", b"3")).await.unwrap();
        assert!(matches!(
            spool.enqueue(entry("c", "x", b"4")).await,
            Err(QueueError::AlreadyQueued)
        ));
    }

    /// The index's views (claim order, oldest, ids) follow every put, take and reschedule,
    /// hash collisions included: an id hash owned by an entry that leaves passes to one that
    /// collided with it.
    #[test]
    fn index_views_follow_every_change() {
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
            row: false,
            split: false,
        };
        for seq in 0..6 {
            ix.put(
                seq,
                meta(if seq % 2 == 0 { r } else { q }, 100 + seq, seq % 3),
            );
        }
        let sorted = |mut v: Vec<u64>| {
            v.sort_unstable();
            v
        };
        assert_eq!(sorted(ix.with_hash(0)), [0, 3]);
        assert_eq!(ix.take(0).map(|m| m.id_hash), Some(0));
        assert_eq!(ix.with_hash(0), [3], "3 owns hash 0 now");
        assert_eq!(ix.ids.get(&0), Some(&3));
        ix.reschedule(4, 1, 20);
        let due: Vec<_> = ix.routes[r as usize].due.iter().copied().collect();
        assert_eq!(due, [(1, 4), (102, 2)]);
        assert_eq!(
            ix.stats("r", 110).oldest_ms,
            8,
            "queued_at 102 is the oldest left"
        );
        assert_eq!(ix.stats("q", 110).depth, 3);
        assert_eq!(ix.stats("none", 110), RouteStats::default());
        for seq in 1..6 {
            assert!(ix.take(seq).is_some());
        }
        assert!(ix.take(3).is_none());
        assert!(ix.metas.is_empty() && ix.ids.is_empty() && ix.collided.is_empty());
        assert!(ix
            .routes
            .iter()
            .all(|r| r.due.is_empty() && r.queued.is_empty()));
    }

    /// A spool of the first layout (index tables on disk) opens: its entries, attempts and
    /// dead letters are kept, its index tables are dropped, it is the current version from
    /// then on.
    #[tokio::test]
    async fn layout_1_spool_is_upgraded_keeping_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        write_by_hand(dir.path(), |tx| {
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
        });
        let spool = open(dir.path());
        let s = spool.stats(&["r"], T0 + 10).await.unwrap();
        assert_eq!((s["r"].depth, s["r"].dead, s["r"].oldest_ms), (3, 1, 10));
        assert!(matches!(
            spool.enqueue(entry("r", "c", b"again")).await,
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
        spool.enqueue(entry("r", "e", b"e")).await.unwrap();
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
        let keys: Vec<u64> = tx
            .open_table(ENTRIES)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| r.unwrap().0.value())
            .collect();
        // a, b, c and e, numbered after the dead letter's 3 (a refused duplicate may use a
        // number too).
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert!(keys[3] > 3, "{keys:?}");
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
        spool.enqueue(entry("r", "a", &[b'x'; 1500])).await.unwrap();
        assert!(matches!(
            spool.enqueue(entry("r", "b", &[b'x'; 1500])).await,
            Err(QueueError::Full)
        ));
        spool.enqueue(entry("r", "c", &[b'x'; 1000])).await.unwrap();
        drop(spool);
        // The usage is rebuilt on open: still full.
        let spool = Spool::Disk(DiskSpool::open(dir.path(), small).unwrap());
        assert!(matches!(
            spool.enqueue(entry("r", "d", &[b'x'; 600])).await,
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
            spool.enqueue(entry("r", id, id.as_bytes())).await.unwrap();
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
            spool.enqueue(entry("r", "d", b"dup")).await,
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
        spool.enqueue(entry("r", "e", b"e")).await.unwrap();
        let e = spool.claim("r", "w", 10, T0).await.unwrap();
        assert_eq!(e[0].entry.id, "e");
    }

    #[tokio::test]
    async fn reclaim_takes_over_stale_leases() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path());
        spool.enqueue(entry("r", "a", b"a")).await.unwrap();
        spool.enqueue(entry("q", "a", b"a")).await.unwrap();
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

    #[test]
    fn large_bodies_are_cut_to_fill_pages() {
        // Small bodies stay whole in their entry.
        for body in [0, 10, 1024, 3000] {
            assert_eq!(body_cut(body, body + 400), 0, "{body}");
        }
        // 64 KiB with a head would take a 128 KiB page: the body's first part fills a
        // 64 KiB page, the entry keeps the rest.
        assert_eq!(body_cut(65536, 65936), 65536 - PAGE_OVERHEAD);
        assert_eq!(
            body_cut(1 << 20, (1 << 20) + 400),
            (1 << 20) - PAGE_OVERHEAD
        );
        // A body that fits a page but not with its head: all of it apart.
        assert_eq!(body_cut(65400, 65800), 65400);
        // An entry that fits its page as it is stays whole.
        assert_eq!(body_cut(65000, 65400), 0);
        assert_eq!(body_cut(30000, 30400), 0);
        // Never more than the body, never a loss in pages.
        for body in (0..300_000).step_by(997) {
            let cut = body_cut(body, body + 400);
            assert!(cut <= body);
            if cut > 0 {
                let pages = |n: usize| (n + PAGE_OVERHEAD).next_power_of_two().max(PAGE);
                assert!(
                    pages(cut) + pages(body + 400 - cut) < pages(body + 400),
                    "{body}"
                );
            }
        }
    }

    /// Bodies stored in two rows come back whole from memory, from the file after a
    /// reopen, through a reschedule, a dead letter and its retry; the byte count is the
    /// encoded entries' either way, and acknowledging removes both rows.
    #[tokio::test]
    async fn large_bodies_stored_apart_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskSpool::open(dir.path(), Limits::default()).unwrap();
        let spool = Spool::Disk(disk.clone());
        let sizes = [10usize, 5000, 65536, 65400, 70_000, 300_000];
        let body = |i: usize| -> Vec<u8> { (0..sizes[i]).map(|b| (b * 7 + i) as u8).collect() };
        for i in 0..sizes.len() {
            spool
                .enqueue(entry("r", &format!("e{i}"), &body(i)))
                .await
                .unwrap();
        }
        let rows = |disk: &DiskSpool, table| -> Vec<u64> {
            let tx = disk.inner.db.begin_read().unwrap();
            let t = tx.open_table(table).unwrap();
            t.iter().unwrap().map(|r| r.unwrap().0.value()).collect()
        };
        assert_eq!(rows(&disk, BODIES), [2, 3, 4, 5], "the large ones");
        let encoded: u64 = (0..sizes.len())
            .map(|i| entry("r", &format!("e{i}"), &body(i)).encoded_len() as u64)
            .sum();
        assert_eq!(disk.core().bytes, encoded);

        // From memory.
        let c = spool.claim("r", "w", 10, T0).await.unwrap();
        for (i, c) in c.iter().enumerate() {
            assert_eq!(c.entry.body, body(i), "e{i}");
        }
        spool
            .reschedule(&c[2], T0 + 5, &Failure::default())
            .await
            .unwrap();
        spool.dead_letter(&c[4], &Failure::default()).await.unwrap();
        spool.persist().await.unwrap();
        let bytes = disk.core().bytes;
        drop((c, spool, disk));

        // From the file.
        let disk = DiskSpool::open(dir.path(), Limits::default()).unwrap();
        let spool = Spool::Disk(disk.clone());
        assert_eq!(disk.core().bytes, bytes, "counted the same after reopening");
        let c = spool.claim("r", "w", 10, T0 + 5).await.unwrap();
        let got: Vec<_> = c.iter().map(|c| c.entry.id.as_str()).collect();
        assert_eq!(got, ["e0", "e1", "e3", "e5", "e2"]);
        for c in &c {
            let i: usize = c.entry.id[1..].parse().unwrap();
            assert_eq!(c.entry.body, body(i), "e{i}");
        }
        assert!(spool.retry_dead("r", "e4", T0).await.unwrap());
        let again = spool.claim("r", "w", 10, T0 + 5).await.unwrap();
        assert_eq!(again[0].entry.body, body(4));
        for c in c.iter().chain(&again) {
            spool.ack(c).await.unwrap();
        }
        spool.persist().await.unwrap();
        assert_eq!(
            (rows(&disk, ENTRIES), rows(&disk, BODIES)),
            (vec![], vec![])
        );
        assert_eq!(disk.core().bytes, 0);
    }

    /// The first claim hands out the header map the entry was stored with, once; a claim
    /// after a reschedule (or from the file) has none and builds the headers from the entry.
    #[tokio::test]
    async fn the_first_claim_carries_the_proxy_head_once() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path());
        let e = entry("r", "a", b"x");
        let head: http::HeaderMap = e
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    http::HeaderName::from_bytes(n).unwrap(),
                    http::HeaderValue::from_bytes(v).unwrap(),
                )
            })
            .collect();
        spool
            .enqueue_with_head(e, Some(head.clone()))
            .await
            .unwrap();
        let mut c = spool.claim("r", "w", 10, T0).await.unwrap();
        assert_eq!(c[0].take_head(), Some(head));
        assert_eq!(c[0].take_head(), None);
        spool
            .reschedule(&c[0], T0, &Failure::default())
            .await
            .unwrap();
        let mut again = spool.claim("r", "w", 10, T0).await.unwrap();
        assert_eq!(again[0].take_head(), None);
    }

    /// A layout-2 file (every body whole in its entry) opens as it is.
    #[tokio::test]
    async fn layout_2_spool_opens_with_bodies_whole() {
        let dir = tempfile::tempdir().unwrap();
        let big = entry("r", "a", &[b'b'; 65536]);
        write_by_hand(dir.path(), |tx| {
            let mut meta = tx.open_table(META).unwrap();
            meta.insert("schema_version", 2).unwrap();
            let mut entries = tx.open_table(ENTRIES).unwrap();
            entries.insert(0, big.encode().as_slice()).unwrap();
        });
        let spool = open(dir.path());
        let c = spool.claim("r", "w", 10, T0).await.unwrap();
        assert_eq!(c[0].entry.body, big.body);
        spool.ack(&c[0]).await.unwrap();
        spool.persist().await.unwrap();
        assert!(spool.claim("r", "w", 10, T0).await.unwrap().is_empty());
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
                            .enqueue(entry("r", &format!("{t}-{i}"), b"x"))
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
                            let body = vec![b'k'; sigkill_body_len(t)];
                            spool.enqueue(entry("r", &id, &body)).await.unwrap();
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

    /// The body length writer task `t` enqueues: 1 KiB, or 64 KiB (stored in two rows).
    fn sigkill_body_len(t: usize) -> usize {
        if t % 2 == 0 {
            1024
        } else {
            65536
        }
    }

    /// Runs this test binary again as a writer, SIGKILLs it mid-stream, reopens the spool:
    /// every id the writer printed as acknowledged is there, its body whole.
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
                    let t: usize = c.entry.id[1..c.entry.id.find('-').unwrap()]
                        .parse()
                        .unwrap();
                    assert_eq!(c.entry.body.len(), sigkill_body_len(t), "{}", c.entry.id);
                    assert!(c.entry.body.iter().all(|&b| b == b'k'));
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
                    .enqueue(entry("r", &format!("e{i:02}"), b"x"))
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
                    .enqueue(entry("r", &format!("p{i}"), b"x"))
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
            spool.enqueue(entry("r", id, b"x")).await.unwrap();
        }
        let c = spool.claim("r", "w", 10, T0).await.unwrap();
        spool.ack(&c[0]).await.unwrap();
        assert_eq!(stored(&disk), [0, 1], "not written yet");
        assert_eq!(spool.stats(&["r"], T0).await.unwrap()["r"].depth, 1);
        spool.enqueue(entry("r", "a", b"again")).await.unwrap();
        assert_eq!(stored(&disk), [1, 2], "written with the enqueue");
        spool.ack(&c[1]).await.unwrap();
        assert_eq!(stored(&disk), [1, 2]);
        tokio::time::sleep(LAZY_WINDOW * 3).await;
        assert_eq!(stored(&disk), [2], "written within the window");
        let attempts = |disk: &DiskSpool| {
            let tx = disk.inner.db.begin_read().unwrap();
            let t = tx.open_table(ATTEMPTS).unwrap();
            t.len().unwrap()
        };
        assert_eq!(
            attempts(&disk),
            0,
            "claimed and acknowledged within the window: no row"
        );
        // A claim that outlives the window has its attempts row written; its
        // acknowledgement removes it with the entry.
        let c = spool.claim("r", "w", 10, T0).await.unwrap();
        assert_eq!(c.len(), 1);
        tokio::time::sleep(LAZY_WINDOW * 3).await;
        assert_eq!(attempts(&disk), 1);
        spool.ack(&c[0]).await.unwrap();
        tokio::time::sleep(LAZY_WINDOW * 3).await;
        assert_eq!((attempts(&disk), stored(&disk).len()), (0, 0));
    }

    /// Closing the spool makes the lazy acknowledgements durable: after a clean stop
    /// nothing acknowledged is delivered again.
    #[tokio::test]
    async fn closing_makes_the_last_acknowledgements_durable() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path());
        for id in ["a", "b"] {
            spool.enqueue(entry("r", id, b"x")).await.unwrap();
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

    /// Writes `dir`'s spool file by hand, in one transaction: what `fill` puts there.
    fn write_by_hand(dir: &Path, fill: impl FnOnce(&WriteTransaction)) {
        let db = Database::create(dir.join(FILE_NAME)).unwrap();
        let tx = db.begin_write().unwrap();
        fill(&tx);
        tx.commit().unwrap();
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
                .enqueue(entry("r", &format!("m{i}"), &[b'z'; 2048]))
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
        write_by_hand(dir.path(), |tx| {
            tx.open_table(META)
                .unwrap()
                .insert("schema_version", 99)
                .unwrap();
        });
        let msg = open_err(dir.path());
        assert!(msg.contains("schema version 99"), "{msg}");

        // Entries but no version at all: not ours.
        write_by_hand(dir.path(), |tx| {
            tx.open_table(META)
                .unwrap()
                .remove("schema_version")
                .unwrap();
            tx.open_table(ENTRIES)
                .unwrap()
                .insert(1, b"x".as_slice())
                .unwrap();
        });
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
            spool.enqueue(entry("r", id, b"ok")).await.unwrap();
        }
        drop(spool);
        // Damage b's bytes (as a bug or a foreign writer would), leaving its index rows.
        write_by_hand(dir.path(), |tx| {
            let mut t = tx.open_table(ENTRIES).unwrap();
            let mut b = t.get(1).unwrap().unwrap().value().to_vec();
            b.truncate(b.len() / 2);
            t.insert(1, b.as_slice()).unwrap();
        });
        let disk = DiskSpool::open(dir.path(), Limits::default()).unwrap();
        assert_eq!(disk.quarantined(), 1);
        let spool = Spool::Disk(disk);
        let c = spool.claim("r", "w", 10, T0).await.unwrap();
        let ids: Vec<_> = c.iter().map(|c| c.entry.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        // Its id is free again (the sender's retry is accepted), and its bytes are kept.
        spool.enqueue(entry("r", "b", b"again")).await.unwrap();
        drop(c);
        drop(spool);
        let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
        let tx = db.begin_read().unwrap();
        assert_eq!(tx.open_table(QUARANTINE).unwrap().len().unwrap(), 1);
    }
}
