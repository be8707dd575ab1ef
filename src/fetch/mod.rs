//! The outbound HTTPS client: JWKS documents, SNS signing certificates, SNS subscription
//! confirmations. Small on purpose, and strict:
//!
//! * `https` only; the URL's host must be on the allow-list the caller passes (exact names,
//!   ASCII case-insensitive), checked **before** anything is resolved or connected. Patterns
//!   such as `sns.{region}.amazonaws.com` are the caller's business: it expands them (the
//!   region comes from a signed-over field it already checked) into the exact host it allows.
//! * A connect timeout (per address tried) and a total timeout over everything (resolve,
//!   connect, TLS, request, response head, body): no fetch can hang a request.
//! * The response body is capped: a `Content-Length` above the cap is refused before reading,
//!   and reading stops (error) as soon as the cap is passed.
//! * No redirects: any status outside 2xx, 3xx included, is [`FetchError::Status`].
//! * Server certificates are verified against the roots given to [`Fetcher::new`]; the
//!   default ([`public_roots`]) is the operating system's store through
//!   `rustls-native-certs` (already in the dependency tree for `rediss://`, and it follows
//!   the image's `ca-certificates`, which operators already keep current).
//! * HTTP/1.1, one connection per fetch, closed afterwards (fetches are rare: their results
//!   are cached by the callers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use tokio::net::TcpStream;

#[cfg(test)]
pub(crate) mod testkit;

/// The crypto provider of the test HTTPS server (`testkit` is shared with the integration
/// tests, which provide their own).
#[cfg(test)]
fn tls_provider() -> rustls::crypto::CryptoProvider {
    crate::tls::provider()
}

#[cfg(test)]
impl testkit::TestCa {
    /// A fetcher trusting only this CA, with short test timeouts.
    pub(crate) fn fetcher(&self) -> Fetcher {
        Fetcher::new(
            FetchOptions {
                connect_timeout: Duration::from_secs(5),
                total_timeout: Duration::from_secs(10),
                max_bytes: 64 * 1024,
            },
            self.roots(),
        )
    }
}
#[cfg(test)]
mod tests;

/// Limits of a [`Fetcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Time to establish the TCP connection, per address tried.
    pub connect_timeout: Duration,
    /// Time for the whole fetch, body included.
    pub total_timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_bytes: usize,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
        }
    }
}

/// Why a fetch gave no body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not an absolute `https` URL with a host.
    #[error("not an https URL")]
    BadUrl,
    /// The URL's host is not on the allow-list (nothing was resolved or connected).
    #[error("host not allowed")]
    NotAllowed,
    /// Name resolution or TCP connection failed.
    #[error("connect failed")]
    Connect,
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol error).
    #[error("TLS handshake failed")]
    Tls,
    /// The connect or total timeout passed.
    #[error("timed out")]
    Timeout,
    /// The response body is larger than the cap.
    #[error("response too large")]
    TooLarge,
    /// A status outside 2xx (a redirect included: redirects are never followed).
    #[error("status {0}")]
    Status(u16),
    /// The HTTP exchange failed after the handshake.
    #[error("HTTP exchange failed")]
    Http,
}

/// A 2xx response.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, at most [`FetchOptions::max_bytes`].
    pub body: Bytes,
}

/// The outbound client. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
    /// The `purpose` label of [`failures`] (`jwks`, `sns_cert`, `sns_confirm`).
    purpose: &'static str,
}

/// Every `purpose` a fetch is made for, in the order the metric lists them.
pub const PURPOSES: [&str; 3] = ["jwks", "sns_cert", "sns_confirm"];

/// `hookseal_fetch_failures_total{purpose}`: outbound fetches that gave no body (not
/// allowed, connect, TLS, timeout, too large, non-2xx). Process-wide: every
/// [`crate::metrics::Metrics`] registry exports the same counters.
pub fn failures() -> &'static prometheus::IntCounterVec {
    static FAILURES: std::sync::OnceLock<prometheus::IntCounterVec> = std::sync::OnceLock::new();
    FAILURES.get_or_init(|| {
        let opts = prometheus::Opts::new(
            "hookseal_fetch_failures_total",
            "Outbound fetches (JWKS, SNS signing certificates, SNS confirmations) that failed, \
             by purpose.",
        );
        let vec = prometheus::IntCounterVec::new(opts, &["purpose"])
            .expect("metric definitions are valid");
        for p in PURPOSES {
            vec.with_label_values(&[p]);
        }
        vec
    })
}

#[derive(Debug)]
struct Inner {
    options: FetchOptions,
    tls: Arc<rustls::ClientConfig>,
    roots: Arc<RootCertStore>,
}

/// The operating system's trust store (`rustls-native-certs`). Certificates that fail to
/// parse are skipped; an empty store is an error (every fetch would fail).
pub fn public_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no trusted root certificates found in the system store ({} errors)",
            found.errors.len()
        ));
    }
    Ok(roots)
}

