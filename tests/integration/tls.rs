//! TLS termination over real sockets: HTTP/1.1 and HTTP/2 through the same verification, plain
//! HTTP on the TLS port, the handshake deadline, certificate swap, mutual TLS, curl, and
//! `hookseal check` on bad certificate files. Certificates are made at test time with rcgen.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use hookseal::config::Config;

use crate::netkit::within;
use crate::support::*;

// === certificates ===

/// A CA that signs server and client certificates.
pub struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A certificate chain and its key, as PEM text and as DER.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        Ca::until(name, None)
    }

    /// A CA whose certificate expires at midnight UTC of `not_after` (rcgen's default: 4096).
    pub fn until(name: &str, not_after: Option<(i32, u8, u8)>) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        if let Some((y, m, d)) = not_after {
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        Ca {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        self.leaf(
            &["localhost", "127.0.0.1"],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            None,
        )
    }

    /// A server certificate for `localhost` that expires at midnight UTC of `not_after`.
    pub fn server_until(&self, not_after: (i32, u8, u8)) -> Leaf {
        self.leaf(
            &["localhost", "127.0.0.1"],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            Some(not_after),
        )
    }

    /// A server certificate that expired in 2021.
    pub fn expired_server(&self) -> Leaf {
        self.leaf(
            &["localhost"],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            Some((2021, 1, 1)),
        )
    }

    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(&[name], rcgen::ExtendedKeyUsagePurpose::ClientAuth, None)
    }

    fn leaf(
        &self,
        names: &[&str],
        usage: rcgen::ExtendedKeyUsagePurpose,
        not_after: Option<(i32, u8, u8)>,
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        if let Some((y, m, d)) = not_after {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

impl Leaf {
    fn client_auth(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        use rustls::pki_types::pem::PemObject;
        (
            vec![self.der.clone()],
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap(),
        )
    }
}

/// Writes `leaf` as `tls.crt` / `tls.key` in `dir` (replacing what is there).
pub fn write_pair(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    (cert, key)
}

/// The `[listen].tls` keys naming the files [`write_pair`] writes.
pub const SERVER_PAIR: &str = "cert = \"tls.crt\", key = \"tls.key\"";

/// Config text for a TLS sidecar with the Standard Webhooks route and a `scheme = "none"` route.
pub fn tls_config(upstream: SocketAddr, tls: &str, extra: &str) -> String {
    format!(
        "[listen]\naddress = \"127.0.0.1:0\"\ntls = {{ {tls} }}\n[admin]\naddress = \"127.0.0.2:0\"\n\
         [upstream]\nurl = \"http://{upstream}\"\ntimeout = \"5s\"\n{extra}\n{}\
         [[route]]\nname = \"small\"\npath = \"/hooks/small\"\nscheme = \"none\"\nmax_body_bytes = 64\n",
        sw_route("")
    )
}

/// Starts a sidecar on `text`, written to `dir/hookseal.toml`.
pub async fn start_in(dir: tempfile::TempDir, text: &str) -> Sidecar {
    let path = dir.path().join("hookseal.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load_with_env(&path, &|_| None).unwrap_or_else(|e| panic!("config: {e}"));
    assert!(config.listen.server_tls.is_some());
    Sidecar::start_config(config, dir).await
}

// === a TLS client ===

pub struct Client {
    pub trust: Vec<CertificateDer<'static>>,
    pub alpn: Vec<Vec<u8>>,
    pub cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl Client {
    pub fn new(ca: &Ca, alpn: &[&[u8]]) -> Client {
        Client {
            trust: vec![ca.der()],
            alpn: alpn.iter().map(|p| p.to_vec()).collect(),
            cert: None,
        }
    }

    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        for c in &self.trust {
            roots.add(c.clone()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let mut config = match &self.cert {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .unwrap(),
        };
        config.alpn_protocols = self.alpn.clone();
        let tcp = TcpStream::connect(addr).await?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }
}

/// The negotiated ALPN protocol and the server's end-entity certificate.
pub fn negotiated(s: &TlsStream<TcpStream>) -> (Option<Vec<u8>>, CertificateDer<'static>) {
    let (_, conn) = s.get_ref();
    (
        conn.alpn_protocol().map(<[u8]>::to_vec),
        conn.peer_certificates().unwrap()[0].clone().into_owned(),
    )
}

/// One HTTP/1.1 connection over TLS.
pub struct H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

impl H1 {
    pub async fn open(s: TlsStream<TcpStream>) -> H1 {
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(conn);
        H1(send)
    }

    pub async fn post(&mut self, path: &str, headers: &[(&str, String)], body: &str) -> Answer {
        let mut req = Request::post(path).header("host", "localhost");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        self.0.ready().await.unwrap();
        answer(self.0.send_request(req).await.unwrap()).await
    }
}

async fn answer(resp: http::Response<hyper::body::Incoming>) -> Answer {
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn h2_post(
    send: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (Version, Answer) {
    let mut req = Request::post(format!("https://localhost{path}"));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    send.ready().await.unwrap();
    let resp = send.send_request(req).await.unwrap();
    let version = resp.version();
    (version, answer(resp).await)
}

pub fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

pub async fn eventually_counter(sidecar: &Sidecar, name: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = counter(&sidecar.metrics().await, name);
        if got >= want {
            assert_eq!(got, want, "{name}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed at {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const HANDSHAKE_ERRORS: &str = "hookseal_tls_handshake_errors_total";

pub fn signed(body: &str, id: &str) -> Vec<(&'static str, String)> {
    sign_standard(WHSEC, id, unix_now(), body.as_bytes())
}

// === tests ===

#[tokio::test]
async fn http1_and_http2_go_through_the_same_verification() {
    let upstream = Upstream::start().await;
    let ca = Ca::new("hookseal test CA");
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), &ca.server());
    let sidecar = start_in(dir, &tls_config(upstream.addr, SERVER_PAIR, "")).await;

    // HTTP/1.1 (ALPN http/1.1)
    let s = Client::new(&ca, &[b"http/1.1"])
        .connect(sidecar.addr)
        .await
        .unwrap();
    assert_eq!(negotiated(&s).0.as_deref(), Some(&b"http/1.1"[..]));
    let mut h1 = H1::open(s).await;
    let body = r#"{"type":"h1"}"#;
    let r = h1.post("/hooks/sw", &signed(body, "msg_h1"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let seen = upstream.last();
    assert_eq!(seen.body, body.as_bytes());
    assert_eq!(seen.headers["x-hookseal-verified"], "true");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");

    // HTTP/2 (ALPN h2): same route, same verdicts.
    let s = Client::new(&ca, &[b"h2", b"http/1.1"])
        .connect(sidecar.addr)
        .await
        .unwrap();
    assert_eq!(negotiated(&s).0.as_deref(), Some(&b"h2"[..]));
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    let body = r#"{"type":"h2","data":"over DATA frames"}"#;
    let (v, r) = h2_post(&mut h2, "/hooks/sw", &signed(body, "msg_h2"), body).await;
    assert_eq!(v, Version::HTTP_2);
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let seen = upstream.last();
    assert_eq!(seen.body, body.as_bytes());
    assert_eq!(seen.headers["x-hookseal-id"], "msg_h2");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");

    let before = upstream.count();
    let mut forged = signed(body, "msg_h2_forged");
    forged[2].1 = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    let (_, r) = h2_post(&mut h2, "/hooks/sw", &forged, body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error(), "bad_signature");
    // A replay of the forwarded message is caught on HTTP/2 as on HTTP/1.1.
    let (_, r) = h2_post(&mut h2, "/hooks/sw", &signed(body, "msg_h1"), body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-hookseal-duplicate"], "true");
    let (_, r) = h2_post(&mut h2, "/hooks/small", &[], &"x".repeat(65)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error(), "body_too_large");
    assert_eq!(upstream.count(), before, "nothing rejected was forwarded");
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_a_clean_400_and_is_counted() {
    let upstream = Upstream::start().await;
    let ca = Ca::new("hookseal test CA");
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), &ca.server());
    let sidecar = start_in(dir, &tls_config(upstream.addr, SERVER_PAIR, "")).await;
    let body = "{}";
    let r = post(
        &format!("http://{}/hooks/sw", sidecar.addr),
        &signed(body, "msg_plain"),
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error(), "tls_required");
    assert_eq!(upstream.count(), 0);
    eventually_counter(&sidecar, HANDSHAKE_ERRORS, 1).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_dropped_and_counted() {
    let upstream = Upstream::start().await;
    let ca = Ca::new("hookseal test CA");
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), &ca.server());
    let sidecar = start_in(
        dir,
        &tls_config(
            upstream.addr,
            SERVER_PAIR,
            "[limits]\nheader_timeout = \"1s\"",
        ),
    )
    .await;
    let mut tcp = TcpStream::connect(sidecar.addr).await.unwrap();
    // The first bytes of a TLS record header, then nothing.
    tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf))
        .await
        .expect("the server closes a stalled handshake")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    eventually_counter(&sidecar, HANDSHAKE_ERRORS, 1).await;

    // The listener is still serving.
    let s = Client::new(&ca, &[b"http/1.1"])
        .connect(sidecar.addr)
        .await
        .unwrap();
    let mut h1 = H1::open(s).await;
    let body = "{}";
    let r = h1.post("/hooks/sw", &signed(body, "msg_after"), body).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_swapped_certificate_is_seen_by_the_next_handshake_while_open_connections_keep_working() {
    let upstream = Upstream::start().await;
    let ca = Ca::new("hookseal test CA");
    let dir = tempfile::tempdir().unwrap();
    let first = ca.server();
    let (cert, key) = write_pair(dir.path(), &first);
    let sidecar = start_in(dir, &tls_config(upstream.addr, SERVER_PAIR, "")).await;
    let client = Client::new(&ca, &[b"http/1.1"]);
    let s = client.connect(sidecar.addr).await.unwrap();
    assert_eq!(negotiated(&s).1, first.der);
    let mut open = H1::open(s).await;
    let r = open.post("/hooks/sw", &signed("{}", "msg_a"), "{}").await;
    assert_eq!(r.status, StatusCode::OK);

    let second = ca.server();
    write_pair(sidecar.dir.path(), &second);
    let files = hookseal::config::TlsFiles {
        cert,
        key,
        client_ca: None,
    };
    let acceptor = sidecar.app.tls.as_ref().unwrap();
    acceptor.swap(hookseal::tls::load(&files, std::time::SystemTime::now()).unwrap());

    let s = client.connect(sidecar.addr).await.unwrap();
    assert_eq!(
        negotiated(&s).1,
        second.der,
        "the next handshake sees the new certificate"
    );
    let mut fresh = H1::open(s).await;
    let r = fresh.post("/hooks/sw", &signed("{}", "msg_b"), "{}").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = open.post("/hooks/sw", &signed("{}", "msg_c"), "{}").await;
    assert_eq!(r.status, StatusCode::OK, "the open connection still works");
    assert_eq!(upstream.count(), 3);
}

/// Unix seconds of midnight UTC, computed apart from the code under test.
fn midnight_utc(y: i32, m: u8, d: u8) -> f64 {
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap();
    date.midnight().assume_utc().unix_timestamp() as f64
}

const EXPIRY_LISTENER: &str =
    "hookseal_tls_certificate_expiry_timestamp_seconds{cert=\"listener\"}";
const EXPIRY_CLIENT_CA: &str =
    "hookseal_tls_certificate_expiry_timestamp_seconds{cert=\"client_ca\"}";

/// The expiry gauges show the notAfter of the certificates in force: the listener's, and the
/// earliest of the client CA file; a reload that swaps the files updates them (and drops
/// `client_ca` when mutual TLS is turned off).
#[tokio::test]
async fn certificate_expiry_gauges_follow_the_certificates_in_force() {
    let upstream = Upstream::start().await;
    let ca = Ca::new("hookseal test CA");
    let clients_late = Ca::until("client CA, late", Some((2045, 3, 1)));
    let clients_early = Ca::until("client CA, early", Some((2040, 2, 29)));
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), &ca.server_until((2039, 5, 10)));
    std::fs::write(
        dir.path().join("clients.crt"),
        clients_late.pem() + &clients_early.pem(),
    )
    .unwrap();
    let mtls = "cert = \"tls.crt\", key = \"tls.key\", client_ca = \"clients.crt\"";
    let sidecar = start_in(dir, &tls_config(upstream.addr, mtls, "")).await;
    let text = sidecar.metrics().await;
    let gauge = |text: &str, name: &str| crate::netkit::metric(text, name);
    assert_eq!(
        gauge(&text, EXPIRY_LISTENER),
        midnight_utc(2039, 5, 10),
        "{text}"
    );
    assert_eq!(
        gauge(&text, EXPIRY_CLIENT_CA),
        midnight_utc(2040, 2, 29),
        "{text}"
    );

    // Renewed certificate and mutual TLS turned off, in one reload.
    let path = sidecar.dir.path().join("hookseal.toml");
    write_pair(sidecar.dir.path(), &ca.server_until((2041, 12, 31)));
    let text = tls_config(upstream.addr, SERVER_PAIR, "");
    std::fs::write(path.with_extension("tmp"), text).unwrap();
    std::fs::rename(path.with_extension("tmp"), &path).unwrap();
    eventually_counter(
        &sidecar,
        "hookseal_tls_certificate_reloads_total{result=\"ok\"}",
        1,
    )
    .await;
    let text = sidecar.metrics().await;
    assert_eq!(
        gauge(&text, EXPIRY_LISTENER),
        midnight_utc(2041, 12, 31),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with(EXPIRY_CLIENT_CA)),
        "no client CA any more:\n{text}"
    );
}

#[tokio::test]
async fn mutual_tls_accepts_only_clients_with_a_certificate_from_the_client_ca() {
    let upstream = Upstream::start().await;
    let ca = Ca::new("hookseal test CA");
    let clients = Ca::new("hookseal client CA");
    let stranger = Ca::new("somebody else's CA");
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), &ca.server());
    std::fs::write(dir.path().join("clients.crt"), clients.pem()).unwrap();
    let sidecar = start_in(
        dir,
        &tls_config(
            upstream.addr,
            "cert = \"tls.crt\", key = \"tls.key\", client_ca = \"clients.crt\"",
            "",
        ),
    )
    .await;

    // A client with a certificate from the client CA is served.
    let mut good = Client::new(&ca, &[b"http/1.1"]);
    good.cert = Some(clients.client("sender.internal").client_auth());
    let mut h1 = H1::open(good.connect(sidecar.addr).await.unwrap()).await;
    let r = h1.post("/hooks/sw", &signed("{}", "msg_mtls"), "{}").await;
    assert_eq!(r.status, StatusCode::OK);

    // Without a certificate, or with one from another CA: refused before any request.
    let mut refused = 0;
    for cert in [None, Some(stranger.client("sender.internal").client_auth())] {
        let mut c = Client::new(&ca, &[b"http/1.1"]);
        c.cert = cert;
        // TLS 1.3: the client may finish its side before the server's alert arrives, so the
        // refusal shows on the connect or on the first exchange.
        if let Ok(mut s) = c.connect(sidecar.addr).await {
            let _ = s
                .write_all(
                    b"POST /hooks/small HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\n\r\n",
                )
                .await;
            let mut buf = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
                .await
                .expect("the server ends the connection");
            assert!(read.is_err() || buf.is_empty(), "got an answer: {buf:?}");
        }
        refused += 1;
    }
    assert_eq!(refused, 2);
    assert_eq!(
        upstream.count(),
        1,
        "only the authenticated client was forwarded"
    );
    eventually_counter(&sidecar, HANDSHAKE_ERRORS, 2).await;
}

#[tokio::test]
async fn curl_http2_with_cacert_gets_a_verified_request_forwarded() {
    let Some(curl) = which("curl") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "curl is required in CI (.ci/run installs it)"
        );
        eprintln!("skipping: curl not found");
        return;
    };
    let upstream = Upstream::start().await;
    let ca = Ca::new("hookseal test CA");
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), &ca.server());
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let sidecar = start_in(dir, &tls_config(upstream.addr, SERVER_PAIR, "")).await;
    let body = r#"{"via":"curl"}"#;
    let mut cmd = std::process::Command::new(curl);
    cmd.args(["-sS", "--http2", "--max-time", "30", "--cacert"])
        .arg(&ca_file)
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", sidecar.addr.port()))
        .args([
            "-w",
            "\n%{http_version} %{http_code}",
            "--data-binary",
            body,
        ])
        .args(["-H", "content-type: application/json"]);
    for (k, v) in signed(body, "msg_curl") {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    cmd.arg(format!(
        "https://localhost:{}/hooks/sw",
        sidecar.addr.port()
    ));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.ends_with("\n2 200"), "HTTP/2 and 200: {stdout}");
    assert_eq!(upstream.last().body, body.as_bytes());
    assert_eq!(upstream.last().headers["x-hookseal-id"], "msg_curl");
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

