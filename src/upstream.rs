//! The pooled client to the application.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Why the upstream gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Refused, reset, or closed before a response head.
    #[error("upstream unavailable")]
    Unavailable,
    /// No response head within the timeout.
    #[error("upstream timed out")]
    Timeout,
}

/// Keep-alive connections to the app, shared by every route.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl UpstreamClient {
    /// A client whose connection attempts give up after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> UpstreamClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            // hyper retries a request only when the pooled connection was closed before any
            // of it was written, so a webhook that may have been delivered is never re-sent.
            .retry_canceled_requests(true)
            .build(connector);
        UpstreamClient { client }
    }

    /// Sends `req` and waits up to `timeout` for the response head. The body streams after.
    ///
    /// # Errors
    /// See [`UpstreamError`].
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, connect = e.is_connect(), "upstream request failed");
                Err(UpstreamError::Unavailable)
            }
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}
