//! Replay protection across replicas: real `hookseal` processes sharing one real
//! `redis-server` (started by the test on a free loopback port), in front of one recording
//! upstream.
//!
//! Outside CI a machine without `redis-server` skips these tests with a loud notice; with `CI`
//! set a missing `redis-server` fails them (see `hookseal::replay::testing`).

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};

use hookseal::replay::testing::RedisServer;

use crate::support::*;

const BODY: &[u8] = br#"{"type":"invoice.paid","id":"evt_1"}"#;

/// A `hookseal run` child process, killed on drop.
struct Replica {
    child: Child,
    addr: String,
    admin: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// Starts `hookseal run` with a Redis replay store at `redis_url`, in front of
    /// `upstream`, and waits until `/readyz` answers 200.
    async fn start(upstream: std::net::SocketAddr, redis_url: &str, replay_extra: &str) -> Replica {
        Replica::start_with_env(upstream, redis_url, replay_extra, "500ms", &[]).await
    }

    /// As [`Replica::start`], with a Redis command timeout and extra environment variables.
    async fn start_with_env(
        upstream: std::net::SocketAddr,
        redis_url: &str,
        replay_extra: &str,
        timeout: &str,
        env: &[(&str, &std::path::Path)],
    ) -> Replica {
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let (port, admin_port) = (RedisServer::free_port(), RedisServer::free_port());
            let config = dir.path().join("hookseal.toml");
            std::fs::write(
                &config,
                format!(
                    "[listen]\naddress = \"127.0.0.1:{port}\"\n\
                     [admin]\naddress = \"127.0.0.1:{admin_port}\"\n\
                     [upstream]\nurl = \"http://{upstream}\"\ntimeout = \"10s\"\n\
                     [replay]\nstore = \"redis\"\nurl = \"{redis_url}\"\ncommand_timeout = \"{timeout}\"\n\
                     {replay_extra}\n{}",
                    sw_route("")
                ),
            )
            .unwrap();
            let log = dir.path().join("stderr.log");
            let child = Command::new(env!("CARGO_BIN_EXE_hookseal"))
                .arg("run")
                .arg("--config")
                .arg(&config)
                .env_remove("HOOKSEAL_CONFIG")
                .env("HOOKSEAL_LOG", "info")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("spawn hookseal");
            let mut r = Replica {
                child,
                addr: format!("127.0.0.1:{port}"),
                admin: format!("127.0.0.1:{admin_port}"),
                log,
                _dir: dir,
            };
            if r.wait_ready().await {
                return r;
            }
            // Most likely one of the free ports was taken meanwhile: try fresh ones.
            eprintln!("replica did not come up, retrying:\n{}", r.logs());
        }
        panic!("hookseal run did not become ready three times");
    }

    /// True once `/readyz` is 200; false if the process exited or 20 s passed.
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Some(a) = try_send(Method::GET, &format!("http://{}/readyz", self.admin)).await {
                if a == StatusCode::OK {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/sw", self.addr)
    }

    async fn post(&self, headers: &[(&str, String)]) -> Answer {
        post(&self.url(), headers, BODY).await
    }

    async fn metrics(&self) -> String {
        scrape_metrics(&self.admin).await
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET that reports a connection failure as `None` instead of panicking.
async fn try_send(method: Method, url: &str) -> Option<StatusCode> {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::new()))
        .ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(2), client().request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    Some(status)
}

/// The value of the metric line that starts with `series` (name and labels), or 0.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn signed(id: &str) -> Vec<(&'static str, String)> {
    sign_standard(WHSEC, id, unix_now(), BODY)
}

/// A delivery forwarded through replica A is a duplicate at replica B, and the other way
/// round; neither replay reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_sent_to_another_replica_is_caught() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = Upstream::start().await;
    let a = Replica::start(up.addr, &redis.url(), "").await;
    let b = Replica::start(up.addr, &redis.url(), "").await;

    let first = signed("msg_cross_1");
    let r = a.post(&first).await;
    assert_eq!(r.status, StatusCode::OK, "{}", a.logs());
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    assert_eq!(up.count(), 1);

    let replay = b.post(&first).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.json()["status"], "duplicate");
    assert_eq!(replay.headers["x-hookseal-duplicate"], "true");
    assert_eq!(up.count(), 1, "the replay was not forwarded");

    // The other direction, and a new id still goes through either replica.
    let second = signed("msg_cross_2");
    assert_eq!(b.post(&second).await.status, StatusCode::OK);
    assert_eq!(a.post(&second).await.json()["status"], "duplicate");
    assert_eq!(up.count(), 2);
    let m = b.metrics().await;
    assert_eq!(
        metric(
            &m,
            "hookseal_requests_total{reason=\"duplicate\",result=\"duplicate\",route=\"sw\"}"
        ),
        1.0,
        "{m}"
    );
}

