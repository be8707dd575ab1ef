//! TEMPORARY STUB of the replay store API (replaced by the replay branch).
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);
impl Key {
    pub fn new(route: &str, id: &[u8]) -> Key {
        let mut h = Sha256::new();
        h.update((route.len() as u64).to_be_bytes());
        h.update(route.as_bytes());
        h.update(id);
        Key(h.finalize().into())
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin { Fresh, Duplicate, InFlight }
#[derive(Debug, thiserror::Error)]
pub enum StoreError { #[error("unavailable")] Unavailable }
#[derive(Debug)]
pub enum ReplayStore { Memory(Mutex<HashMap<Key, (bool, Instant)>>) }
impl ReplayStore {
    pub fn memory(_capacity: usize, _evictions: prometheus::IntCounter) -> ReplayStore { ReplayStore::Memory(Mutex::new(HashMap::new())) }
    pub fn redis(_url: &str, _t: Duration) -> Result<ReplayStore, StoreError> { Err(StoreError::Unavailable) }
    pub fn kind(&self) -> &'static str { "memory" }
    pub async fn begin(&self, key: &Key, ttl: Duration) -> Result<Begin, StoreError> {
        let ReplayStore::Memory(m) = self; let mut m = m.lock().unwrap();
        let now = Instant::now();
        match m.get(key) { Some((done, exp)) if *exp > now => return Ok(if *done { Begin::Duplicate } else { Begin::InFlight }), _ => {} }
        m.insert(*key, (false, now + ttl)); Ok(Begin::Fresh)
    }
    pub async fn finish(&self, key: &Key, delivered: bool, ttl: Duration) -> Result<(), StoreError> {
        let ReplayStore::Memory(m) = self; let mut m = m.lock().unwrap();
        if delivered { m.insert(*key, (true, Instant::now() + ttl)); } else { m.remove(key); } Ok(())
    }
}
