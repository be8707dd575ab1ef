//! Raw-socket tools for the operations and fault-injection tests: an HTTP/1.1 client that
//! shows exactly what came back on the wire, a minimal HTTP/2 frame client, an upstream that
//! holds requests until released, metric parsing and waiting helpers.

#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, Semaphore};

use super::support::Sidecar;

/// Raises this process's open-file soft limit towards `want` (never above the hard limit) and
/// returns it. Panics below `need`: the test could not be meaningful.
pub fn raise_nofile(want: u64, need: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        if r.rlim_cur < want {
            r.rlim_cur = want.min(r.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
        }
    }
    assert!(
        r.rlim_cur >= need,
        "RLIMIT_NOFILE hard limit {} is below the {need} this test needs",
        r.rlim_max
    );
    r.rlim_cur
}

/// A TCP connection to `dst` from the loopback address `src` (any of 127.0.0.0/8 works on
/// Linux), so that tests can present different client addresses.
pub async fn connect_from(src: &str, dst: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    sock.connect(dst).await.unwrap()
}

/// An HTTP/1.1 request, byte for byte. `Host` and `Content-Length` are added.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: hookseal.test\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The head of a POST to `path`, byte for byte: `host: x`, the `framing` line
/// (`content-length: N` or `transfer-encoding: chunked`), then `headers`, then the blank line.
pub fn post_head(path: &str, framing: &str, headers: &[(&str, String)]) -> String {
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: x\r\n{framing}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// One response as read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// False when the connection ended before the declared body did.
    pub complete: bool,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn error(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&self.body)));
        v["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// Reads one response: the head, then `Content-Length` bytes (or up to EOF without one).
/// A reset or EOF after the head gives `complete: false`; before the head, an error.
pub async fn read_response(s: &mut TcpStream) -> io::Result<RawResponse> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "EOF before a response head ({:?})",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let declared: Option<usize> = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok());
    let mut body = buf[head_end + 4..].to_vec();
    let mut complete = true;
    loop {
        if declared.is_some_and(|d| body.len() >= d) {
            break;
        }
        match s.read(&mut chunk).await {
            Ok(0) => {
                complete = declared.is_none();
                break;
            }
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    Ok(RawResponse {
        status,
        headers,
        body,
        complete,
    })
}

/// Sends `request` on a fresh connection from `src` and reads the response.
pub async fn exchange_from(src: &str, dst: SocketAddr, request: Vec<u8>) -> RawResponse {
    let mut s = connect_from(src, dst).await;
    s.write_all(&request).await.unwrap();
    within(Duration::from_secs(30), read_response(&mut s))
        .await
        .unwrap()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether the peer closes `s` within `limit` (EOF or reset), discarding anything it sends.
pub async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Awaits `f`, failing the test after `limit` (generous: the CI machine is shared).
pub async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("not done within {limit:?}"))
}

/// Polls `check` every 50 ms until it is true; false if `limit` passed first.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of one series in Prometheus text (`name{labels}` exactly as encoded); 0 if absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Waits until `hookseal_connections` and `hookseal_inflight_requests` are both 0.
pub async fn assert_gauges_settle(sc: &Sidecar) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = sc.metrics().await;
        let (c, i) = (
            metric(&m, "hookseal_connections"),
            metric(&m, "hookseal_inflight_requests"),
        );
        if c == 0.0 && i == 0.0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections/inflight did not return to 0: connections={c} inflight={i}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An upstream that records each request, then holds its response until released.
