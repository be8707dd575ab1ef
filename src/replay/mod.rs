//! Replay protection: remembers which (route, message id) pairs are in flight or were delivered.
//!
//! Two stores sit behind one enum ([`ReplayStore`]), dispatched by `match`:
//!
//! - [`memory::MemoryStore`]: bounded, expiring, per process.
//! - [`redis::RedisStore`]: shared by every replica, so a replay sent to another pod is still
//!   caught.
//!
//! The proxy calls [`ReplayStore::begin`] after verification (SPEC "A request, in order" step 4)
//! and [`ReplayStore::finish`] once the upstream has answered (step 6). Stores keep a fixed-size
//! [`Key`], never the `HeaderValue` the id came from (STYLE.md, implementation notes).

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub mod memory;
pub mod redis;
#[doc(hidden)]
pub mod testing;

/// Bytes in a [`Key`].
pub const KEY_LEN: usize = 16;

/// A fixed-size digest of (route name, message id): what both stores keep.
///
/// It is the first 16 bytes (128 bits) of a SHA-256 over an unambiguous encoding of the pair.
/// 16 bytes rather than 32 because:
///
/// - Accidental collisions are out of reach: with n keys alive the chance of any collision is
///   about n² / 2¹²⁹, i.e. ~10⁻²⁶ at 2 million entries.
/// - A deliberate collision costs ~2⁶⁴ SHA-256 evaluations *and* only ids that passed signature
///   verification are stored, so only a holder of the route's secret could plant one; its only
///   effect would be to make that sender's own message look like a duplicate.
/// - Halving the key saves 16 bytes per entry in the in-memory map and its expiry queue, and
///   halves the Redis key (32 hex characters instead of 64).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// Derives the key for message `id` on route `route`.
    ///
    /// The digest input is a domain label, the route's length as a big-endian `u64`, the route,
    /// then the id: the length prefix keeps ("ab", "c") and ("a", "bc") apart.
    pub fn new(route: &str, id: &[u8]) -> Key {
        let mut h = Sha256::new();
        h.update(b"hookseal/replay/v1\0");
        h.update((route.len() as u64).to_be_bytes());
        h.update(route.as_bytes());
        h.update(id);
        let digest = h.finalize();
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&digest[..KEY_LEN]);
        Key(key)
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The digest as lowercase hex (the Redis key suffix).
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    /// The first 8 bytes as a `u64`: the digest is uniformly distributed, so this is a hash.
    fn hash_word(&self) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(w)
    }

    /// The next 8 bytes as a `u64`: independent of [`Key::hash_word`], used to pick a shard.
    fn shard_word(&self) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[8..16]);
        u64::from_le_bytes(w)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.to_hex())
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash_word());
    }
}

/// What [`ReplayStore::begin`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// Not seen (or expired): the caller now holds the in-flight mark and must call `finish`.
    Fresh,
    /// Already delivered with a 2xx: answer 200 duplicate, do not forward.
    Duplicate,
    /// Being forwarded right now by another request: answer 409 `in_flight`.
    InFlight,
}

/// Why a store operation failed. Messages are short and never carry key bytes or passwords.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL could not be used; the reason never echoes the URL (it may hold a password).
    #[error("invalid replay store url: {0}")]
    InvalidUrl(&'static str),
    /// The store did not answer within the command timeout.
    #[error("replay store timed out")]
    Timeout,
    /// The store could not be reached or refused the command.
    #[error("replay store unavailable: {0}")]
    Unavailable(String),
    /// A `rediss://` store was configured before a rustls `CryptoProvider` was installed.
    #[error("rediss:// needs a rustls crypto provider installed first")]
    NoCryptoProvider,
    /// The store answered something this code did not expect.
    #[error("unexpected reply from replay store")]
    Protocol,
}

/// The replay store the proxy uses, chosen by `[replay] store` in the config.
///
/// Cloning is cheap and shares the underlying state (a config reload can keep the same store).
#[derive(Debug, Clone)]
pub enum ReplayStore {
    /// Bounded, expiring, per-process store.
    Memory(memory::MemoryStore),
    /// Store shared by every replica through Redis.
    Redis(redis::RedisStore),
}

impl ReplayStore {
    /// An in-memory store holding at most `capacity` keys (at least 1).
    ///
    /// `evictions` is incremented once for every entry that had to be dropped before it
    /// expired to make room.
    pub fn memory(capacity: usize, evictions: prometheus::IntCounter) -> ReplayStore {
        ReplayStore::Memory(memory::MemoryStore::new(capacity, evictions))
    }

    /// A Redis store for `url` (`redis://[:password@]host[:port][/db]`, or `rediss://` for
    /// TLS). Does not connect: the first command does, and the store reconnects by itself
    /// after Redis restarts, so the proxy can start while Redis is down. Every command is
    /// bounded by `command_timeout`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidUrl`] for a malformed URL; [`StoreError::NoCryptoProvider`] for a
    /// `rediss://` URL before a rustls crypto provider is installed.
    pub fn redis(url: &str, command_timeout: Duration) -> Result<ReplayStore, StoreError> {
        redis::RedisStore::new(url, command_timeout).map(ReplayStore::Redis)
    }

    /// The store route `route` uses: for the memory store, a partition of its own holding at
    /// most `capacity` keys (see [`memory::MemoryStore::partition`]), so that no route's writes
    /// evict another route's entries; for Redis, the shared store (Redis bounds its own memory).
    pub fn partition(&self, route: &str, capacity: usize) -> ReplayStore {
        match self {
            ReplayStore::Memory(m) => ReplayStore::Memory(m.partition(route, capacity)),
            ReplayStore::Redis(r) => ReplayStore::Redis(r.clone()),
        }
    }

