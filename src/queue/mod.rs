//! Queued delivery (SPEC "Queued delivery"): the spool that holds accepted requests
//! until the app has taken them, and the policy that decides when to try again.
//!
//! The parts, in the order a request meets them:
//! - [`accept`]: on a queued route the proxy ([`crate::proxy`], step 5) turns the request it
//!   would have forwarded into an [`Entry`], stores it, and answers 202 once it is durable;
//! - [`worker`]: per queued route, claims due entries and delivers them with the proxy's
//!   upstream client, applying [`policy`];
//! - [`admin`] and [`cli`]: `GET /queue`, `/queue/dead`, `POST /queue/retry`, `/queue/purge`
//!   on the admin port, and `hookseal queue …` over them;
//! - [`metrics`]: the `hookseal_queue_*` and `hookseal_delivery_*` families.
//!
//! # Stores, one interface
//!
//! [`Spool`] is an enum over the two stores, dispatched by `match` (as
//! [`crate::replay::ReplayStore`]):
//!
//! - [`disk::DiskSpool`] (`[queue] store = "disk"`, the default): one redb file in the spool
//!   directory. Every enqueue is durable (fsync) before it returns; concurrent enqueues share
//!   one commit (group commit). BENCHMARKS.md "Spool store choice" has the measurements that
//!   chose redb.
//! - [`redis::RedisSpool`] (`store = "redis"`): one Redis stream and consumer group per route,
//!   shared by every replica; entries a dead replica had claimed are taken over after
//!   `claim_after` (`XAUTOCLAIM`).
//!
//! # What survives what
//!
//! | event | disk spool | Redis spool |
//! |---|---|---|
//! | hookseal crash, `kill -9`, container restart | kept (every acknowledged entry was fsynced) | kept |
//! | app down for hours | kept until `max_age`, then dead-lettered | same |
//! | pod lost, node lost, `emptyDir` wiped | **lost** (unless the spool is on a volume that follows the pod) | kept: another replica claims the entries |
//! | Redis restart | — | what Redis persisted (below) |
//!
//! Redis must persist its data for the Redis spool to keep anything across a Redis restart:
//! `appendonly yes` with
//! - `appendfsync always`: every write is fsynced before Redis answers, so an acknowledged
//!   entry is never lost (slowest);
//! - `appendfsync everysec` (the usual setting): Redis fsyncs once a second, so a crash of the
//!   Redis host (a crash of the Redis process alone loses nothing: the writes are in the OS)
//!   can lose about the last second (up to two if the disk is slow) of acknowledged entries,
//!   retries and acknowledgements (a lost acknowledgement means a
//!   repeat, which at-least-once allows; a lost enqueue is an event the sender was told we
//!   have).
//!
//! Without AOF (RDB snapshots only, or no persistence) a Redis restart loses everything since
//! the last snapshot.
//!
//! # Entries and attempts
//!
//! An [`Entry`] is the request that would have been forwarded: method, path and query, the
//! headers in order (duplicates kept), the body, plus its bookkeeping. `attempts` counts the
//! attempts *begun*: a claim counts the attempt it hands out, so an attempt whose answer was
//! lost in a crash still counts, and its repeat carries the next number (the disk spool
//! makes a claim durable within [`disk::LAZY_WINDOW`]: a crash inside that window can repeat
//! a number). The
//! worker sends `x-hookseal-attempt: <attempts>` of the claimed entry.
//!
//! A dead-lettered entry frees its id (a new request with that id is queued again). A retried
//! dead entry keeps its attempts and `queued_at`, so `max_attempts` and `max_age` still count
//! from its first arrival: one that died of either gets one more attempt, one that the app
//! refused (a 4xx) gets what is left of its budget.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;

pub mod accept;
pub mod admin;
pub mod cli;
pub mod disk;
pub mod metrics;
pub mod policy;
pub mod redis;
pub mod worker;

