//! The record of rejections: the latest rejected requests, for `GET /debug/rejections` on the
//! admin port and `hookseal rejections` (README "Why did I get 401?").
//!
//! A bounded ring, capped twice: at most `[debug] rejections` entries (all routes together)
//! and at most [`MAX_BYTES`] accounted bytes. Over a cap, the oldest entry of the route that
//! holds the most goes, so a flood of rejections on one route (a scanner on `_unmatched`)
//! evicts its own entries before another route's. An entry accounts for its fixed part
//! ([`ENTRY_OVERHEAD`] plus route and request id) and its header names and values, which are
//! cut to [`MAX_HEADER_BYTES`] per entry (and [`MAX_VALUE_BYTES`] per value): the ring never
//! holds more than `min(rejections × 4.6 KiB, 4 MiB)` of request data.
//!
//! What an entry keeps: time, route, reason, status, peer address, request id, the request's
//! headers (lowercase name → value) with every signature value and anything secret-like
//! replaced by `"<redacted>"` ([`redacted`]), the body's length and SHA-256. Never the body,
//! never a secret. The ring is fed once per rejected request, from the request's record at the
//! end of the pipeline ([`crate::proxy`]); an accepted request never touches it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use http::header::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use crate::error::Reason;

/// Header names and values kept per entry, in bytes; the rest is left out
/// (`headers_truncated: true`).
pub const MAX_HEADER_BYTES: usize = 4096;
/// A longer header value is cut to this many bytes (and the entry marked truncated).
pub const MAX_VALUE_BYTES: usize = 512;
/// What an entry accounts for besides its header bytes, route and request id.
pub const ENTRY_OVERHEAD: usize = 256;
/// The ring's byte cap, all entries together.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// What a redacted value reads as.
pub const REDACTED: &str = "<redacted>";

/// Substrings of header names whose values are never kept (ASCII lowercase): credentials,
/// cookies and every spelling of a signature, token or key a sender might use. Broad on
/// purpose: a harmless header redacted costs a look at the sender's side, a secret kept is a
/// leak (`idempotency-key` and `x-okta-verification-challenge` are redacted too).
const DENY: [&str; 14] = [
    "auth",
    "cookie",
    "sig",
    "token",
    "secret",
    "hmac",
    "pass",
    "credential",
    "session",
    "key",
    "private",
    "verif",
    "jwt",
    "bearer",
];

/// Whether the value of header `name` (lowercase) is replaced by [`REDACTED`]: one of the
/// route's signature headers, or a name with a [`DENY`] substring (`authorization`,
/// `proxy-authorization`, `cookie`, `x-api-key`, `*signature*`, `*token*`, `*secret*`,
/// `plaid-verification`, `ocp-apim-subscription-key`, …).
pub fn redacted(name: &str, signature_headers: &[&str]) -> bool {
    signature_headers
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
        || DENY.iter().any(|d| name.contains(d))
}

/// One rejected request, as the end of the pipeline knows it.
#[derive(Debug)]
pub struct Rejected<'a> {
    pub route: &'a str,
    pub reason: Reason,
    pub status: u16,
    pub peer: SocketAddr,
    pub request_id: &'a HeaderValue,
    /// The request's headers as they were when it was refused (empty if they had already been
    /// handed to the app's connection).
    pub headers: &'a HeaderMap,
    /// The route's signature header names (the scheme's first header, `[route.hmac] header`).
    pub signature_headers: &'a [&'a str],
    /// The body's pieces, if it was read.
    pub body: Option<&'a [bytes::Bytes]>,
    pub body_bytes: Option<u64>,
}

/// One kept entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Unix time in milliseconds.
    pub time_ms: u64,
    pub route: String,
    pub reason: Reason,
    pub status: u16,
    pub peer: SocketAddr,
    pub request_id: String,
    /// Lowercase name → value, in arrival order; repeated names joined with `, `.
    pub headers: Vec<(String, String)>,
    pub headers_truncated: bool,
    pub body_bytes: Option<u64>,
    pub body_sha256: Option<[u8; 32]>,
    /// Bytes this entry accounts for in the ring.
    pub size: usize,
}

/// The ring. Cheap to create; one per process, shared by the pipeline and the admin port.
#[derive(Debug)]
pub struct Rejections {
    ring: Mutex<Ring>,
}