/// 100 concurrent deliveries of one id, split across two replicas, reach the upstream
/// exactly once; every other one is told "in flight" (409) or "duplicate" (200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_across_replicas_reach_the_upstream_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = Upstream::start().await;
    up.set(|b| b.delay = Duration::from_millis(300));
    let a = Replica::start(up.addr, &redis.url(), "").await;
    let b = Replica::start(up.addr, &redis.url(), "").await;

    let headers = signed("msg_stampede");
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let url = if i % 2 == 0 { a.url() } else { b.url() };
            let headers = headers.clone();
            tokio::spawn(async move { post(&url, &headers, BODY).await })
        })
        .collect();
    let (mut forwarded, mut in_flight, mut duplicate) = (0, 0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match (r.status, r.headers.contains_key("x-hookseal-duplicate")) {
            (StatusCode::OK, false) => {
                assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
                forwarded += 1;
            }
            (StatusCode::OK, true) => duplicate += 1,
            (StatusCode::CONFLICT, _) => {
                assert_eq!(r.error(), "in_flight");
                in_flight += 1;
            }
            (s, _) => panic!("unexpected {s}: {:?}", r.body),
        }
    }
    assert_eq!(forwarded, 1, "in flight {in_flight}, duplicate {duplicate}");
    assert_eq!(forwarded + in_flight + duplicate, 100);
    assert_eq!(up.count(), 1, "the upstream saw the message exactly once");
    // After it settled, both replicas call it a duplicate.
    assert_eq!(a.post(&headers).await.json()["status"], "duplicate");
    assert_eq!(b.post(&headers).await.json()["status"], "duplicate");
    assert_eq!(up.count(), 1);
}

/// Redis killed mid-run: deliveries fail closed with 503 `replay_store_unavailable`, nothing
/// is forwarded, the errors are counted. Redis back: the same processes serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_and_recovers_without_restart() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let up = Upstream::start().await;
    let a = Replica::start(up.addr, &redis.url(), "").await;
    let b = Replica::start(up.addr, &redis.url(), "").await;
    assert_eq!(a.post(&signed("msg_before")).await.status, StatusCode::OK);
    assert_eq!(up.count(), 1);

    redis.kill();
    for (i, replica) in [&a, &b, &a, &b].into_iter().enumerate() {
        let started = Instant::now();
        let r = replica.post(&signed(&format!("msg_down_{i}"))).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
        assert_eq!(r.error(), "replay_store_unavailable");
        assert_eq!(r.json()["route"], "sw");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a dead Redis must not stall requests: {:?}",
            started.elapsed()
        );
    }
    // Unsigned traffic is still rejected on its own merits, before the store is consulted.
    let unsigned = a.post(&[]).await;
    assert_eq!(unsigned.status, StatusCode::BAD_REQUEST);
    assert_eq!(unsigned.error(), "missing_signature");
    assert_eq!(up.count(), 1, "nothing was forwarded while Redis was down");
    for replica in [&a, &b] {
        let m = replica.metrics().await;
        assert!(
            metric(&m, "hookseal_replay_store_errors_total{store=\"redis\"}") >= 2.0,
            "{m}"
        );
        assert!(
            metric(
                &m,
                "hookseal_requests_total{reason=\"replay_store_unavailable\",result=\"rejected\",route=\"sw\"}"
            ) >= 2.0,
            "{m}"
        );
    }

    redis.restart();
    // The same processes reconnect by themselves: the sender's retry goes through.
    let retry = signed("msg_down_0");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = a.post(&retry).await;
        if r.status == StatusCode::OK {
            assert!(!r.headers.contains_key("x-hookseal-duplicate"));
            break;
        }
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis came back:\n{}",
            a.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(up.count(), 2);
    // ...and dedupe across replicas works again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = b.post(&retry).await;
        if r.status == StatusCode::OK {
            assert_eq!(r.json()["status"], "duplicate");
            break;
        }
        assert!(Instant::now() < deadline, "replica b did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(up.count(), 2);
}

