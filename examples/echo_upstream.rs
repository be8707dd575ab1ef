//! A stand-in for "the app" behind hookseal: answers every request with 200 and a JSON echo of
//! what it received (method, path, the `x-hookseal-*` headers, body length), and prints one line
//! per request. Used by `demo.sh` and the load scripts.
//!
//!     cargo run --release --example echo_upstream -- 127.0.0.1:8080

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let quiet = std::env::var_os("ECHO_QUIET").is_some();
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("echo upstream listening on {addr}");
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| async move {
                let (parts, body) = req.into_parts();
                let len = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes().len())
                    .unwrap_or(0);
                let hookseal: serde_json::Map<String, serde_json::Value> = parts
                    .headers
                    .iter()
                    .filter(|(k, _)| k.as_str().starts_with("x-hookseal-"))
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into(),
                        )
                    })
                    .collect();
                let echo = serde_json::json!({
                    "method": parts.method.as_str(),
                    "path": parts.uri.path(),
                    "body_bytes": len,
                    "hookseal": hookseal,
                });
                if !quiet {
                    eprintln!("app received: {echo}");
                }
                let mut resp = Response::new(Full::new(Bytes::from(echo.to_string())));
                resp.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                Ok::<_, Infallible>(resp)
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
