//! Regression tests for what fuzzing and the threat model (SECURITY.md) turned up.

use std::path::Path;
use std::time::Duration;

use hookseal::config::Config;

use crate::support::*;

/// `src/config.rs` bounds secret files at 64 KiB.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

fn no_env(_: &str) -> Option<String> {
    None
}

fn route_with_secret_file(file: &Path) -> String {
    format!(
        "[upstream]\nurl = \"http://127.0.0.1:8080\"\n[[route]]\nname = \"gh\"\npath = \"/gh\"\n\
         scheme = \"github\"\nsecrets = [{{ id = \"f\", file = \"{}\" }}]\n",
        file.display()
    )
}

fn secret_file_error(file: &Path) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = route_with_secret_file(file);
    match Config::parse(&dir.path().join("hookseal.toml"), &text, &no_env) {
        Ok(_) => panic!("config with secret file {} loaded", file.display()),
        Err(e) => e.to_string(),
    }
}

/// Found by the `config_parse` fuzz target's design review: `file = "/dev/zero"` used to read
/// without end. A device, FIFO or directory is refused without being read.
#[test]
fn secret_file_that_is_not_a_regular_file_is_refused() {
    let msg = secret_file_error(Path::new("/dev/zero"));
    assert!(msg.contains("route[0].secrets[0].file"), "{msg}");
    assert!(msg.contains("not a regular file"), "{msg}");
    let dir = tempfile::tempdir().expect("tempdir");
    let msg = secret_file_error(dir.path());
    assert!(msg.contains("not a regular file"), "{msg}");
}

/// A secret file over the bound is an error naming the bound, not a huge allocation.
#[test]
fn oversized_secret_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big");
    let len = usize::try_from(MAX_SECRET_FILE_BYTES).expect("bound") + 1;
    std::fs::write(&big, vec![b'a'; len]).expect("write");
    let msg = secret_file_error(&big);
    assert!(msg.contains("larger than 65536 bytes"), "{msg}");
    assert!(!msg.contains("aaaa"), "the content is never echoed: {msg}");

    // At the bound exactly it loads.
    std::fs::write(&big, vec![b'a'; len - 1]).expect("write");
    let text = route_with_secret_file(&big);
    let c = Config::parse(&dir.path().join("hookseal.toml"), &text, &no_env);
    assert!(c.is_ok(), "{:?}", c.err().map(|e| e.to_string()));
}

/// A symlinked secret (how Kubernetes mounts a Secret) still resolves.
#[test]
fn symlinked_secret_file_still_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let real = dir.path().join("real");
    std::fs::write(&real, "s3cret\n").expect("write");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let text = route_with_secret_file(&link);
    let c = Config::parse(&dir.path().join("hookseal.toml"), &text, &no_env);
    assert!(c.is_ok(), "{:?}", c.err().map(|e| e.to_string()));
}

/// Found by the `route_match` fuzz target: a `%` that starts no escape, followed by escapes
/// that decode to hex digits, built a new escape (`/%%36%31` → `/%61`), so normalizing twice
/// gave another path (`/a`). Such a `%` is now spelled `%25`: normalization is a fixed point,
/// and `/a%` matches like `/a%25`, which is the same path to the app.
#[test]
fn stray_percent_normalizes_to_a_fixed_point() {
    use hookseal::route::normalize_path;
    let once = normalize_path("/%%36%31").into_owned();
    assert_eq!(once, "/%2561");
    assert_eq!(normalize_path(&once), once);
    let crash = "/././33333333/%%33333333333333333333333833333333333333333./api/v1/items/!";
    let once = normalize_path(crash).into_owned();
    assert_eq!(normalize_path(&once), once);
    assert_eq!(normalize_path("/a%"), normalize_path("/a%25"));
    assert_eq!(normalize_path("/a%4"), "/a%254");
    assert_eq!(normalize_path("/a%2F"), "/a%2f");
    assert_eq!(normalize_path("/h%6Fok"), "/hook");
}

/// Request smuggling: a request framed two ways (chunked *and* a Content-Length that would end
/// it elsewhere), or with two different Content-Lengths, followed by a second, unsigned request
/// hidden where one framing ends and the other does not. Whatever hyper makes of the framing,
/// the upstream sees at most the one signed body, byte for byte, re-framed with its own
/// Content-Length and no Transfer-Encoding, and never the hidden request.
#[tokio::test]
async fn conflicting_framing_is_never_forwarded_ambiguously() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const BODY: &[u8] = b"{\"type\":\"smuggle.test\"}";
    let hidden =
        "POST /hooks/sw HTTP/1.1\r\nhost: x\r\nx-smuggled: 1\r\ncontent-length: 2\r\n\r\n{}";
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &sw_route("")).await;
    let signed = |id: &str| {
        sign_standard(WHSEC, id, unix_now(), BODY)
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect::<String>()
    };
    let chunked = format!(
        "POST /hooks/sw HTTP/1.1\r\nhost: x\r\n{}transfer-encoding: chunked\r\ncontent-length: {}\r\n\r\n\
         {:x}\r\n{}\r\n0\r\n\r\n{hidden}",
        signed("msg_te_cl"),
        BODY.len(),
        BODY.len(),
        String::from_utf8_lossy(BODY),
    );
    let two_lengths = format!(
        "POST /hooks/sw HTTP/1.1\r\nhost: x\r\n{}content-length: {}\r\ncontent-length: {}\r\n\r\n{}{hidden}",
        signed("msg_cl_cl"),
        BODY.len(),
        BODY.len() + hidden.len(),
        String::from_utf8_lossy(BODY),
    );
    for raw in [chunked, two_lengths] {
        let before = up.count();
        let mut tcp = tokio::net::TcpStream::connect(sc.addr)
            .await
            .expect("connect");
        tcp.write_all(raw.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut answer)).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 "), "an answer: {text}");
        let seen = up.seen.lock().expect("seen").clone();
        assert!(up.count() <= before + 1, "one request at most: {text}");
        for r in &seen[before..] {
            assert!(
                !r.headers.contains_key("x-smuggled"),
                "the hidden request got through"
            );
            assert_eq!(&r.body[..], BODY);
            assert!(!r.headers.contains_key("transfer-encoding"));
            if let Some(cl) = r.headers.get("content-length") {
                assert_eq!(cl.to_str().ok(), Some(BODY.len().to_string().as_str()));
            }
        }
    }
}