/// `on_store_error = "allow"`: with Redis down, verified deliveries are forwarded without
/// dedupe (availability over replay protection); forged ones are still rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_store_error_allow_forwards_verified_requests() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let up = Upstream::start().await;
    let a = Replica::start(up.addr, &redis.url(), "on_store_error = \"allow\"").await;
    let h = signed("msg_allow");
    assert_eq!(a.post(&h).await.status, StatusCode::OK);
    assert_eq!(a.post(&h).await.json()["status"], "duplicate");
    assert_eq!(up.count(), 1);

    redis.kill();
    let r = a.post(&signed("msg_allow_down")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    assert_eq!(up.count(), 2);
    assert_eq!(up.last().headers["x-hookseal-verified"], "true");
    // Without the store a replay cannot be recognised: that is the trade-off "allow" makes.
    assert_eq!(a.post(&h).await.status, StatusCode::OK);
    assert_eq!(up.count(), 3);
    let other_key = "whsec_bm90IHRoZSBrZXkgb2YgdGhpcyByb3V0ZQ==";
    let forged = sign_standard(other_key, "msg_x", unix_now(), BODY);
    let r = a.post(&forged).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error(), "bad_signature");
    assert_eq!(up.count(), 3);
    let m = a.metrics().await;
    assert!(
        metric(&m, "hookseal_replay_store_errors_total{store=\"redis\"}") >= 2.0,
        "{m}"
    );
}

/// `rediss://` with a password: the replicas verify Redis's certificate (trusted here through
/// `SSL_CERT_FILE`, which the system trust store loader honours) and share the store over TLS;
/// a replica that does not trust the certificate fails closed instead of talking in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_password_is_shared_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    // `args` is split on spaces: no argument here contains one.
    let openssl = |args: &str| {
        let status = Command::new("openssl")
            .args(args.split(' '))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl makes the test certificates");
        assert!(status.success(), "openssl {args}");
    };
    // A CA, and a server certificate for 127.0.0.1 that it signed (rustls refuses a CA
    // certificate used as the server's own).
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    openssl(&format!(
        "req -x509 {ec} -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem"
    ));
    openssl(&format!(
        "req {ec} -subj /CN=redis.test -keyout key.pem -out server.csr"
    ));
    std::fs::write(
        p("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
         -extfile server.ext -out cert.pem",
    );
    let (ca, cert, key) = (p("ca.pem"), p("cert.pem"), p("key.pem"));
    let tls_port = RedisServer::free_port().to_string();
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let Some(_redis) = RedisServer::start_with(&[
        "--requirepass",
        "pa55",
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        cert_s,
        "--tls-key-file",
        key_s,
        "--tls-ca-cert-file",
        ca.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
    ]) else {
        return;
    };
    let url = format!("rediss://:pa55@127.0.0.1:{tls_port}/0");
    let up = Upstream::start().await;
    // Generous: the first command also makes the TLS handshake, in a debug build.
    let trust: [(&str, &std::path::Path); 1] = [("SSL_CERT_FILE", &ca)];
    let a = Replica::start_with_env(up.addr, &url, "", "3s", &trust).await;
    let b = Replica::start_with_env(up.addr, &url, "", "3s", &trust).await;
    let h = signed("msg_tls");
    let r = a.post(&h).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}\n{}", r.body, a.logs());
    assert_eq!(b.post(&h).await.json()["status"], "duplicate");
    assert_eq!(up.count(), 1);

    // An empty trust file: the certificate is unknown, so the store is unavailable. The
    // handshake fails at once; a generous command timeout keeps a loaded machine from turning
    // that failure into a "timed out" before the cause is seen.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let untrusting =
        Replica::start_with_env(up.addr, &url, "", "3s", &[("SSL_CERT_FILE", &empty)]).await;
    let r = untrusting.post(&signed("msg_tls_untrusted")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.error(), "replay_store_unavailable");
    assert_eq!(up.count(), 1);
    // The log names the cause, not just "timed out".
    assert!(
        untrusting.logs().contains("certificate"),
        "{}",
        untrusting.logs()
    );
    assert!(
        !untrusting.logs().contains("pa55"),
        "the password is never logged"
    );
}

