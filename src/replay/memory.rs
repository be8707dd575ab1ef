//! The in-memory replay store: bounded, expiring, per process.
//!
//! Layout, per shard:
//!
//! - a `HashMap<Key, Slot>` (the digest is uniformly random, so the hasher just reads 8 of its
//!   bytes), where a `Slot` packs the expiry in milliseconds and a done bit into one `u64`;
//! - one FIFO per distinct TTL, holding `(key, slot)` records in insertion order. The proxy uses
//!   few TTLs (the in-flight TTL and twice each route's tolerance), and within one FIFO equal
//!   TTLs make insertion order expiry order, so the soonest-to-expire entry of the shard is at
//!   the head of one of a handful of queues: O(1) to find and to pop.
//!
//! A record is *current* while the map still holds exactly its slot; when a key changes state
//! (in flight → done) or is removed, its old record goes stale and is dropped for free when it
//! reaches a queue head. Stale records are compacted away once they outnumber live entries, so
//! memory stays proportional to the capacity, and every operation is amortised O(1).
//!
//! Each route deduping in memory gets a partition of its own ([`MemoryStore::partition`]): a
//! store with its own capacity, so no route's writes can evict another route's entries.
//!
//! Locks are `std::sync::Mutex`, held for a few map operations and never across an `.await`.
//! Large stores are split into 16 shards by another 8 bytes of the digest so that a map resize
//! (the one O(n) step) stalls one shard, not all requests; eviction is then exact per shard and
//! approximate across shards.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{Begin, Key};

/// Stores at least this large are split into [`SHARDS`] shards.
const SHARD_THRESHOLD: usize = 64 * 1024;
/// Shards of a large store.
const SHARDS: usize = 16;
/// Most distinct TTL queues per shard; beyond it a TTL shares the queue with the nearest TTL.
const MAX_QUEUES: usize = 16;

