//! Fault injection over real sockets (issue 10): an upstream written on raw TCP that refuses,
//! resets, closes, stalls or floods on cue, and counts every request head it received. Each
//! case checks the status, the metric, that hookseal never re-sent a request that may have
//! been delivered, and that no connection or request is left counted afterwards.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::netkit::*;
use crate::support::*;

/// What the upstream does with one request.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// 200 on a keep-alive connection.
    Ok,
    /// 200, then close the connection (as a server whose keep-alive timeout just ran out).
    OkThenClose,
    /// Read only the head, then reset.
    ResetMidRequest,
    /// Read the whole request, then close without answering.
    CloseWithoutAnswer,
    /// Half a response head, then reset.
    ResetMidHead,
    /// A head declaring 1000 bytes, 100 of them, then reset.
    ResetMidBody,
    /// Answer after this long.
    Slow(Duration),
    /// 200 with a body this large.
    Huge(usize),
}

type Script = Box<dyn Fn(usize) -> Act + Send + Sync>;

/// An HTTP/1.1 upstream on raw TCP, driven by a script indexed by request number.
struct RawUpstream {
    addr: SocketAddr,
    /// `x-hookseal-id` of every request head received, in order.
    heads: Arc<Mutex<Vec<String>>>,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start(script: impl Fn(usize) -> Act + Send + Sync + 'static) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(Box::new(script));
        let (h, a, o) = (Arc::clone(&heads), Arc::clone(&accepted), Arc::clone(&open));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let (h, o, s) = (Arc::clone(&h), Arc::clone(&o), Arc::clone(&script));
                tokio::spawn(async move {
                    serve_raw(tcp, &h, &s).await;
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        RawUpstream {
            addr,
            heads,
            accepted,
            open,
        }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    async fn assert_all_closed(&self) {
        let ok = eventually(Duration::from_secs(30), || async {
            self.open.load(Ordering::SeqCst) == 0
        })
        .await;
        assert!(ok, "upstream connections left open");
    }
}

fn reset(tcp: TcpStream) {
    // SO_LINGER 0: close() sends RST instead of FIN.
    #[allow(deprecated)]
    let _ = tcp.set_linger(Some(Duration::ZERO));
    drop(tcp);
}

async fn serve_raw(mut tcp: TcpStream, heads: &Mutex<Vec<String>>, script: &Script) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let field = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        };
        let len: usize = field("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // Only webhooks (they carry an id) are scripted and counted; anything else (the
        // warm-up) is answered 200.
        let act = match field("x-hookseal-id") {
            None => Act::Ok,
            Some(id) => {
                let mut h = heads.lock().unwrap();
                h.push(id);
                script(h.len() - 1)
            }
        };
        if let Act::ResetMidRequest = act {
            return reset(tcp);
        }
        while buf.len() < end + len {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + len);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        match act {
            Act::Ok => {
                if tcp.write_all(ok).await.is_err() {
                    return;
                }
            }
            Act::OkThenClose => {
                let _ = tcp.write_all(ok).await;
                let _ = tcp.shutdown().await;
                return;
            }
            Act::ResetMidRequest => unreachable!(),
            Act::CloseWithoutAnswer => return,
            Act::ResetMidHead => {
                let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-le").await;
                let _ = tcp.flush().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                return reset(tcp);
            }
            Act::ResetMidBody => {
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                    .await;
                let _ = tcp.write_all(&[b'x'; 100]).await;
                let _ = tcp.flush().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                return reset(tcp);
            }
            Act::Slow(d) => {
                tokio::time::sleep(d).await;
                if tcp.write_all(ok).await.is_err() {
                    return;
                }
            }
            Act::Huge(n) => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n");
                if tcp.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let block = vec![b'z'; 64 * 1024];
                let mut left = n;
                while left > 0 {
                    let k = left.min(block.len());
                    if tcp.write_all(&block[..k]).await.is_err() {
                        return;
                    }
                    left -= k;
                }
            }
        }
    }
}

const BODY: &[u8] = b"{\"type\":\"order.created\",\"data\":{\"id\":99}}";

fn signed(id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    sign_standard(WHSEC, id, unix_now(), body)
}

