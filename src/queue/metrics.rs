//! The queued-delivery metric families (SPEC "Queued delivery"), on the process's registry.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::RouteStats;

/// Buckets of `hookseal_delivery_delay_seconds`: accepted → delivered, from a moment to a day.
pub const DELAY_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

/// Buckets of `hookseal_queue_enqueue_duration_seconds`: a durable write (fsync, or a Redis
/// round trip).
pub const ENQUEUE_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The `result` values of `hookseal_delivery_attempts_total`.
pub const ATTEMPT_RESULTS: [&str; 3] = ["delivered", "retry", "dead"];

/// Handles of the queue families.
#[derive(Debug, Clone)]
pub struct QueueMetrics {
    /// `hookseal_queue_depth{route}`
    depth: IntGaugeVec,
    /// `hookseal_queue_dead{route}`
    dead: IntGaugeVec,
    /// `hookseal_queue_oldest_seconds{route}`
    oldest: GaugeVec,
    /// `hookseal_queue_enqueue_duration_seconds`
    pub enqueue_duration: Histogram,
    /// `hookseal_delivery_attempts_total{route,result}`
    attempts: IntCounterVec,
    /// `hookseal_delivery_delay_seconds{route}`
    delay: HistogramVec,
    /// Routes whose series exist, so a reload that drops a queued route drops its series.
    routes: std::sync::Arc<Mutex<HashSet<String>>>,
}

impl QueueMetrics {
    /// Creates the families and registers them on `registry`.
    ///
    /// # Errors
    /// A registration error (duplicate names: a bug).
    pub fn new(registry: &Registry) -> prometheus::Result<QueueMetrics> {
        let depth = IntGaugeVec::new(
            Opts::new(
                "hookseal_queue_depth",
                "Entries waiting or in flight in the spool, by route (updated every second).",
            ),
            &["route"],
        )?;
        let dead = IntGaugeVec::new(
            Opts::new(
                "hookseal_queue_dead",
                "Dead-lettered entries in the spool, by route (updated every second).",
            ),
            &["route"],
        )?;
        let oldest = GaugeVec::new(
            Opts::new(
                "hookseal_queue_oldest_seconds",
                "Age of the oldest waiting entry, by route; 0 when none (updated every second).",
            ),
            &["route"],
        )?;
        let enqueue_duration = Histogram::with_opts(
            HistogramOpts::new(
                "hookseal_queue_enqueue_duration_seconds",
                "Time to store an accepted request durably in the spool.",
            )
            .buckets(ENQUEUE_BUCKETS.to_vec()),
        )?;
        let attempts = IntCounterVec::new(
            Opts::new(
                "hookseal_delivery_attempts_total",
                "Delivery attempts toward the app by route and result (delivered, retry, dead).",
            ),
            &["route", "result"],
        )?;
        let delay = HistogramVec::new(
            HistogramOpts::new(
                "hookseal_delivery_delay_seconds",
                "Time from acceptance (202) to the app's 2xx, by route.",
            )
            .buckets(DELAY_BUCKETS.to_vec()),
            &["route"],
        )?;
        registry.register(Box::new(depth.clone()))?;
        registry.register(Box::new(dead.clone()))?;
        registry.register(Box::new(oldest.clone()))?;
        registry.register(Box::new(enqueue_duration.clone()))?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(delay.clone()))?;
        Ok(QueueMetrics {
            depth,
            dead,
            oldest,
            enqueue_duration,
            attempts,
            delay,
            routes: std::sync::Arc::default(),
        })
    }

    /// Makes the per-route series exactly those of `routes` (the queued routes in force).
    pub fn retain(&self, routes: &[&str]) {
        let mut live = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let keep: HashSet<String> = routes.iter().map(|r| (*r).to_owned()).collect();
        for gone in live.difference(&keep) {
            let _ = self.depth.remove_label_values(&[gone]);
            let _ = self.dead.remove_label_values(&[gone]);
            let _ = self.oldest.remove_label_values(&[gone]);
            let _ = self.delay.remove_label_values(&[gone]);
            for r in ATTEMPT_RESULTS {
                let _ = self.attempts.remove_label_values(&[gone, r]);
            }
        }
        for r in &keep {
            self.depth.with_label_values(&[r]);
            self.dead.with_label_values(&[r]);
            self.oldest.with_label_values(&[r]);
            self.delay.with_label_values(&[r]);
            for res in ATTEMPT_RESULTS {
                self.attempts.with_label_values(&[r, res]);
            }
        }
        *live = keep;
    }

    /// Sets the gauges from the spool's numbers.
    pub fn set_stats(&self, stats: &BTreeMap<String, RouteStats>) {
        let live = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        for (route, s) in stats.iter().filter(|(r, _)| live.contains(*r)) {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.depth.with_label_values(&[route]).set(gauge(s.depth));
            self.dead.with_label_values(&[route]).set(gauge(s.dead));
            self.oldest
                .with_label_values(&[route])
                .set(s.oldest_ms as f64 / 1000.0);
        }
    }

    /// Counts one attempt's `result` (one of [`ATTEMPT_RESULTS`]).
    pub fn attempt(&self, route: &str, result: &str) {
        self.attempts.with_label_values(&[route, result]).inc();
    }

    /// Observes one delivery's delay, acceptance to 2xx.
    pub fn delivered_after(&self, route: &str, seconds: f64) {
        self.delay.with_label_values(&[route]).observe(seconds);
    }
}