/// `replay.url` from the environment or a file (a Kubernetes Secret), so a password never has
/// to sit in the config; errors name the key and never echo the URL.
#[test]
fn replay_url_from_env_or_file() {
    use hookseal::config::Config;
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("redis-url");
    std::fs::write(&url_file, "redis://:s3cret@127.0.0.1:6379/0\n").unwrap();
    let load = |url: &str| {
        let text = format!(
            "[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
             [replay]\nstore = \"redis\"\nurl = {url}\n{}",
            sw_route("")
        );
        let path = dir.path().join("hookseal.toml");
        Config::parse(&path, &text, &|name| {
            (name == "REDIS_URL").then(|| "rediss://:from-env@redis.example:6380/1".to_owned())
        })
    };
    let c = load("{ env = \"REDIS_URL\" }").unwrap();
    assert_eq!(
        c.replay.store.url(),
        Some("rediss://:from-env@redis.example:6380/1")
    );
    let c = load(&format!("{{ file = {:?} }}", url_file.to_str().unwrap())).unwrap();
    assert_eq!(
        c.replay.store.url(),
        Some("redis://:s3cret@127.0.0.1:6379/0"),
        "the trailing newline is trimmed"
    );
    let c = load("\"redis://127.0.0.1:6379/0\"").unwrap();
    assert_eq!(c.replay.store.url(), Some("redis://127.0.0.1:6379/0"));

    let errors = |url: &str| {
        load(url)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        errors("{ env = \"NOT_SET\" }"),
        ["replay.url.env: environment variable NOT_SET is not set or empty"]
    );
    let e = errors("{ file = \"/nonexistent/redis-url\" }");
    assert!(
        e.len() == 1 && e[0].starts_with("replay.url.file: cannot read"),
        "{e:?}"
    );
    let e = errors("{ env = \"REDIS_URL\", file = \"x\" }");
    assert!(e.len() == 1 && e[0].contains("exactly one"), "{e:?}");
    let e = errors("{ value = \"redis://x\" }");
    assert!(
        e.iter()
            .any(|m| m.starts_with("replay.url.value: unknown key")),
        "{e:?}"
    );
    std::fs::write(&url_file, "http://:s3cret@127.0.0.1/\n").unwrap();
    let e = errors(&format!("{{ file = {:?} }}", url_file.to_str().unwrap()));
    assert_eq!(e, ["replay.url: must start with redis:// or rediss://"]);
    assert!(!e[0].contains("s3cret"));
}

/// `dedupe_key = "signature"` on the Redis store: a GitHub delivery replayed to another
/// replica with a fresh `X-GitHub-Delivery` is a duplicate; its key is kept for the
/// `dedupe_window` (GitHub signs no timestamp); a failed delivery's key is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_keys_are_shared_through_redis_for_the_dedupe_window() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = Upstream::start().await;
    let route = "[[route]]\nname = \"gh\"\npath = \"/hooks/gh\"\nscheme = \"github\"\n\
                 secrets = [{ value = \"gh-redis\" }]\ndedupe_key = \"signature\"\n\
                 dedupe_window = \"3d\"\n";
    let a = Replica::start(up.addr, &redis.url(), route).await;
    let b = Replica::start(up.addr, &redis.url(), route).await;
    let body = br#"{"action":"created","id":42}"#;
    let gh = |delivery: &str| {
        vec![
            ("x-hub-signature-256", sign_github("gh-redis", body)),
            ("x-github-delivery", delivery.to_owned()),
        ]
    };
    let url = |r: &Replica| format!("http://{}/hooks/gh", r.addr);

    // A failed delivery frees the key, for the sender's retry at the other replica.
    up.set(|b| b.status = StatusCode::BAD_GATEWAY);
    assert_eq!(
        post(&url(&a), &gh("d-1"), &body[..]).await.status,
        StatusCode::BAD_GATEWAY
    );
    up.set(|b| b.status = StatusCode::OK);
    let r = post(&url(&b), &gh("d-2"), &body[..]).await;
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"), "{}", b.logs());
    // Replayed verbatim with a fresh delivery id, to either replica: a duplicate.
    for (replica, id) in [(&a, "d-3"), (&b, "d-4")] {
        let r = post(&url(replica), &gh(id), &body[..]).await;
        assert_eq!(r.json()["status"], "duplicate");
    }
    assert_eq!(up.count(), 2);

    // The one key in Redis lives for the window (3 days), not twice a tolerance.
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let pttl: i64 = redis::cmd("PTTL").arg(&keys[0]).query(&mut con).unwrap();
    let window = 3 * 86_400 * 1000;
    assert!(pttl > window - 60_000 && pttl <= window, "{pttl}");
}
