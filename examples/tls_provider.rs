//! Measures the TLS listener with the crypto provider compiled in (ring by default, aws-lc-rs
//! with `--features aws-lc-rs`): full handshakes per second, and HTTP/1.1 requests per second on
//! keep-alive TLS connections to a `scheme = "none"` route (no HMAC), all in one process on
//! loopback. README "TLS" records the figures and the choice made from them.
//!
//!     cargo run --release --example tls_provider
//!     cargo run --release --features aws-lc-rs --example tls_provider
//!
//! Env: TLS_BENCH_SECS (default 5) per phase, TLS_BENCH_CONNS (default 8) concurrent clients.
//! The client side uses the same provider and shares the CPU, so the figures are for comparing
//! providers on one machine, not capacity planning.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

use hookseal::app::App;
use hookseal::config::Config;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes `tls.crt` / `tls.key` (ECDSA P-256) to `dir` and returns the certificate (it is its
/// own CA).
fn make_cert(dir: &std::path::Path) -> CertificateDer<'static> {
    let k = rcgen::KeyPair::generate().unwrap();
    let c = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&k)
        .unwrap();
    std::fs::write(dir.join("tls.crt"), c.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), k.serialize_pem()).unwrap();
    c.der().clone()
}

async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"ok",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

fn client_config(ca: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(hookseal::tls::provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every handshake is a full one.
    c.resumption = rustls::client::Resumption::disabled();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

async fn handshake(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs = env_num("TLS_BENCH_SECS", 5);
    let conns = env_num("TLS_BENCH_CONNS", 8);
    let dir = tempfile::tempdir().unwrap();
    let ca = make_cert(dir.path());
    let up = upstream().await;
    let path = dir.path().join("hookseal.toml");
    std::fs::write(
        &path,
        format!(
            "[listen]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = \"tls.crt\", key = \"tls.key\" }}\n\
             [admin]\naddress = \"127.0.0.2:0\"\n[limits]\nmax_connections = 100000\n\
             [upstream]\nurl = \"http://{up}\"\n\
             [[route]]\nname = \"bench\"\npath_prefix = \"/\"\nscheme = \"none\"\n"
        ),
    )
    .unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = App::new(config).unwrap();
    tokio::spawn(app.run(listener, admin, std::future::pending()));
    let client = client_config(&ca);
    handshake(addr, &client).await.expect("first handshake");
    println!(
        "provider {}  key ECDSA P-256  {conns} clients  {secs}s per phase",
        hookseal::tls::PROVIDER_NAME,
    );

    // Phase 1: full handshakes per second.
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (count, client) = (Arc::clone(&count), Arc::clone(&client));
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if handshake(addr, &client).await.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = count.load(Ordering::Relaxed);
    println!(
        "handshakes/s  {:>9.0}  ({n} in {secs}s)",
        n as f64 / secs as f64
    );

    // Phase 2: requests per second on keep-alive TLS connections (1 KiB bodies).
    let count = Arc::new(AtomicU64::new(0));
    let body = Bytes::from(vec![b'x'; 1024]);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (count, client, body) = (Arc::clone(&count), Arc::clone(&client), body.clone());
        tasks.push(tokio::spawn(async move {
            let s = handshake(addr, &client).await.unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .unwrap();
            tokio::spawn(conn);
            while Instant::now() < deadline {
                let req = Request::post("/hook")
                    .header("host", "localhost")
                    .body(Full::new(body.clone()))
                    .unwrap();
                if send.ready().await.is_err() {
                    break;
                }
                let Ok(resp) = send.send_request(req).await else {
                    break;
                };
                let ok = resp.status().is_success();
                let _ = resp.into_body().collect().await;
                if ok {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = count.load(Ordering::Relaxed);
    println!(
        "requests/s    {:>9.0}  ({n} in {secs}s, HTTP/1.1 keep-alive, scheme none)",
        n as f64 / secs as f64
    );
}
