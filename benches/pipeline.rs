//! The whole in-process pipeline per request — route → body → verify → replay → headers →
//! forward → answer — with heap allocations counted.
//!
//!     cargo bench --bench pipeline
//!     cargo bench --bench pipeline -- 'pipeline/1KiB'
//!
//! A client sends each request over an in-memory duplex pipe (no kernel on the inbound side)
//! into `Proxy::handle`, which forwards over pooled loopback TCP to an in-process upstream that
//! reads the body and answers 200. The `direct` row sends the same request over the same kind
//! of pipe straight to that upstream service: the floor the proxy adds to.
//!
//! Routes: `none` (forwarded unverified: routing, body, headers, forwarding), `sw` (Standard
//! Webhooks, dedupe off, one pre-signed request), `sw-dedupe` (Standard Webhooks, dedupe on
//! with the memory store, a fresh message id per request, signed outside the timed loop).
//!
//! Before timing each row, a counting global allocator measures heap allocations and bytes
//! allocated per request (whole process: client, proxy and upstream; the `direct` row is the
//! client + upstream share, so a proxy row minus `direct` is what hookseal allocates). Those
//! lines are printed as `allocs …` on stdout.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

use hookseal::app::App;
use hookseal::config::Config;
use hookseal::proxy::{ConnInfo, Proxy, ProxyBody};
use hookseal::verify::{sign, SchemeName, SchemeOptions};

// ---------------------------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------------------------

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Allocations (and reallocations) of at least [`LARGE_BYTES`]: body-sized buffers.
static LARGE: AtomicU64 = AtomicU64::new(0);
const LARGE_BYTES: usize = 64 * 1024;

fn count(size: usize) {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
    if size >= LARGE_BYTES {
        LARGE.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are plain
// relaxed atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------

const SIZES: &[(usize, &str)] = &[(1024, "1KiB"), (64 * 1024, "64KiB"), (1024 * 1024, "1MiB")];
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DUPLEX_BUF: usize = 256 * 1024;

/// The upstream: reads the whole body, answers 200 `ok`.
async fn upstream_service(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut body = req.into_body();
    let mut n = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => n += f.data_ref().map_or(0, |d| d.len()),
            Err(_) => break,
        }
    }
    std::hint::black_box(n);
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

async fn start_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(upstream_service))
                    .await;
            });
        }
    });
    addr
}

fn proxy_for(upstream: SocketAddr) -> Arc<Proxy> {
    let text = format!(
        r#"
[listen]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.2:0"
[limits]
max_body_bytes = "2MiB"
[upstream]
url = "http://{upstream}"

[[route]]
name = "none"
path = "/none"
scheme = "none"

[[route]]
name = "sw"
path = "/sw"
scheme = "standard-webhooks"
secrets = [{{ value = "{SECRET}" }}]
tolerance = "1h"
dedupe = false

[[route]]
name = "sw-dedupe"
path = "/sw-dedupe"
scheme = "standard-webhooks"
secrets = [{{ value = "{SECRET}" }}]
tolerance = "1h"
dedupe = true
"#
    );
    let config = Config::parse(Path::new("bench.toml"), &text, &|_| None)
        .unwrap_or_else(|e| panic!("bench config: {e}"));
    App::new(config).expect("app").proxy
}

/// A client connection over an in-memory pipe to either the proxy or the upstream service.
async fn connect(proxy: Option<Arc<Proxy>>) -> SendRequest<Full<Bytes>> {
    let (client_io, server_io) = tokio::io::duplex(DUPLEX_BUF);
    let server = hyper::server::conn::http1::Builder::new();
    match proxy {
        Some(proxy) => {
            let info = ConnInfo::new(SocketAddr::from(([127, 0, 0, 1], 40000)), false);
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let proxy = Arc::clone(&proxy);
                    let info = info.clone();
                    async move { Ok::<Response<ProxyBody>, Infallible>(proxy.handle(req, info).await) }
                });
                let _ = server.serve_connection(TokioIo::new(server_io), svc).await;
            });
        }
        None => {
            tokio::spawn(async move {
                let _ = server
                    .serve_connection(TokioIo::new(server_io), service_fn(upstream_service))
                    .await;
            });
        }
    }
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

fn signed_headers(id: &str, body: &[u8]) -> HeaderMap {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let mut h = HeaderMap::new();
    for (k, v) in sign(
        SchemeName::parse("standard-webhooks").expect("registered"),
        &SchemeOptions::default(),
        SECRET.as_bytes(),
        Some(id),
        now,
        "POST",
        "/sw",
        body,
    )
    .expect("sign")
    {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(&v).expect("value"),
        );
    }
    h
}

fn request(path: &'static str, headers: &HeaderMap, body: &Bytes) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body.clone()));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = http::Uri::from_static(path);
    let h = req.headers_mut();
    h.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    h.insert(http::header::HOST, HeaderValue::from_static("bench.local"));
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    req
}