/// hookseal with the webhook route `sw` and an unverified route `/warm` to the same upstream.
async fn sidecar(up: SocketAddr) -> Sidecar {
    let warm = "[[route]]\nname = \"warm\"\npath = \"/warm\"\nscheme = \"none\"\n";
    Sidecar::start(up, "", &format!("{}{warm}", sw_route(""))).await
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Tasks of this test's runtime, less the one each open upstream connection accounts for (the
/// raw upstream's handler; hookseal's pooled connections have no task of their own, they are
/// driven by the request that holds them).
fn fixed_tasks(up: &RawUpstream) -> usize {
    alive_tasks() - up.open.load(Ordering::SeqCst)
}

/// One unverified request through the pool, so that it holds a connection and has started
/// its idle reaper; returns the task count to come back to.
async fn warm_up(sc: &Sidecar, up: &RawUpstream) -> usize {
    let r = post(&sc.url("/warm"), &[], "x").await;
    assert_eq!(r.status, StatusCode::OK);
    steady(|| fixed_tasks(up)).await
}

/// `count()` once it has stayed the same for 200 ms.
async fn steady(count: impl Fn() -> usize) -> usize {
    let mut last = count();
    let mut since = tokio::time::Instant::now();
    let deadline = since + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = count();
        if now != last {
            (last, since) = (now, tokio::time::Instant::now());
        } else if since.elapsed() >= Duration::from_millis(200) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task count never settled"
        );
    }
}

/// No task is left over: the count comes back to what it was after the warm-up.
async fn assert_no_leaked_tasks(up: &RawUpstream, fixed: usize) {
    let mut now = 0;
    let ok = eventually(Duration::from_secs(30), || {
        now = fixed_tasks(up);
        // At most: a task still ending when the baseline was taken may be gone now.
        async move { now <= fixed }
    })
    .await;
    assert!(ok, "tasks: {now} now, {fixed} after the warm-up");
}

fn series(m: &str, s: &str) -> f64 {
    metric(m, s)
}

const UP_ERROR: &str = "hookseal_upstream_responses_total{class=\"error\",route=\"sw\"}";
const UP_TIMEOUT: &str = "hookseal_upstream_responses_total{class=\"timeout\",route=\"sw\"}";
const UP_2XX: &str = "hookseal_upstream_responses_total{class=\"2xx\",route=\"sw\"}";
const UNAVAILABLE: &str =
    "hookseal_requests_total{reason=\"upstream_unavailable\",result=\"forwarded\",route=\"sw\"}";

#[tokio::test]
async fn upstream_refusing_connections_is_502() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sc = sidecar(port).await;
    sc.metrics().await;
    let tasks = steady(alive_tasks).await;
    let r = post(&sc.url("/hooks/sw"), &signed("msg_refused", BODY), BODY).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.error(), "upstream_unavailable");
    let m = sc.metrics().await;
    assert_eq!(series(&m, UP_ERROR), 1.0, "{m}");
    assert_eq!(series(&m, UNAVAILABLE), 1.0, "{m}");
    assert_gauges_settle(&sc).await;
    let settled = eventually(Duration::from_secs(30), || async { alive_tasks() <= tasks }).await;
    assert!(settled, "tasks: {} now, {tasks} before", alive_tasks());
}

