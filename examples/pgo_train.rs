//! The training run of hookseal's profile-guided (PGO) build: `benches/pgo.sh` runs it against
//! the `-Cprofile-generate` binary, and the Dockerfile's build stage runs that script.
//!
//!     cargo run --example pgo_train -- --bin target/pgo/gen/release/hookseal [--secs 2]
//!         [--redis PATH|none]
//!
//! LLVM lays out and inlines code the training never ran as cold, so the training runs what
//! users run, not only the benchmarks' path: it starts an app (in this process), redis-server
//! when one is on PATH, and two hookseal processes, and sends them
//!
//! - the hot path: the `github` route at 1 KiB and 64 KiB over HTTP/1.1, closed loop on one
//!   and 16 connections and open loop at 200 and 2000 requests/s (requests arriving at an
//!   idle proxy, as webhooks do), and HTTP/2 without TLS;
//! - TLS (HTTP/1.1, closed and open loop, and HTTP/2 by ALPN), with the replay store and the
//!   queue on Redis when redis-server is there (else in memory and on disk);
//! - queued delivery on the disk spool, until the app has taken every entry;
//! - every scheme that signs with a key the config can hold, over HTTP/1.1 and HTTP/2, and
//!   again after a reload (SIGHUP): a signed request, an unsigned one and a tampered one
//!   each; Standard Webhooks' asymmetric keys; the JWT engine (ES256 keys inline); the
//!   handshakes hookseal answers itself; an SNS message from a topic not allowed;
//! - events filtered, a replay, an unknown path, a wrong method, a body over the limit, an
//!   unsigned request on a route in observe mode;
//! - the admin endpoints (`/metrics`, `/healthz`, `/readyz`, `/queue`, `/debug/rejections`).
//!
//! Every answer is checked (signed → 200 or 202, rejected → 4xx): a training whose requests
//! were all refused would make the refusal the hot path. It exits non-zero if one answer is
//! not what it should be, and stops each hookseal with SIGTERM so that it writes its profile.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use hookseal::hex;
use hookseal::verify::{SchemeName, SchemeOptions, SecretUse};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ring::signature::{self as sig, KeyPair as _};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pgo_train: {e}\nusage: pgo_train --bin PATH [--secs S] [--redis PATH|none]");
            return ExitCode::from(2);
        }
    };
    let _ = hookseal::tls::provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(train(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgo_train: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    bin: PathBuf,
    secs: f64,
    /// redis-server to start; `None`: none (the stores stay in memory and on disk).
    redis: Option<PathBuf>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut bin = None;
        let mut secs = 2.0;
        let mut redis = find_on_path("redis-server");
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--bin" => bin = Some(PathBuf::from(value()?)),
                "--secs" => secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
                "--redis" => {
                    redis = match value()?.as_str() {
                        "none" => None,
                        p => Some(PathBuf::from(p)),
                    }
                }
                _ => return Err(format!("unknown argument {a}")),
            }
        }
        Ok(Args {
            bin: bin.ok_or("--bin is required")?,
            secs,
            redis,
        })
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A port nobody listens on now (the kernel's choice; hookseal binds it a moment later).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A JSON body of `size` bytes.
fn json_body(size: usize) -> Bytes {
    let head = r#"{"action":"opened","pad":""#;
    let pad = size.saturating_sub(head.len() + 2);
    Bytes::from(format!("{head}{}\"}}", "x".repeat(pad)))
}

// ------------------------------------------------------------------------------------------
// Keys
// ------------------------------------------------------------------------------------------

const SECRET: &str = "pgo-training-secret-0123456789abcdef";
const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:pgo";

/// An ECDSA P-256 key: SendGrid's signatures and the JWT route's ES256 tokens.
struct P256 {
    pkcs8: Vec<u8>,
    jwt: sig::EcdsaKeyPair,
}

impl P256 {
    fn new() -> P256 {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key")
            .as_ref()
            .to_vec();
        let jwt =
            sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
                .expect("P-256 key");
        P256 { pkcs8, jwt }
    }

    /// The public key as SendGrid shows it: base64 SubjectPublicKeyInfo.
    fn spki(&self) -> String {
        const P256_SPKI_PREFIX: [u8; 26] = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(self.jwt.public_key().as_ref());
        b64(&spki)
    }

    fn jwks(&self) -> String {
        let p = self.jwt.public_key().as_ref();
        format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"pgo","x":"{}","y":"{}"}}]}}"#,
            b64url(&p[1..33]),
            b64url(&p[33..65])
        )
    }

    fn token(&self, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            b64url(br#"{"alg":"ES256","typ":"JWT","kid":"pgo"}"#),
            b64url(claims.as_bytes())
        );
        let s = self
            .jwt
            .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
            .expect("ES256 signature");
        format!("{input}.{}", b64url(s.as_ref()))
    }
}

