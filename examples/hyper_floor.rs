//! The cheapest HTTP/1.1 proxy we know how to write on hyper: the floor under hookseal's own
//! cost, measured by `benches/ab.sh` (target `FLOOR=1:target/release/examples/hyper_floor`).
//!
//! One current-thread runtime per thread, all accepting on the one listening socket; each
//! client connection gets its own upstream connection (HTTP/1.1 is one request at a time, so
//! no pool is needed); the request body is collected, then sent on with the same method, path
//! and headers; the response streams back. No routing, verification, limits, timeouts,
//! logging or metrics — none of what makes hookseal a product, only hyper's server and client.
//!
//!     cargo run --release --example hyper_floor -- 127.0.0.1:18100 127.0.0.1:18080 [THREADS]

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Out = Either<Incoming, Full<Bytes>>;

async fn upstream(addr: &str) -> Option<SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Some(sender)
}

async fn proxy(
    req: Request<Incoming>,
    link: Rc<RefCell<Option<SendRequest<Full<Bytes>>>>>,
    addr: Rc<str>,
) -> Result<Response<Out>, Infallible> {
    let bad = |s: StatusCode| {
        let mut r = Response::new(Either::Right(Full::new(Bytes::new())));
        *r.status_mut() = s;
        Ok(r)
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return bad(StatusCode::BAD_REQUEST);
    };
    let taken = link.borrow_mut().take();
    let mut sender = match taken {
        Some(s) if !s.is_closed() => s,
        _ => match upstream(&addr).await {
            Some(s) => s,
            None => return bad(StatusCode::BAD_GATEWAY),
        },
    };
    if sender.ready().await.is_err() {
        return bad(StatusCode::BAD_GATEWAY);
    }
    let resp = sender.send_request(Request::from_parts(parts, Full::new(body)));
    *link.borrow_mut() = Some(sender);
    match resp.await {
        Ok(r) => Ok(r.map(Either::Left)),
        Err(_) => bad(StatusCode::BAD_GATEWAY),
    }
}

fn serve(listener: std::net::TcpListener, addr: Rc<str>) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::from_std(listener)?;
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let addr = Rc::clone(&addr);
            tokio::task::spawn_local(async move {
                let link = Rc::new(RefCell::new(None));
                let svc = service_fn(move |req| proxy(req, Rc::clone(&link), Rc::clone(&addr)));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    })
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18100".to_owned());
    let upstream = args.next().unwrap_or_else(|| "127.0.0.1:18080".to_owned());
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1).max(1);
    let listener = std::net::TcpListener::bind(&listen)?;
    listener.set_nonblocking(true)?;
    eprintln!("hyper floor proxy on {listen} -> {upstream}, {threads} thread(s)");
    let mut handles = Vec::new();
    for _ in 1..threads {
        let l = listener.try_clone()?;
        let up = upstream.clone();
        handles.push(std::thread::spawn(move || serve(l, Rc::from(up))));
    }
    serve(listener, Rc::from(upstream))?;
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}