pub struct GatedUpstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<(String, Bytes)>>>,
    gate: Arc<Semaphore>,
    answered: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl GatedUpstream {
    pub async fn start() -> GatedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = oneshot::channel::<()>();
        let (r, g, a) = (
            Arc::clone(&received),
            Arc::clone(&gate),
            Arc::clone(&answered),
        );
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    _ = &mut rx => return,
                    c = listener.accept() => c.unwrap(),
                };
                let (r, g, a) = (Arc::clone(&r), Arc::clone(&g), Arc::clone(&a));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (r, g, a) = (Arc::clone(&r), Arc::clone(&g), Arc::clone(&a));
                        async move {
                            let id = req
                                .headers()
                                .get("x-hookseal-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            r.lock().unwrap().push((id, body));
                            g.acquire().await.unwrap().forget();
                            a.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from_static(b"released"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        GatedUpstream {
            addr,
            received,
            gate,
            answered,
            _stop: tx,
        }
    }

    /// Requests received so far (answered or held).
    pub fn received(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn ids(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Lets `n` held (or future) requests be answered.
    pub fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }

    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests have arrived.
    pub async fn wait_received(&self, n: usize) {
        let ok = eventually(Duration::from_secs(30), || async { self.received() >= n }).await;
        assert!(ok, "upstream received {} of {n} requests", self.received());
    }
}

/// A minimal HTTP/2 client speaking frames directly (prior knowledge, no TLS), so tests can
/// see GOAWAY, stream ids and closes exactly as the server sent them. It acknowledges
/// SETTINGS and PING by itself.
pub struct H2 {
    s: TcpStream,
    buf: Vec<u8>,
}

/// One HTTP/2 frame.
#[derive(Debug, Clone)]
pub struct H2Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

pub const H2_DATA: u8 = 0x0;
pub const H2_HEADERS: u8 = 0x1;
pub const H2_RST_STREAM: u8 = 0x3;
pub const H2_SETTINGS: u8 = 0x4;
pub const H2_PING: u8 = 0x6;
pub const H2_GOAWAY: u8 = 0x7;
pub const H2_WINDOW_UPDATE: u8 = 0x8;
pub const H2_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const H2_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const H2_REFUSED_STREAM: u32 = 0x7;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

impl H2Frame {
    /// GOAWAY's last stream id.
    pub fn last_stream_id(&self) -> u32 {
        u32::from_be_bytes(self.payload[..4].try_into().unwrap()) & 0x7fff_ffff
    }
}

impl H2 {
    /// Connects and sends the connection preface with empty SETTINGS.
    pub async fn connect(addr: SocketAddr) -> H2 {
        H2::connect_with(addr, &[]).await
    }

    /// Connects and sends the connection preface with these SETTINGS (identifier, value),
    /// e.g. `(H2_INITIAL_WINDOW_SIZE, 0)` for a client that takes no response data.
    pub async fn connect_with(addr: SocketAddr, settings: &[(u16, u32)]) -> H2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut h2 = H2 { s, buf: Vec::new() };
        let payload: Vec<u8> = settings
            .iter()
            .flat_map(|(id, v)| id.to_be_bytes().into_iter().chain(v.to_be_bytes()))
            .collect();
        h2.send(H2_SETTINGS, 0, 0, &payload).await;
        h2
    }

    /// Reads up to the server's first SETTINGS frame, acknowledges it and returns its
    /// parameters (identifier, value).
    pub async fn server_settings(&mut self) -> Vec<(u16, u32)> {
        loop {
            let f = self
                .read_frame()
                .await
                .expect("connection closed before SETTINGS");
            if f.kind == H2_SETTINGS && f.flags & ACK == 0 {
                self.send(H2_SETTINGS, ACK, 0, &[]).await;
                return f
                    .payload
                    .chunks_exact(6)
                    .map(|c| {
                        (
                            u16::from_be_bytes([c[0], c[1]]),
                            u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                        )
                    })
                    .collect();
            }
        }
    }

    pub async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = u32::try_from(payload.len()).unwrap();
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.push(kind);
        f.push(flags);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        self.s.write_all(&f).await.unwrap();
    }

    /// A complete header block (HPACK literals, never indexed, no Huffman).
    pub async fn headers(&mut self, stream: u32, headers: &[(&str, &str)], end_stream: bool) {
        let mut block = Vec::new();
        for (k, v) in headers {
            block.push(0x00);
            hpack_string(&mut block, k.as_bytes());
            hpack_string(&mut block, v.as_bytes());
        }
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.send(H2_HEADERS, flags, stream, &block).await;
    }

    /// A POST on `stream` with `body` (the DATA frame ends the stream).
    pub async fn post(&mut self, stream: u32, path: &str, headers: &[(&str, String)], body: &[u8]) {
        let len = body.len().to_string();
        let mut all: Vec<(&str, &str)> = vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "hookseal.test"),
            ("content-length", &len),
        ];
        all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
        self.headers(stream, &all, false).await;
        self.send(H2_DATA, END_STREAM, stream, body).await;
    }

    /// The next frame that is not a SETTINGS/PING the client answered itself; None on EOF
    /// or reset.
    pub async fn next(&mut self) -> Option<H2Frame> {
        loop {
            let f = self.read_frame().await?;
            match f.kind {
                H2_SETTINGS if f.flags & ACK == 0 => self.send(H2_SETTINGS, ACK, 0, &[]).await,
                H2_SETTINGS => {}
                H2_PING if f.flags & ACK == 0 => {
                    let p = f.payload.clone();
                    self.send(H2_PING, ACK, 0, &p).await;
                }
                _ => return Some(f),
            }
        }
    }

    async fn read_frame(&mut self) -> Option<H2Frame> {
        let mut chunk = [0u8; 16384];
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let frame: Vec<u8> = self.buf.drain(..9 + len).collect();
                    return Some(H2Frame {
                        kind: frame[3],
                        flags: frame[4],
                        stream: u32::from_be_bytes(frame[5..9].try_into().unwrap()) & 0x7fff_ffff,
                        payload: frame[9..].to_vec(),
                    });
                }
            }
            match self.s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// The `:status` of a response header block, when it comes first as HPACK encoders put it:
