//! Reload over real sockets and files: a secret rotated by the Kubernetes `..data` symlink swap,
//! a broken config refused while the old one serves, requests in flight finishing under the old
//! config, certificate files replaced (and a broken pair refused), SIGHUP to the real binary.

use std::path::Path;
use std::time::Duration;

use http::StatusCode;

use crate::support::*;
use crate::tls::{
    counter, eventually_counter, negotiated, signed, start_in, write_pair, Ca, Client, H1,
};

const RELOAD_OK: &str = "hookseal_config_reloads_total{result=\"ok\"}";
const RELOAD_ERROR: &str = "hookseal_config_reloads_total{result=\"error\"}";
const CERT_OK: &str = "hookseal_tls_certificate_reloads_total{result=\"ok\"}";
const CERT_ERROR: &str = "hookseal_tls_certificate_reloads_total{result=\"error\"}";
const LAST_OK: &str = "hookseal_config_last_reload_successful";
const LAST_OK_AT: &str = "hookseal_config_last_reload_success_timestamp_seconds";

/// The value of a gauge without labels.
fn gauge(metrics: &str, name: &str) -> f64 {
    let line = metrics
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// A third Standard Webhooks secret, retired before the test starts.
const WHSEC_OLDER: &str = "whsec_b2xkZXItc2VjcmV0LWZvci1ob29rc2VhbC10ZXN0cw==";

/// Publishes `files` in `dir` the way kubelet updates a mounted Secret: a new timestamped
/// directory, a `..data` symlink swapped to it with one rename, and per-key links through
/// `..data`.
fn publish(dir: &Path, version: &str, files: &[(&str, &str)]) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&data).unwrap();
    for (name, content) in files {
        std::fs::write(data.join(name), content).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
}

/// Writes the config file in one rename, as an editor or a ConfigMap update would.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn sw(sidecar: &Sidecar, secret: &str, id: &str) -> Answer {
    let body = format!(r#"{{"id":"{id}"}}"#);
    post(
        &sidecar.url("/hooks/sw"),
        &sign_standard(secret, id, unix_now(), body.as_bytes()),
        body,
    )
    .await
}

#[tokio::test]
async fn a_secret_rotated_by_a_symlink_swap_is_picked_up_and_the_previous_one_still_works() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    publish(
        &secrets,
        "2026_01",
        &[
            ("current", &format!("{WHSEC_OLD}\n")),
            ("previous", WHSEC_OLDER),
        ],
    );
    let text = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"127.0.0.2:0\"\n\
         [upstream]\nurl = \"http://{}\"\n\
         [[route]]\nname = \"sw\"\npath = \"/hooks/sw\"\nscheme = \"standard-webhooks\"\n\
         secrets = [{{ id = \"current\", file = \"secrets/current\" }}, {{ id = \"previous\", file = \"secrets/previous\" }}]\n",
        upstream.addr
    );
    std::fs::write(dir.path().join("hookseal.toml"), &text).unwrap();
    let config =
        hookseal::config::Config::load_with_env(&dir.path().join("hookseal.toml"), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
    let sidecar = Sidecar::start_config(config, dir).await;

    let r = sw(&sidecar, WHSEC_OLD, "msg_before").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(upstream.last().headers["x-hookseal-key"], "current");
    let r = sw(&sidecar, WHSEC, "msg_new_too_early").await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the new secret is not known yet"
    );

    // Rotation: the new secret becomes current, the old one previous.
    publish(
        &secrets,
        "2026_02",
        &[("current", WHSEC), ("previous", &format!("{WHSEC_OLD}\n"))],
    );
    eventually_counter(&sidecar, RELOAD_OK, 1).await;
    let r = sw(&sidecar, WHSEC, "msg_new").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(upstream.last().headers["x-hookseal-key"], "current");
    let r = sw(&sidecar, WHSEC_OLD, "msg_old").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the previous secret still verifies"
    );
    assert_eq!(upstream.last().headers["x-hookseal-key"], "previous");
    let r = sw(&sidecar, WHSEC_OLDER, "msg_older").await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the retired one does not"
    );

    // The replay store survived the swap.
    let forwarded = upstream.count();
    let r = sw(&sidecar, WHSEC_OLD, "msg_before").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-hookseal-duplicate"], "true");
    assert_eq!(upstream.count(), forwarded);
    assert_eq!(counter(&sidecar.metrics().await, RELOAD_ERROR), 0);
}

