//! Test support shared by the fetch, JWT and SNS tests: an rcgen test CA, and a local HTTPS
//! server on 127.0.0.1 with canned answers per path that counts connections and hits.
//!
//! The integration tests compile this same file (`tests/integration/tlskit.rs` includes it by
//! path), so it uses nothing of the library: its includer provides `super::tls_provider()`
//! (the crypto provider hookseal runs with), and the library adds `TestCa::fetcher` in
//! `fetch/mod.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

/// A 2048-bit RSA test key (PKCS#8), made with `openssl genpkey` for these tests only.
pub(crate) const RSA_KEY_PEM: &str = include_str!("testdata/rsa2048.pem");

/// A CA that signs server certificates for the test server and SNS signing certificates.
pub(crate) struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub(crate) fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hookseal test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// A root store holding only this CA.
    pub(crate) fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        Arc::new(roots)
    }

    /// The CA certificate as PEM (a route's `ca_file`: the integration tests write one).
    #[allow(dead_code)]
    pub(crate) fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A TLS server certificate for `names` (ECDSA key): the chain and key.
    pub(crate) fn server_cert(
        &self,
        names: &[&str],
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
    }

    /// A certificate for `names` over the RSA test key [`RSA_KEY_PEM`], as PEM (the SNS
    /// signing certificate). `valid` is (not_before, not_after) as (y, m, d).
    pub(crate) fn rsa_leaf_pem(&self, names: &[&str], valid: Option<(Ymd, Ymd)>) -> String {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        if let Some((from, until)) = valid {
            params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        }
        let key =
            rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(RSA_KEY_PEM, &rcgen::PKCS_RSA_SHA256)
                .unwrap();
        params.signed_by(&key, &self.issuer).unwrap().pem()
    }
}

/// A date (year, month, day).
pub(crate) type Ymd = (i32, u8, u8);

/// A canned answer.
#[derive(Debug, Clone)]
pub(crate) struct Canned {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Wait this long before answering.
    pub(crate) delay: Duration,
    /// Send the body without a `Content-Length` (chunked).
    pub(crate) chunked: bool,
}

impl Canned {
    pub(crate) fn ok(body: impl Into<Vec<u8>>) -> Canned {
        Canned {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            chunked: false,
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Canned>>,
    hits: Mutex<HashMap<String, usize>>,
    connections: AtomicUsize,
    /// Accept and drop connections at once (the endpoint is "down").
    down: AtomicBool,
}

/// An HTTPS server on 127.0.0.1 with a certificate for `localhost` and `127.0.0.1`.
pub(crate) struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub(crate) async fn start(ca: &TestCa) -> TestServer {
        let (chain, key) = ca.server_cert(&["localhost", "127.0.0.1"]);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(super::tls_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                if st.down.load(Ordering::SeqCst) {
                    drop(tcp);
                    continue;
                }
                let acceptor = acceptor.clone();
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let st = Arc::clone(&st);
                        async move { Ok::<_, std::convert::Infallible>(answer(&st, &req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        TestServer { addr, state, task }
    }

    /// Answers `path` (path and query, exactly) with `canned`.
    pub(crate) fn set(&self, path: &str, canned: Canned) {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), canned);
    }

    /// `https://localhost:<port><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.authority())
    }

    /// `localhost:<port>`.
    pub(crate) fn authority(&self) -> String {
        format!("localhost:{}", self.port())
    }

    /// The port it listens on (127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// TCP connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Requests for `path` so far.
    pub(crate) fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// While down, connections are accepted and closed at once.
    pub(crate) fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

async fn answer(st: &State, req: &Request<Incoming>) -> Response<NoLen> {
    let key = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *st.hits.lock().unwrap().entry(key.clone()).or_insert(0) += 1;
    let canned = st.routes.lock().unwrap().get(&key).cloned();
    let Some(c) = canned else {
        return Response::builder()
            .status(404)
            .body(NoLen(Full::new(Bytes::new()), false))
            .unwrap();
    };
    if !c.delay.is_zero() {
        tokio::time::sleep(c.delay).await;
    }
    let mut b = Response::builder().status(c.status);
    for (n, v) in &c.headers {
        b = b.header(n.as_str(), v.as_str());
    }
    b.body(NoLen(Full::new(Bytes::from(c.body)), c.chunked))
        .unwrap()
}

/// A full body that, when `.1`, hides its length (so it is sent chunked).
struct NoLen(Full<Bytes>, bool);

impl http_body::Body for NoLen {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        !self.1 && self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.1 {
            http_body::SizeHint::default()
        } else {
            self.0.size_hint()
        }
    }
}