/// (signing secret, the config's secret) of a scheme that signs with a key.
fn secret_pair(name: SchemeName, p256: &P256) -> (Vec<u8>, String) {
    let same = |s: String| (s.clone().into_bytes(), s);
    let seed = [7u8; 32];
    let ed_public = || {
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes()
    };
    match name.as_str() {
        _ if name.def().headers.first() == Some(&"svix-signature") => {
            same(format!("whsec_{}", b64(SECRET.as_bytes())))
        }
        "discord" => (hex::encode(&seed).into_bytes(), hex::encode(&ed_public())),
        "sendgrid" => (b64(&p256.pkcs8).into_bytes(), p256.spki()),
        // 64 visible characters.
        "contentful" => same(format!("{SECRET:x<64}")),
        "postmark" => same(format!("hooks:{SECRET}")),
        "microsoft-teams" => same(b64(SECRET.as_bytes())),
        _ => same(SECRET.to_owned()),
    }
}

// ------------------------------------------------------------------------------------------
// The requests
// ------------------------------------------------------------------------------------------

/// What an answer must be.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// 200 or 202.
    Accepted,
    /// A 4xx.
    Refused,
    /// A delivery id seen before: 200 `duplicate`, or 409 `in_flight` while its first copy
    /// is still with the app.
    Duplicate,
}

#[derive(Clone)]
struct Call {
    what: String,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    want: Want,
    /// A header given a new value on every send (an unsigned delivery id: no duplicates).
    fresh_id: Option<&'static str>,
}

impl Call {
    fn post(
        what: impl Into<String>,
        path: &str,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Call {
        Call {
            what: what.into(),
            method: Method::POST,
            path: path.to_owned(),
            headers,
            body,
            want: Want::Accepted,
            fresh_id: None,
        }
    }

    fn get(what: impl Into<String>, path: &str, headers: Vec<(String, String)>) -> Call {
        Call {
            method: Method::GET,
            ..Call::post(what, path, headers, Bytes::new())
        }
    }

    fn refused(mut self) -> Call {
        self.want = Want::Refused;
        self
    }

    /// The request as a sender would make it: over HTTP/1.1 an origin-form target and a
    /// `Host` header, over HTTP/2 the scheme and authority as pseudo-headers.
    fn request(&self, target: &Target, n: u64) -> Result<Request<Full<Bytes>>, Error> {
        let authority = target.addr.to_string();
        let mut req = Request::builder().method(self.method.clone());
        req = if target.h2 {
            let scheme = if target.tls.is_some() {
                "https"
            } else {
                "http"
            };
            req.uri(format!("{scheme}://{authority}{}", self.path))
        } else {
            req.uri(self.path.as_str()).header("host", authority)
        };
        req = req
            .header("content-type", "application/json")
            .header("user-agent", "hookseal-pgo-train");
        for (k, v) in &self.headers {
            if self.fresh_id.is_some_and(|h| k.eq_ignore_ascii_case(h)) {
                continue;
            }
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(h) = self.fresh_id {
            req = req.header(h, format!("pgo-{n}"));
        }
        Ok(req.body(Full::new(self.body.clone()))?)
    }
}

/// A signed call to a route, by the route's scheme and options in `config`.
fn signed(
    route: &str,
    path: &str,
    options: &BTreeMap<String, SchemeOptions>,
    name: SchemeName,
    secret: &[u8],
    body: Bytes,
) -> Result<Call, Error> {
    let options = options
        .get(route)
        .ok_or_else(|| format!("no route {route} in the training config"))?;
    let headers = hookseal::verify::sign(
        name,
        options,
        secret,
        Some(&format!("pgo-{route}")),
        unix_now(),
        "POST",
        path,
        &body,
    )
    .map_err(|e| format!("{route}: sign: {}", e.message))?;
    Ok(Call::post(format!("{route}: signed"), path, headers, body))
}

// ------------------------------------------------------------------------------------------
// The client
// ------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
    h2: bool,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, Error> {
        Ok(match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        })
    }
}