#[tokio::test]
async fn a_broken_config_is_refused_and_the_old_one_keeps_serving() {
    let upstream = Upstream::start().await;
    let good = |extra: &str| {
        format!(
            "[listen]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"127.0.0.2:0\"\n\
             [upstream]\nurl = \"http://{}\"\n{}{extra}",
            upstream.addr,
            sw_route("")
        )
    };
    let before = unix_now() as f64;
    let sidecar = Sidecar::start_text(&good("")).await;
    let path = sidecar.dir.path().join("hookseal.toml");
    let m = sidecar.metrics().await;
    assert_eq!(
        gauge(&m, LAST_OK),
        1.0,
        "the first load counts as a success"
    );
    let loaded_at = gauge(&m, LAST_OK_AT);
    assert!(
        loaded_at >= before && loaded_at <= unix_now() as f64 + 1.0,
        "{m}"
    );

    // A syntax error, then a secret file that is empty: each refused and counted.
    replace_file(&path, &good("[[route]\nname = \"half"));
    eventually_counter(&sidecar, RELOAD_ERROR, 1).await;
    let m = sidecar.metrics().await;
    assert_eq!(gauge(&m, LAST_OK), 0.0, "{m}");
    assert_eq!(gauge(&m, LAST_OK_AT), loaded_at, "{m}");
    assert_eq!(sw(&sidecar, WHSEC, "msg_1").await.status, StatusCode::OK);
    std::fs::write(sidecar.dir.path().join("empty"), "\n").unwrap();
    replace_file(
        &path,
        &good(
            "[[route]]\nname = \"gh\"\npath = \"/hooks/gh\"\nscheme = \"github\"\n\
             secrets = [{ file = \"empty\" }]\n",
        ),
    );
    eventually_counter(&sidecar, RELOAD_ERROR, 2).await;
    assert_eq!(sw(&sidecar, WHSEC, "msg_2").await.status, StatusCode::OK);
    let r = post(&sidecar.url("/hooks/new"), &[], "{}").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let m = sidecar.metrics().await;
    assert_eq!(counter(&m, RELOAD_OK), 0);
    // Still 0, however long ago the first failure was: no reload succeeded since.
    assert_eq!(gauge(&m, LAST_OK), 0.0, "{m}");

    // Fixed: the new route is served, the old one still is.
    replace_file(
        &path,
        &good("[[route]]\nname = \"new\"\npath = \"/hooks/new\"\nscheme = \"none\"\n"),
    );
    eventually_counter(&sidecar, RELOAD_OK, 1).await;
    let r = post(&sidecar.url("/hooks/new"), &[], "{}").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(sw(&sidecar, WHSEC, "msg_3").await.status, StatusCode::OK);
    let m = sidecar.metrics().await;
    assert_eq!(counter(&m, RELOAD_ERROR), 2);
    assert_eq!(gauge(&m, LAST_OK), 1.0, "{m}");
    assert!(gauge(&m, LAST_OK_AT) > loaded_at, "{m}");
}

#[tokio::test]
async fn a_request_in_flight_finishes_under_the_config_it_started_with() {
    let upstream = Upstream::start().await;
    upstream.set(|b| b.delay = Duration::from_secs(3));
    let head = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"127.0.0.2:0\"\n\
         [upstream]\nurl = \"http://{}\"\ntimeout = \"30s\"\n",
        upstream.addr
    );
    let sidecar = Sidecar::start_text(&format!("{head}{}", sw_route(""))).await;
    let url = sidecar.url("/hooks/sw");
    let body = r#"{"slow":true}"#;
    let headers = signed(body, "msg_slow");
    let in_flight = tokio::spawn(async move { post(&url, &headers, body).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while upstream.count() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never forwarded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The route goes away while the request waits on the app.
    replace_file(
        &sidecar.dir.path().join("hookseal.toml"),
        &format!("{head}[[route]]\nname = \"other\"\npath = \"/other\"\nscheme = \"none\"\n"),
    );
    eventually_counter(&sidecar, RELOAD_OK, 1).await;
    let r = post(&sidecar.url("/hooks/sw"), &signed("{}", "msg_late"), "{}").await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "new requests see the new config"
    );
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "the request in flight completed");
    assert_eq!(r.body, "upstream-ok");
}