/// The entries per route, oldest first, each with its arrival number. Over a cap, the oldest
/// entry of the route holding the most goes: a scanner flooding `_unmatched` (or one route)
/// evicts its own entries, not the one rejection of another route being looked for.
#[derive(Debug, Default)]
struct Ring {
    routes: HashMap<String, RouteRing>,
    entries: usize,
    bytes: usize,
    capacity: usize,
    seq: u64,
}

#[derive(Debug, Default)]
struct RouteRing {
    entries: VecDeque<(u64, Entry)>,
    bytes: usize,
}

impl Rejections {
    /// A ring keeping at most `capacity` entries (0: none).
    pub fn new(capacity: usize) -> Rejections {
        Rejections {
            ring: Mutex::new(Ring {
                capacity,
                ..Ring::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the entry cap (a reload); older entries beyond it go at once.
    pub fn set_capacity(&self, capacity: usize) {
        let mut r = self.lock();
        r.capacity = capacity;
        r.trim();
    }

    /// Whether entries are kept at all.
    pub fn enabled(&self) -> bool {
        self.lock().capacity > 0
    }

    /// Records one rejected request (the body is hashed here, outside the lock).
    pub fn record(&self, r: &Rejected<'_>) {
        if !self.enabled() {
            return;
        }
        let entry = Entry::new(r, SystemTime::now());
        let mut ring = self.lock();
        ring.seq += 1;
        let (seq, size) = (ring.seq, entry.size);
        ring.entries += 1;
        ring.bytes += size;
        let route = match ring.routes.get_mut(entry.route.as_str()) {
            Some(route) => route,
            None => ring.routes.entry(entry.route.clone()).or_default(),
        };
        route.bytes += size;
        route.entries.push_back((seq, entry));
        ring.trim();
    }

    /// `(entries, accounted bytes)` held now.
    pub fn usage(&self) -> (usize, usize) {
        let r = self.lock();
        (r.entries, r.bytes)
    }

    /// The entries, newest first, that match `route` and `reason` when given; at most `limit`.
    pub fn list(&self, route: Option<&str>, reason: Option<&str>, limit: usize) -> Vec<Entry> {
        let r = self.lock();
        let mut found: Vec<&(u64, Entry)> = r
            .routes
            .iter()
            .filter(|(name, _)| route.is_none_or(|x| x == name.as_str()))
            .flat_map(|(_, ring)| ring.entries.iter())
            .filter(|(_, e)| reason.is_none_or(|x| x == e.reason.as_str()))
            .collect();
        found.sort_unstable_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        found
            .into_iter()
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// `/debug/rejections` as JSON text: an array, newest first.
    pub fn json(&self, route: Option<&str>, reason: Option<&str>, limit: usize) -> String {
        let list: Vec<serde_json::Value> = self
            .list(route, reason, limit)
            .iter()
            .map(Entry::to_json)
            .collect();
        serde_json::Value::Array(list).to_string()
    }
}

impl Ring {
    fn trim(&mut self) {
        while self.entries > self.capacity || self.bytes > MAX_BYTES {
            // Over the entry cap: the route with the most entries gives one up; over the byte
            // cap, the route with the most bytes.
            let by_bytes = self.entries <= self.capacity;
            let Some(name) = self
                .routes
                .iter()
                .max_by_key(|(_, r)| if by_bytes { r.bytes } else { r.entries.len() })
                .map(|(name, _)| name.clone())
            else {
                break;
            };
            let Some(route) = self.routes.get_mut(&name) else {
                break;
            };
            match route.entries.pop_front() {
                Some((_, e)) => {
                    route.bytes -= e.size;
                    self.bytes -= e.size;
                    self.entries -= 1;
                }
                None => self.entries = 0,
            }
            if route.entries.is_empty() {
                self.routes.remove(&name);
            }
        }
    }
}

impl Entry {
    fn new(r: &Rejected<'_>, now: SystemTime) -> Entry {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut header_bytes = 0usize;
        let mut truncated = false;
        for name in r.headers.keys() {
            let n = name.as_str();
            let value = if redacted(n, r.signature_headers) {
                REDACTED.to_owned()
            } else {
                let mut v = String::new();
                for (i, part) in r.headers.get_all(name).iter().enumerate() {
                    if i > 0 {
                        v.push_str(", ");
                    }
                    v.push_str(&String::from_utf8_lossy(part.as_bytes()));
                }
                if v.len() > MAX_VALUE_BYTES {
                    let mut cut = MAX_VALUE_BYTES;
                    while !v.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    v.truncate(cut);
                    truncated = true;
                }
                v
            };
            let size = n.len() + value.len();
            if header_bytes + size > MAX_HEADER_BYTES {
                truncated = true;
                continue;
            }
            header_bytes += size;
            headers.push((n.to_owned(), value));
        }
        let body_sha256 = r.body.map(|pieces| {
            let mut h = Sha256::new();
            for p in pieces {
                h.update(p);
            }
            h.finalize().into()
        });
        let route = cut(r.route, 128);
        let request_id = cut(&String::from_utf8_lossy(r.request_id.as_bytes()), 128);
        let time_ms = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Entry {
            time_ms,
            size: ENTRY_OVERHEAD + route.len() + request_id.len() + header_bytes,
            route,
            reason: r.reason,
            status: r.status,
            peer: r.peer,
            request_id,
            headers,
            headers_truncated: truncated,
            body_bytes: r.body_bytes,
            body_sha256,
        }
    }

    /// The entry as `/debug/rejections` shows it.
    pub fn to_json(&self) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::json!({
            "time": rfc3339_ms(self.time_ms),
            "route": self.route,
            "reason": self.reason.as_str(),
            "status": self.status,
            "peer": self.peer.to_string(),
            "request_id": self.request_id,
            "headers": headers,
            "headers_truncated": self.headers_truncated,
            "body_bytes": self.body_bytes,
            "body_sha256": self.body_sha256.map(|h| crate::hex::encode(&h)),
        })
    }
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// `2026-12-06T15:44:25.123Z`
fn rfc3339_ms(ms: u64) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms as i64);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn rejected<'a>(
        h: &'a HeaderMap,
        id: &'a HeaderValue,
        body: Option<&'a [bytes::Bytes]>,
    ) -> Rejected<'a> {
        Rejected {
            route: "gh",
            reason: Reason::BadSignature,
            status: 401,
            peer: "127.0.0.1:4000".parse().unwrap(),
            request_id: id,
            headers: h,
            signature_headers: &["X-Hub-Signature-256", "x-my-mac"],
            body,
            body_bytes: body.map(|b| b.iter().map(|p| p.len() as u64).sum()),
        }
    }

    #[test]
    fn signature_and_secret_like_values_are_redacted() {
        for name in [
            "authorization",
            "proxy-authorization",
            "cookie",
            "x-api-key",
            "x-hub-signature-256",
            "x-my-mac",
            "stripe-signature",
            "webhook-signature",
            "x-gitlab-token",
            "x-shopify-hmac-sha256",
            "x-client-secret",
            "x-signature-ed25519",
            "x-sig",
            "x-auth-token",
            "apikey",
            "x_api_key",
            "plaid-verification",
            "ocp-apim-subscription-key",
            "x-functions-key",
            "x-webhook-password",
        ] {
            assert!(
                redacted(name, &["X-Hub-Signature-256", "x-my-mac"]),
                "{name}"
            );
        }
        for name in [
            "content-type",
            "user-agent",
            "x-github-delivery",
            "x-github-event",
            "webhook-id",
            "webhook-timestamp",
            "x-slack-request-timestamp",
            "content-length",
            "x-request-id",
        ] {
            assert!(!redacted(name, &["X-Hub-Signature-256"]), "{name}");
        }
    }

    #[test]
    fn an_entry_keeps_headers_redacted_and_the_body_as_length_and_hash() {
        let h = headers(&[
            ("x-hub-signature-256", "sha256=abcdef"),
            ("x-my-mac", "deadbeef"),
            ("authorization", "Bearer top-secret"),
            ("x-github-delivery", "d-1"),
            ("accept", "a"),
            ("accept", "b"),
        ]);
        let id = HeaderValue::from_static("rid-1");
        let body = [
            bytes::Bytes::from_static(b"hello "),
            bytes::Bytes::from_static(b"world"),
        ];
        let ring = Rejections::new(10);
        ring.record(&rejected(&h, &id, Some(&body)));
        let text = ring.json(None, None, 100);
        for secret in ["abcdef", "deadbeef", "top-secret", "hello", "world"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let e = &v[0];
        assert_eq!(e["route"], "gh");
        assert_eq!(e["reason"], "bad_signature");
        assert_eq!(e["status"], 401);
        assert_eq!(e["peer"], "127.0.0.1:4000");
        assert_eq!(e["request_id"], "rid-1");
        assert_eq!(e["headers"]["x-hub-signature-256"], REDACTED);
        assert_eq!(e["headers"]["authorization"], REDACTED);
        assert_eq!(e["headers"]["x-github-delivery"], "d-1");
        assert_eq!(e["headers"]["accept"], "a, b");
        assert_eq!(e["headers_truncated"], false);
        assert_eq!(e["body_bytes"], 11);
        // sha256("hello world")
        assert_eq!(
            e["body_sha256"],
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
        // No body read: neither length nor hash.
        let ring = Rejections::new(10);
        ring.record(&rejected(&h, &id, None));
        let v: serde_json::Value = serde_json::from_str(&ring.json(None, None, 10)).unwrap();
        assert!(v[0]["body_bytes"].is_null() && v[0]["body_sha256"].is_null());
    }

    #[test]
    fn the_ring_never_exceeds_its_caps_under_100_000_rejections() {
        let long = "v".repeat(2000);
        let pairs: Vec<(String, String)> =
            (0..12).map(|i| (format!("x-h{i}"), long.clone())).collect();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let big = headers(&pairs);
        let small = headers(&[("x-a", "1")]);
        for cap in [1000, 50_000] {
            let ring = Rejections::new(cap);
            let mut max_seen = (0, 0);
            for i in 0..100_000u32 {
                let id = HeaderValue::from_str(&format!("rid-{i}")).unwrap();
                let h = if i % 3 == 0 { &big } else { &small };
                ring.record(&rejected(h, &id, None));
                let (n, bytes) = ring.usage();
                assert!(
                    n <= cap && bytes <= MAX_BYTES,
                    "{i}: {n} entries, {bytes} bytes"
                );
                max_seen = (max_seen.0.max(n), max_seen.1.max(bytes));
            }
            let list = ring.list(None, None, usize::MAX);
            assert!(list
                .iter()
                .all(|e| e.size <= ENTRY_OVERHEAD + 256 + MAX_HEADER_BYTES));
            assert!(list
                .iter()
                .filter(|e| e.headers.len() > 1)
                .all(|e| e.headers_truncated));
            // Newest first, and the newest is the last recorded.
            assert_eq!(list[0].request_id, "rid-99999");
            if cap == 1000 {
                assert_eq!(max_seen.0, 1000, "the entry cap binds");
            } else {
                assert!(
                    max_seen.1 > MAX_BYTES - 8192,
                    "the byte cap binds: {max_seen:?}"
                );
            }
        }
    }

    #[test]
    fn a_flood_on_one_route_evicts_its_own_entries_first() {
        let h = headers(&[]);
        let id = HeaderValue::from_static("r");
        let ring = Rejections::new(100);
        let mut r = rejected(&h, &id, None);
        ring.record(&r);
        r.route = "_unmatched";
        r.reason = Reason::NoRoute;
        for _ in 0..10_000 {
            ring.record(&r);
        }
        assert_eq!(ring.usage().0, 100);
        let gh = ring.list(Some("gh"), None, 10);
        assert_eq!(gh.len(), 1, "the one gh rejection survives the flood");
        assert_eq!(ring.list(Some("_unmatched"), None, 1000).len(), 99);
        // Newest first across routes.
        assert_eq!(ring.list(None, None, 1)[0].route, "_unmatched");
        assert_eq!(ring.list(None, None, 100)[99].route, "gh");
    }

    #[test]
    fn filters_capacity_and_reload() {
        let h = headers(&[]);
        let id = HeaderValue::from_static("r");
        let ring = Rejections::new(5);
        for (route, reason) in [
            ("a", Reason::BadSignature),
            ("b", Reason::NoRoute),
            ("a", Reason::StaleTimestamp),
        ] {
            let mut r = rejected(&h, &id, None);
            r.route = route;
            r.reason = reason;
            ring.record(&r);
        }
        assert_eq!(ring.list(Some("a"), None, 10).len(), 2);
        assert_eq!(ring.list(Some("a"), Some("stale_timestamp"), 10).len(), 1);
        assert_eq!(ring.list(None, Some("no_route"), 10)[0].route, "b");
        assert_eq!(ring.list(None, None, 10)[0].reason, Reason::StaleTimestamp);
        ring.set_capacity(1);
        assert_eq!(ring.usage().0, 1);
        ring.set_capacity(0);
        assert!(!ring.enabled());
        ring.record(&rejected(&h, &id, None));
        assert_eq!(ring.usage(), (0, 0));
    }
}