/// an indexed static entry (RFC 7541 appendix A) or a literal with the `:status` name (index 8),
/// its value raw or Huffman-coded (digits only).
pub fn h2_status(block: &[u8]) -> Option<u16> {
    let first = *block.first()?;
    let indexed = [
        (0x88, 200),
        (0x89, 204),
        (0x8a, 206),
        (0x8b, 304),
        (0x8c, 400),
        (0x8d, 404),
        (0x8e, 500),
    ];
    if let Some((_, s)) = indexed.iter().find(|(b, _)| *b == first) {
        return Some(*s);
    }
    if ![0x48, 0x08, 0x18].contains(&first) {
        return None;
    }
    let len = usize::from(*block.get(1)? & 0x7f);
    let value = block.get(2..2 + len)?;
    let text = if block[1] & 0x80 == 0 {
        String::from_utf8(value.to_vec()).ok()?
    } else {
        // Huffman codes of '0'..'9' (RFC 7541 appendix B): 5 bits for 0-2, 6 bits for 3-9.
        let codes: [(u32, u32); 10] = [
            (0x0, 5),
            (0x1, 5),
            (0x2, 5),
            (0x19, 6),
            (0x1a, 6),
            (0x1b, 6),
            (0x1c, 6),
            (0x1d, 6),
            (0x1e, 6),
            (0x1f, 6),
        ];
        let bits: Vec<u8> = value
            .iter()
            .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
            .collect();
        let (mut out, mut i) = (String::new(), 0);
        'digits: while out.len() < 3 {
            for (d, (code, n)) in codes.iter().enumerate() {
                let n = *n as usize;
                let Some(chunk) = bits.get(i..i + n) else {
                    break 'digits;
                };
                let v = chunk.iter().fold(0u32, |a, b| a << 1 | u32::from(*b));
                if v == *code {
                    out.push(char::from(b'0' + d as u8));
                    i += n;
                    continue 'digits;
                }
            }
            return None;
        }
        out
    };
    text.parse().ok()
}

/// An HPACK string literal without Huffman coding (RFC 7541 §5.2), length as a 7-bit-prefix
/// integer (§5.1).
fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128 + 128) as u8);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}