#[tokio::test]
async fn replaced_certificate_files_reach_the_next_handshake_and_a_broken_pair_is_refused() {
    let upstream = Upstream::start().await;
    let ca = Ca::new("hookseal test CA");
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    let first = ca.server();
    publish(
        &tls_dir,
        "v1",
        &[("tls.crt", &first.cert_pem), ("tls.key", &first.key_pem)],
    );
    let sidecar = start_in(
        dir,
        &crate::tls::tls_config(
            upstream.addr,
            "cert = \"tls/tls.crt\", key = \"tls/tls.key\"",
            "",
        ),
    )
    .await;
    let client = Client::new(&ca, &[b"http/1.1"]);
    let s = client.connect(sidecar.addr).await.unwrap();
    assert_eq!(negotiated(&s).1, first.der);
    let mut open = H1::open(s).await;
    assert_eq!(
        open.post("/hooks/sw", &signed("{}", "m1"), "{}")
            .await
            .status,
        StatusCode::OK
    );

    // cert-manager renewed: kubelet swaps ..data.
    let second = ca.server();
    publish(
        &tls_dir,
        "v2",
        &[("tls.crt", &second.cert_pem), ("tls.key", &second.key_pem)],
    );
    eventually_counter(&sidecar, CERT_OK, 1).await;
    let s = client.connect(sidecar.addr).await.unwrap();
    assert_eq!(
        negotiated(&s).1,
        second.der,
        "the next handshake has the new certificate"
    );
    assert_eq!(
        open.post("/hooks/sw", &signed("{}", "m2"), "{}")
            .await
            .status,
        StatusCode::OK,
        "the connection opened before the swap still works"
    );

    // A broken pair (a key from another certificate): refused, the second one keeps serving.
    let (third, fourth) = (ca.server(), ca.server());
    publish(
        &tls_dir,
        "v3",
        &[("tls.crt", &third.cert_pem), ("tls.key", &fourth.key_pem)],
    );
    eventually_counter(&sidecar, CERT_ERROR, 1).await;
    assert_eq!(counter(&sidecar.metrics().await, RELOAD_ERROR), 1);
    let s = client.connect(sidecar.addr).await.unwrap();
    assert_eq!(negotiated(&s).1, second.der);
    let mut h1 = H1::open(s).await;
    assert_eq!(
        h1.post("/hooks/sw", &signed("{}", "m3"), "{}").await.status,
        StatusCode::OK
    );
    // Files rewritten in place (cert, then key) are picked up too.
    let fifth = ca.server();
    write_pair(&tls_dir, &fifth);
    eventually_counter(&sidecar, CERT_OK, 2).await;
    let s = client.connect(sidecar.addr).await.unwrap();
    assert_eq!(negotiated(&s).1, fifth.der);
}

#[test]
fn sighup_reloads_the_running_binary() {
    use std::process::{Command, Stdio};
    let upstream_port = free_port();
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookseal.toml");
    std::fs::write(
        &path,
        format!(
            "[listen]\naddress = \"127.0.0.1:{port}\"\n[admin]\naddress = \"127.0.0.1:{admin}\"\n\
             [upstream]\nurl = \"http://127.0.0.1:{upstream_port}\"\n\
             [[route]]\nname = \"app\"\npath_prefix = \"/\"\nscheme = \"none\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookseal"))
        .env_remove("HOOKSEAL_CONFIG")
        .env("HOOKSEAL_LOG", "warn")
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let metrics = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let url = format!("http://127.0.0.1:{admin}/metrics");
            let req = http::Request::get(url)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            let resp = tokio::time::timeout(Duration::from_secs(5), client().request(req))
                .await
                .ok()?
                .ok()?;
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .ok()?;
            String::from_utf8(body.to_bytes().to_vec()).ok()
        })
    };
    let wait_for = |name: &str, want: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(m) = metrics() {
                if counter(&m, name) == want {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never reached {want}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(RELOAD_OK, 0);
    let kill = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    // Nothing changed on disk: only the signal can cause this reload.
    kill("-HUP");
    wait_for(RELOAD_OK, 1);
    kill("-HUP");
    wait_for(RELOAD_OK, 2);
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running after SIGHUP"
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