/// One spooled request and its delivery state.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The message id (or one hookseal made): unique among the route's undelivered entries.
    pub id: String,
    /// The route it arrived on.
    pub route: String,
    /// The request method.
    pub method: String,
    /// The request path and query, as it would be forwarded.
    pub path_and_query: String,
    /// The headers that would be forwarded, in order, duplicates kept.
    pub headers: HeaderList,
    /// The body bytes.
    pub body: Bytes,
    /// When it was accepted (unix milliseconds).
    pub queued_at: u64,
    /// Attempts begun (see the module docs); 0 until first claimed.
    pub attempts: u32,
    /// No attempt before this time (unix milliseconds).
    pub next_attempt_at: u64,
    /// The app's status on the last attempt, if it answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (`"timeout"`, `"connect"`, `"max_attempts"`, …).
    pub last_error: Option<String>,
}

/// Header lines in order, duplicates kept, every name and value in one buffer: an entry's
/// headers cost two allocations, not two per line (BENCHMARKS.md §22).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HeaderList {
    bytes: Vec<u8>,
    /// Per line, where its name ends and where its value ends in `bytes`.
    ends: Vec<(usize, usize)>,
}

impl HeaderList {
    /// An empty list with room for `lines` lines of `bytes` bytes in all.
    pub fn with_capacity(lines: usize, bytes: usize) -> HeaderList {
        HeaderList {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(lines),
        }
    }

    /// Appends a line.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(name);
        let name_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.ends.push((name_end, self.bytes.len()));
    }

    /// The lines, in order: (name, value).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, end)| {
            let line = (&self.bytes[start..name_end], &self.bytes[name_end..end]);
            start = end;
            line
        })
    }

    /// The number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no lines.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of every name and value.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// Removes every line.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

impl From<&http::HeaderMap> for HeaderList {
    fn from(h: &http::HeaderMap) -> HeaderList {
        let bytes = h.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
        let mut list = HeaderList::with_capacity(h.len(), bytes);
        for (n, v) in h {
            list.push(n.as_str().as_bytes(), v.as_bytes());
        }
        list
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(N, V)> for HeaderList {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(lines: I) -> HeaderList {
        let mut list = HeaderList::default();
        for (n, v) in lines {
            list.push(n.as_ref(), v.as_ref());
        }
        list
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> From<Vec<(N, V)>> for HeaderList {
    fn from(lines: Vec<(N, V)>) -> HeaderList {
        lines.into_iter().collect()
    }
}

impl fmt::Debug for HeaderList {
    /// The count only: values may carry signatures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeaderList({} lines)", self.len())
    }
}

impl fmt::Debug for Entry {
    /// Never the header values or the body: they may carry signatures and personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("route", &self.route)
            .field("method", &self.method)
            .field("headers", &self.headers.len())
            .field("body_bytes", &self.body.len())
            .field("queued_at", &self.queued_at)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .field("last_status", &self.last_status)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// A new entry, due at once, never attempted.
    pub fn new(
        id: impl Into<String>,
        route: impl Into<String>,
        method: impl Into<String>,
        path_and_query: impl Into<String>,
        headers: impl Into<HeaderList>,
        body: Bytes,
        queued_at: u64,
    ) -> Entry {
        Entry {
            id: id.into(),
            route: route.into(),
            method: method.into(),
            path_and_query: path_and_query.into(),
            headers: headers.into(),
            body,
            queued_at,
            attempts: 0,
            next_attempt_at: queued_at,
            last_status: None,
            last_error: None,
        }
    }

    /// The entry's encoded form (what both stores keep). See [`Entry::decode`].
    ///
    /// Layout, integers big-endian: format byte `1`; id, route, method, path_and_query,
    /// each as a `u32` length and the bytes; a `u32` header count, then each name and value
    /// as a `u32` length and the bytes; the body likewise; `queued_at` u64; `attempts` u32;
    /// `next_attempt_at` u64; `last_status` u16 (0 = none); `last_error` as a `u32` length
    /// and the bytes, with `u32::MAX` for none.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_body(&self.body)
    }

    /// [`Entry::encode`] of this entry with `body` in place of its own: the disk spool
    /// stores a large body's first part in a row of its own and the entry with the rest.
    pub(crate) fn encode_with_body(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len() - self.body.len() + body.len());
        out.push(ENTRY_FORMAT);
        for s in [&self.id, &self.route, &self.method, &self.path_and_query] {
            put_bytes(&mut out, s.as_bytes());
        }
        put_u32(&mut out, len32(self.headers.len()));
        for (n, v) in self.headers.iter() {
            put_bytes(&mut out, n);
            put_bytes(&mut out, v);
        }
        put_bytes(&mut out, body);
        out.extend_from_slice(&self.queued_at.to_be_bytes());
        put_u32(&mut out, self.attempts);
        out.extend_from_slice(&self.next_attempt_at.to_be_bytes());
        out.extend_from_slice(&self.last_status.unwrap_or(0).to_be_bytes());
        match &self.last_error {
            Some(e) => put_bytes(&mut out, e.as_bytes()),
            None => put_u32(&mut out, u32::MAX),
        }
        out
    }

    /// The length of [`Entry::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let strings = [&self.id, &self.route, &self.method, &self.path_and_query]
            .iter()
            .map(|s| 4 + s.len())
            .sum::<usize>();
        let headers = 8 * self.headers.len() + self.headers.bytes_len();
        1 + strings
            + 4
            + headers
            + 4
            + self.body.len()
            + 8
            + 4
            + 8
            + 2
            + 4
            + self.last_error.as_ref().map_or(0, String::len)
    }