#[tokio::test]
async fn reset_mid_request_is_502_and_never_resent() {
    let up = RawUpstream::start(|i| {
        if i == 0 {
            Act::ResetMidRequest
        } else {
            Act::Ok
        }
    })
    .await;
    let sc = sidecar(up.addr).await;
    let fixed = warm_up(&sc, &up).await;
    // Large enough that the upstream resets while hookseal is still writing it.
    let body = vec![b' '; 512 * 1024];
    let r = post(
        &sc.url("/hooks/sw"),
        &signed("msg_rst_req", &body),
        body.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.error(), "upstream_unavailable");
    assert_eq!(up.heads(), ["msg_rst_req"], "re-sent by hookseal");
    assert_eq!(up.accepted(), 1);
    let m = sc.metrics().await;
    assert_eq!(series(&m, UP_ERROR), 1.0, "{m}");
    // The sender's own retry is forwarded: the failed attempt left no in-flight mark.
    let r = post(&sc.url("/hooks/sw"), &signed("msg_rst_req", &body), body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(up.heads(), ["msg_rst_req", "msg_rst_req"]);
    assert_gauges_settle(&sc).await;
    assert_no_leaked_tasks(&up, fixed).await;
    drop(sc);
    up.assert_all_closed().await;
}

#[tokio::test]
async fn pooled_connection_closed_after_receiving_the_request_is_not_resent() {
    // Request 0 is answered on a keep-alive connection; request 1 goes over that pooled
    // connection, is read in full, and the upstream closes without answering. hookseal cannot
    // know whether the app acted on it, so it must answer 502 and never send it again.
    let up = RawUpstream::start(|i| match i {
        1 => Act::CloseWithoutAnswer,
        _ => Act::Ok,
    })
    .await;
    let sc = sidecar(up.addr).await;
    let fixed = warm_up(&sc, &up).await;
    let url = sc.url("/hooks/sw");
    assert_eq!(
        post(&url, &signed("msg_ka_0", BODY), BODY).await.status,
        StatusCode::OK
    );
    let r = post(&url, &signed("msg_ka_1", BODY), BODY).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.error(), "upstream_unavailable");
    assert_eq!(
        up.accepted(),
        1,
        "request 1 used the pooled connection, and no retry opened another"
    );
    assert_eq!(up.heads(), ["msg_ka_0", "msg_ka_1"]);
    // The pool recovers on a fresh connection.
    assert_eq!(
        post(&url, &signed("msg_ka_2", BODY), BODY).await.status,
        StatusCode::OK
    );
    assert_eq!(up.heads(), ["msg_ka_0", "msg_ka_1", "msg_ka_2"]);
    assert_eq!(up.accepted(), 2);
    let m = sc.metrics().await;
    assert_eq!(series(&m, UP_ERROR), 1.0, "{m}");
    assert_eq!(series(&m, UP_2XX), 2.0, "{m}");
    assert_gauges_settle(&sc).await;
    assert_no_leaked_tasks(&up, fixed).await;
}

#[tokio::test]
async fn reset_mid_response_head_is_502_and_never_resent() {
    let up = RawUpstream::start(|_| Act::ResetMidHead).await;
    let sc = sidecar(up.addr).await;
    let fixed = warm_up(&sc, &up).await;
    let r = post(&sc.url("/hooks/sw"), &signed("msg_rst_head", BODY), BODY).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(up.heads(), ["msg_rst_head"]);
    assert_eq!(up.accepted(), 1);
    let m = sc.metrics().await;
    assert_eq!(series(&m, UP_ERROR), 1.0, "{m}");
    assert_eq!(series(&m, UNAVAILABLE), 1.0, "{m}");
    assert_gauges_settle(&sc).await;
    assert_no_leaked_tasks(&up, fixed).await;
}

#[tokio::test]
async fn reset_mid_response_body_truncates_the_answer_and_is_never_resent() {
    let up = RawUpstream::start(|i| if i == 0 { Act::ResetMidBody } else { Act::Ok }).await;
    let sc = sidecar(up.addr).await;
    let fixed = warm_up(&sc, &up).await;
    let req = request_bytes("POST", "/hooks/sw", &signed("msg_rst_body", BODY), BODY);
    let r = exchange_from("127.0.0.1", sc.addr, req.clone()).await;
    // The app's status had already gone back when its body broke off.
    assert_eq!(r.status, 200);
    assert!(!r.complete, "a truncated body must not look complete");
    assert!(r.body.len() < 1000);
    assert_eq!(up.heads(), ["msg_rst_body"]);
    assert_eq!(up.accepted(), 1);
    let m = sc.metrics().await;
    assert_eq!(series(&m, UP_2XX), 1.0, "{m}");
    // The app answered 2xx, so the id counts as delivered: the retry is a duplicate.
    let r = exchange_from("127.0.0.1", sc.addr, req).await;
    assert_eq!(r.header("x-hookseal-duplicate"), Some("true"));
    assert_eq!(up.heads().len(), 1);
    assert_gauges_settle(&sc).await;
    assert_no_leaked_tasks(&up, fixed).await;
}

