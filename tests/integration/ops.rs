//! Operations (issue 7): graceful drain of the real binary on SIGTERM/SIGINT, HTTP/2 GOAWAY,
//! observe mode, slow and abusive clients, allow-lists behind trusted proxies. All over real
//! sockets on 127.0.0.0/8; no assertion depends on tight timing.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::netkit::*;
use crate::support::*;

const BODY: &[u8] = b"{\"type\":\"invoice.paid\",\"data\":{\"id\":7}}";

fn signed(id: &str) -> Vec<(&'static str, String)> {
    sign_standard(WHSEC, id, unix_now(), BODY)
}

/// A full config: `listen_extra` goes into `[listen]`, `rest` after `[upstream]`.
pub(crate) fn config_text(upstream: SocketAddr, listen_extra: &str, rest: &str) -> String {
    format!(
        "[listen]\naddress = \"127.0.0.1:0\"\n{listen_extra}\n[admin]\naddress = \"127.0.0.2:0\"\n\
         [upstream]\nurl = \"http://{upstream}\"\ntimeout = \"60s\"\n{rest}\n"
    )
}

// ---------------------------------------------------------------------------------------
// The real binary under signals.

/// A `hookseal run` child process with its stderr (JSON logs) collected.
pub(crate) struct Proc {
    pub(crate) child: Child,
    log: Arc<Mutex<Vec<String>>>,
    pub(crate) listen: SocketAddr,
    pub(crate) admin: SocketAddr,
}