#[test]
fn check_reports_an_expired_certificate_and_a_mismatched_key() {
    let ca = Ca::new("hookseal test CA");
    let dir = tempfile::tempdir().unwrap();
    let expired = ca.expired_server();
    std::fs::write(dir.path().join("expired.crt"), &expired.cert_pem).unwrap();
    std::fs::write(dir.path().join("expired.key"), &expired.key_pem).unwrap();
    let (a, b) = (ca.server(), ca.server());
    std::fs::write(dir.path().join("a.crt"), &a.cert_pem).unwrap();
    std::fs::write(dir.path().join("b.key"), &b.key_pem).unwrap();
    let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for (tls, line_key, message) in [
        (
            "cert = \"expired.crt\", key = \"expired.key\"",
            ":3: listen.tls.cert:",
            "certificate expired at 2021-01-01T00:00:00Z",
        ),
        (
            "cert = \"a.crt\", key = \"b.key\"",
            ":3: listen.tls.key:",
            "private key does not match the certificate",
        ),
    ] {
        let path = dir.path().join("hookseal.toml");
        std::fs::write(&path, tls_config(upstream, tls, "")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookseal"))
            .env_remove("HOOKSEAL_CONFIG")
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(line_key), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
        assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    }

    // The matching pair passes, and check says until when the certificate is valid.
    std::fs::write(dir.path().join("a.key"), &a.key_pem).unwrap();
    let path = dir.path().join("hookseal.toml");
    std::fs::write(
        &path,
        tls_config(upstream, "cert = \"a.crt\", key = \"a.key\"", ""),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookseal"))
        .env_remove("HOOKSEAL_CONFIG")
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("valid until"), "{stdout}");
}

#[test]
fn sec1_ec_and_pkcs1_rsa_keys_made_by_openssl_load() {
    let Some(openssl) = which("openssl") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is required in CI (.ci/run installs it)"
        );
        eprintln!("skipping: openssl not found");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&openssl)
            .current_dir(d)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "ec.key",
    ]);
    run(&["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
    for (key, label) in [("ec.key", "EC PRIVATE KEY"), ("rsa.key", "RSA PRIVATE KEY")] {
        let pem = std::fs::read_to_string(d.join(key)).unwrap();
        assert!(
            pem.starts_with(&format!("-----BEGIN {label}-----")),
            "{pem:.40}"
        );
        let crt = format!("{key}.crt");
        run(&[
            "req",
            "-x509",
            "-key",
            key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ]);
        let files = hookseal::config::TlsFiles {
            cert: d.join(&crt),
            key: d.join(key),
            client_ca: None,
        };
        let tls = hookseal::tls::load(&files, std::time::SystemTime::now())
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        let left = tls
            .not_after
            .duration_since(std::time::SystemTime::now())
            .unwrap();
        assert!(left > Duration::from_secs(86_400), "{key}: {left:?}");
    }
    // A key of one kind with the other's certificate is still a mismatch.
    let files = hookseal::config::TlsFiles {
        cert: d.join("rsa.key.crt"),
        key: d.join("ec.key"),
        client_ca: None,
    };
    let e = hookseal::tls::load(&files, std::time::SystemTime::now()).unwrap_err();
    assert!(e[0].message.contains("does not match"), "{e:?}");
}

/// A request body that sends one chunk and then nothing, ever.
struct Stall(Option<Bytes>);

impl http_body::Body for Stall {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(b) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(b)))),
            None => std::task::Poll::Pending,
        }
    }
}

