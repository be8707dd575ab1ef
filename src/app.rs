//! Wiring: one config, two bound listeners and a shutdown signal become a running sidecar.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::admin::{self, Readiness};
use crate::config::{Config, StoreKind};
use crate::metrics::Metrics;
use crate::proxy::Proxy;
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
}

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The replay store could not be set up (malformed URL).
    #[error("replay store: {0}")]
    Replay(#[from] StoreError),
}

impl App {
    /// Builds the pipeline for `config`.
    ///
    /// # Errors
    /// See [`StartError`].
    pub fn new(config: Config) -> Result<App, StartError> {
        let metrics = Arc::new(Metrics::new());
        let replay = match config.replay.store {
            StoreKind::Memory => {
                ReplayStore::memory(config.replay.capacity, metrics.replay_evictions.clone())
            }
            StoreKind::Redis => ReplayStore::redis(
                config.replay.url.as_deref().unwrap_or_default(),
                config.replay.command_timeout,
            )?,
        };
        let tls = config.listen.server_tls.clone().map(TlsAcceptor::new);
        if let Some(t) = &config.listen.server_tls {
            metrics.tls_in_force(t);
        }
        metrics.config_applied();
        let baseline = crate::reload::Baseline::new(&config);
        let replay = Arc::new(replay);
        let proxy = Arc::new(Proxy::new(
            config,
            Arc::clone(&metrics),
            Arc::clone(&replay),
        ));
        Ok(App {
            proxy,
            metrics,
            replay,
            ready: Readiness::default(),
            tls,
            reload: Arc::new(Notify::new()),
            baseline,
            workers: Workers::default(),
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
            crate::reload::Watcher::new(self.clone(), self.baseline.clone())
                .run(Arc::clone(&self.reload), std::future::pending()),
        );
        // Once a second: lines held back by the rejection-log rate limit, and the replay
        // store's size.
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
                tracing::info!(
                    drain_delay = %crate::config::fmt_duration(drain_delay),
                    "shutdown requested; /readyz is 503"
                );
                tokio::time::sleep(drain_delay).await;
            })
            .await;
        reloader.abort();
        reporter.abort();
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
