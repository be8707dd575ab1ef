//! Wiring: one config, two bound listeners and a shutdown signal become a running sidecar.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::admin::{self, Readiness};
use crate::config::{Config, ConfigErrors, StoreKind};
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::queue::{QueueError, Spool};
use crate::reload::{restart_only_changes, Target, Trigger};
use crate::replay::{ReplayStore, StoreError};
use crate::server::{Drained, Server};
use crate::tls::TlsAcceptor;
use crate::workers::Workers;

/// Handles to a running sidecar, for main and for tests.
#[derive(Debug, Clone)]
pub struct App {
    /// The pipeline (reload swaps its config).
    pub proxy: Arc<Proxy>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// The replay store the pipeline dedupes with (its size is reported as a gauge).
    replay: Arc<ReplayStore>,
    /// `/readyz`.
    pub ready: Readiness,
    /// The TLS listener's certificate in force (`None`: plain HTTP); reload swaps it.
    pub tls: Option<TlsAcceptor>,
    /// Wakes the reload watcher (SIGHUP).
    reload: Arc<Notify>,
    /// The watched files as they were when the config was loaded.
    baseline: crate::reload::Baseline,
    /// The threads connections are spread over (none: all on the runtime that runs `run`).
    workers: Workers,
    /// `[queue] claim_after`, for the delivery worker.
    claim_after: std::time::Duration,
}

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The replay store could not be set up (malformed URL).
    #[error("replay store: {0}")]
    Replay(#[from] StoreError),
    /// The spool of queued routes could not be opened (the message names the file).
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

/// Redis commands of the spool give up after this (then: 503 `queue_unavailable`).
const SPOOL_COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The spool, when a route is queued or `[queue]` is configured (so that a reload can make a
/// route queued); `None` otherwise: a config without queued delivery touches no spool.
fn open_spool(config: &Config) -> Result<Option<Spool>, QueueError> {
    let q = &config.queue;
    if !q.configured && !config.routes.iter().any(|r| r.delivery.queued()) {
        return Ok(None);
    }
    let limits = crate::queue::Limits {
        max_bytes: q.max_bytes,
        max_entries: q.max_entries,
    };
    let spool = match q.store {
        crate::config::QueueStore::Disk => {
            Spool::Disk(crate::queue::disk::DiskSpool::open(&q.path, limits)?)
        }
        crate::config::QueueStore::Redis => Spool::Redis(crate::queue::redis::RedisSpool::new(
            q.url.as_deref().unwrap_or_default(),
            SPOOL_COMMAND_TIMEOUT,
            limits,
        )?),
    };
    Ok(Some(spool))
}

impl App {
    /// Builds the pipeline for `config`.
    ///
    /// # Errors
    /// See [`StartError`].
    pub fn new(config: Config) -> Result<App, StartError> {
        let metrics = Arc::new(Metrics::new());
        let replay = match &config.replay.store {
            StoreKind::Memory => {
                ReplayStore::memory(config.replay.capacity, metrics.replay_evictions.clone())
            }
            StoreKind::Redis { url } => ReplayStore::redis(url, config.replay.command_timeout)?,
        };
        let tls = config.listen.server_tls.clone().map(TlsAcceptor::new);
        if let Some(t) = &config.listen.server_tls {
            metrics.tls_in_force(t);
        }
        metrics.config_applied();
        let baseline = crate::reload::Baseline::new(&config);
        let replay = Arc::new(replay);
        let spool = open_spool(&config)?;
        let claim_after = config.queue.claim_after;
        let mut proxy = Proxy::new(config, Arc::clone(&metrics), Arc::clone(&replay));
        if let Some(spool) = spool {
            proxy = proxy.with_spool(spool);
        }
        let proxy = Arc::new(proxy);
        Ok(App {
            proxy,
            metrics,
            replay,
            ready: Readiness::default(),
            tls,
            reload: Arc::new(Notify::new()),
            baseline,
            workers: Workers::default(),
            claim_after,
        })
    }

    /// Serves connections on `workers` too (thread per core; see [`crate::workers`]).
    pub fn with_workers(mut self, workers: Workers) -> App {
        self.workers = workers;
        self
    }

    /// Reloads the config file now (what SIGHUP does); the outcome is logged and counted.
    pub fn request_reload(&self) {
        self.reload.notify_one();
    }

    /// Serves on the given listeners until `shutdown` completes, then drains per SPEC.md:
    /// `/readyz` turns 503 at once, the listener keeps accepting for `drain_delay`, then stops;
    /// requests in flight get `shutdown_grace`. The admin port closes last.
    pub async fn run(
        self,
        listener: TcpListener,
        admin_listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Drained {
        let snapshot = self.proxy.snapshot();
        let limits = snapshot.config.limits.clone();
        let (stop_admin_tx, mut stop_admin_rx) = watch::channel(false);
        let admin_task = tokio::spawn(admin::serve(
            admin_listener,
            Arc::clone(&self.metrics),
            self.ready.clone(),
            Some(crate::queue::admin::QueueAdmin::new(Arc::clone(
                &self.proxy,
            ))),
            Arc::clone(self.proxy.rejections()),
            async move {
                let _ = stop_admin_rx.wait_for(|s| *s).await;
            },
        ));
        let server = Server::new(
            listener,
            Arc::clone(&self.proxy),
            Arc::clone(&self.metrics),
            limits.clone(),
            self.tls.clone(),
        )
        .with_workers(self.workers.clone());
        // Reload: SIGHUP and changes to the config file or any file it names (README "Reload").
        let reloader = tokio::spawn(
            crate::reload::Watcher::new(Arc::new(self.clone()), self.baseline.clone())
                .run(Arc::clone(&self.reload), std::future::pending()),
        );
        // Queued delivery: the worker stops claiming when shutdown begins.
        let (stop_worker_tx, stop_worker_rx) = watch::channel(false);
        let worker = self.proxy.spool().cloned().map(|spool| {
            let w = crate::queue::worker::Worker::new(
                Arc::clone(&self.proxy),
                spool,
                Arc::clone(&self.metrics),
                self.claim_after,
            );
            tokio::spawn(w.run(stop_worker_rx, limits.shutdown_grace))
        });
        // Once a second: lines held back by the rejection-log rate limit, the replay
        // store's size and the spool's numbers.
        let reporter = tokio::spawn({
            let proxy = Arc::clone(&self.proxy);
            let (replay, metrics) = (Arc::clone(&self.replay), Arc::clone(&self.metrics));
            async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    proxy.report_suppressed_logs();
                    if let Some(n) = replay.entries() {
                        metrics
                            .replay_entries
                            .set(i64::try_from(n).unwrap_or(i64::MAX));
                    }
                    crate::queue::admin::report_stats(&proxy, &metrics).await;
                }
            }
        });
        // Traces: the span queue's exporter (idle while `[tracing]` is off).
        let (stop_exporter, exporter_stop) = tokio::sync::oneshot::channel::<()>();
        let exporter = tokio::spawn({
            let proxy = Arc::clone(&self.proxy);
            Arc::clone(self.proxy.tracer()).run(
                move || proxy.snapshot().config.tracing.clone(),
                async move {
                    let _ = exporter_stop.await;
                },
            )
        });
        self.ready.set(true);
        let ready = self.ready.clone();
        let drain_delay = limits.drain_delay;
        let drained = server
            .run(async move {
                shutdown.await;
                ready.set(false);
                let _ = stop_worker_tx.send(true);
                tracing::info!(
                    drain_delay = %crate::config::fmt_duration(drain_delay),
                    "shutdown requested; /readyz is 503"
                );
                tokio::time::sleep(drain_delay).await;
            })
            .await;
        reloader.abort();
        reporter.abort();
        if let Some(w) = worker {
            // The worker bounds its own wait by shutdown_grace.
            let _ = w.await;
        }
        // The last spans, within a bound: a collector that is down does not hold up the exit.
        let _ = stop_exporter.send(());
        let exporter_abort = exporter.abort_handle();
        if tokio::time::timeout(crate::otel::FLUSH_TIMEOUT, exporter)
            .await
            .is_err()
        {
            exporter_abort.abort();
        }
        self.proxy.report_suppressed_logs();
        let _ = stop_admin_tx.send(true);
        let _ = admin_task.await;
        drained
    }
}

/// Reload's outcomes, applied to the running sidecar: the new config (and its TLS certificate)
/// swapped in whole, counted in `hookseal_config_reloads_total{result}` and, when TLS is
/// involved, `hookseal_tls_certificate_reloads_total{result}`.
impl Target for App {
    fn apply(&self, config: Config, trigger: Trigger) {
        let old = self.proxy.snapshot();
        let restart = restart_only_changes(&old.config, &config);
        if !restart.is_empty() {
            tracing::warn!(
                keys = %restart.join(", "),
                "changed keys take effect only on restart; the rest of the new config is in force"
            );
        }
        let routes = config.routes.len();
        let source = config.source.clone();
        if let (Some(acceptor), Some(tls)) = (&self.tls, &config.listen.server_tls) {
            acceptor.swap(tls.clone());
            self.metrics.cert_reloads.with_label_values(&["ok"]).inc();
            self.metrics.tls_in_force(tls);
            tracing::info!(
                not_after = %crate::tls::fmt_time(tls.not_after),
                "TLS certificate loaded for new connections"
            );
        }
        self.proxy.reload(config);
        self.metrics.reload(true);
        tracing::info!(config = %source.display(), trigger = trigger.as_str(), routes, "config reloaded");
    }

    fn refuse(&self, errors: &ConfigErrors) {
        self.metrics.reload(false);
        if self.tls.is_some() && errors.0.iter().any(|e| e.key.starts_with("listen.tls")) {
            self.metrics
                .cert_reloads
                .with_label_values(&["error"])
                .inc();
        }
    }
}