impl Target {
    fn plain(addr: SocketAddr, h2: bool) -> Target {
        Target {
            addr,
            tls: None,
            h2,
        }
    }

    fn tls(addr: SocketAddr, ca: &rustls::pki_types::CertificateDer<'static>, h2: bool) -> Target {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).expect("the training CA");
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![if h2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        Target {
            addr,
            tls: Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
            h2,
        }
    }

    async fn connect(&self) -> Result<Sender, Error> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => self.handshake(TokioIo::new(tcp)).await,
            Some(c) => {
                let name = rustls::pki_types::ServerName::try_from("localhost")?;
                self.handshake(TokioIo::new(c.connect(name, tcp).await?))
                    .await
            }
        }
    }

    async fn handshake<I>(&self, io: I) -> Result<Sender, Error>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        if self.h2 {
            let (s, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake(io)
                .await?;
            tokio::spawn(conn);
            Ok(Sender::H2(s))
        } else {
            let (s, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            Ok(Sender::H1(s))
        }
    }
}

/// Answers that were not what they should be, the first few of them.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    wrong: AtomicU64,
    first: Mutex<Vec<String>>,
}

impl Tally {
    fn wrong(&self, what: String) {
        self.wrong.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().expect("tally");
        if first.len() < 10 {
            first.push(what);
        }
    }
}

/// How a phase sends: `conns` connections, each call at least `rounds` times and until
/// `secs` have passed; `rate`: that many requests per second in all (an open loop, requests
/// arriving at an idle proxy as webhooks do), else each connection's next request as soon as
/// its answer is in.
#[derive(Clone, Copy)]
struct Load {
    conns: usize,
    rounds: usize,
    secs: f64,
    rate: Option<f64>,
}

impl Load {
    fn closed(conns: usize, secs: f64) -> Load {
        Load {
            conns,
            rounds: 1,
            secs,
            rate: None,
        }
    }

    fn open(rate: f64, secs: f64) -> Load {
        Load {
            rate: Some(rate),
            ..Load::closed(16, secs)
        }
    }

    fn each(conns: usize, rounds: usize) -> Load {
        Load {
            rounds,
            ..Load::closed(conns, 0.0)
        }
    }
}

