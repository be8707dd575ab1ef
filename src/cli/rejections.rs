//! `hookseal rejections`: the admin port's `/debug/rejections`, fetched and shown.

use std::path::Path;
use std::process::ExitCode;

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty};

#[derive(Debug, Args)]
pub(crate) struct RejectionsArgs {
    /// Only this route's rejections (`_unmatched`: requests no route matched).
    #[arg(long)]
    route: Option<String>,
    /// Only this reason (`bad_signature`, `stale_timestamp`, …).
    #[arg(long)]
    reason: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// The admin port's base URL (default: the config's `admin.address`, on loopback).
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// Print the JSON array as the admin port gives it.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &RejectionsArgs, config: &Path) -> ExitCode {
    match fetch(args, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hookseal rejections: {message}");
            ExitCode::from(1)
        }
    }
}

/// The admin base URL: `--admin`, else the config's admin address with an unspecified IP
/// (`0.0.0.0`, `::`) read as loopback.
fn admin_url(args: &RejectionsArgs, config: &Path) -> Result<String, String> {
    if let Some(a) = &args.admin {
        let a = a.trim_end_matches('/');
        return Ok(if a.contains("://") {
            a.to_owned()
        } else {
            format!("http://{a}")
        });
    }
    let cfg = hookseal::config::Config::load(config).map_err(|e| {
        format!(
            "cannot read the admin address from {} ({e}); pass --admin http://127.0.0.1:9090",
            config.display()
        )
    })?;
    let mut addr = cfg.admin.address;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}"))
}

fn fetch(args: &RejectionsArgs, config: &Path) -> Result<(), String> {
    let base = admin_url(args, config)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(r) = &args.route {
        query.append_pair("route", r);
    }
    if let Some(r) = &args.reason {
        query.append_pair("reason", r);
    }
    query.append_pair("limit", &args.limit.to_string());
    let url = format!("{base}/debug/rejections?{}", query.finish());
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("--admin must be an http:// URL".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let body = runtime.block_on(get(uri))?;
    if args.json {
        let text = String::from_utf8_lossy(&body);
        return super::write_out(&format!("{}\n", json_escaped(&text)));
    }
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not a JSON array: {e}"))?;
    super::write_out(&render(&list))
}

async fn get(uri: http::Uri) -> Result<Bytes, String> {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = http::Request::get(uri.clone())
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| format!("{uri}: no answer within 10s"))?
        .map_err(|e| format!("{uri}: {e}"))?;
    let status = resp.status();
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        http_body_util::Limited::new(resp.into_body(), 64 * 1024 * 1024).collect(),
    )
    .await
    .map_err(|_| format!("{uri}: body not read within 10s"))?
    .map_err(|e| format!("{uri}: {e}"))?
    .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "{uri}: {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    Ok(body)
}

/// `text` safe for a terminal: header values are the sender's, and a byte that is not UTF-8
/// was stored as U+FFFD but a C1 control sent as UTF-8 (U+009B is CSI: clear the screen, move
/// the cursor over earlier lines) or a bidi override (U+202E) was not. Those, and any other
/// control character, are written as `\u{..}` escapes.
fn printable(text: &str) -> String {
    if !text.chars().any(hostile) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if hostile(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The JSON text with the characters [`printable`] escapes written as JSON `\uXXXX` escapes
/// (the same JSON; the control characters JSON requires escaped already are, so a raw line
/// feed can only be the layout of pretty JSON, and stays).
pub(crate) fn json_escaped(text: &str) -> String {
    text.chars()
        .map(|c| {
            if hostile(c) && c != '\n' {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// One block per rejection: a summary line, then the headers, then the body's length and hash.
fn render(list: &[serde_json::Value]) -> String {
    use std::fmt::Write as _;
    if list.is_empty() {
        return "no rejected requests recorded\n".into();
    }
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => printable(s),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut out = String::new();
    for e in list {
        let _ = writeln!(
            out,
            "{}  {} {}  route={}  peer={}  request_id={}",
            s(&e["time"]),
            s(&e["status"]),
            s(&e["reason"]),
            s(&e["route"]),
            s(&e["peer"]),
            s(&e["request_id"]),
        );
        if let Some(h) = e["headers"].as_object() {
            for (k, v) in h {
                let _ = writeln!(out, "    {k}: {}", s(v));
            }
        }
        if e["headers_truncated"] == serde_json::Value::Bool(true) {
            let _ = writeln!(out, "    (more headers, or longer values, were not kept)");
        }
        let _ = writeln!(
            out,
            "    body: {} bytes, sha256 {}\n",
            s(&e["body_bytes"]),
            s(&e["body_sha256"]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_text_cannot_drive_the_terminal() {
        let entry = serde_json::json!({
            "time": "t", "status": 401, "reason": "bad_signature", "route": "gh",
            "peer": "10.0.0.1:5", "request_id": "r\u{9b}2J",
            "headers": {"x-a": "\u{9b}2J\u{9d}0;title\u{9c}", "x-b": "abc\u{202e}gpj.exe", "x-c": "caf\u{e9}"},
            "body_bytes": 0, "body_sha256": "00"
        });
        let out = render(&[entry]);
        for c in ['\u{9b}', '\u{9d}', '\u{9c}', '\u{202e}'] {
            assert!(!out.contains(c), "{c:?} written raw: {out:?}");
        }
        assert!(out.contains("x-a: \\u{9b}2J\\u{9d}0;title\\u{9c}"), "{out}");
        assert!(out.contains("x-b: abc\\u{202e}gpj.exe"), "{out}");
        assert!(out.contains("x-c: caf\u{e9}"), "ordinary text stays: {out}");
        assert!(out.contains("request_id=r\\u{9b}2J"), "{out}");
        let raw = r#"[{"headers":{"x-a":"\u009b2J"}}]"#.replace("\\u009b", "\u{9b}");
        let json = json_escaped(&raw);
        assert!(!json.contains('\u{9b}'), "{json:?}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back[0]["headers"]["x-a"], "\u{9b}2J", "the same JSON");
    }
}