#[tokio::test]
async fn an_http2_body_that_stalls_gets_the_same_body_timeout() {
    let upstream = Upstream::start().await;
    let ca = Ca::new("hookseal test CA");
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), &ca.server());
    let sidecar = start_in(
        dir,
        &tls_config(
            upstream.addr,
            SERVER_PAIR,
            "[limits]\nbody_timeout = \"1s\"",
        ),
    )
    .await;
    let s = Client::new(&ca, &[b"h2"])
        .connect(sidecar.addr)
        .await
        .unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = Request::post("https://localhost/hooks/sw").header("content-length", "100");
    for (k, v) in signed(&"x".repeat(100), "msg_stall") {
        req = req.header(k, v);
    }
    let req = req
        .body(Stall(Some(Bytes::from_static(b"xxxxxxxxxx"))))
        .unwrap();
    h2.ready().await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), h2.send_request(req))
        .await
        .expect("answered while the body is still open")
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    let r = answer(resp).await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(r.error(), "body_timeout");
    assert_eq!(upstream.count(), 0);
}

/// Reads one HTTP/1.1 response with a `content-length` from `s`: its status and body.
async fn read_h1_response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).await.unwrap(),
            1,
            "EOF in the head: {buf:?}"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    (status, body)
}

fn h1_request(body: &str, id: &str) -> (String, String) {
    let mut head = format!(
        "POST /hooks/sw HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in signed(body, id) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    (head, body.to_owned())
}

/// The TLS connection's reads return `Pending` without entering rustls while the socket is
/// not readable (src/tls.rs `TlsConn`): a request that arrives in several records with pauses
/// between them, and a second request after an idle pause, are read all the same.
#[tokio::test]
async fn requests_in_records_with_pauses_between_them_are_read_on_one_connection() {
    let upstream = Upstream::start().await;
    let ca = Ca::new("hookseal test CA");
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), &ca.server());
    let sidecar = start_in(dir, &tls_config(upstream.addr, SERVER_PAIR, "")).await;
    let mut s = Client::new(&ca, &[b"http/1.1"])
        .connect(sidecar.addr)
        .await
        .unwrap();
    let pause = Duration::from_millis(100);
    for (i, id) in ["msg_pieces_1", "msg_pieces_2"].into_iter().enumerate() {
        let body = format!(
            r#"{{"type":"pieces","n":{i},"data":"{}"}}"#,
            "x".repeat(3000)
        );
        let (head, body) = h1_request(&body, id);
        // Each flush is a record of its own; the pauses let the server's reads find nothing.
        for piece in [
            head.as_bytes(),
            &body.as_bytes()[..1000],
            &body.as_bytes()[1000..],
        ] {
            s.write_all(piece).await.unwrap();
            s.flush().await.unwrap();
            tokio::time::sleep(pause).await;
        }
        let (status, answer) = within(Duration::from_secs(30), read_h1_response(&mut s)).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        assert_eq!(upstream.last().body, body.as_bytes());
        tokio::time::sleep(pause).await;
    }
    assert_eq!(upstream.count(), 2);
}