/// Sends one request; the status, or 299 for a 200 that hookseal answered as a duplicate
/// (not forwarded), so that the allocation pass can tell them apart.
async fn send(sender: &mut SendRequest<Full<Bytes>>, req: Request<Full<Bytes>>) -> StatusCode {
    sender.ready().await.expect("connection ready");
    let resp = sender.send_request(req).await.expect("response");
    let status = if resp.headers().contains_key("x-hookseal-duplicate") {
        StatusCode::from_u16(299).expect("status")
    } else {
        resp.status()
    };
    let _ = resp.into_body().collect().await;
    status
}

/// What a row sends: its path and how each request's headers are made.
#[derive(Clone, Copy)]
enum Row {
    Direct,
    None,
    Sw,
    SwDedupe,
}

impl Row {
    const ALL: [Row; 4] = [Row::Direct, Row::None, Row::Sw, Row::SwDedupe];

    fn label(self) -> &'static str {
        match self {
            Row::Direct => "direct",
            Row::None => "hookseal-none",
            Row::Sw => "hookseal-sw",
            Row::SwDedupe => "hookseal-sw-dedupe",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Row::Direct | Row::None => "/none",
            Row::Sw => "/sw",
            Row::SwDedupe => "/sw-dedupe",
        }
    }
}

/// Message ids, unique across every row and body size (a repeated id would be answered as a
/// duplicate without being forwarded, and the row would measure the wrong thing).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Makes each request's headers: the same pre-signed set, or a fresh id per request.
struct Headers {
    row: Row,
    fixed: HeaderMap,
}

impl Headers {
    fn new(row: Row, body: &[u8]) -> Headers {
        let fixed = match row {
            Row::Sw => signed_headers("msg_bench_fixed", body),
            _ => HeaderMap::new(),
        };
        Headers { row, fixed }
    }

    fn make(&mut self, body: &[u8]) -> HeaderMap {
        match self.row {
            Row::SwDedupe => {
                let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                signed_headers(&format!("msg_bench_{n:016x}"), body)
            }
            _ => self.fixed.clone(),
        }
    }
}

/// Counts heap allocations per request over `n` requests, headers made beforehand: (all
/// allocations, bytes, allocations of at least [`LARGE_BYTES`]).
fn count_allocs(
    rt: &Runtime,
    sender: &mut SendRequest<Full<Bytes>>,
    row: Row,
    headers: &mut Headers,
    body: &Bytes,
    n: usize,
) -> (f64, f64, f64) {
    let reqs: Vec<_> = (0..n)
        .map(|_| request(row.path(), &headers.make(body), body))
        .collect();
    let load = || {
        (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
            LARGE.load(Ordering::Relaxed),
        )
    };
    let before = load();
    rt.block_on(async {
        for req in reqs {
            let status = send(sender, req).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{} was not forwarded and answered 200",
                row.label()
            );
        }
    });
    let after = load();
    let per = |a: u64, b: u64| (a - b) as f64 / n as f64;
    (
        per(after.0, before.0),
        per(after.1, before.1),
        per(after.2, before.2),
    )
}

fn bench_pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let upstream = rt.block_on(start_upstream());
    let proxy = {
        let _guard = rt.enter();
        proxy_for(upstream)
    };

    for &(size, size_label) in SIZES {
        let body = Bytes::from(vec![b'x'; size]);
        let mut group = c.benchmark_group(format!("pipeline/{size_label}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(3));
        if size >= 1024 * 1024 {
            group.sample_size(20);
        }
        let mut direct_allocs = (0.0, 0.0, 0.0);
        for row in Row::ALL {
            let mut sender = rt.block_on(connect(match row {
                Row::Direct => None,
                _ => Some(Arc::clone(&proxy)),
            }));
            let mut headers = Headers::new(row, &body);
            // Warm the pools (upstream connection, buffers) before counting.
            let _ = count_allocs(&rt, &mut sender, row, &mut headers, &body, 16);
            let n = if size >= 1024 * 1024 { 64 } else { 256 };
            let (allocs, bytes, large) =
                count_allocs(&rt, &mut sender, row, &mut headers, &body, n);
            let line = format!(
                "allocs pipeline/{size_label}/{}: {allocs:.1} allocations/request, \
                 {bytes:.0} B/request, {large:.2} of them >= 64 KiB",
                row.label()
            );
            if let Row::Direct = row {
                direct_allocs = (allocs, bytes, large);
                println!("{line}");
            } else {
                println!(
                    "{line} (over direct: {:+.1} allocations, {:+.0} B, {:+.2} >= 64 KiB)",
                    allocs - direct_allocs.0,
                    bytes - direct_allocs.1,
                    large - direct_allocs.2
                );
            }
            group.bench_function(BenchmarkId::new(row.label(), size_label), |b| {
                b.iter_batched(
                    || request(row.path(), &headers.make(&body), &body),
                    |req| rt.block_on(send(&mut sender, req)),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
