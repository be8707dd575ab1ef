//! Test support: a recording upstream, an in-process hookseal, a client, signers written
//! independently of the code under test.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use hookseal::app::App;
use hookseal::config::Config;

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How the upstream answers.
#[derive(Debug, Clone)]
pub struct Behavior {
    pub status: StatusCode,
    pub delay: Duration,
    pub body: Bytes,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            status: StatusCode::OK,
            delay: Duration::ZERO,
            body: Bytes::from_static(b"upstream-ok"),
        }
    }
}

/// An in-process upstream on 127.0.0.1:0 that records every request.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
    pub behavior: Arc<Mutex<Behavior>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let behavior = Arc::new(Mutex::new(Behavior::default()));
        let (tx, mut rx) = oneshot::channel::<()>();
        let (s, b) = (Arc::clone(&seen), Arc::clone(&behavior));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let acc = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    _ = &mut rx => return,
                    r = listener.accept() => r.unwrap(),
                };
                acc.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (s, b) = (Arc::clone(&s), Arc::clone(&b));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (s, b) = (Arc::clone(&s), Arc::clone(&b));
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let behavior = b.lock().unwrap().clone();
                            s.lock().unwrap().push(Recorded {
                                method: parts.method,
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            });
                            tokio::time::sleep(behavior.delay).await;
                            let mut resp = Response::new(Full::new(behavior.body));
                            *resp.status_mut() = behavior.status;
                            resp.headers_mut()
                                .insert("x-upstream", "yes".parse().unwrap());
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            seen,
            behavior,
            accepted,
            _stop: tx,
        }
    }

    pub fn set(&self, f: impl FnOnce(&mut Behavior)) {
        f(&mut self.behavior.lock().unwrap());
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Recorded {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream received nothing")
    }
}

/// hookseal running in-process on 127.0.0.1:0.
pub struct Sidecar {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub app: App,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<hookseal::server::Drained>>,
}

impl Sidecar {
    /// Starts hookseal with `routes` (TOML `[[route]]` entries) in front of `upstream`.
    /// `extra` is TOML inserted before the routes (sections like `[limits]`).
    pub async fn start(upstream: SocketAddr, extra: &str, routes: &str) -> Sidecar {
        let text = format!(
            "[listen]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"127.0.0.2:0\"\n\
             [upstream]\nurl = \"http://{upstream}\"\ntimeout = \"2s\"\n{extra}\n{routes}"
        );
        Self::start_text(&text).await
    }

    pub async fn start_text(text: &str) -> Sidecar {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookseal.toml");
        std::fs::write(&path, text).unwrap();
        let config =
            Config::load_with_env(&path, &|_| None).unwrap_or_else(|e| panic!("config: {e}"));
        Self::start_config(config, dir).await
    }

    pub async fn start_config(config: Config, dir: tempfile::TempDir) -> Sidecar {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin = admin_listener.local_addr().unwrap();
        let app = App::new(config).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.clone().run(listener, admin_listener, async move {
            let _ = rx.await;
        }));
        Sidecar {
            addr,
            admin,
            app,
            dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn shutdown(&mut self) -> hookseal::server::Drained {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        scrape_metrics(self.admin).await
    }
}

/// The `/metrics` text of the admin listener at `admin` (`host:port`).
pub async fn scrape_metrics(admin: impl std::fmt::Display) -> String {
    let r = send(
        Method::GET,
        &format!("http://{admin}/metrics"),
        &[],
        Bytes::new(),
    )
    .await;
    String::from_utf8(r.body.to_vec()).unwrap()
}

/// A response, fully read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: impl Into<Bytes>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = client()
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn post(url: &str, headers: &[(&str, String)], body: impl Into<Bytes>) -> Answer {
    send(Method::POST, url, headers, body).await
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Standard Webhooks headers for `body`, signed with a `whsec_` secret (independent signer).
pub fn sign_standard(secret: &str, id: &str, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", format!("v1,{sig}")),
    ]
}

/// GitHub's `X-Hub-Signature-256` for `body`.
pub fn sign_github(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const WHSEC_OLD: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// A `[[route]]` for Standard Webhooks at `/hooks/sw` with the two test secrets.
pub fn sw_route(extra: &str) -> String {
    format!(
        "[[route]]\nname = \"sw\"\npath = \"/hooks/sw\"\nscheme = \"standard-webhooks\"\n\
         secrets = [{{ id = \"current\", value = \"{WHSEC}\" }}, {{ id = \"previous\", value = \"{WHSEC_OLD}\" }}]\n{extra}\n"
    )
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Lowercase hex HMAC-SHA1 (hotglue, legacy GitHub).
pub fn hex_hmac_sha1(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