    /// Decodes [`Entry::encode`]'s output.
    ///
    /// # Errors
    ///
    /// A short text saying what is wrong (unknown format, truncated, bad UTF-8, trailing
    /// bytes); never panics.
    pub fn decode(bytes: &[u8]) -> Result<Entry, &'static str> {
        let mut r = Reader(bytes);
        if r.take(1)? != [ENTRY_FORMAT] {
            return Err("unknown entry format");
        }
        let id = r.string()?;
        let route = r.string()?;
        let method = r.string()?;
        let path_and_query = r.string()?;
        let count = r.u32()?;
        // Each header takes at least 8 bytes: a count the rest cannot hold is corrupt (and
        // must not size an allocation).
        if usize::try_from(count).map_or(true, |c| c > r.0.len() / 8) {
            return Err("truncated entry");
        }
        // The lines' bytes in all, from a first pass over their lengths: the list's buffer is
        // allocated once at its size (sized by the rest of the entry, the body included, it
        // had to be shrunk again after).
        let mut sizing = Reader(r.0);
        let mut size = 0;
        for _ in 0..count {
            size += sizing.bytes()?.len() + sizing.bytes()?.len();
        }
        let mut headers = HeaderList::with_capacity(count as usize, size);
        for _ in 0..count {
            let n = r.bytes()?;
            let v = r.bytes()?;
            headers.push(n, v);
        }
        let body = Bytes::copy_from_slice(r.bytes()?);
        let queued_at = r.u64()?;
        let attempts = r.u32()?;
        let next_attempt_at = r.u64()?;
        let status = u16::from_be_bytes(r.take(2)?.try_into().map_err(|_| "truncated entry")?);
        let last_error = match r.u32()? {
            u32::MAX => None,
            n => Some(
                std::str::from_utf8(r.take(n as usize)?)
                    .map_err(|_| "entry text is not UTF-8")?
                    .to_owned(),
            ),
        };
        if !r.0.is_empty() {
            return Err("trailing bytes after entry");
        }
        Ok(Entry {
            id,
            route,
            method,
            path_and_query,
            headers,
            body,
            queued_at,
            attempts,
            next_attempt_at,
            last_status: (status != 0).then_some(status),
            last_error,
        })
    }
}

/// The bookkeeping of an encoded [`Entry`], read in place: no copy of the headers or the
/// body (what the disk spool needs to remove or re-index an entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryMeta<'a> {
    pub(crate) id: &'a str,
    pub(crate) route: &'a str,
    pub(crate) queued_at: u64,
    pub(crate) attempts: u32,
    pub(crate) next_attempt_at: u64,
}

