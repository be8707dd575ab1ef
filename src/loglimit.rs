//! Rate limit on rejection log lines, so that a scanner hammering a route cannot flood the log.
//!
//! Each route holds a [`LogGate`]: a fixed table with one slot per [`Reason`], each allowing
//! [`LINES_PER_SECOND`] lines per second and counting the lines it holds back. A periodic
//! [`LogGate::take_suppressed`] (once a second, and when a config is swapped out) turns those
//! counts into one line per route and reason. Admitting a line costs two atomic operations on
//! the slot and no allocation; metrics are not affected (every request is still counted).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::error::Reason;

/// Rejection lines written per route and reason in one second; the rest are counted.
pub const LINES_PER_SECOND: u32 = 10;

/// One (route, reason) slot: the current second and the lines written in it, packed as
/// `second << 32 | count`, and the lines held back since the last report.
#[derive(Debug, Default)]
struct Slot {
    window: AtomicU64,
    suppressed: AtomicU64,
}

/// The rejection-line budget of one route.
#[derive(Debug)]
pub struct LogGate {
    epoch: Instant,
    slots: [Slot; Reason::ALL.len()],
}

impl Default for LogGate {
    fn default() -> Self {
        LogGate::new()
    }
}

impl LogGate {
    /// A gate with the full budget.
    pub fn new() -> LogGate {
        LogGate {
            epoch: Instant::now(),
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }

    /// Whether a line for `reason` may be written now; if not, it is counted as suppressed.
    pub fn admit(&self, reason: Reason) -> bool {
        self.admit_at(reason, self.epoch.elapsed().as_secs())
    }

    fn admit_at(&self, reason: Reason, second: u64) -> bool {
        let Some(slot) = self.slots.get(reason.index()) else {
            return true;
        };
        let second = second & 0xffff_ffff;
        let mut cur = slot.window.load(Ordering::Relaxed);
        loop {
            let (sec, count) = (cur >> 32, cur & 0xffff_ffff);
            let next = if sec != second {
                (second << 32) | 1
            } else if count < u64::from(LINES_PER_SECOND) {
                cur + 1
            } else {
                slot.suppressed.fetch_add(1, Ordering::Relaxed);
                return false;
            };
            match slot
                .window
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The lines held back since the last call, per reason (only reasons with some), and
    /// resets those counts.
    pub fn take_suppressed(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL
            .iter()
            .zip(self.slots.iter())
            .filter_map(|(reason, slot)| {
                if slot.suppressed.load(Ordering::Relaxed) == 0 {
                    return None;
                }
                let n = slot.suppressed.swap(0, Ordering::Relaxed);
                (n > 0).then_some((*reason, n))
            })
    }

    /// Writes one warn line per reason with suppressed lines, for `route`.
    pub fn report(&self, route: &str) {
        for (reason, suppressed) in self.take_suppressed() {
            tracing::warn!(
                route = %route,
                reason = %reason.as_str(),
                suppressed,
                limit_per_second = LINES_PER_SECOND,
                "rejection log lines suppressed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_gets_its_own_budget_per_second_and_the_rest_is_counted() {
        let g = LogGate::new();
        let n = LINES_PER_SECOND as usize;
        let admitted = (0..n + 5)
            .filter(|_| g.admit_at(Reason::BadSignature, 7))
            .count();
        assert_eq!(admitted, n);
        assert!(
            g.admit_at(Reason::StaleTimestamp, 7),
            "another reason is not held back"
        );
        assert!(g.admit_at(Reason::BadSignature, 8), "a new second");
        let got: Vec<_> = g.take_suppressed().collect();
        assert_eq!(got, vec![(Reason::BadSignature, 5)]);
        assert_eq!(g.take_suppressed().count(), 0, "counts were reset");
    }

    #[test]
    fn concurrent_callers_never_exceed_the_budget() {
        let g = std::sync::Arc::new(LogGate::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let g = std::sync::Arc::clone(&g);
                std::thread::spawn(move || {
                    (0..1000).filter(|_| g.admit_at(Reason::NoRoute, 3)).count()
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, LINES_PER_SECOND as usize);
        let suppressed: u64 = g.take_suppressed().map(|(_, n)| n).sum();
        assert_eq!(suppressed, 4000 - u64::from(LINES_PER_SECOND));
    }
}
