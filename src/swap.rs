//! One hot-swappable value ([`Swap`]): the proxy's config snapshot and the TLS listener's
//! certificate setup. Readers take the value in force without waiting on a lock; a writer
//! replaces it whole, and whoever took the old one keeps it until they drop it (a request in
//! flight keeps its config, an open connection its certificate).

use std::sync::Arc;

use arc_swap::ArcSwap;

/// A value replaced whole, read without locking.
#[derive(Debug)]
pub struct Swap<T>(ArcSwap<T>);

impl<T> Swap<T> {
    /// `value` in force.
    pub fn new(value: T) -> Swap<T> {
        Swap(ArcSwap::from_pointee(value))
    }

    /// The value in force now.
    pub fn load(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// Puts `value` in force; returns the one it replaces.
    pub fn store(&self, value: T) -> Arc<T> {
        self.0.swap(Arc::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_the_value_it_took_across_a_store() {
        let s = Swap::new(1);
        let before = s.load();
        let old = s.store(2);
        assert_eq!((*before, *old, *s.load()), (1, 1, 2));
    }
}