impl<'a> EntryMeta<'a> {
    /// Reads [`Entry::encode`]'s output as far as the bookkeeping; the same checks as
    /// [`Entry::decode`] on what it reads (a meta that reads is not proof the rest decodes).
    pub(crate) fn read(bytes: &'a [u8]) -> Result<EntryMeta<'a>, &'static str> {
        let mut r = Reader(bytes);
        if r.take(1)? != [ENTRY_FORMAT] {
            return Err("unknown entry format");
        }
        let text = |b: &'a [u8]| std::str::from_utf8(b).map_err(|_| "entry text is not UTF-8");
        let id = text(r.bytes()?)?;
        let route = text(r.bytes()?)?;
        r.bytes()?; // method
        r.bytes()?; // path and query
        let count = r.u32()?;
        if usize::try_from(count).map_or(true, |c| c > r.0.len() / 8) {
            return Err("truncated entry");
        }
        for _ in 0..count {
            r.bytes()?;
            r.bytes()?;
        }
        r.bytes()?; // body
        let queued_at = r.u64()?;
        let attempts = r.u32()?;
        let next_attempt_at = r.u64()?;
        Ok(EntryMeta {
            id,
            route,
            queued_at,
            attempts,
            next_attempt_at,
        })
    }
}

/// The first byte of an encoded [`Entry`].
const ENTRY_FORMAT: u8 = 1;

fn len32(n: usize) -> u32 {
    // Entries are bounded by the route's max_body and header limits, far below 4 GiB.
    u32::try_from(n).expect("entry field under 4 GiB")
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, len32(b.len()));
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated entry");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| "truncated entry")?,
        ))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| "truncated entry")?,
        ))
    }

    fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u32()?;
        self.take(n as usize)
    }

    fn string(&mut self) -> Result<String, &'static str> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| "entry text is not UTF-8")
    }
}

/// An entry handed to a worker by [`Spool::claim`] or [`Spool::reclaim`]: it is leased to
/// that worker until it is acknowledged, rescheduled or dead-lettered (or, with Redis, until
/// another consumer reclaims it after `claim_after`).
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The entry; `attempts` already counts the attempt this claim hands out.
    pub entry: Entry,
    lease: Lease,
    /// The entry's headers as the proxy held them when it stored the entry (the same list as
    /// `entry.headers`), when the spool still had them: the first attempt sends them instead
    /// of parsing the list again.
    head: Option<http::HeaderMap>,
}

impl Claimed {
    /// The headers as the proxy held them, if the spool kept them and they were not taken
    /// yet (see the field).
    pub fn take_head(&mut self) -> Option<http::HeaderMap> {
        self.head.take()
    }
}

#[derive(Debug, Clone)]
enum Lease {
    /// The entry's sequence number in the disk spool.
    Disk(u64),
    /// The stream entry id, and the encoded size the usage counter holds for it.
    Redis { stream_id: String, size: u64 },
}

/// Why the last attempt failed, recorded by [`Spool::reschedule`] and [`Spool::dead_letter`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    /// The app's status, when it answered.
    pub status: Option<u16>,
    /// A short reason (`"timeout"`, `"connect"`, `"max_age"`, …).
    pub error: Option<String>,
}

/// One route's numbers for `GET /queue`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteStats {
    /// Entries waiting or in flight (not dead).
    pub depth: u64,
    /// Dead-lettered entries.
    pub dead: u64,
    /// Milliseconds since the oldest waiting entry was queued; 0 when there is none.
    pub oldest_ms: u64,
}

/// A dead letter as `GET /queue/dead` lists it: never the body nor the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadInfo {
    /// The entry id.
    pub id: String,
    /// Its route.
    pub route: String,
    /// Attempts begun.
    pub attempts: u32,
    /// The app's status on the last attempt.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, or why it was dead-lettered.
    pub last_error: Option<String>,
    /// When it was accepted (unix milliseconds).
    pub queued_at: u64,
}