impl Proc {
    pub(crate) fn start(dir: &Path, config: &str) -> Proc {
        let path = dir.join("hookseal.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookseal"))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("HOOKSEAL_LOG_FORMAT", "json")
            .env("HOOKSEAL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if line.contains("hookseal serving") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("hookseal did not start: {:?}", log.lock().unwrap());
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let addr = |k: &str| -> SocketAddr { v[k].as_str().unwrap().parse().unwrap() };
        Proc {
            listen: addr("listen"),
            admin: addr("admin"),
            child,
            log,
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    async fn exit_code(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().expect("exited by a signal");
            }
            assert!(
                Instant::now() < deadline,
                "hookseal still running {limit:?} after the signal; log: {:?}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn logged(&self, needle: &str) -> bool {
        self.log().iter().any(|l| l.contains(needle))
    }

    async fn readyz(&self) -> Option<StatusCode> {
        let url = format!("http://{}/readyz", self.admin);
        let req = http::Request::get(url)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        client().request(req).await.ok().map(|r| r.status())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_real_binary() {
    let up = GatedUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rest = format!(
        "[limits]\ndrain_delay = \"3s\"\nshutdown_grace = \"60s\"\n{}",
        sw_route("")
    );
    let mut p = Proc::start(dir.path(), &config_text(up.addr, "", &rest));
    let ready = eventually(Duration::from_secs(30), || async {
        p.readyz().await == Some(StatusCode::OK)
    })
    .await;
    assert!(ready, "/readyz never answered 200");

    // A webhook in flight: the upstream holds its answer until released.
    let url = format!("http://{}/hooks/sw", p.listen);
    let pending = tokio::spawn(async move { post(&url, &signed("msg_in_flight"), BODY).await });
    up.wait_received(1).await;

    p.signal(libc::SIGTERM);
    let ready_503 = eventually(Duration::from_secs(10), || async {
        p.readyz().await == Some(StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    assert!(ready_503, "/readyz did not turn 503: {:?}", p.log());

    // Within drain_delay the listener still accepts and serves new connections.
    let during = send(
        http::Method::GET,
        &format!("http://{}/not-a-route", p.listen),
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(during.status, StatusCode::NOT_FOUND);
    assert_eq!(during.error(), "no_route");
    // Liveness is unaffected: a draining process must not be restarted.
    let live = send(
        http::Method::GET,
        &format!("http://{}/healthz", p.admin),
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(live.status, StatusCode::OK);

    // Then it stops accepting, while the request in flight is still held.
    let refused = eventually(Duration::from_secs(30), || async {
        matches!(TcpStream::connect(p.listen).await,
                 Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    })
    .await;
    assert!(refused, "new connections were not refused");
    assert!(p.alive(), "exited with a request in flight: {:?}", p.log());
    assert!(!pending.is_finished());

    up.release(1);
    let r = within(Duration::from_secs(30), pending).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"released");
    assert_eq!(p.exit_code(Duration::from_secs(30)).await, 0);
    assert_eq!(up.ids(), ["msg_in_flight"]);
    assert!(p.logged("shutdown requested"), "{:?}", p.log());
    assert!(p.logged("\"drained\""), "{:?}", p.log());
    assert!(!p.logged("cut off"), "{:?}", p.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_with_grace_run_out_exits_0_and_logs_what_was_cut_off() {
    let up = GatedUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rest = format!("[limits]\nshutdown_grace = \"1s\"\n{}", sw_route(""));
    let mut p = Proc::start(dir.path(), &config_text(up.addr, "", &rest));

    let mut held = TcpStream::connect(p.listen).await.unwrap();
    held.write_all(&request_bytes(
        "POST",
        "/hooks/sw?token=secret-query",
        &signed("msg_cut"),
        BODY,
    ))
    .await
    .unwrap();
    up.wait_received(1).await;

    p.signal(libc::SIGINT);
    assert_eq!(p.exit_code(Duration::from_secs(30)).await, 0);
    // The sender sees its connection end without an answer (it will retry).
    assert!(within(Duration::from_secs(10), read_response(&mut held))
        .await
        .is_err());
    let log = p.log();
    let cut = log
        .iter()
        .find(|l| l.contains("request cut off"))
        .unwrap_or_else(|| panic!("no cut-off request logged: {log:?}"));
    assert!(cut.contains("\"path\":\"/hooks/sw\""), "{cut}");
    assert!(cut.contains("\"method\":\"POST\""), "{cut}");
    assert!(
        !cut.contains("secret-query"),
        "query strings are not logged: {cut}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("exited with connections cut off") && l.contains("\"requests\":1")),
        "{log:?}"
    );
    up.release(1);
}

// ---------------------------------------------------------------------------------------
// HTTP/2 drain.

#[tokio::test]
async fn http2_drain_sends_goaway_and_finishes_the_stream_in_flight() {
    let up = GatedUpstream::start().await;
    let mut sc = Sidecar::start(up.addr, "[limits]\nshutdown_grace = \"60s\"", &sw_route("")).await;
    let mut h2 = H2::connect(sc.addr).await;
    h2.post(1, "/hooks/sw", &signed("msg_h2"), BODY).await;
    up.wait_received(1).await;

    let drained = tokio::spawn(async move { sc.shutdown().await });
    // GOAWAY while stream 1 is still waiting for the upstream; the final one names stream 1
    // as the last stream the server will process.
    let final_goaway = within(Duration::from_secs(30), async {
        loop {
            let f = h2.next().await.expect("connection closed before GOAWAY");
            assert!(
                !(f.stream == 1 && f.kind == H2_HEADERS),
                "answered before release"
            );
            if f.kind == H2_GOAWAY && f.last_stream_id() < 3 {
                return f;
            }
        }
    })
    .await;
    assert_eq!(final_goaway.last_stream_id(), 1);
    // A stream opened after GOAWAY is not processed.
    h2.post(3, "/hooks/sw", &signed("msg_h2_late"), BODY).await;
    up.release(2);

    let (mut status, mut body, mut ended) = (None, Vec::new(), false);
    within(Duration::from_secs(30), async {
        while let Some(f) = h2.next().await {
            match (f.kind, f.stream) {
                (H2_HEADERS, 1) => status = h2_status(&f.payload),
                (H2_DATA, 1) => {
                    body.extend_from_slice(&f.payload);
                    ended |= f.flags & END_STREAM != 0;
                }
                (H2_HEADERS, 3) => panic!("stream 3 was answered after GOAWAY"),
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(status, Some(200));
    assert!(ended, "stream 1 did not complete");
    assert_eq!(body, b"released");
    let drained = within(Duration::from_secs(30), drained).await.unwrap();
    assert_eq!(drained.cut_off, 0);
    assert_eq!(up.ids(), ["msg_h2"]);
}

#[tokio::test]
async fn a_connection_accepted_just_before_the_drain_still_gets_its_request_served() {
    let up = Upstream::start().await;
    let mut sc = Sidecar::start(up.addr, "[limits]\nheader_timeout = \"30s\"", &sw_route("")).await;
    // Accepted, but its request has not arrived yet when the listener closes.
    let mut early = TcpStream::connect(sc.addr).await.unwrap();
    let accepted = eventually(Duration::from_secs(20), || async {
        metric(&sc.metrics().await, "hookseal_connections") == 1.0
    })
    .await;
    assert!(accepted);
    let admin = sc.admin;
    let drained = tokio::spawn(async move { sc.shutdown().await });
    let ready_503 = eventually(Duration::from_secs(20), || async {
        let r = send(
            http::Method::GET,
            &format!("http://{admin}/readyz"),
            &[],
            bytes::Bytes::new(),
        )
        .await;
        r.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(ready_503);
    tokio::time::sleep(Duration::from_millis(200)).await;

    early
        .write_all(&request_bytes(
            "POST",
            "/hooks/sw",
            &signed("msg_late"),
            BODY,
        ))
        .await
        .unwrap();
    let r = within(Duration::from_secs(30), read_response(&mut early))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(closed_within(&mut early, Duration::from_secs(20)).await);
    let drained = within(Duration::from_secs(30), drained).await.unwrap();
    assert_eq!(drained.cut_off, 0);
    assert_eq!(up.count(), 1);
}

// ---------------------------------------------------------------------------------------
// Observe mode.

#[tokio::test]
async fn observe_mode_forwards_everything_with_verdict_headers_and_metrics() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &sw_route("mode = \"observe\"")).await;
    let url = sc.url("/hooks/sw");

    let good = signed("msg_obs_1");
    assert_eq!(post(&url, &good, BODY).await.status, StatusCode::OK);
    let h = up.last().headers;
    assert_eq!(h["x-hookseal-verified"], "true");
    assert_eq!(h["x-hookseal-key"], "current");
    assert!(!h.contains_key("x-hookseal-reason"));

    // A forged signature, with spoofed verdict headers: forwarded, marked false.
    let mut forged = sign_standard(
        "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCE=",
        "msg_obs_2",
        unix_now(),
        BODY,
    );
    forged.push(("x-hookseal-verified", "true".into()));
    forged.push(("x-hookseal-reason", "ok".into()));
    let r = post(&url, &forged, BODY).await;
    assert_eq!(r.status, StatusCode::OK, "the upstream's answer goes back");
    assert_eq!(&r.body[..], b"upstream-ok");
    let last = up.last();
    assert_eq!(last.body, BODY);
    let h = last.headers;
    assert_eq!(h.get_all("x-hookseal-verified").iter().count(), 1);
    assert_eq!(h["x-hookseal-verified"], "false");
    assert_eq!(h.get_all("x-hookseal-reason").iter().count(), 1);
    assert_eq!(h["x-hookseal-reason"], "bad_signature");
    assert!(!h.contains_key("x-hookseal-key"));

    let stale = sign_standard(WHSEC, "msg_obs_3", unix_now() - 3600, BODY);
    post(&url, &stale, BODY).await;
    assert_eq!(up.last().headers["x-hookseal-reason"], "stale_timestamp");
    post(&url, &[], BODY).await;
    assert_eq!(up.last().headers["x-hookseal-reason"], "missing_signature");
    // A replay of the first: forwarded too, flagged as a duplicate.
    post(&url, &good, BODY).await;
    let h = up.last().headers;
    assert_eq!(h["x-hookseal-reason"], "duplicate");
    assert_eq!(h["x-hookseal-duplicate"], "true");
    assert_eq!(up.count(), 5);

    let m = sc.metrics().await;
    let series = |reason: &str| {
        metric(
            &m,
            &format!(
                "hookseal_requests_total{{reason=\"{reason}\",result=\"observed\",route=\"sw\"}}"
            ),
        )
    };
    assert_eq!(series("ok"), 1.0, "{m}");
    assert_eq!(series("bad_signature"), 1.0, "{m}");
    assert_eq!(series("stale_timestamp"), 1.0, "{m}");
    assert_eq!(series("missing_signature"), 1.0, "{m}");
    assert_eq!(series("duplicate"), 1.0, "{m}");
    for line in m
        .lines()
        .filter(|l| l.starts_with("hookseal_requests_total{"))
    {
        if line.contains("route=\"sw\"") && !line.contains("result=\"observed\"") {
            assert!(
                line.ends_with(" 0"),
                "only observed results on an observe route: {line}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Slow and abusive clients.

#[tokio::test]
async fn stalled_heads_and_silent_connections_are_closed_after_header_timeout() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(
        up.addr,
        "[limits]\nheader_timeout = \"1s\"\nidle_timeout = \"1h\"",
        &sw_route(""),
    )
    .await;
    let limit = Duration::from_secs(20);
    let mut silent = TcpStream::connect(sc.addr).await.unwrap();
    let mut partial = TcpStream::connect(sc.addr).await.unwrap();
    partial
        .write_all(b"POST /hooks/sw HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    // A prefix of the HTTP/2 preface: the protocol sniffing alone would wait forever.
    let mut preface = TcpStream::connect(sc.addr).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    // A full HTTP/2 preface and SETTINGS, then no request.
    let mut h2_idle = TcpStream::connect(sc.addr).await.unwrap();
    h2_idle
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let t = Instant::now();
    assert!(closed_within(&mut silent, limit).await, "silent connection");
    assert!(closed_within(&mut partial, limit).await, "partial head");
    assert!(closed_within(&mut preface, limit).await, "partial preface");
    assert!(closed_within(&mut h2_idle, limit).await, "idle HTTP/2");
    println!("stalled connections closed after {:?}", t.elapsed());

    // A head trickled a byte at a time is bounded by the same timeout, not reset by progress.
    let mut trickle = TcpStream::connect(sc.addr).await.unwrap();
    let head = request_bytes("POST", "/hooks/sw", &signed("msg_trickle"), BODY);
    let mut cut = false;
    for b in head.iter().take(head.len() - 4) {
        if trickle.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if t.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    assert!(
        cut || closed_within(&mut trickle, limit).await,
        "trickled head was not cut off"
    );
    assert_eq!(up.count(), 0);
    assert_gauges_settle(&sc).await;
}

/// `header_timeout` between HTTP/1.1 requests (README "Slow and abusive clients"): each later
/// head must arrive within it of the end of the request before, so a keep-alive connection is
/// closed after the smaller of `header_timeout` and `idle_timeout`; an HTTP/2 connection,
/// whose later requests are streams, stays open until `idle_timeout`.
#[tokio::test]
async fn later_http1_heads_are_bounded_by_header_timeout_and_http2_streams_are_not() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(
        up.addr,
        "[limits]\nheader_timeout = \"1s\"\nidle_timeout = \"1h\"",
        &sw_route(""),
    )
    .await;
    let limit = Duration::from_secs(20);
    let post = |id: &str| request_bytes("POST", "/hooks/sw", &signed(id), BODY);

    // Keep-alive: requests within header_timeout of each other are served on one connection.
    let mut h1 = TcpStream::connect(sc.addr).await.unwrap();
    for id in ["msg_later_1", "msg_later_2", "msg_later_3"] {
        h1.write_all(&post(id)).await.unwrap();
        let r = within(limit, read_response(&mut h1)).await.unwrap();
        assert_eq!(r.status, 200, "{id}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Then part of a head, and nothing more: cut off.
    h1.write_all(b"POST /hooks/sw HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    assert!(closed_within(&mut h1, limit).await, "stalled later head");

    // One request, then nothing: closed although idle_timeout is an hour.
    let mut quiet = TcpStream::connect(sc.addr).await.unwrap();
    quiet.write_all(&post("msg_later_4")).await.unwrap();
    let r = within(limit, read_response(&mut quiet)).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(closed_within(&mut quiet, limit).await, "idle HTTP/1.1");

    // HTTP/2: a second stream three header_timeouts after the first is still served.
    let mut h2 = H2::connect(sc.addr).await;
    for (stream, id) in [(1, "msg_later_h2_1"), (3, "msg_later_h2_2")] {
        h2.post(stream, "/hooks/sw", &signed(id), BODY).await;
        let status = within(limit, async {
            loop {
                let f = h2.next().await.expect("HTTP/2 connection closed");
                if f.kind == H2_HEADERS && f.stream == stream {
                    return h2_status(&f.payload);
                }
            }
        })
        .await;
        assert_eq!(status, Some(200), "stream {stream}");
        if stream == 1 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
    assert_eq!(up.count(), 6);
    drop(h2);
    assert_gauges_settle(&sc).await;
}

#[tokio::test]
async fn idle_connections_are_closed_but_slow_requests_are_not() {
    let up = Upstream::start().await;
    let rest = format!(
        "[limits]\nheader_timeout = \"1h\"\nidle_timeout = \"1s\"\n{}",
        sw_route("")
    );
    let sc = Sidecar::start_text(&config_text(up.addr, "", &rest)).await;
    let limit = Duration::from_secs(20);

    // HTTP/1.1 keep-alive: one request, then nothing.
    let mut h1 = TcpStream::connect(sc.addr).await.unwrap();
    h1.write_all(&request_bytes(
        "POST",
        "/hooks/sw",
        &signed("msg_idle_1"),
        BODY,
    ))
    .await
    .unwrap();
    let r = within(limit, read_response(&mut h1)).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(closed_within(&mut h1, limit).await, "idle HTTP/1.1");

    // HTTP/2: one stream, then nothing: GOAWAY and close.
    let mut h2 = H2::connect(sc.addr).await;
    h2.post(1, "/hooks/sw", &signed("msg_idle_2"), BODY).await;
    let mut goaway = false;
    within(limit, async {
        while let Some(f) = h2.next().await {
            goaway |= f.kind == H2_GOAWAY;
        }
    })
    .await;
    assert!(goaway, "idle HTTP/2 connection closed without GOAWAY");

    // A request waiting on a slow upstream is not idle.
    up.set(|b| b.delay = Duration::from_secs(3));
    let mut slow = TcpStream::connect(sc.addr).await.unwrap();
    slow.write_all(&request_bytes(
        "POST",
        "/hooks/sw",
        &signed("msg_idle_3"),
        BODY,
    ))
    .await
    .unwrap();
    let r = within(limit, read_response(&mut slow)).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(up.count(), 3);
    assert_gauges_settle(&sc).await;
}

#[tokio::test]
async fn header_count_and_size_are_capped() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(
        up.addr,
        "[limits]\nmax_headers = 20\nmax_header_bytes = \"8KiB\"",
        &sw_route(""),
    )
    .await;
    let mut many = signed("msg_caps_1");
    for i in 0..30 {
        many.push(("x-filler", i.to_string()));
    }
    let r = exchange_from(
        "127.0.0.1",
        sc.addr,
        request_bytes("POST", "/hooks/sw", &many, BODY),
    )
    .await;
    assert_eq!(r.status, 431, "too many headers");

    let mut big = signed("msg_caps_2");
    big.push(("x-big", "a".repeat(10 * 1024)));
    let r = exchange_from(
        "127.0.0.1",
        sc.addr,
        request_bytes("POST", "/hooks/sw", &big, BODY),
    )
    .await;
    assert_eq!(r.status, 431, "head over max_header_bytes");
    assert_eq!(up.count(), 0);

    // HTTP/2: a header list over the cap is refused on its stream, never forwarded.
    let mut h2 = H2::connect(sc.addr).await;
    h2.post(1, "/hooks/sw", &big, BODY).await;
    let answer = within(Duration::from_secs(30), async {
        while let Some(f) = h2.next().await {
            if f.kind == H2_HEADERS && f.stream == 1 {
                return h2_status(&f.payload);
            }
        }
        None
    })
    .await;
    assert_eq!(answer, Some(431));
    assert_eq!(up.count(), 0);
    drop(h2);

    // Under both caps: served.
    let mut fine = signed("msg_caps_3");
    for i in 0..10 {
        fine.push(("x-filler", format!("{i}-{}", "b".repeat(400))));
    }
    let r = exchange_from(
        "127.0.0.1",
        sc.addr,
        request_bytes("POST", "/hooks/sw", &fine, BODY),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.count(), 1);
    assert_gauges_settle(&sc).await;
}

#[tokio::test]
async fn max_connections_holds_excess_connections_in_the_backlog() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(
        up.addr,
        "[limits]\nmax_connections = 2\nheader_timeout = \"60s\"",
        &sw_route(""),
    )
    .await;
    let a = TcpStream::connect(sc.addr).await.unwrap();
    let _b = TcpStream::connect(sc.addr).await.unwrap();
    let two = eventually(Duration::from_secs(20), || async {
        metric(&sc.metrics().await, "hookseal_connections") == 2.0
    })
    .await;
    assert!(two);

    // The third connects (kernel backlog) but is not served while both permits are held.
    let mut third = TcpStream::connect(sc.addr).await.unwrap();
    third
        .write_all(&request_bytes(
            "POST",
            "/hooks/sw",
            &signed("msg_backlog"),
            BODY,
        ))
        .await
        .unwrap();
    let early = tokio::time::timeout(Duration::from_secs(1), read_response(&mut third)).await;
    assert!(early.is_err(), "served over max_connections: {early:?}");
    assert_eq!(metric(&sc.metrics().await, "hookseal_connections"), 2.0);
    assert_eq!(up.count(), 0);

    // One slot frees: the waiting connection is accepted and its request served whole.
    drop(a);
    let r = within(Duration::from_secs(30), read_response(&mut third))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(up.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_connections_do_not_stop_valid_webhooks() {
    raise_nofile(8192, 4096);
    let up = Upstream::start().await;
    let sc = Sidecar::start(
        up.addr,
        "[limits]\nheader_timeout = \"300s\"\nbody_timeout = \"300s\"\nidle_timeout = \"300s\"",
        &sw_route(""),
    )
    .await;
    const SLOW: usize = 1000;
    // The same burst without slow connections first, for comparison (printed, not asserted).
    let url = sc.url("/hooks/sw");
    let baseline = burst(&url, "msg_base").await;
    let started = Instant::now();
    let mut silent = Vec::new();
    let mut trickling = Vec::new();
    for i in 0..SLOW {
        let mut s = TcpStream::connect(sc.addr).await.unwrap();
        match i % 3 {
            0 => silent.push(s),
            1 => {
                // Slowloris: a head that never ends.
                s.write_all(b"POST /hooks/sw HTTP/1.1\r\nhost: x\r\nx-slow: ")
                    .await
                    .unwrap();
                trickling.push(s);
            }
            _ => {
                // A body that never ends.
                s.write_all(
                    b"POST /hooks/sw HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n{\"a\":",
                )
                .await
                .unwrap();
                trickling.push(s);
            }
        }
    }
    let held = eventually(Duration::from_secs(60), || async {
        metric(&sc.metrics().await, "hookseal_connections") >= SLOW as f64
    })
    .await;
    assert!(held, "the slow connections were not all accepted");
    println!("{SLOW} slow connections open after {:?}", started.elapsed());

    // Keep them trickling a byte a second while the valid webhooks go through.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickler = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for s in &mut trickling {
                    let _ = s.write_all(b"a").await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            trickling
        })
    };

    let loaded = burst(&url, "msg_valid").await;
    println!(
        "100 concurrent valid webhooks: alone median {:?} max {:?}; beside {SLOW} slow connections median {:?} max {:?}",
        baseline[50], baseline[99], loaded[50], loaded[99]
    );
    let mut ids: Vec<String> = up
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.headers["x-hookseal-id"].to_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every valid webhook forwarded once");
    assert_eq!(
        up.count(),
        200,
        "nothing from the slow connections was forwarded"
    );
    assert!(
        metric(&sc.metrics().await, "hookseal_connections") >= SLOW as f64,
        "slow connections were dropped during the test"
    );

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let trickling = within(Duration::from_secs(60), trickler).await.unwrap();
    drop(trickling);
    drop(silent);
    assert_gauges_settle(&sc).await;
}

/// 100 signed webhooks sent at once, each on its own connection; their latencies, sorted.
async fn burst(url: &str, prefix: &str) -> Vec<Duration> {
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let url = url.to_owned();
            let id = format!("{prefix}_{i}");
            tokio::spawn(async move {
                let t = Instant::now();
                let r = post(&url, &signed(&id), BODY).await;
                (r.status, t.elapsed())
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        let (status, took) = within(Duration::from_secs(120), t).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        latencies.push(took);
    }
    latencies.sort();
    latencies
}

// ---------------------------------------------------------------------------------------
// allow_from and trusted proxies.

const IPS_ROUTES: &str = "[[route]]\nname = \"ips\"\npath = \"/ips\"\nscheme = \"none\"\n\
    allow_from = [\"127.0.0.3/32\", \"192.0.2.0/24\"]\n\
    [[route]]\nname = \"signed\"\npath = \"/hooks/sw\"\nscheme = \"standard-webhooks\"\n\
    secrets = [{ value = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" }]\n\
    allow_from = [\"127.0.0.3/32\"]\n";

async fn ips_sidecar(up: &Upstream, listen_extra: &str) -> Sidecar {
    Sidecar::start_text(&config_text(up.addr, listen_extra, IPS_ROUTES)).await
}

fn get_ips(xff: Option<&str>) -> Vec<u8> {
    let headers: Vec<(&str, String)> = xff
        .map(|v| vec![("x-forwarded-for", v.to_owned())])
        .unwrap_or_default();
    request_bytes("POST", "/ips", &headers, b"{}")
}

#[tokio::test]
async fn allow_from_uses_the_socket_peer_without_trusted_proxies() {
    let up = Upstream::start().await;
    let sc = ips_sidecar(&up, "").await;

    let r = exchange_from("127.0.0.3", sc.addr, get_ips(None)).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.last().headers["x-forwarded-for"], "127.0.0.3");

    let r = exchange_from("127.0.0.4", sc.addr, get_ips(None)).await;
    assert_eq!((r.status, r.error().as_str()), (403, "ip_not_allowed"));
    // A forged X-Forwarded-For from an untrusted peer changes nothing.
    let r = exchange_from("127.0.0.4", sc.addr, get_ips(Some("127.0.0.3"))).await;
    assert_eq!((r.status, r.error().as_str()), (403, "ip_not_allowed"));
    let r = exchange_from("127.0.0.4", sc.addr, get_ips(Some("192.0.2.10, 127.0.0.3"))).await;
    assert_eq!(r.status, 403);

    // The allow-list is checked before the signature: an unsigned request from outside gets
    // 403, not 400, and a signed one from outside is refused too.
    let unsigned = request_bytes("POST", "/hooks/sw", &[], BODY);
    let r = exchange_from("127.0.0.4", sc.addr, unsigned).await;
    assert_eq!((r.status, r.error().as_str()), (403, "ip_not_allowed"));
    let good = request_bytes("POST", "/hooks/sw", &signed("msg_ip_1"), BODY);
    assert_eq!(
        exchange_from("127.0.0.4", sc.addr, good.clone())
            .await
            .status,
        403
    );
    assert_eq!(
        exchange_from("127.0.0.3", sc.addr, good.clone())
            .await
            .status,
        200
    );

    assert_eq!(up.count(), 2);
    let m = sc.metrics().await;
    assert_eq!(
        metric(
            &m,
            "hookseal_requests_total{reason=\"ip_not_allowed\",result=\"rejected\",route=\"ips\"}"
        ),
        3.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "hookseal_requests_total{reason=\"ip_not_allowed\",result=\"rejected\",route=\"signed\"}"),
        2.0,
        "{m}"
    );
}

#[tokio::test]
async fn allow_from_behind_a_trusted_proxy_uses_the_rightmost_untrusted_address() {
    let up = Upstream::start().await;
    let sc = ips_sidecar(&up, "trusted_proxies = [\"127.0.0.2/32\", \"10.0.0.0/8\"]").await;
    let via_proxy = |xff: Option<&'static str>| exchange_from("127.0.0.2", sc.addr, get_ips(xff));

    // The proxy reports the client it saw.
    let r = via_proxy(Some("127.0.0.3")).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.last().headers["x-forwarded-for"], "127.0.0.3, 127.0.0.2");
    // A client that forged an allowed address: the proxy appended the real one, which wins.
    let r = via_proxy(Some("127.0.0.3, 198.51.100.7")).await;
    assert_eq!((r.status, r.error().as_str()), (403, "ip_not_allowed"));
    // A client that forged a disallowed address in front of its real, allowed one.
    assert_eq!(
        via_proxy(Some("198.51.100.7, 192.0.2.55")).await.status,
        200
    );
    // Trusted hops are skipped, right to left.
    assert_eq!(
        via_proxy(Some("127.0.0.3, 10.1.2.3, 10.9.9.9"))
            .await
            .status,
        200
    );
    assert_eq!(via_proxy(Some("198.51.100.7, 10.1.2.3")).await.status, 403);
    // No header: the proxy itself is the client, and it is not allowed.
    assert_eq!(via_proxy(None).await.status, 403);
    // Garbage matches nothing.
    assert_eq!(via_proxy(Some("not-an-address")).await.status, 403);
    // A peer that is not a trusted proxy cannot use the header.
    let r = exchange_from("127.0.0.4", sc.addr, get_ips(Some("127.0.0.3"))).await;
    assert_eq!(r.status, 403);
    // ... and a direct, allowed client is judged by its socket address.
    let r = exchange_from("127.0.0.3", sc.addr, get_ips(Some("198.51.100.7"))).await;
    assert_eq!(r.status, 200);

    assert_eq!(up.count(), 4);
    let m = sc.metrics().await;
    assert_eq!(
        metric(
            &m,
            "hookseal_requests_total{reason=\"ip_not_allowed\",result=\"rejected\",route=\"ips\"}"
        ),
        5.0,
        "{m}"
    );
}

#[test]
fn idle_timeout_defaults_to_60s_and_must_be_positive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookseal.toml");
    let base = "[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
                [[route]]\nname = \"app\"\npath_prefix = \"/\"\nscheme = \"none\"\n";
    let load = |limits: &str| {
        std::fs::write(&path, format!("{limits}\n{base}")).unwrap();
        hookseal::config::Config::load_with_env(&path, &|_| None)
    };
    let c = load("").unwrap();
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(60));
    let c = load("[limits]\nidle_timeout = \"90s\"").unwrap();
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(90));
    let e = load("[limits]\nidle_timeout = \"0s\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains(":2: limits.idle_timeout"), "{e}");
}