/// A record that does not decrypt, arriving after a request on an idle connection, ends the
/// connection at once (not at the 60 s idle timeout), with nothing forwarded for it.
#[tokio::test]
async fn a_forged_record_on_an_idle_connection_closes_it_at_once() {
    let upstream = Upstream::start().await;
    let ca = Ca::new("hookseal test CA");
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), &ca.server());
    let sidecar = start_in(dir, &tls_config(upstream.addr, SERVER_PAIR, "")).await;
    let mut s = Client::new(&ca, &[b"http/1.1"])
        .connect(sidecar.addr)
        .await
        .unwrap();
    let (head, body) = h1_request("{}", "msg_before_forged");
    s.write_all(format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    s.flush().await.unwrap();
    let (status, _) = within(Duration::from_secs(30), read_h1_response(&mut s)).await;
    assert_eq!(status, 200);
    // Let the server's read of the idle connection go pending first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut tcp, _) = s.into_inner();
    // An application-data record of 48 bytes that no key of this connection sealed.
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x30];
    record.extend((0u8..48).map(|i| i.wrapping_mul(37)));
    tcp.write_all(&record).await.unwrap();
    let mut rest = Vec::new();
    // The server sends its alert and closes (or resets): either way the read ends.
    let _ = within(Duration::from_secs(20), tcp.read_to_end(&mut rest)).await;
    assert_eq!(upstream.count(), 1, "nothing more was forwarded");
}