impl DeadInfo {
    fn of(e: &Entry) -> DeadInfo {
        DeadInfo {
            id: e.id.clone(),
            route: e.route.clone(),
            attempts: e.attempts,
            last_status: e.last_status,
            last_error: e.last_error.clone(),
            queued_at: e.queued_at,
        }
    }
}

/// Why a spool operation failed. Messages never carry header values, bodies or passwords.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// This route already holds an undelivered entry with this id: answer 202 again, store
    /// nothing.
    #[error("already queued")]
    AlreadyQueued,
    /// Past `max_bytes` or `max_entries`: 503 `queue_full` with `Retry-After`.
    #[error("spool full")]
    Full,
    /// The store failed or could not be reached: 503 `queue_unavailable`.
    #[error("spool unavailable: {0}")]
    Unavailable(String),
    /// The spool file cannot be used: corrupt, truncated, or from another version.
    #[error("spool {}: {detail}", file.display())]
    Corrupt {
        /// The file at fault.
        file: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The Redis URL could not be used (the reason never echoes the URL).
    #[error("invalid queue store url: {0}")]
    InvalidUrl(&'static str),
}

/// Limits on what the spool holds, dead letters included (`[queue] max_bytes`,
/// `max_entries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Encoded bytes of every entry held.
    pub max_bytes: u64,
    /// Entries held.
    pub max_entries: u64,
}

impl Default for Limits {
    /// The SPEC defaults: 1 GiB, 1,000,000 entries.
    fn default() -> Limits {
        Limits {
            max_bytes: 1 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// The spool the delivery worker uses, chosen by `[queue] store`. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Spool {
    /// The embedded spool on local disk.
    Disk(disk::DiskSpool),
    /// Redis Streams, shared by every replica.
    Redis(redis::RedisSpool),
}

impl Spool {
    /// `"disk"` or `"redis"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Spool::Disk(_) => "disk",
            Spool::Redis(_) => "redis",
        }
    }

    /// Stores `entry`; returns once it is durable.
    ///
    /// # Errors
    ///
    /// [`QueueError::AlreadyQueued`], [`QueueError::Full`], [`QueueError::Unavailable`].
    pub async fn enqueue(&self, entry: Entry) -> Result<(), QueueError> {
        self.enqueue_with_head(entry, None).await
    }

    /// [`Spool::enqueue`], with `head`: the entry's headers as the proxy holds them (the same
    /// list as `entry.headers`), which the disk spool keeps beside the entry for its first
    /// delivery ([`Claimed::head`]).
    ///
    /// # Errors
    ///
    /// As [`Spool::enqueue`].
    pub async fn enqueue_with_head(
        &self,
        entry: Entry,
        head: Option<http::HeaderMap>,
    ) -> Result<(), QueueError> {
        match self {
            Spool::Disk(d) => d.enqueue(entry, head).await,
            Spool::Redis(r) => r.enqueue(&entry).await,
        }
    }

