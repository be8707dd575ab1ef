//! `hookseal queue stats|dead|retry|purge`: the queue admin endpoints from a shell, over
//! plain HTTP/1.1 to the admin port (loopback by default).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// What the CLI asks the admin port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `GET /queue`
    Stats,
    /// `GET /queue/dead[?route=R]`
    Dead { route: Option<String> },
    /// `POST /queue/retry {"id"}` (with `route` when given)
    RetryId { id: String, route: Option<String> },
    /// `POST /queue/retry {"route","all_dead":true}`
    RetryAllDead { route: String },
    /// `POST /queue/purge {"route","dead":true}`
    PurgeDead { route: String },
}

/// The admin base URL for an admin listen address: a wildcard address is reached on loopback.
pub fn admin_url(addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    format!("http://{ip}:{}", addr.port())
}

/// Sends `action` to the admin port at `base` (`http://host:port`); returns the status and
/// the JSON body.
///
/// # Errors
/// An unusable URL, a connection failure, or no answer within 30 s.
pub async fn call(base: &str, action: &Action) -> Result<(u16, String), String> {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let base = base.trim_end_matches('/');
    if !base.starts_with("http://") {
        return Err(format!("--admin {base}: expected http://host:port"));
    }
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let (method, path, body) = match action {
        Action::Stats => ("GET", "/queue".to_owned(), None),
        Action::Dead { route } => (
            "GET",
            match route {
                Some(r) => format!("/queue/dead?route={}", enc(r)),
                None => "/queue/dead".to_owned(),
            },
            None,
        ),
        Action::RetryId { id, route } => {
            let mut v = serde_json::json!({ "id": id });
            if let Some(r) = route {
                v["route"] = r.clone().into();
            }
            ("POST", "/queue/retry".to_owned(), Some(v))
        }
        Action::RetryAllDead { route } => (
            "POST",
            "/queue/retry".to_owned(),
            Some(serde_json::json!({ "route": route, "all_dead": true })),
        ),
        Action::PurgeDead { route } => (
            "POST",
            "/queue/purge".to_owned(),
            Some(serde_json::json!({ "route": route, "dead": true })),
        ),
    };
    let uri: http::Uri = format!("{base}{path}")
        .parse()
        .map_err(|e| format!("--admin {base}: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method(method).uri(uri.clone());
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| format!("{uri}: no answer within 30s"))?
        .map_err(|e| format!("{uri}: {e}"))?;
    let status = resp.status().as_u16();
    let body = tokio::time::timeout(
        Duration::from_secs(30),
        http_body_util::Limited::new(resp.into_body(), 16 << 20).collect(),
    )
    .await
    .map_err(|_| format!("{uri}: the answer did not finish within 30s"))?
    .map_err(|e| format!("{uri}: {e}"))?
    .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_admin_addresses_are_reached_on_loopback() {
        assert_eq!(
            admin_url("0.0.0.0:9090".parse().unwrap()),
            "http://127.0.0.1:9090"
        );
        assert_eq!(
            admin_url("127.0.0.1:9191".parse().unwrap()),
            "http://127.0.0.1:9191"
        );
        assert_eq!(admin_url("[::]:9090".parse().unwrap()), "http://[::1]:9090");
    }
}
