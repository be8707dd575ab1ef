//! Tests of the outbound HTTPS client against a local TLS server: the host allow-list, no
//! redirects, the status rule, the body cap, timeouts and certificate checks.

use std::time::Duration;

use super::testkit::{Canned, TestCa, TestServer};
use super::*;

#[tokio::test]
async fn fetches_a_body_from_an_allowed_host() {
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    srv.set(
        "/keys?x=1",
        Canned::ok("{\"keys\":[]}").header("cache-control", "max-age=60"),
    );
    let got = ca
        .fetcher()
        .get(&srv.url("/keys?x=1"), &["LOCALHOST"])
        .await
        .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], b"{\"keys\":[]}");
    assert_eq!(got.headers["cache-control"], "max-age=60");
    assert_eq!(srv.hits("/keys?x=1"), 1);
}

#[tokio::test]
async fn a_redirect_is_an_error_and_not_followed() {
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    let mut c = Canned::ok("").header("location", &srv.url("/target"));
    c.status = 302;
    srv.set("/moved", c);
    srv.set("/target", Canned::ok("followed"));
    let err = ca
        .fetcher()
        .get(&srv.url("/moved"), &["localhost"])
        .await
        .unwrap_err();
    assert_eq!(err, FetchError::Status(302));
    assert_eq!(srv.hits("/target"), 0);
}

#[tokio::test]
async fn a_non_2xx_status_is_an_error() {
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    let err = ca
        .fetcher()
        .get(&srv.url("/absent"), &["localhost"])
        .await
        .unwrap_err();
    assert_eq!(err, FetchError::Status(404));
}

#[tokio::test]
async fn an_oversize_body_is_cut() {
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    let max = ca.fetcher().options().max_bytes;
    srv.set("/exact", Canned::ok(vec![b'a'; max]));
    srv.set("/big", Canned::ok(vec![b'a'; max + 1]));
    let f = ca.fetcher();
    assert_eq!(
        f.get(&srv.url("/exact"), &["localhost"])
            .await
            .unwrap()
            .body
            .len(),
        max
    );
    assert_eq!(
        f.get(&srv.url("/big"), &["localhost"]).await.unwrap_err(),
        FetchError::TooLarge
    );
}

#[tokio::test]
async fn an_oversize_chunked_body_is_cut_while_reading() {
    // No Content-Length: a streamed body over the cap is refused once the cap is passed.
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    let mut c = Canned::ok(vec![b'a'; 40 * 1024]);
    c.chunked = true;
    srv.set("/big", c);
    let f = Fetcher::new(
        FetchOptions {
            max_bytes: 1000,
            ..ca.fetcher().options()
        },
        ca.roots(),
    );
    assert_eq!(
        f.get(&srv.url("/big"), &["localhost"]).await.unwrap_err(),
        FetchError::TooLarge
    );
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    let mut c = Canned::ok("late");
    c.delay = Duration::from_secs(30);
    srv.set("/slow", c);
    let f = Fetcher::new(
        FetchOptions {
            total_timeout: Duration::from_millis(500),
            ..ca.fetcher().options()
        },
        ca.roots(),
    );
    let started = std::time::Instant::now();
    assert_eq!(
        f.get(&srv.url("/slow"), &["localhost"]).await.unwrap_err(),
        FetchError::Timeout
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_host_not_allowed_is_never_connected() {
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    srv.set("/keys", Canned::ok("{}"));
    let f = ca.fetcher();
    for allowed in [&["127.0.0.1"][..], &["localhost.evil"], &[]] {
        assert_eq!(
            f.get(&srv.url("/keys"), allowed).await.unwrap_err(),
            FetchError::NotAllowed
        );
    }
    // userinfo cannot smuggle another host past the check
    let sneaky = srv.url("/keys").replace("https://", "https://localhost@");
    assert_eq!(
        f.get(&sneaky, &["localhost"]).await.unwrap_err(),
        FetchError::BadUrl
    );
    assert_eq!(srv.connections(), 0);
}

#[tokio::test]
async fn only_https_urls() {
    let ca = TestCa::new();
    let f = ca.fetcher();
    for url in ["http://localhost/", "localhost/x", "/x", "ftp://localhost/"] {
        assert_eq!(
            f.get(url, &["localhost"]).await.unwrap_err(),
            FetchError::BadUrl,
            "{url}"
        );
    }
}

#[tokio::test]
async fn an_untrusted_server_certificate_fails_the_handshake() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let srv = TestServer::start(&other).await;
    srv.set("/keys", Canned::ok("{}"));
    assert_eq!(
        ca.fetcher()
            .get(&srv.url("/keys"), &["localhost"])
            .await
            .unwrap_err(),
        FetchError::Tls
    );
    assert_eq!(srv.hits("/keys"), 0);
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let ca = TestCa::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    assert_eq!(
        ca.fetcher()
            .get(&format!("https://127.0.0.1:{port}/"), &["127.0.0.1"])
            .await
            .unwrap_err(),
        FetchError::Connect
    );
}

#[tokio::test]
async fn a_server_that_closes_at_once_fails_the_handshake() {
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    srv.set("/keys", Canned::ok("{}"));
    srv.set_down(true);
    assert_eq!(
        ca.fetcher()
            .get(&srv.url("/keys"), &["localhost"])
            .await
            .unwrap_err(),
        FetchError::Tls
    );
    assert_eq!(srv.connections(), 1);
    srv.set_down(false);
    ca.fetcher()
        .get(&srv.url("/keys"), &["localhost"])
        .await
        .unwrap();
}
