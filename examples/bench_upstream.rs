//! The app behind every proxy in `benches/load.sh`: reads the whole request body, counts it,
//! and answers `200 ok`. No logging, no JSON: as little of its own cost as possible, so the
//! difference between "direct" and a proxy is the proxy.
//!
//!     cargo run --release --example bench_upstream -- 127.0.0.1:18080

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn serve(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut body = req.into_body();
    let mut n = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => n += f.data_ref().map_or(0, Bytes::len),
            Err(_) => break,
        }
    }
    std::hint::black_box(n);
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("bench upstream listening on {addr}");
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(serve))
                .await;
        });
    }
}