impl Fetcher {
    /// A client trusting exactly `roots`.
    pub fn new(options: FetchOptions, roots: Arc<RootCertStore>) -> Fetcher {
        let provider = Arc::new(crate::tls::provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.with_root_certificates(Arc::clone(&roots))
                    .with_no_client_auth()
            })
            // The compiled-in providers support the default versions; keep the fallback
            // total anyway (an empty-roots config fails every handshake: fail closed).
            .unwrap_or_else(|_| {
                rustls::ClientConfig::builder()
                    .with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth()
            });
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Fetcher {
            inner: Arc::new(Inner {
                options,
                tls: Arc::new(config),
                roots,
            }),
            purpose: "jwks",
        }
    }

    /// The same client, its failures counted and logged under `purpose` (one of
    /// [`PURPOSES`]).
    #[must_use]
    pub fn for_purpose(mut self, purpose: &'static str) -> Fetcher {
        self.purpose = purpose;
        self
    }

    /// The limits this client applies.
    pub fn options(&self) -> FetchOptions {
        self.inner.options
    }

    /// The roots this client trusts (the SNS engine verifies signing certificates to them).
    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.inner.roots
    }

    /// `GET url`, when the URL's host is one of `allowed_hosts`. A failure is counted in
    /// [`failures`] and logged (host and error only).
    pub async fn get(&self, url: &str, allowed_hosts: &[&str]) -> Result<Fetched, FetchError> {
        let result = self.try_get(url, allowed_hosts).await;
        if let Err(e) = &result {
            failures().with_label_values(&[self.purpose]).inc();
            let host = Target::parse(url).map(|t| t.host).unwrap_or_default();
            tracing::warn!(purpose = self.purpose, host = %host, error = %e, "outbound fetch failed");
        }
        result
    }

    async fn try_get(&self, url: &str, allowed_hosts: &[&str]) -> Result<Fetched, FetchError> {
        let target = Target::parse(url)?;
        if !allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&target.host))
        {
            return Err(FetchError::NotAllowed);
        }
        let total = self.inner.options.total_timeout;
        match tokio::time::timeout(total, self.run(&target)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn run(&self, target: &Target) -> Result<Fetched, FetchError> {
        let opts = self.inner.options;
        let tcp = connect(&target.host, target.port, opts.connect_timeout).await?;
        let name = ServerName::try_from(target.host.clone()).map_err(|_| FetchError::BadUrl)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.inner.tls))
            .connect(name, tcp)
            .await
            .map_err(|_| FetchError::Tls)?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|_| FetchError::Http)?;
        // The connection is driven alongside the exchange and dropped with it (or with the
        // future on a timeout). It may finish first (`Connection: close`, body already
        // buffered): the exchange then completes, or fails, on its own.
        let conn = async move {
            let _ = conn.await;
            std::future::pending::<Result<Fetched, FetchError>>().await
        };
        let exchange = async {
            let req = Request::get(target.path_and_query.as_str())
                .header(http::header::HOST, target.authority.as_str())
                .header(http::header::USER_AGENT, "hookseal")
                .header(http::header::ACCEPT, "*/*")
                .header(http::header::CONNECTION, "close")
                .body(Empty::<Bytes>::new())
                .map_err(|_| FetchError::BadUrl)?;
            let resp = send.send_request(req).await.map_err(|_| FetchError::Http)?;
            let status = resp.status();
            if !status.is_success() {
                return Err(FetchError::Status(status.as_u16()));
            }
            let declared = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > opts.max_bytes as u64) {
                return Err(FetchError::TooLarge);
            }
            let (parts, mut body) = resp.into_parts();
            let mut buf = BytesMut::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|_| FetchError::Http)?;
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > opts.max_bytes {
                        return Err(FetchError::TooLarge);
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Ok(Fetched {
                status,
                headers: parts.headers,
                body: buf.freeze(),
            })
        };
        tokio::select! {
            r = exchange => r,
            r = conn => r,
        }
    }
}

/// The parts of an `https` URL a fetch needs.
#[derive(Debug)]
struct Target {
    /// Lowercase host, without brackets for IPv6.
    host: String,
    port: u16,
    /// `host[:port]` as written (the `Host` header).
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, FetchError> {
        let uri: Uri = url.parse().map_err(|_| FetchError::BadUrl)?;
        if uri.scheme_str() != Some("https") {
            return Err(FetchError::BadUrl);
        }
        let authority = uri.authority().ok_or(FetchError::BadUrl)?;
        // No userinfo (`https://allowed@other/`): `Uri` keeps it in the authority.
        if authority.as_str().contains('@') {
            return Err(FetchError::BadUrl);
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err(FetchError::BadUrl);
        }
        Ok(Target {
            host,
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_owned(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }
}

/// Resolves `host` and connects to its addresses in order, each within `timeout`.
async fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, FetchError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| FetchError::Connect)?
        .take(8)
        .collect();
    let mut last = FetchError::Connect;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(_)) => last = FetchError::Connect,
            Err(_) => last = FetchError::Timeout,
        }
    }
    Err(last)
}