    /// Drops the memory partitions of routes not in `routes`; nothing for Redis.
    pub fn retain_partitions(&self, routes: &[&str]) {
        if let ReplayStore::Memory(m) = self {
            m.retain_partitions(routes);
        }
    }

    /// Keys the memory store holds, partitions included (the `hookseal_replay_entries`
    /// gauge); `None` for Redis, whose size is Redis's to report.
    pub fn entries(&self) -> Option<usize> {
        match self {
            ReplayStore::Memory(m) => Some(m.total_len()),
            ReplayStore::Redis(_) => None,
        }
    }

    /// `"memory"` or `"redis"`: the `store` label of `hookseal_replay_store_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplayStore::Memory(_) => "memory",
            ReplayStore::Redis(_) => "redis",
        }
    }

    /// Atomically: if `key` is absent, marks it in flight for `inflight_ttl` and returns
    /// [`Begin::Fresh`]; if it is marked done returns [`Begin::Duplicate`]; if it is in flight
    /// returns [`Begin::InFlight`].
    ///
    /// # Errors
    ///
    /// The memory store never fails. The Redis store returns [`StoreError::Timeout`] or
    /// [`StoreError::Unavailable`] when Redis does not answer in time or cannot be reached.
    pub async fn begin(&self, key: &Key, inflight_ttl: Duration) -> Result<Begin, StoreError> {
        match self {
            ReplayStore::Memory(m) => Ok(m.begin(key, inflight_ttl)),
            ReplayStore::Redis(r) => r.begin(key, inflight_ttl).await,
        }
    }

    /// After forwarding: `delivered == true` (upstream answered 2xx) marks `key` done, kept for
    /// `done_ttl`; `false` removes the in-flight mark so the sender's retry is forwarded again.
    ///
    /// A key already marked done stays done (a late failure never re-opens a delivered message).
    /// A delivered key whose in-flight mark has meanwhile expired or been evicted is still
    /// recorded as done: the message *was* delivered.
    ///
    /// The in-flight mark carries no owner token (the API has none), so if a mark lapses
    /// (`inflight_ttl` shorter than the forward really took) and another request re-begins the
    /// key, a `finish(false)` of the first clears the second's mark. The proxy avoids this by
    /// passing an `inflight_ttl` above the upstream timeout.
    ///
    /// # Errors
    ///
    /// As for [`ReplayStore::begin`].
    pub async fn finish(
        &self,
        key: &Key,
        delivered: bool,
        done_ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            ReplayStore::Memory(m) => {
                m.finish(key, delivered, done_ttl);
                Ok(())
            }
            ReplayStore::Redis(r) => r.finish(key, delivered, done_ttl).await,
        }
    }
}

/// One behaviour, checked against every store (memory here, Redis in `redis::redis_tests`).
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;

    const T: Duration = Duration::from_secs(30);

    /// Runs the begin/finish state machine on `store`. `route` keeps runs apart.
    pub(crate) async fn check_semantics(store: &ReplayStore, route: &str) {
        let k = |id: &str| Key::new(route, id.as_bytes());
        let b = |key: Key, ttl| {
            let store = store.clone();
            async move { store.begin(&key, ttl).await.unwrap() }
        };

        // Fresh → InFlight → done → Duplicate; a late failure keeps it done.
        assert_eq!(b(k("a"), T).await, Begin::Fresh);
        assert_eq!(b(k("a"), T).await, Begin::InFlight);
        store.finish(&k("a"), true, T).await.unwrap();
        assert_eq!(b(k("a"), T).await, Begin::Duplicate);
        store.finish(&k("a"), false, T).await.unwrap();
        assert_eq!(b(k("a"), T).await, Begin::Duplicate);

        // A failed delivery frees the key for the sender's retry.
        assert_eq!(b(k("b"), T).await, Begin::Fresh);
        store.finish(&k("b"), false, T).await.unwrap();
        assert_eq!(b(k("b"), T).await, Begin::Fresh);
        assert_eq!(b(k("b"), T).await, Begin::InFlight);

        // Other keys, and the same id on another route, are independent.
        assert_eq!(b(k("c"), T).await, Begin::Fresh);
        let other = Key::new(&format!("{route}-other"), b"a");
        assert_eq!(b(other, T).await, Begin::Fresh);

        // finish on an unknown key: not delivered is a no-op; delivered records it.
        store.finish(&k("d"), false, T).await.unwrap();
        assert_eq!(b(k("d"), T).await, Begin::Fresh);
        store.finish(&k("e"), true, T).await.unwrap();
        assert_eq!(b(k("e"), T).await, Begin::Duplicate);

        // Expiry, in real time: in-flight marks and done marks both lapse.
        let short = Duration::from_millis(60);
        assert_eq!(b(k("f"), short).await, Begin::Fresh);
        assert_eq!(b(k("g"), T).await, Begin::Fresh);
        store.finish(&k("g"), true, short).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(b(k("f"), T).await, Begin::Fresh);
        assert_eq!(b(k("g"), T).await, Begin::Fresh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_semantics() {
        let evictions = prometheus::IntCounter::new("e", "e").unwrap();
        let store = ReplayStore::memory(1000, evictions.clone());
        assert_eq!(store.kind(), "memory");
        conformance::check_semantics(&store, "memory-route").await;
        assert_eq!(evictions.get(), 0);
    }

    #[test]
    fn key_is_length_prefixed() {
        assert_ne!(Key::new("ab", b"c"), Key::new("a", b"bc"));
        assert_ne!(Key::new("a", b"x"), Key::new("b", b"x"));
        assert_eq!(Key::new("a", b"x"), Key::new("a", b"x"));
    }

    #[test]
    fn key_hex_is_32_lowercase_chars() {
        let hex = Key::new("r", b"id").to_hex();
        assert_eq!(hex.len(), 32);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
}