    /// Makes every change so far durable. The disk spool commits claims and acknowledgements
    /// without waiting for the disk and makes them durable within [`disk::LAZY_WINDOW`] (or
    /// with the next enqueue); this is for shutdown. Redis: nothing to do.
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`].
    pub async fn persist(&self) -> Result<(), QueueError> {
        match self {
            Spool::Disk(d) => d.persist().await,
            Spool::Redis(_) => Ok(()),
        }
    }

    /// Leases up to `max` of `route`'s entries due at `now_ms` to `consumer`, oldest first,
    /// counting one attempt on each.
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`].
    pub async fn claim(
        &self,
        route: &str,
        consumer: &str,
        max: usize,
        now_ms: u64,
    ) -> Result<Vec<Claimed>, QueueError> {
        match self {
            Spool::Disk(d) => d.claim(route, max, now_ms).await,
            Spool::Redis(r) => r.claim(route, consumer, max, now_ms).await,
        }
    }

    /// Takes over entries of `route` leased more than `claim_after_ms` ago by consumers that
    /// have not finished them (a replica that died), counting one more attempt on each.
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`].
    pub async fn reclaim(
        &self,
        route: &str,
        consumer: &str,
        claim_after_ms: u64,
        max: usize,
    ) -> Result<Vec<Claimed>, QueueError> {
        match self {
            Spool::Disk(d) => d.reclaim(route, claim_after_ms, max).await,
            Spool::Redis(r) => r.reclaim(route, consumer, claim_after_ms, max).await,
        }
    }

    /// Delivered: removes the entry and frees its id.
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`].
    pub async fn ack(&self, claimed: &Claimed) -> Result<(), QueueError> {
        match self {
            Spool::Disk(d) => d.ack(claimed).await,
            Spool::Redis(r) => r.ack(claimed).await,
        }
    }

    /// Not delivered, try again: no attempt before `next_attempt_at` (unix ms).
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`].
    pub async fn reschedule(
        &self,
        claimed: &Claimed,
        next_attempt_at: u64,
        failure: &Failure,
    ) -> Result<(), QueueError> {
        match self {
            Spool::Disk(d) => d.reschedule(claimed, next_attempt_at, failure).await,
            Spool::Redis(r) => r.reschedule(claimed, next_attempt_at, failure).await,
        }
    }

    /// Gives up: moves the entry to the route's dead letters and frees its id.
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`].
    pub async fn dead_letter(
        &self,
        claimed: &Claimed,
        failure: &Failure,
    ) -> Result<(), QueueError> {
        match self {
            Spool::Disk(d) => d.dead_letter(claimed, failure).await,
            Spool::Redis(r) => r.dead_letter(claimed, failure).await,
        }
    }

    /// Depth, dead count and oldest age of each of `routes` at `now_ms`.
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`].
    pub async fn stats(
        &self,
        routes: &[&str],
        now_ms: u64,
    ) -> Result<BTreeMap<String, RouteStats>, QueueError> {
        let mut out = BTreeMap::new();
        for route in routes {
            let s = match self {
                Spool::Disk(d) => d.stats(route, now_ms).await?,
                Spool::Redis(r) => r.stats(route, now_ms).await?,
            };
            out.insert((*route).to_owned(), s);
        }
        Ok(out)
    }

    /// `route`'s dead letters, oldest first, at most `limit`; never a body.
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`].
    pub async fn dead(&self, route: &str, limit: usize) -> Result<Vec<DeadInfo>, QueueError> {
        match self {
            Spool::Disk(d) => d.dead(route, limit).await,
            Spool::Redis(r) => r.dead(route, limit).await,
        }
    }

    /// Puts `route`'s dead letter `id` back in the queue, due at `now_ms`. False if there is
    /// no such dead letter, or the id is queued again already (the dead letter is then kept).
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`].
    pub async fn retry_dead(&self, route: &str, id: &str, now_ms: u64) -> Result<bool, QueueError> {
        match self {
            Spool::Disk(d) => d.retry_dead(route, Some(id), now_ms).await.map(|n| n > 0),
            Spool::Redis(r) => r.retry_dead(route, Some(id), now_ms).await.map(|n| n > 0),
        }
    }

    /// Puts every dead letter of `route` back in the queue, due at `now_ms`; returns how many.
    /// They are then delivered like any entry, so the route's `rate` and `concurrency` bound
    /// how fast a bulk retry reaches the app.
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`].
    pub async fn retry_all_dead(&self, route: &str, now_ms: u64) -> Result<u64, QueueError> {
        match self {
            Spool::Disk(d) => d.retry_dead(route, None, now_ms).await,
            Spool::Redis(r) => r.retry_dead(route, None, now_ms).await,
        }
    }

    /// Deletes every dead letter of `route`; returns how many.
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`].
    pub async fn purge_dead(&self, route: &str) -> Result<u64, QueueError> {
        match self {
            Spool::Disk(d) => d.purge_dead(route).await,
            Spool::Redis(r) => r.purge_dead(route).await,
        }
    }
}

#[cfg(test)]
pub(crate) mod conformance;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str) -> Entry {
        Entry::new(
            id,
            "r",
            "POST",
            "/hook?x=1",
            vec![
                (b"content-type".to_vec(), b"application/json".to_vec()),
                (b"x-dup".to_vec(), b"1".to_vec()),
                (b"x-dup".to_vec(), b"\x80raw".to_vec()),
            ],
            Bytes::from_static(b"{\"a\":1}"),
            1_700_000_000_000,
        )
    }

    #[test]
    fn encoding_round_trips() {
        let mut e = sample("m1");
        let back = Entry::decode(&e.encode()).unwrap();
        assert_eq!(back, e);
        // The header buffer is allocated at the lines' size, not at the rest of the entry's.
        assert_eq!(back.headers.bytes.capacity(), back.headers.bytes_len());
        assert_eq!(e.encode().len(), e.encoded_len());
        e.attempts = 7;
        e.last_status = Some(503);
        e.last_error = Some("timeout".into());
        e.next_attempt_at = u64::MAX;
        e.body = Bytes::new();
        e.headers.clear();
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        assert_eq!(e.encode().len(), e.encoded_len());
    }

    #[test]
    fn meta_reads_the_bookkeeping_in_place() {
        let mut e = sample("m1");
        e.attempts = 3;
        e.next_attempt_at = 42;
        let bytes = e.encode();
        let m = EntryMeta::read(&bytes).unwrap();
        assert_eq!(
            (m.id, m.route, m.queued_at, m.attempts, m.next_attempt_at),
            ("m1", "r", e.queued_at, 3, 42)
        );
        // Cut anywhere before the end of next_attempt_at: an error, never a panic.
        let end = bytes.len() - 2 - 4;
        for cut in 0..end {
            assert!(EntryMeta::read(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xa5;
            let _ = EntryMeta::read(&b);
        }
    }

    #[test]
    fn bad_encodings_are_errors_not_panics() {
        let good = sample("m1").encode();
        for cut in 0..good.len() {
            assert!(Entry::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(Entry::decode(&trailing), Err("trailing bytes after entry"));
        let mut other = good.clone();
        other[0] = 2;
        assert_eq!(Entry::decode(&other), Err("unknown entry format"));
        // A huge header count must not allocate or panic.
        let mut e = sample("m1");
        e.headers.clear();
        let mut huge = e.encode();
        let at = 1
            + 4 * 4
            + ["m1", "r", "POST", "/hook?x=1"]
                .iter()
                .map(|s| s.len())
                .sum::<usize>();
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Entry::decode(&huge), Err("truncated entry"));
        // Flipping any single byte never panics.
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xa5;
            let _ = Entry::decode(&b);
        }
    }

    #[test]
    fn header_list_keeps_lines_in_order_with_duplicates_and_empty_values() {
        let mut map = http::HeaderMap::new();
        map.append("x-dup", http::HeaderValue::from_static("1"));
        map.insert("host", http::HeaderValue::from_static("app"));
        map.append("x-dup", http::HeaderValue::from_static(""));
        let list = HeaderList::from(&map);
        let lines: Vec<(&[u8], &[u8])> = list.iter().collect();
        let want: Vec<(&[u8], &[u8])> = map
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
            .collect();
        assert_eq!(lines, want);
        assert_eq!((list.len(), list.bytes_len()), (3, 5 + 1 + 4 + 3 + 5));
        let mut built = HeaderList::default();
        for (n, v) in &want {
            built.push(n, v);
        }
        assert_eq!(built, list);
        assert_eq!(
            HeaderList::from(vec![(b"a", b"")]).iter().next(),
            Some((&b"a"[..], &b""[..]))
        );
        built.clear();
        assert!(built.is_empty() && built.iter().next().is_none());
    }

    #[test]
    fn debug_never_shows_values_or_body() {
        let mut e = sample("m1");
        e.headers.push(b"x-signature", b"sekrit");
        e.body = Bytes::from_static(b"private body");
        let s = format!("{e:?}");
        assert!(!s.contains("sekrit") && !s.contains("private"), "{s}");
    }
}