/// Sends `calls` round-robin as `load` says.
async fn drive(
    label: &str,
    target: &Target,
    calls: Vec<Call>,
    load: Load,
    tally: &Arc<Tally>,
) -> Result<(), Error> {
    let Load {
        conns,
        rounds,
        secs,
        rate,
    } = load;
    let calls = Arc::new(calls);
    let start = tokio::time::Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    // Each connection's interval between requests, and its first one staggered.
    let every = rate.map(|r| Duration::from_secs_f64(conns as f64 / r));
    let before = tally.sent.load(Ordering::Relaxed);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (target, calls, tally) = (target.clone(), calls.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = target.connect().await?;
            let mut i = c;
            let mut refused_last = false;
            let mut next = every.map(|e| start + e.mul_f64(c as f64 / conns as f64));
            while i < rounds * calls.len() || tokio::time::Instant::now() < until {
                if let (Some(at), Some(e)) = (next.as_mut(), every) {
                    tokio::time::sleep_until(*at).await;
                    *at += e;
                }
                let call = &calls[i % calls.len()];
                let n = tally.sent.fetch_add(1, Ordering::Relaxed);
                // A refusal may close the connection (a body over the limit), which the
                // next request on it finds: a new connection, and that request sent again.
                let answer = match sender.send(call.request(&target, n)?).await {
                    Ok(a) => a,
                    Err(_) if matches!(call.want, Want::Refused) => {
                        sender = target.connect().await?;
                        i += conns;
                        continue;
                    }
                    Err(_) if refused_last => {
                        sender = target.connect().await?;
                        sender
                            .send(call.request(&target, n)?)
                            .await
                            .map_err(|e| format!("{}: {e}", call.what))?
                    }
                    Err(e) => return Err(format!("{}: {e}", call.what).into()),
                };
                refused_last = matches!(call.want, Want::Refused);
                let status = answer.status();
                let body = answer.into_body().collect().await?.to_bytes();
                let right = match call.want {
                    Want::Accepted => status == StatusCode::OK || status == StatusCode::ACCEPTED,
                    Want::Refused => status.is_client_error(),
                    Want::Duplicate => status == StatusCode::OK || status == StatusCode::CONFLICT,
                };
                if !right {
                    tally.wrong(format!(
                        "{}: {status} {}",
                        call.what,
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ));
                }
                i += conns;
            }
            Ok::<(), Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    eprintln!(
        "pgo_train: {label}: {} requests",
        tally.sent.load(Ordering::Relaxed) - before
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The processes
// ------------------------------------------------------------------------------------------

/// A child process, killed if still running when dropped.
struct Proc(Child, &'static str);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// SIGTERM, and the exit status within 30 s: hookseal writes its profile on a clean exit.
    fn stop(mut self) -> Result<(), Error> {
        let pid = i32::try_from(self.0.id())?;
        // SAFETY: kill(2) on the pid of our own child, which has not been waited for yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("{} exited with {status}", self.1).into())
                };
            }
            if Instant::now() > until {
                return Err(format!("{} did not stop within 30 s of SIGTERM", self.1).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn wait_port(port: u16, what: &str) -> Result<(), Error> {
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{what} does not listen on port {port} after 15 s").into())
}

fn hookseal(bin: &Path, config: &Path, name: &'static str, dir: &Path) -> Result<Proc, Error> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .env("HOOKSEAL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    Ok(Proc(child, name))
}

/// The app: takes the whole body, answers 200.
async fn app(listener: TcpListener) {
    async fn serve(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let _ = req.into_body().collect().await;
        Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
    }
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(serve)),
        );
    }
}

// ------------------------------------------------------------------------------------------
// The configs
// ------------------------------------------------------------------------------------------

struct Ports {
    app: u16,
    plain: u16,
    plain_admin: u16,
    tls: u16,
    tls_admin: u16,
    redis: u16,
}

fn head(listen: u16, admin: u16, app: u16, tls: &str) -> String {
    format!(
        "[listen]\naddress = \"127.0.0.1:{listen}\"\n{tls}\n\
         [admin]\naddress = \"127.0.0.1:{admin}\"\n\n\
         [upstream]\nurl = \"http://127.0.0.1:{app}\"\n\n\
         [debug]\nrejections = 100\n"
    )
}

/// The hot route (`github`), its copy with dedupe on and an event filter, and a queued
/// Standard Webhooks route.
fn common_routes() -> String {
    format!(
        "\n[[route]]\nname = \"github\"\npath = \"/hook\"\nscheme = \"github\"\n\
         secrets = [{{ value = \"{SECRET}\" }}]\ndedupe = false\n\
         \n[[route]]\nname = \"github-dedupe\"\npath = \"/hook-dedupe\"\nscheme = \"github\"\n\
         secrets = [{{ value = \"{SECRET}\" }}]\nmax_body_bytes = \"64KiB\"\n\
         events = [\"push\"]\n\
         \n[[route]]\nname = \"queued\"\npath = \"/queued\"\nscheme = \"standard-webhooks\"\n\
         secrets = [{{ value = \"whsec_{}\" }}]\ndedupe = false\n\
         [route.delivery]\nmode = \"queued\"\n",
        b64(SECRET.as_bytes())
    )
}

/// A route the training signs requests for: (route, path, scheme, signing secret).
type Signer = (String, String, SchemeName, Vec<u8>);

/// The plain process's routes: one per scheme, plus Standard Webhooks with asymmetric keys and
/// a route in observe mode; and the signers of those whose key the config can hold (not `sns`:
/// certificates fetched from AWS; not the JWT schemes' fetched keys; not `mailgun`, signed in
/// the body, which `sign` does not write: their routes train the refusals).
fn scheme_routes(p: &Ports, p256: &P256) -> (String, Vec<Signer>) {
    let mut text = String::new();
    let mut signers = Vec::new();
    for name in SchemeName::all() {
        let n = name.as_str();
        let route = format!("s-{n}");
        let path = format!("/s/{n}");
        // Dedupe off: the connections send the same signed request at once (the replay
        // store is trained on `github-dedupe`).
        text += &format!(
            "\n[[route]]\nname = \"{route}\"\npath = \"{path}\"\nscheme = \"{n}\"\ndedupe = false\n"
        );
        // Every scheme's public_url is the one it is called on (twilio, square, ... sign it;
        // google-pubsub's tokens carry it as the audience).
        text += &format!("public_url = \"http://127.0.0.1:{}{path}\"\n", p.plain);
        match (n, name.def().secrets) {
            ("sns", _) => text += &format!("topics = [\"{TOPIC}\"]\n"),
            ("msgraph", _) => text += "client_state = { value = \"pgo-client-state\" }\n",
            // The JWT engine: keys inline. The presets name their audience themselves
            // (google-pubsub: the public_url) and need the push account's email.
            (_, SecretUse::Refused) => {
                text += &format!("[route.jwt]\nkeys = {{ value = '{}' }}\n", p256.jwks());
                text += match n {
                    "jwt" => "audiences = [\"pgo\"]\n",
                    _ => "claims = { email = [\"push@pgo.iam.gserviceaccount.com\"] }\n",
                };
            }
            ("mailgun", _) => text += &format!("secrets = [{{ value = \"{SECRET}\" }}]\n"),
            _ => {
                let (signing, config) = secret_pair(name, p256);
                text += &format!("secrets = [{{ value = \"{config}\" }}]\n");
                match n {
                    "meta" => text += "verify_token = { value = \"pgo-verify-token\" }\n",
                    "hmac" => {
                        text += "[route.hmac]\nheader = \"X-Sig\"\nencoding = \"base64\"\n\
                                 timestamp_header = \"X-Ts\"\nid_header = \"X-Id\"\n"
                    }
                    _ => {}
                }
                signers.push((route, path, name, signing));
            }
        }
    }
    // Standard Webhooks' asymmetric signatures (v1a, Ed25519), and observe mode.
    let seed = [9u8; 32];
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    text += &format!(
        "\n[[route]]\nname = \"sw-asym\"\npath = \"/sw-asym\"\nscheme = \"standard-webhooks\"\n\
         dedupe = false\nsecrets = [{{ value = \"whpk_{}\" }}]\n\
         \n[[route]]\nname = \"observed\"\npath = \"/observed\"\nscheme = \"github\"\n\
         mode = \"observe\"\ndedupe = false\nsecrets = [{{ value = \"{SECRET}\" }}]\n",
        b64(&public)
    );
    let asym = format!("whsk_{}", b64(&seed)).into_bytes();
    signers.push((
        "sw-asym".into(),
        "/sw-asym".into(),
        sn("standard-webhooks"),
        asym,
    ));
    (text, signers)
}

// ------------------------------------------------------------------------------------------
// The training
// ------------------------------------------------------------------------------------------

async fn train(args: &Args) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let p256 = P256::new();

    let app_listener = TcpListener::bind("127.0.0.1:0").await?;
    let p = Ports {
        app: app_listener.local_addr()?.port(),
        plain: free_port()?,
        plain_admin: free_port()?,
        tls: free_port()?,
        tls_admin: free_port()?,
        redis: free_port()?,
    };
    tokio::spawn(app(app_listener));

    let redis = match &args.redis {
        None => None,
        Some(bin) => {
            let child = Command::new(bin)
                .args(["--port", &p.redis.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{}: {e}", bin.display()))?;
            let proc = Proc(child, "redis-server");
            wait_port(p.redis, "redis-server").await?;
            Some(proc)
        }
    };

    // The TLS certificate, from a CA of this run.
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&leaf_key, &ca)?;
    std::fs::write(dir.join("cert.pem"), leaf.pem())?;
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem())?;

    // The plain process: every scheme, the disk spool, the memory replay store.
    let (routes, signers) = scheme_routes(&p, &p256);
    let plain_config = dir.join("plain.toml");
    std::fs::write(
        &plain_config,
        head(p.plain, p.plain_admin, p.app, "")
            + &format!("\n[queue]\npath = \"{}\"\n", dir.join("spool").display())
            + &common_routes()
            + &routes,
    )?;
    // The TLS process: the stores on Redis when there is one.
    let stores = match redis {
        Some(_) => format!(
            "\n[replay]\nstore = \"redis\"\nurl = \"redis://127.0.0.1:{0}/0\"\n\
             \n[queue]\nstore = \"redis\"\nurl = \"redis://127.0.0.1:{0}/0\"\n",
            p.redis
        ),
        None => format!(
            "\n[queue]\npath = \"{}\"\n",
            dir.join("spool-tls").display()
        ),
    };
    let tls_config = dir.join("tls.toml");
    let tls_line = format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    std::fs::write(
        &tls_config,
        head(p.tls, p.tls_admin, p.app, &tls_line) + &stores + &common_routes(),
    )?;

    let options: BTreeMap<String, SchemeOptions> = [&plain_config, &tls_config]
        .into_iter()
        .map(|c| hookseal::config::Config::load(c).map_err(|e| format!("{}: {e}", c.display())))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flat_map(|c| c.routes)
        .map(|r| (r.name.to_string(), r.options))
        .collect();

    let plain = hookseal(&args.bin, &plain_config, "hookseal (plain)", dir)?;
    let tls = hookseal(&args.bin, &tls_config, "hookseal (TLS)", dir)?;
    wait_port(p.plain, "hookseal (plain)").await?;
    wait_port(p.tls, "hookseal (TLS)").await?;

    let tally = Arc::new(Tally::default());
    let plain_pid = plain.0.id();
    let result = phases(args, &p, &ca, &options, &signers, &p256, plain_pid, &tally).await;
    let stopped = plain.stop().and(tls.stop());
    drop(redis);
    result?;
    stopped?;
    let wrong = tally.wrong.load(Ordering::Relaxed);
    if wrong > 0 {
        let first = tally.first.lock().expect("tally").join("\n  ");
        return Err(format!("{wrong} answers were not what they should be:\n  {first}").into());
    }
    eprintln!(
        "pgo_train: done, {} requests, every answer as it should be",
        tally.sent.load(Ordering::Relaxed)
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn phases(
    args: &Args,
    p: &Ports,
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    options: &BTreeMap<String, SchemeOptions>,
    signers: &[Signer],
    p256: &P256,
    plain_pid: u32,
    tally: &Arc<Tally>,
) -> Result<(), Error> {
    let secs = args.secs;
    let plain = |h2| Target::plain(SocketAddr::from(([127, 0, 0, 1], p.plain)), h2);
    let tls = |h2| Target::tls(SocketAddr::from(([127, 0, 0, 1], p.tls)), ca.der(), h2);
    let github = sn("github");
    let standard = sn("standard-webhooks");
    let sw_secret = format!("whsec_{}", b64(SECRET.as_bytes()));

    // The hot path, then TLS, then queued delivery, at both sizes.
    for size in [1024, 65536] {
        let body = json_body(size);
        let hot = signed(
            "github",
            "/hook",
            options,
            github,
            SECRET.as_bytes(),
            body.clone(),
        )?;
        let loads = [
            ("1 connection", Load::closed(1, secs)),
            ("16 connections", Load::closed(16, secs)),
            ("200 req/s", Load::open(200.0, secs)),
            ("2000 req/s", Load::open(2000.0, secs)),
        ];
        for (name, load) in loads {
            let label = format!("github {size} B, {name}");
            drive(&label, &plain(false), vec![hot.clone()], load, tally).await?;
        }
        let label = format!("github {size} B, HTTP/2 without TLS");
        let load = Load::closed(16, secs);
        drive(&label, &plain(true), vec![hot.clone()], load, tally).await?;
        for (name, h2, load) in [
            ("16 connections", false, Load::closed(16, secs)),
            ("2000 req/s", false, Load::open(2000.0, secs)),
            ("HTTP/2", true, Load::closed(16, secs)),
        ] {
            let label = format!("github {size} B over TLS, {name}");
            drive(&label, &tls(h2), vec![hot.clone()], load, tally).await?;
        }
        let queued = signed(
            "queued",
            "/queued",
            options,
            standard,
            sw_secret.as_bytes(),
            body,
        )?;
        let load = Load::closed(16, secs / 2.0);
        let label = format!("queued {size} B");
        drive(&label, &plain(false), vec![queued.clone()], load, tally).await?;
        let label = format!("queued {size} B over TLS");
        drive(&label, &tls(false), vec![queued], load, tally).await?;
    }

    // Every scheme: signed, unsigned, tampered; handshakes; other refusals.
    let mut calls = Vec::new();
    let body = Bytes::from(format!(
        r#"{{"type":"pgo","webhookTimestamp":{}000}}"#,
        unix_now()
    ));
    for (route, path, name, secret) in signers {
        let body = match name.as_str() {
            "twilio" | "plivo" | "mandrill" => Bytes::from_static(b"From=%2B1555&Body=pgo"),
            _ => body.clone(),
        };
        let good = signed(route, path, options, *name, secret, body.clone())?;
        // Every header the signer wrote, its last character changed: the signature (or
        // token) no longer matches, whatever else the scheme signs.
        let mut tampered = good.clone().refused();
        tampered.what = format!("{route}: tampered");
        for (_, v) in &mut tampered.headers {
            let last = if v.ends_with('A') { 'B' } else { 'A' };
            v.pop();
            v.push(last);
        }
        let unsigned = Call::post(format!("{route}: unsigned"), path, vec![], body).refused();
        calls.extend([good, tampered, unsigned]);
    }
    calls.extend(handshakes(options, signers)?);
    calls.extend(engines(p256));
    let hook = |what: &str, event: &str, body: Bytes| -> Result<Call, Error> {
        let mut c = signed(
            "github-dedupe",
            "/hook-dedupe",
            options,
            github,
            SECRET.as_bytes(),
            body,
        )?;
        c.what = format!("github-dedupe: {what}");
        c.headers.push(("x-github-event".into(), event.into()));
        Ok(c)
    };
    let mut pushed = hook("push", "push", json_body(300))?;
    pushed.fresh_id = Some("x-github-delivery");
    pushed
        .headers
        .push(("x-hookseal-verified".into(), "spoofed".into()));
    // Signed with the id `pgo-github-dedupe`: the first is forwarded, every other one is a
    // duplicate (200 as well).
    let mut replayed = hook("replay", "push", json_body(301))?;
    replayed.want = Want::Duplicate;
    let mut filtered = hook("filtered", "issues", json_body(302))?;
    filtered.fresh_id = Some("x-github-delivery");
    let mut too_large = hook("too large", "push", json_body(70_000))?.refused();
    too_large.fresh_id = Some("x-github-delivery");
    calls.extend([
        pushed,
        replayed,
        filtered,
        too_large,
        Call::post("unknown path", "/nowhere", vec![], Bytes::new()).refused(),
        Call::get("wrong method", "/hook", vec![]).refused(),
        Call::post(
            "observe mode, unsigned",
            "/observed",
            vec![],
            json_body(200),
        ),
    ]);
    drive(
        "schemes",
        &plain(false),
        calls.clone(),
        Load::each(4, 3),
        tally,
    )
    .await?;
    drive(
        "schemes over HTTP/2",
        &plain(true),
        calls.clone(),
        Load::each(4, 1),
        tally,
    )
    .await?;
    // A reload (SIGHUP: the config read again and swapped in), then the schemes once more.
    let pid = i32::try_from(plain_pid)?;
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for yet.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    reloaded(p.plain_admin).await?;
    let load = Load::each(4, 1);
    drive("schemes after a reload", &plain(false), calls, load, tally).await?;

    // The admin ports, and the queues drained.
    let admin = |port| Target::plain(SocketAddr::from(([127, 0, 0, 1], port)), false);
    let reads = [
        "/metrics",
        "/healthz",
        "/readyz",
        "/queue",
        "/debug/rejections",
    ]
    .map(|path| Call::get(format!("admin {path}"), path, vec![]))
    .to_vec();
    for port in [p.plain_admin, p.tls_admin] {
        drive(
            "admin",
            &admin(port),
            reads.clone(),
            Load::each(1, 3),
            tally,
        )
        .await?;
        drained(port).await?;
    }
    Ok(())
}

fn sn(name: &str) -> SchemeName {
    SchemeName::parse(name).expect("a registered scheme")
}

/// The handshakes hookseal answers itself (SPEC "Handshakes").
fn handshakes(
    options: &BTreeMap<String, SchemeOptions>,
    signers: &[Signer],
) -> Result<Vec<Call>, Error> {
    let secret = |n: &str| {
        signers
            .iter()
            .find(|(_, _, s, _)| s.as_str() == n)
            .map(|(_, _, _, k)| k.clone())
            .ok_or_else(|| format!("no {n} route"))
    };
    let slack = Bytes::from_static(
        br#"{"token":"t","challenge":"pgo-challenge","type":"url_verification"}"#,
    );
    let zoom = Bytes::from_static(
        br#"{"payload":{"plainToken":"pgo-token"},"event_ts":1,"event":"endpoint.url_validation"}"#,
    );
    Ok(vec![
        signed(
            "s-slack",
            "/s/slack",
            options,
            sn("slack"),
            &secret("slack")?,
            slack,
        )?,
        signed(
            "s-zoom",
            "/s/zoom",
            options,
            sn("zoom"),
            &secret("zoom")?,
            zoom,
        )?,
        Call::get(
            "meta handshake",
            "/s/meta?hub.mode=subscribe&hub.verify_token=pgo-verify-token&hub.challenge=7",
            vec![],
        ),
        Call::get(
            "meta handshake, wrong token",
            "/s/meta?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=7",
            vec![],
        )
        .refused(),
        Call::post(
            "msgraph handshake",
            "/s/msgraph?validationToken=pgo",
            vec![],
            Bytes::new(),
        ),
        Call::get(
            "okta handshake",
            "/s/okta",
            vec![
                ("x-okta-verification-challenge".into(), "pgo".into()),
                ("authorization".into(), SECRET.into()),
            ],
        ),
        Call::get("x handshake", "/s/x?crc_token=pgo", vec![]),
        Call::get("dropbox handshake", "/s/dropbox?challenge=pgo", vec![]),
    ])
}

/// The JWT engine (a token signed with the route's inline key, and a forged one) and an SNS
/// message from a topic the route does not allow (refused before any fetch).
fn engines(p256: &P256) -> Vec<Call> {
    let now = unix_now();
    let claims = |jti: &str| {
        format!(
            r#"{{"aud":"pgo","exp":{},"iat":{now},"jti":"{jti}"}}"#,
            now + 600
        )
    };
    let bearer = |t: String| vec![("authorization".to_owned(), format!("Bearer {t}"))];
    let body = Bytes::from_static(b"{}");
    let good = p256.token(&claims("pgo-1"));
    let forged = format!("{}x", &good[..good.len() - 1]);
    let sns = format!(
        r#"{{"Type":"Notification","MessageId":"m1","TopicArn":"arn:aws:sns:eu-west-1:123456789012:other","Message":"pgo","Timestamp":"2026-01-01T00:00:00.000Z","SignatureVersion":"2","Signature":"{}","SigningCertURL":"https://sns.eu-west-1.amazonaws.com/c.pem"}}"#,
        b64(b"sig")
    );
    vec![
        Call::post("jwt", "/s/jwt", bearer(good), body.clone()),
        Call::post("jwt forged", "/s/jwt", bearer(forged), body.clone()).refused(),
        Call::post("jwt missing", "/s/jwt", vec![], body).refused(),
        Call::post(
            "sns, topic not allowed",
            "/s/sns",
            vec![("x-amz-sns-message-type".into(), "Notification".into())],
            Bytes::from(sns),
        )
        .refused(),
    ]
}

/// The body of GET `path` on the admin port.
async fn admin_get(admin: u16, path: &str) -> Result<Bytes, Error> {
    let target = Target::plain(SocketAddr::from(([127, 0, 0, 1], admin)), false);
    let mut s = target.connect().await?;
    let req = Call::get(format!("admin {path}"), path, vec![]).request(&target, 0)?;
    Ok(s.send(req).await?.into_body().collect().await?.to_bytes())
}

/// Polls GET `path` on the admin port until `done` says yes of its body, `limit` at most; the
/// error says `what` did not happen, with the last body.
async fn admin_until(
    admin: u16,
    path: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&[u8]) -> Result<bool, Error>,
) -> Result<(), Error> {
    let until = Instant::now() + limit;
    loop {
        let body = admin_get(admin, path).await?;
        if done(&body)? {
            return Ok(());
        }
        if Instant::now() > until {
            let text = String::from_utf8_lossy(&body[..body.len().min(500)]);
            return Err(format!("{what} within {limit:?}: admin {path}: {text}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (10 s at most) until the admin's `/metrics` counts one successful reload.
async fn reloaded(admin: u16) -> Result<(), Error> {
    let limit = Duration::from_secs(10);
    admin_until(admin, "/metrics", limit, "no successful reload", |m| {
        let ok = "hookseal_config_reloads_total{result=\"ok\"} 1";
        Ok(String::from_utf8_lossy(m).lines().any(|l| l == ok))
    })
    .await
}

/// Waits (30 s at most) until the admin's `/queue` shows no entry waiting.
async fn drained(admin: u16) -> Result<(), Error> {
    let limit = Duration::from_secs(30);
    admin_until(admin, "/queue", limit, "the queues did not drain", |body| {
        let queue: serde_json::Value = serde_json::from_slice(body)?;
        let routes = queue["routes"].as_object().ok_or("no `routes` object")?;
        Ok(routes.values().all(|r| r["depth"] == 0))
    })
    .await
}