/// A bounded, expiring set of replay keys. Cheap to clone: clones share the same state.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    clock: Clock,
    evictions: prometheus::IntCounter,
    capacity: AtomicUsize,
    /// The per-route partitions made from this store, by route name.
    partitions: Mutex<HashMap<String, MemoryStore>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.capacity())
            .field("shards", &self.inner.shards.len())
            .field("len", &self.len())
            .finish()
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` keys (at least 1), timed by the system clock
    /// (`tokio::time::Instant`, so a test that pauses tokio time controls it too).
    ///
    /// From 65,536 keys up the store is split into 16 shards of `capacity / 16`, each bounded
    /// on its own; keys do not spread perfectly evenly, so the first evictions come a little
    /// before `capacity` keys are held (measured: 1,452 evictions after exactly 1M ids with
    /// capacity 1M, i.e. at ~99.9%). `len()` never exceeds `capacity`.
    pub fn new(capacity: usize, evictions: prometheus::IntCounter) -> MemoryStore {
        MemoryStore::with_clock(capacity, evictions, Clock::system())
    }

    /// As [`MemoryStore::new`], with the given clock.
    pub fn with_clock(
        capacity: usize,
        evictions: prometheus::IntCounter,
        clock: Clock,
    ) -> MemoryStore {
        let capacity = capacity.max(1);
        let n = if capacity >= SHARD_THRESHOLD {
            SHARDS
        } else {
            1
        };
        let shards = (0..n)
            .map(|i| Mutex::new(Shard::new(capacity / n + usize::from(i < capacity % n))))
            .collect();
        MemoryStore {
            inner: Arc::new(Inner {
                shards,
                clock,
                evictions,
                capacity: AtomicUsize::new(capacity),
                partitions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The most keys this store holds.
    pub fn capacity(&self) -> usize {
        self.inner.capacity.load(Ordering::Relaxed)
    }

    /// The partition of route `route`: a store of its own holding at most `capacity` keys, on
    /// the same clock and eviction counter. Asked again for the same route (a config reload),
    /// it returns the same partition, entries kept, resized to `capacity` (a smaller one
    /// evicts down to it as new keys come).
    pub fn partition(&self, route: &str, capacity: usize) -> MemoryStore {
        let mut parts = self
            .inner
            .partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(p) = parts.get(route) {
            p.resize(capacity);
            return p.clone();
        }
        let p = MemoryStore::with_clock(
            capacity,
            self.inner.evictions.clone(),
            self.inner.clock.clone(),
        );
        parts.insert(route.to_owned(), p.clone());
        p
    }

    /// Drops the partitions of routes not in `routes` (removed by a reload).
    pub fn retain_partitions(&self, routes: &[&str]) {
        self.inner
            .partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|name, _| routes.contains(&name.as_str()));
    }

    /// Sets the capacity, spread over the shards as [`MemoryStore::with_clock`] does.
    fn resize(&self, capacity: usize) {
        let capacity = capacity.max(1);
        self.inner.capacity.store(capacity, Ordering::Relaxed);
        let n = self.inner.shards.len();
        for i in 0..n {
            self.lock(i).capacity = (capacity / n + usize::from(i < capacity % n)).max(1);
        }
    }

    /// Keys held now, including expired ones not yet reclaimed. Never above [`Self::capacity`].
    pub fn len(&self) -> usize {
        (0..self.inner.shards.len())
            .map(|i| self.lock(i).map.len())
            .sum()
    }

    /// Keys held by this store and every partition made from it.
    pub fn total_len(&self) -> usize {
        let parts: Vec<MemoryStore> = self
            .inner
            .partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect();
        self.len() + parts.iter().map(MemoryStore::len).sum::<usize>()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// See [`super::ReplayStore::begin`].
    pub fn begin(&self, key: &Key, inflight_ttl: Duration) -> Begin {
        let now = self.inner.clock.now_ms();
        let (begin, evicted) = self.shard(key).begin(key, ttl_ms(inflight_ttl), now);
        self.count(evicted);
        begin
    }

    /// See [`super::ReplayStore::finish`].
    pub fn finish(&self, key: &Key, delivered: bool, done_ttl: Duration) {
        let now = self.inner.clock.now_ms();
        let evicted = self
            .shard(key)
            .finish(key, delivered, ttl_ms(done_ttl), now);
        self.count(evicted);
    }

    fn shard(&self, key: &Key) -> MutexGuard<'_, Shard> {
        let n = self.inner.shards.len() as u64;
        // `n` is 1 or 16, so the index fits in usize.
        self.lock((key.shard_word() % n) as usize)
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding the lock leaves the shard consistent enough (worst case a
        // stale record or a missing key), so poisoning is not a reason to stop deduplicating.
        self.inner.shards[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count(&self, evicted: u64) {
        if evicted > 0 {
            self.inner.evictions.inc_by(evicted);
        }
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

// === impl Clock ===

/// Where the memory store reads the time, in milliseconds.
#[derive(Debug, Clone)]
pub enum Clock {
    /// `tokio::time::Instant` elapsed since the store was created.
    System(tokio::time::Instant),
    /// A clock that moves only when told: for tests.
    Manual(ManualClock),
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::System(tokio::time::Instant::now())
    }

    fn now_ms(&self) -> u64 {
        match self {
            Clock::System(origin) => {
                u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
            }
            Clock::Manual(m) => m.0.load(Ordering::Relaxed),
        }
    }
}

/// A clock for tests: starts at 0 and advances only through [`ManualClock::advance`].
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at 0 ms.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(ttl_ms(by), Ordering::Relaxed);
    }
}

// === impl Shard ===

/// A key's state: expiry instant in ms (clock units) in the high 63 bits, done flag in bit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot(u64);

impl Slot {
    fn new(now: u64, ttl: u64, done: bool) -> Slot {
        let expires = now.saturating_add(ttl).min(u64::MAX >> 1);
        Slot((expires << 1) | u64::from(done))
    }

    fn expires(self) -> u64 {
        self.0 >> 1
    }

    fn done(self) -> bool {
        self.0 & 1 == 1
    }

    fn live(self, now: u64) -> bool {
        self.expires() > now
    }
}

/// A queued `(key, slot)`: current while the map holds exactly this slot for this key.
#[derive(Clone, Copy)]
struct Record {
    key: Key,
    slot: Slot,
}

struct Queue {
    ttl: u64,
    records: VecDeque<Record>,
}

struct Shard {
    map: HashMap<Key, Slot, DigestHasherBuilder>,
    queues: Vec<Queue>,
    /// Records in all queues, current and stale.
    records: usize,
    capacity: usize,
}

impl Shard {
    fn new(capacity: usize) -> Shard {
        Shard {
            map: HashMap::with_hasher(DigestHasherBuilder),
            queues: Vec::new(),
            records: 0,
            capacity,
        }
    }

    /// Returns what was found and how many unexpired entries were evicted.
    fn begin(&mut self, key: &Key, ttl: u64, now: u64) -> (Begin, u64) {
        match self.map.get(key) {
            Some(slot) if slot.live(now) && slot.done() => (Begin::Duplicate, 0),
            Some(slot) if slot.live(now) => (Begin::InFlight, 0),
            _ => {
                let evicted = self.insert(*key, Slot::new(now, ttl, false), ttl, now);
                (Begin::Fresh, evicted)
            }
        }
    }

    /// Returns how many unexpired entries were evicted.
    fn finish(&mut self, key: &Key, delivered: bool, ttl: u64, now: u64) -> u64 {
        match self.map.get(key).copied() {
            Some(slot) if slot.live(now) && slot.done() => 0,
            _ if delivered => self.insert(*key, Slot::new(now, ttl, true), ttl, now),
            Some(_) => {
                // In flight (or expired): free it so the sender's retry is forwarded.
                self.map.remove(key);
                0
            }
            None => 0,
        }
    }

    /// Sets `key` to `slot`, making room first if the key is new and the shard is full.
    fn insert(&mut self, key: Key, slot: Slot, ttl: u64, now: u64) -> u64 {
        self.reap(now);
        let mut evicted = 0;
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.capacity {
                if !self.evict_soonest(now) {
                    break;
                }
                evicted += 1;
            }
        }
        self.map.insert(key, slot);
        let q = self.queue_for(ttl);
        self.queues[q].records.push_back(Record { key, slot });
        self.records += 1;
        if self.records > 2 * self.map.len() + 1024 {
            self.compact();
        }
        evicted
    }

    /// Pops stale records and expired entries from every queue head (they cost nothing).
    fn reap(&mut self, now: u64) {
        for q in &mut self.queues {
            while let Some(head) = q.records.front().copied() {
                let current = self.map.get(&head.key) == Some(&head.slot);
                if current && head.slot.live(now) {
                    break;
                }
                if current {
                    self.map.remove(&head.key);
                }
                q.records.pop_front();
                self.records -= 1;
            }
        }
    }

    /// Evicts the current entry that expires soonest; false if there is none. Runs after
    /// [`Shard::reap`], so every current head is unexpired and each eviction is counted.
    fn evict_soonest(&mut self, now: u64) -> bool {
        loop {
            let Some(q) = self
                .queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| q.records.front().map(|r| (r.slot.expires(), i)))
                .min()
                .map(|(_, i)| i)
            else {
                return false;
            };
            let Some(head) = self.queues[q].records.pop_front() else {
                return false;
            };
            self.records -= 1;
            if self.map.get(&head.key) == Some(&head.slot) {
                self.map.remove(&head.key);
                // Entries sharing a queue with a different TTL may be out of order, so an
                // expired one can still turn up here: dropping it is free, not an eviction.
                if head.slot.live(now) {
                    return true;
                }
            }
        }
    }

    /// The queue for `ttl`: its own if there is one or room for one, else the nearest TTL's.
    fn queue_for(&mut self, ttl: u64) -> usize {
        if let Some(i) = self.queues.iter().position(|q| q.ttl == ttl) {
            return i;
        }
        if self.queues.len() >= MAX_QUEUES {
            self.queues.retain(|q| !q.records.is_empty());
        }
        if self.queues.len() < MAX_QUEUES {
            self.queues.push(Queue {
                ttl,
                records: VecDeque::new(),
            });
            return self.queues.len() - 1;
        }
        self.queues
            .iter()
            .enumerate()
            .min_by_key(|(_, q)| q.ttl.abs_diff(ttl))
            .map_or(0, |(i, _)| i)
    }

    /// Drops every stale record: amortised O(1), since it runs only after as many new records
    /// as there are live entries (plus a constant) have been queued since the last one.
    fn compact(&mut self) {
        let map = &self.map;
        for q in &mut self.queues {
            q.records.retain(|r| map.get(&r.key) == Some(&r.slot));
            q.records.shrink_to_fit();
        }
        self.queues.retain(|q| !q.records.is_empty());
        self.records = self.queues.iter().map(|q| q.records.len()).sum();
    }
}

// === impl DigestHasher ===

/// Hashes a [`Key`] by taking 8 of its bytes: it is already a uniformly random digest.
#[derive(Debug, Clone, Copy, Default)]
struct DigestHasherBuilder;

impl BuildHasher for DigestHasherBuilder {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

#[derive(Debug)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `Key` is hashed with this, through `write_u64`; fold anything else FNV-style so
        // the hasher stays correct if that ever changes.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> prometheus::IntCounter {
        prometheus::IntCounter::new("evictions", "test").unwrap()
    }

    fn store(capacity: usize) -> (MemoryStore, ManualClock, prometheus::IntCounter) {
        let clock = ManualClock::new();
        let evictions = counter();
        let s = MemoryStore::with_clock(capacity, evictions.clone(), Clock::Manual(clock.clone()));
        (s, clock, evictions)
    }

    fn k(i: u64) -> Key {
        Key::new("route", &i.to_be_bytes())
    }

    /// A uniformly spread key without hashing: a debug-build SHA-256 per id would dominate
    /// the 2M-id test's run time. `splitmix64` is a bijection, so distinct `i` give distinct keys.
    fn fast_key(i: u64) -> Key {
        fn mix(mut z: u64) -> u64 {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        let mut b = [0u8; super::super::KEY_LEN];
        b[..8].copy_from_slice(&mix(i).to_le_bytes());
        b[8..].copy_from_slice(&mix(i ^ 0x5555_5555_5555_5555).to_le_bytes());
        Key(b)
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn transitions() {
        let (s, _, ev) = store(10);
        assert_eq!(s.begin(&k(1), S), Begin::Fresh);
        assert_eq!(s.begin(&k(1), S), Begin::InFlight);
        s.finish(&k(1), true, S);
        assert_eq!(s.begin(&k(1), S), Begin::Duplicate);
        // A late failure never re-opens a delivered message.
        s.finish(&k(1), false, S);
        assert_eq!(s.begin(&k(1), S), Begin::Duplicate);
        assert_eq!(s.begin(&k(2), S), Begin::Fresh);
        assert_eq!(ev.get(), 0);
    }

    #[test]
    fn failed_delivery_frees_the_key() {
        let (s, _, _) = store(10);
        assert_eq!(s.begin(&k(1), S), Begin::Fresh);
        s.finish(&k(1), false, S);
        assert_eq!(s.len(), 0);
        assert_eq!(s.begin(&k(1), S), Begin::Fresh);
    }

    #[test]
    fn entries_expire() {
        let (s, clock, _) = store(10);
        let inflight = Duration::from_millis(50);
        let done = Duration::from_millis(200);
        assert_eq!(s.begin(&k(1), inflight), Begin::Fresh);
        clock.advance(Duration::from_millis(49));
        assert_eq!(s.begin(&k(1), inflight), Begin::InFlight);
        clock.advance(Duration::from_millis(1));
        // The in-flight mark lapsed (say the proxy died mid-request): a retry goes through.
        assert_eq!(s.begin(&k(1), inflight), Begin::Fresh);
        s.finish(&k(1), true, done);
        clock.advance(Duration::from_millis(199));
        assert_eq!(s.begin(&k(1), inflight), Begin::Duplicate);
        clock.advance(Duration::from_millis(1));
        assert_eq!(s.begin(&k(1), inflight), Begin::Fresh);
    }

    #[test]
    fn delivered_after_mark_lapsed_is_still_recorded() {
        let (s, clock, _) = store(10);
        assert_eq!(s.begin(&k(1), S), Begin::Fresh);
        clock.advance(2 * S);
        s.finish(&k(1), true, S);
        assert_eq!(s.begin(&k(1), S), Begin::Duplicate);
    }

    #[test]
    fn eviction_takes_expired_first_then_soonest() {
        let (s, clock, ev) = store(4);
        let short = Duration::from_millis(100);
        let long = Duration::from_millis(10_000);
        // k1 expires at 100 (short), k2 at 10_000, k3 at 10_001, k4 at 150 (short queue).
        assert_eq!(s.begin(&k(1), short), Begin::Fresh);
        assert_eq!(s.begin(&k(2), long), Begin::Fresh);
        clock.advance(Duration::from_millis(1));
        assert_eq!(s.begin(&k(3), long), Begin::Fresh);
        clock.advance(Duration::from_millis(49));
        assert_eq!(s.begin(&k(4), short), Begin::Fresh);
        // At 120, k1 has expired: making room for k5 reclaims it and evicts nothing.
        clock.advance(Duration::from_millis(70));
        assert_eq!(s.begin(&k(5), long), Begin::Fresh);
        assert_eq!(ev.get(), 0);
        assert_eq!(s.len(), 4);
        // Full, nothing expired: k6 evicts the soonest to expire, k4 (150), and counts it.
        assert_eq!(s.begin(&k(6), long), Begin::Fresh);
        assert_eq!(ev.get(), 1);
        assert_eq!(s.begin(&k(4), short), Begin::Fresh); // k4 gone: evicts k2 (10_000)
        assert_eq!(ev.get(), 2);
        assert_eq!(s.begin(&k(3), long), Begin::InFlight);
        assert_eq!(s.begin(&k(5), long), Begin::InFlight);
        assert_eq!(s.begin(&k(6), long), Begin::InFlight);
        assert_eq!(s.begin(&k(2), long), Begin::Fresh); // evicted earlier
        assert_eq!(ev.get(), 3); // ...which evicted k4 again (expires at 220)
        assert!(s.len() <= 4);
    }

    #[test]
    fn state_changes_leave_no_stale_eviction() {
        // k1 in flight then done: its stale in-flight record must not evict the done entry.
        let (s, clock, ev) = store(2);
        let short = Duration::from_millis(10);
        let long = Duration::from_millis(1000);
        assert_eq!(s.begin(&k(1), short), Begin::Fresh);
        s.finish(&k(1), true, long);
        assert_eq!(s.begin(&k(2), short), Begin::Fresh);
        clock.advance(Duration::from_millis(5));
        assert_eq!(s.begin(&k(3), short), Begin::Fresh); // evicts k2 (expires 10), not k1
        assert_eq!(ev.get(), 1);
        assert_eq!(s.begin(&k(1), short), Begin::Duplicate);
    }

    #[test]
    fn capacity_bound_holds_under_2m_distinct_ids() {
        let capacity = 100_000;
        let (s, clock, ev) = store(capacity);
        let (mut fresh, mut removed) = (0u64, 0u64);
        for i in 0..2_000_000u64 {
            let key = fast_key(i);
            if s.begin(&key, Duration::from_secs(30)) == Begin::Fresh {
                fresh += 1;
            }
            if i % 3 == 0 {
                s.finish(&key, true, Duration::from_secs(600));
            } else if i % 3 == 1 {
                s.finish(&key, false, Duration::from_secs(600));
                removed += 1;
            }
            if i % 1000 == 0 {
                clock.advance(Duration::from_millis(1));
                assert!(s.len() <= capacity);
            }
        }
        assert_eq!(fresh, 2_000_000);
        assert!(s.len() <= capacity);
        // Nothing expired (30 s in-flight marks, 2 s of clock), so every key that left the
        // store other than through finish(false) was an eviction, and each was counted.
        assert_eq!(ev.get() + removed + s.len() as u64, 2_000_000);
        assert!(ev.get() > 1_000_000);
        assert!(s.len() >= capacity - SHARDS);
    }

    #[test]
    fn large_store_is_sharded_and_bounded() {
        let capacity = SHARD_THRESHOLD + 7;
        let (s, _, ev) = store(capacity);
        assert_eq!(s.inner.shards.len(), SHARDS);
        for i in 0..(3 * capacity as u64) {
            assert_eq!(s.begin(&k(i), S), Begin::Fresh);
        }
        assert_eq!(s.len(), capacity);
        assert_eq!(ev.get(), 2 * capacity as u64);
    }

    #[test]
    fn many_distinct_ttls_share_queues() {
        let (s, clock, ev) = store(100);
        for i in 0..1000u64 {
            assert_eq!(
                s.begin(&k(i), Duration::from_millis(1 + i % 40)),
                Begin::Fresh
            );
            clock.advance(Duration::from_millis(1));
            assert!(s.len() <= 100);
            assert!(s.lock(0).queues.len() <= MAX_QUEUES);
        }
        assert!(ev.get() < 1000);
    }

    #[test]
    fn total_len_counts_every_partition() {
        let store = MemoryStore::new(100, prometheus::IntCounter::new("e", "e").unwrap());
        let (a, b) = (store.partition("a", 10), store.partition("b", 10));
        a.begin(&Key::new("a", b"1"), Duration::from_secs(60));
        b.begin(&Key::new("b", b"1"), Duration::from_secs(60));
        b.begin(&Key::new("b", b"2"), Duration::from_secs(60));
        assert_eq!(store.total_len(), 3);
        store.retain_partitions(&["b"]);
        assert_eq!(store.total_len(), 2);
    }

    #[test]
    fn partitions_do_not_evict_each_other() {
        let (root, _, ev) = store(1000);
        let victim = root.partition("victim", 4);
        let flood = root.partition("flood", 4);
        let key = |route: &str, i: u64| Key::new(route, &i.to_be_bytes());
        assert_eq!(victim.begin(&key("victim", 1), S), Begin::Fresh);
        victim.finish(&key("victim", 1), true, S);
        for i in 0..10_000 {
            assert_eq!(flood.begin(&key("flood", i), S), Begin::Fresh);
        }
        assert_eq!(flood.len(), 4);
        assert_eq!(ev.get(), 10_000 - 4, "the flood evicts its own entries");
        assert_eq!(victim.begin(&key("victim", 1), S), Begin::Duplicate);
        assert_eq!(root.len(), 0, "partitions are not the root's entries");

        // A reload asks again: same entries, new capacity; a removed route's partition goes.
        let again = root.partition("victim", 2);
        assert_eq!(again.capacity(), 2);
        assert_eq!(again.begin(&key("victim", 1), S), Begin::Duplicate);
        root.retain_partitions(&["victim"]);
        let fresh = root.partition("flood", 4);
        assert_eq!(fresh.len(), 0);
        assert_eq!(root.partition("victim", 2).len(), 1);
    }

    #[test]
    fn churn_keeps_queues_bounded() {
        let (s, _, _) = store(10);
        for _ in 0..100_000 {
            assert_eq!(s.begin(&k(1), S), Begin::Fresh);
            s.finish(&k(1), false, S);
        }
        assert!(s.lock(0).records <= 2 * 10 + 1024 + 1);
    }
}