#[tokio::test]
async fn slow_upstream_is_504_and_never_resent() {
    let up = RawUpstream::start(|_| Act::Slow(Duration::from_secs(5))).await;
    let sc = sidecar(up.addr).await; // upstream.timeout = 2s
    let fixed = warm_up(&sc, &up).await;
    let r = post(&sc.url("/hooks/sw"), &signed("msg_slow_up", BODY), BODY).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.error(), "upstream_timeout");
    assert_eq!(up.heads(), ["msg_slow_up"]);
    assert_eq!(up.accepted(), 1);
    let m = sc.metrics().await;
    assert_eq!(series(&m, UP_TIMEOUT), 1.0, "{m}");
    assert_eq!(
        series(
            &m,
            "hookseal_requests_total{reason=\"upstream_timeout\",result=\"forwarded\",route=\"sw\"}"
        ),
        1.0,
        "{m}"
    );
    assert_gauges_settle(&sc).await;
    // hookseal gave up on that connection; it does not linger.
    up.assert_all_closed().await;
    assert_no_leaked_tasks(&up, fixed).await;
}

#[tokio::test]
async fn huge_upstream_body_streams_through_and_a_hang_up_releases_everything() {
    const HUGE: usize = 32 << 20;
    let up = RawUpstream::start(|i| {
        if i == 0 {
            Act::Huge(HUGE)
        } else {
            Act::Huge(1 << 30)
        }
    })
    .await;
    let sc = sidecar(up.addr).await;
    let fixed = warm_up(&sc, &up).await;
    let req = request_bytes("POST", "/hooks/sw", &signed("msg_huge_1", BODY), BODY);
    let r = exchange_from("127.0.0.1", sc.addr, req).await;
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.body.len(), HUGE);
    assert!(r.body.iter().all(|b| *b == b'z'));

    // A sender that hangs up after 1 MiB of a 1 GiB answer.
    let mut s = TcpStream::connect(sc.addr).await.unwrap();
    s.write_all(&request_bytes(
        "POST",
        "/hooks/sw",
        &signed("msg_huge_2", BODY),
        BODY,
    ))
    .await
    .unwrap();
    let mut got = 0usize;
    let mut chunk = vec![0u8; 65536];
    while got < 1 << 20 {
        let n = within(Duration::from_secs(30), s.read(&mut chunk))
            .await
            .unwrap();
        assert!(n > 0);
        got += n;
    }
    drop(s);
    assert_eq!(up.heads(), ["msg_huge_1", "msg_huge_2"]);
    assert_gauges_settle(&sc).await;
    up.assert_all_closed().await;
    assert_no_leaked_tasks(&up, fixed).await;
}

#[tokio::test]
async fn upstream_closing_keep_alive_connections_between_requests() {
    let up = RawUpstream::start(|_| Act::OkThenClose).await;
    let sc = sidecar(up.addr).await;
    let fixed = warm_up(&sc, &up).await;
    let url = sc.url("/hooks/sw");
    // With time for the close to be seen, every request succeeds on a fresh connection.
    for i in 0..5 {
        let r = post(&url, &signed(&format!("msg_close_{i}"), BODY), BODY).await;
        assert_eq!(r.status, StatusCode::OK);
        up.assert_all_closed().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(up.accepted(), 5);
    // Back to back, a request may race the close. Whatever the timing: nothing reaches the
    // upstream twice, and every 200 was delivered exactly once.
    let mut ok = 0;
    for i in 0..20 {
        let id = format!("msg_race_{i}");
        let r = post(&url, &signed(&id, BODY), BODY).await;
        let times = up.heads().iter().filter(|h| **h == id).count();
        match r.status {
            StatusCode::OK => {
                ok += 1;
                assert_eq!(times, 1, "{id}");
            }
            StatusCode::BAD_GATEWAY => assert!(times <= 1, "{id} sent {times} times"),
            s => panic!("unexpected {s}"),
        }
    }
    println!("back-to-back over closing keep-alive connections: {ok}/20 answered 200");
    let mut heads = up.heads();
    let n = heads.len();
    heads.sort();
    heads.dedup();
    assert_eq!(heads.len(), n, "a request reached the upstream twice");
    assert_gauges_settle(&sc).await;
    assert_no_leaked_tasks(&up, fixed).await;
}
