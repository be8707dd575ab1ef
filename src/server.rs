//! The accept loop: connection limit, optional TLS, HTTP/1.1 and HTTP/2, graceful drain.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::proxy::{ConnInfo, Proxy};
use crate::tls::TlsAcceptor;

/// The public listener and what it serves.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    proxy: Arc<Proxy>,
    metrics: Arc<Metrics>,
    limits: Limits,
    tls: Option<TlsAcceptor>,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections still open when `shutdown_grace` ran out (0: a clean drain).
    pub cut_off: usize,
}

impl Server {
    /// A server on an already-bound listener (tests bind `127.0.0.1:0`).
    pub fn new(
        listener: TcpListener,
        proxy: Arc<Proxy>,
        metrics: Arc<Metrics>,
        limits: Limits,
        tls: Option<TlsAcceptor>,
    ) -> Server {
        Server {
            listener,
            proxy,
            metrics,
            limits,
            tls,
        }
    }

    /// Serves until `stop` completes, then stops accepting, lets open connections finish their
    /// requests (HTTP/2 gets GOAWAY) for up to `limits.shutdown_grace`, and returns.
    pub async fn run(self, stop: impl Future<Output = ()>) -> Drained {
        let Server {
            listener,
            proxy,
            metrics,
            limits,
            tls,
        } = self;
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_headers(limits.max_headers)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(256)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(10));
        let builder = Arc::new(builder);
        tokio::pin!(stop);

        loop {
            // Take a permit before accepting: over the limit, new connections wait in the
            // kernel backlog instead of being accepted and dropped.
            let permit = tokio::select! {
                () = &mut stop => break,
                p = Arc::clone(&permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (tcp, peer) = tokio::select! {
                () = &mut stop => break,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let proxy = Arc::clone(&proxy);
            let metrics = Arc::clone(&metrics);
            let builder = Arc::clone(&builder);
            let tls = tls.clone();
            let watcher = graceful.watcher();
            let handshake_timeout = limits.header_timeout;
            tokio::spawn(async move {
                let _permit = permit;
                metrics.connections.inc();
                let _conn_guard = ConnGuard(&metrics);
                match tls {
                    None => {
                        let info = ConnInfo { peer, tls: false };
                        let svc = service_fn(move |req| {
                            let proxy = Arc::clone(&proxy);
                            async move {
                                Ok::<_, std::convert::Infallible>(proxy.handle(req, info).await)
                            }
                        });
                        let conn = builder.serve_connection(TokioIo::new(tcp), svc);
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                        }
                    }
                    Some(acceptor) => {
                        let stream = match tokio::time::timeout(
                            handshake_timeout,
                            acceptor.accept(tcp),
                        )
                        .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                metrics.tls_handshake_errors.inc();
                                tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                metrics.tls_handshake_errors.inc();
                                tracing::debug!(peer = %peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        let info = ConnInfo { peer, tls: true };
                        let svc = service_fn(move |req| {
                            let proxy = Arc::clone(&proxy);
                            async move {
                                Ok::<_, std::convert::Infallible>(proxy.handle(req, info).await)
                            }
                        });
                        let conn = builder.serve_connection(TokioIo::new(stream), svc);
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                        }
                    }
                }
            });
        }
        drop(listener);
        let open = graceful.count();
        tracing::info!(open_connections = open, "stopped accepting; draining");
        match tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await {
            Ok(()) => Drained { cut_off: 0 },
            Err(_) => {
                let left = limits.max_connections - permits.available_permits();
                tracing::warn!(
                    connections = left,
                    "shutdown grace ran out; cutting off open connections"
                );
                Drained { cut_off: left }
            }
        }
    }
}

/// Keeps `hookseal_connections` right however the connection task ends.
struct ConnGuard<'a>(&'a Metrics);

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}
