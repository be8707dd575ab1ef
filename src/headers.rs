//! Header names hookseal reads and writes, and the edits made on the way through.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::IpNet;

/// `x-hookseal-verified`
pub const VERIFIED: HeaderName = HeaderName::from_static("x-hookseal-verified");
/// `x-hookseal-route`
pub const ROUTE: HeaderName = HeaderName::from_static("x-hookseal-route");
/// `x-hookseal-scheme`
pub const SCHEME: HeaderName = HeaderName::from_static("x-hookseal-scheme");
/// `x-hookseal-key`
pub const KEY: HeaderName = HeaderName::from_static("x-hookseal-key");
/// `x-hookseal-id`
pub const ID: HeaderName = HeaderName::from_static("x-hookseal-id");
/// `x-hookseal-timestamp`
pub const TIMESTAMP: HeaderName = HeaderName::from_static("x-hookseal-timestamp");
/// `x-hookseal-reason` (observe mode)
pub const REASON: HeaderName = HeaderName::from_static("x-hookseal-reason");
/// `x-hookseal-event`: the verified request's event type (README "Events and filters").
pub const EVENT: HeaderName = HeaderName::from_static("x-hookseal-event");
/// `x-hookseal-duplicate`
pub const DUPLICATE: HeaderName = HeaderName::from_static("x-hookseal-duplicate");
/// `x-request-id`
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-forwarded-for`
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-host`
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// `x-real-ip`
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The proxy headers the `[forwarding]` policy governs (README "What happens to a request").
/// By default the first seven (path and method overrides, port and prefix) are removed,
/// `X-Real-IP` is set to the client address hookseal determined and `Forwarded` is rewritten
/// from the `X-Forwarded-*` headers hookseal sets; `[forwarding] keep` passes any of them on
/// as the client sent it.
pub static POLICY: [HeaderName; 9] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    X_REAL_IP,
    header::FORWARDED,
];

/// Applies the `[forwarding]` policy (see [`POLICY`]) to a request about to be forwarded,
/// after [`add_forwarded`]. `client` is the client address hookseal determined
/// ([`client_ip`]) as a header value ([`ip_value`]); `None` leaves no `X-Real-IP`.
/// `forwarded` is what [`add_forwarded`] returned: the `Forwarded` value of the
/// `X-Forwarded-*` headers it set. The proxy runs its two halves apart
/// ([`remove_policy_names`] before it adds its own headers, [`set_policy_values`] after);
/// the tests pin the policy through this whole.
#[cfg(test)]
pub fn apply_policy(
    headers: &mut HeaderMap,
    keep: &[HeaderName],
    client: Option<HeaderValue>,
    forwarded: Option<HeaderValue>,
) {
    remove_policy_names(headers, keep);
    set_policy_values(headers, keep, client, forwarded);
}

/// The first half of the policy: removes POLICY's first seven names (unless kept). None
/// of them is a name [`add_forwarded`] or hookseal's own headers set, so it may run before
/// those are added: its pass then looks at the client's names only.
pub fn remove_policy_names(headers: &mut HeaderMap, keep: &[HeaderName]) {
    // The names that are only removed: one pass over the request's names finds the ones it
    // has (usually none), instead of a lookup of each on every request.
    // POLICY's first seven; the last two (X-Real-IP, Forwarded) are rewritten below.
    let removed = &POLICY[..7];
    let mut present = [false; 7];
    for name in headers.keys() {
        if let Some(i) = removed.iter().position(|p| p == name) {
            present[i] = true;
        }
    }
    for (name, _) in removed.iter().zip(present).filter(|(_, p)| *p) {
        if !keep.contains(name) {
            headers.remove(name);
        }
    }
}

/// The second half of the policy: `X-Real-IP` and `Forwarded` set (or removed) unless
/// kept.
pub fn set_policy_values(
    headers: &mut HeaderMap,
    keep: &[HeaderName],
    client: Option<HeaderValue>,
    forwarded: Option<HeaderValue>,
) {
    if !keep.contains(&X_REAL_IP) {
        match client {
            Some(v) => headers.insert(X_REAL_IP, v),
            None => headers.remove(X_REAL_IP),
        };
    }
    if !keep.contains(&header::FORWARDED) {
        match forwarded {
            Some(v) => headers.insert(header::FORWARDED, v),
            None => headers.remove(header::FORWARDED),
        };
    }
}

/// `Forwarded` (RFC 7239) saying what the `X-Forwarded-*` headers say: one `for=` element per
/// `X-Forwarded-For` hop (`unknown` for one that is not an address), the last carrying
/// `proto` and `host`.
#[cfg(test)]
fn forwarded_value(headers: &HeaderMap) -> Option<HeaderValue> {
    forwarded_of(
        headers.get(&X_FORWARDED_FOR)?,
        headers.get(&X_FORWARDED_PROTO),
        headers.get(&X_FORWARDED_HOST),
    )
}

/// [`forwarded_value`] of a request whose `X-Forwarded-*` headers are `xff`, `proto` and
/// `host`: [`add_forwarded`] writes it from what it sets, without looking the three up again.
fn forwarded_of(
    xff: &HeaderValue,
    proto: Option<&HeaderValue>,
    host: Option<&HeaderValue>,
) -> Option<HeaderValue> {
    let xff = xff.to_str().ok()?;
    // Written by hand, as `format!` would write it (tested): this runs on every request.
    let mut out = ValueBuf::new();
    let mut text = [0u8; 48];
    for hop in xff.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        if !out.is_empty() {
            out.push(b", ");
        }
        match parse_hop(hop) {
            Some(ip @ IpAddr::V4(_)) => {
                out.push(b"for=");
                out.push(ip_text(ip, &mut text));
            }
            Some(ip @ IpAddr::V6(_)) => {
                out.push(b"for=\"[");
                out.push(ip_text(ip, &mut text));
                out.push(b"]\"");
            }
            None => out.push(b"for=unknown"),
        }
    }
    if let Some(proto) = proto.and_then(|v| v.to_str().ok()) {
        out.push(b";proto=");
        out.push(proto.as_bytes());
    }
    if let Some(host) = host.and_then(|v| v.to_str().ok()) {
        // A checked authority (see `check_host`): never a quote or a backslash.
        if !host.bytes().any(|b| b == b'"' || b == b'\\') {
            out.push(b";host=\"");
            out.push(host.as_bytes());
            out.push(b"\"");
        }
    }
    // Visible ASCII only (every piece is `to_str` text or an address), as `from_str` checks.
    HeaderValue::from_bytes(out.as_bytes()).ok()
}

/// A header value written piece by piece: on the stack while it fits, so that the value's own
/// copy is its one allocation (a `Vec` made into `Bytes` would cost a second, for sharing).
struct ValueBuf {
    stack: [u8; 192],
    len: usize,
    /// Everything, once it did not fit on the stack.
    heap: Vec<u8>,
}

impl ValueBuf {
    fn new() -> ValueBuf {
        ValueBuf {
            stack: [0; 192],
            len: 0,
            heap: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if self.heap.is_empty() && end <= self.stack.len() {
            self.stack[self.len..end].copy_from_slice(bytes);
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.stack[..self.len]);
            }
            self.heap.extend_from_slice(bytes);
        }
        self.len = end;
    }

    fn as_bytes(&self) -> &[u8] {
        if self.heap.is_empty() {
            &self.stack[..self.len]
        } else {
            &self.heap
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Whether the request's `Host` can be forwarded: at most one, not empty, a plain
/// `host[:port]` without userinfo, and on a request that also has an authority (HTTP/2
/// `:authority`, an absolute-form request line), equal to it (ASCII case aside). The
/// authority itself must carry no userinfo.
pub fn host_ok(headers: &HeaderMap, authority: Option<&http::uri::Authority>) -> bool {
    let plain = |s: &[u8]| !s.is_empty() && !s.contains(&b'@');
    if authority.is_some_and(|a| !plain(a.as_str().as_bytes())) {
        return false;
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    let Some(host) = hosts.next() else {
        return true;
    };
    if hosts.next().is_some() || !plain(host.as_bytes()) {
        return false;
    }
    if http::uri::Authority::try_from(host.as_bytes()).is_err() {
        return false;
    }
    authority.is_none_or(|a| a.as_str().as_bytes().eq_ignore_ascii_case(host.as_bytes()))
}

/// Whether the request's `Transfer-Encoding`, if any, is exactly one `chunked`: hyper reads
/// the chunked framing and drops every other coding, so a body sent as `gzip, chunked`
/// would reach the app compressed without saying so (RFC 9112 §6.1 allows a 501).
pub fn transfer_coding_ok(headers: &HeaderMap) -> bool {
    let mut codings = 0;
    // Whether the header came at all: seen here, not looked up a second time.
    let mut present = false;
    for v in headers.get_all(header::TRANSFER_ENCODING) {
        present = true;
        let Ok(v) = v.to_str() else { return false };
        for coding in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if !coding.eq_ignore_ascii_case("chunked") {
                return false;
            }
            codings += 1;
        }
    }
    codings <= 1 && (codings == 1 || !present)
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1, plus legacy names).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including every name listed in `Connection`, and
/// `Transfer-Encoding` (the body is re-framed by the next hop).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually there is none: one pass over the names instead of a removal per name.
    if !headers
        .keys()
        .any(|k| k == header::TRANSFER_ENCODING || HOP_BY_HOP.contains(k))
    {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Removes every `x-hookseal-*` header a client sent: only hookseal may set them. Spellings
/// with `_` for `-` (`x_hookseal_verified`) go too: CGI, WSGI and Rack servers turn both into
/// the same `HTTP_X_HOOKSEAL_VERIFIED` variable.
pub fn strip_hookseal(headers: &mut HeaderMap) {
    const PREFIX: &[u8] = b"x-hookseal-";
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str().as_bytes();
            k.len() >= PREFIX.len()
                && k.iter()
                    .zip(PREFIX)
                    .all(|(c, p)| c == p || (*c == b'_' && *p == b'-'))
        })
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

/// Appends the peer (its address as [`ip_value`] writes it) to `X-Forwarded-For` (every line
/// the client sent, joined with `, `) and sets `X-Forwarded-Proto` and `X-Forwarded-Host`.
/// Returns the `Forwarded` value that says the same, for [`set_policy_values`].
pub fn add_forwarded(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    tls: bool,
    host: Option<HeaderValue>,
) -> Option<HeaderValue> {
    let mut xff = ValueBuf::new();
    for prev in headers.get_all(&X_FORWARDED_FOR) {
        let prev = prev.as_bytes().trim_ascii();
        if !prev.is_empty() {
            xff.push(prev);
            xff.push(b", ");
        }
    }
    // `insert` drops every earlier value: no `remove` first. Without an earlier hop the value
    // is the peer's own (a clone shares it).
    let value = if xff.is_empty() {
        Ok(peer.clone())
    } else {
        xff.push(peer.as_bytes());
        HeaderValue::from_bytes(xff.as_bytes())
    };
    // Made at compile time: `from_static` outside a const checks its text at every call.
    let proto = if tls {
        const { HeaderValue::from_static("https") }
    } else {
        const { HeaderValue::from_static("http") }
    };
    let forwarded = value
        .as_ref()
        .ok()
        .and_then(|xff| forwarded_of(xff, Some(&proto), host.as_ref()));
    match value {
        Ok(v) => headers.insert(X_FORWARDED_FOR, v),
        Err(_) => headers.remove(&X_FORWARDED_FOR),
    };
    headers.insert(X_FORWARDED_PROTO, proto);
    match host {
        Some(h) => {
            headers.insert(X_FORWARDED_HOST, h);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
    forwarded
}

/// `ip` as a header value (as `Display` writes it), in the one allocation its `Bytes` owns:
/// its clones share it (a value copied from a slice would allocate again when first cloned).
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    let mut buf = [0; 48];
    let len = ip_text(ip, &mut buf).len();
    // An address is visible ASCII: never the fallback.
    owned_value(buf, len, "unknown")
}

/// The first `len` bytes of `buf` as a header value that owns them in one allocation (its
/// clones share it); `fallback` if they are not a valid value.
pub(crate) fn owned_value<const N: usize>(
    buf: [u8; N],
    len: usize,
    fallback: &'static str,
) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(StackText { buf, len }))
        .unwrap_or(HeaderValue::from_static(fallback))
}

/// Text written into a buffer on the stack: `buf[..len]`.
struct StackText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> AsRef<[u8]> for StackText<N> {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len.min(N)]
    }
}

/// `ip` as text (as `Display` writes it) in `buf`, without an allocation for IPv4.
fn ip_text(ip: IpAddr, buf: &mut [u8; 48]) -> &[u8] {
    let mut n = 0;
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            // At most 45 characters (`ffff:…:255.255.255.255`): always fits.
            let _ = write!(cursor, "{v6}");
            n = cursor.position() as usize;
        }
    }
    &buf[..n]
}

/// The client's address: the socket peer, unless the peer is a trusted proxy, in which case
/// the right-most address of `X-Forwarded-For` that is not itself a trusted proxy. `None` when
/// that entry is not an address (the caller treats it as matching no allow-list).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    if !trusted.iter().any(|n| n.contains(peer)) {
        return Some(peer);
    }
    let mut hops: Vec<&str> = Vec::new();
    for v in headers.get_all(&X_FORWARDED_FOR) {
        let v = v.to_str().ok()?;
        hops.extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()));
    }
    let mut last_trusted = peer;
    for hop in hops.iter().rev() {
        let ip = parse_hop(hop)?;
        if !trusted.iter().any(|n| n.contains(ip)) {
            return Some(ip);
        }
        last_trusted = ip;
    }
    // Every hop is a trusted proxy: the left-most one is as close to the client as we know.
    Some(last_trusted)
}

/// An `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:567`, `2001:db8::1` or `[2001:db8::1]:567`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `format!` version [`forwarded_value`] replaces.
    fn forwarded_by_format(headers: &HeaderMap) -> Option<HeaderValue> {
        let xff = headers.get(&X_FORWARDED_FOR)?.to_str().ok()?;
        let mut out = String::new();
        for hop in xff.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            match parse_hop(hop) {
                Some(IpAddr::V4(v4)) => out.push_str(&format!("for={v4}")),
                Some(IpAddr::V6(v6)) => out.push_str(&format!("for=\"[{v6}]\"")),
                None => out.push_str("for=unknown"),
            }
        }
        if let Some(proto) = headers
            .get(&X_FORWARDED_PROTO)
            .and_then(|v| v.to_str().ok())
        {
            out.push_str(";proto=");
            out.push_str(proto);
        }
        if let Some(host) = headers.get(&X_FORWARDED_HOST).and_then(|v| v.to_str().ok()) {
            if !host.bytes().any(|b| b == b'"' || b == b'\\') {
                out.push_str(&format!(";host=\"{host}\""));
            }
        }
        HeaderValue::from_str(&out).ok()
    }

    /// The per-name loop [`apply_policy`] replaces.
    fn apply_policy_by_lookups(
        headers: &mut HeaderMap,
        keep: &[HeaderName],
        client: Option<IpAddr>,
    ) {
        for name in &POLICY {
            if keep.contains(name) {
                continue;
            }
            headers.remove(name);
            if *name == X_REAL_IP {
                if let Some(ip) = client {
                    headers.insert(X_REAL_IP, HeaderValue::from_str(&ip.to_string()).unwrap());
                }
            } else if *name == header::FORWARDED {
                if let Some(v) = forwarded_by_format(headers) {
                    headers.insert(header::FORWARDED, v);
                }
            }
        }
    }

    #[test]
    fn the_policy_in_one_pass_does_what_a_lookup_per_name_did() {
        let clients = [
            None,
            Some("192.0.2.1".parse().unwrap()),
            Some("2001:db8::2".parse().unwrap()),
        ];
        let mut cases = 0;
        // Every subset of the policy's names present (twice over: some names repeated), beside
        // other headers, under three `keep` lists and three clients.
        for mask in 0u32..(1 << POLICY.len()) {
            let mut h = map(&[
                ("host", "x"),
                ("x-forwarded-for", "10.0.0.1"),
                ("x-forwarded-proto", "http"),
            ]);
            for (i, name) in POLICY.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    h.append(name.clone(), HeaderValue::from_static("1"));
                    if i % 2 == 0 {
                        h.append(name.clone(), HeaderValue::from_static("2"));
                    }
                }
            }
            for keep in [
                vec![],
                vec![POLICY[0].clone(), X_REAL_IP],
                vec![header::FORWARDED, POLICY[5].clone()],
            ] {
                for client in clients {
                    let (mut a, mut b) = (h.clone(), h.clone());
                    let forwarded = forwarded_value(&a);
                    apply_policy(&mut a, &keep, client.map(ip_value), forwarded);
                    apply_policy_by_lookups(&mut b, &keep, client);
                    assert_eq!(a, b, "mask {mask:b} keep {keep:?} client {client:?}");
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 512 * 9);
    }

    #[test]
    fn forwarded_reads_as_the_format_it_replaces() {
        let hops = [
            "10.0.0.1",
            "203.0.113.250:8080",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
            "[2001:db8::1]:443",
            "::ffff:192.0.2.128",
            "fe80::1:2:3:4",
            "not-an-ip",
            "",
            " 192.0.2.9 ",
        ];
        let mut cases = 0;
        for a in hops {
            for b in ["", "198.51.100.2", "2001:db8:0:0:1:0:0:1", "unknown"] {
                for (proto, host) in [
                    (None, None),
                    (Some("https"), Some("hooks.example:8443")),
                    (Some("http"), Some("[::1]:80")),
                    (None, Some("bad\"host")),
                ] {
                    let xff = if b.is_empty() {
                        a.to_owned()
                    } else {
                        format!("{a}, {b}")
                    };
                    let mut pairs = vec![("x-forwarded-for", xff.as_str())];
                    pairs.extend(proto.map(|p| ("x-forwarded-proto", p)));
                    pairs.extend(host.map(|h| ("x-forwarded-host", h)));
                    let h = map(&pairs);
                    assert_eq!(forwarded_value(&h), forwarded_by_format(&h), "{pairs:?}");
                    cases += 1;
                }
            }
        }
        assert_eq!(forwarded_value(&HeaderMap::new()), None);
        assert!(cases > 100);
    }

    #[test]
    fn values_longer_than_the_stack_buffer_are_written_whole() {
        // 40 hops: X-Forwarded-For and Forwarded both run past `ValueBuf`'s 192 bytes.
        let hops: Vec<String> = (0..40).map(|i| format!("198.51.100.{i}")).collect();
        let xff = hops.join(", ");
        let mut h = map(&[("x-forwarded-for", &xff)]);
        let forwarded = add_forwarded(&mut h, &ip_value("192.0.2.1".parse().unwrap()), true, None);
        assert_eq!(forwarded, forwarded_value(&h));
        let joined = format!("{xff}, 192.0.2.1");
        assert!(joined.len() > 192);
        assert_eq!(h.get(&X_FORWARDED_FOR).unwrap(), joined.as_str());
        let forwarded = forwarded_value(&h).unwrap();
        assert!(forwarded.len() > 192);
        assert_eq!(Some(forwarded), forwarded_by_format(&h));
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_listed_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-custom"),
            ("keep-alive", "timeout=5"),
            ("x-custom", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("content-type", "application/json"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn each_hop_by_hop_header_alone_is_removed() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "upgrade",
            "transfer-encoding",
        ] {
            let mut h = map(&[("content-type", "text/plain"), (name, "x"), ("x-a", "1")]);
            strip_hop_by_hop(&mut h);
            assert!(!h.contains_key(name), "{name} kept");
            assert_eq!(h.len(), 2, "{name}: others removed too");
        }
        let mut h = map(&[("content-type", "text/plain"), ("x-a", "1")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn spoofed_hookseal_headers_are_removed() {
        let mut h = map(&[
            ("x-hookseal-verified", "true"),
            ("X-Hookseal-Route", "x"),
            ("x_hookseal_verified", "true"),
            ("X_HOOKSEAL-key", "k"),
            ("x-other", "1"),
            ("x-hooksealed", "1"),
        ]);
        strip_hookseal(&mut h);
        assert_eq!(h.len(), 2);
        assert!(h.contains_key("x-other") && h.contains_key("x-hooksealed"));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = map(&[("x-forwarded-for", "203.0.113.9")]);
        add_forwarded(
            &mut h,
            &ip_value("10.0.0.1".parse().unwrap()),
            true,
            Some(HeaderValue::from_static("ex.com")),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "ex.com");
    }

    #[test]
    fn forwarded_for_joins_every_line_and_writes_addresses_as_display_does() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", " "),
            ("x-forwarded-for", "198.51.100.1, 198.51.100.2 "),
        ]);
        add_forwarded(
            &mut h,
            &ip_value("10.20.0.255".parse().unwrap()),
            false,
            None,
        );
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(
            h["x-forwarded-for"],
            "203.0.113.9, 198.51.100.1, 198.51.100.2, 10.20.0.255"
        );
        assert_eq!(h["x-forwarded-proto"], "http");
        assert!(!h.contains_key("x-forwarded-host"));
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "9.10.99.100",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.128",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut buf = [0u8; 48];
            assert_eq!(ip_text(ip, &mut buf), ip.to_string().as_bytes());
            let value = ip_value(ip);
            assert_eq!(value, ip.to_string().as_str());
            assert_eq!(value.clone(), value);
        }
        for i in 0..=255u8 {
            let ip = IpAddr::from([i, 255 - i, i / 3, 7]);
            let mut buf = [0u8; 48];
            assert_eq!(ip_text(ip, &mut buf), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn policy_strips_overrides_and_rewrites_real_ip_and_forwarded() {
        let sent = [
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("x-http-method", "DELETE"),
            ("x-method-override", "DELETE"),
            ("x-forwarded-port", "1"),
            ("x-forwarded-prefix", "/evil"),
            ("x-real-ip", "127.0.0.1"),
            ("forwarded", "for=127.0.0.1;host=admin.internal"),
            ("x-forwarded-for", "198.51.100.7"),
            ("content-type", "application/json"),
        ];
        let mut h = map(&sent);
        let forwarded = add_forwarded(
            &mut h,
            &ip_value("2001:db8::1".parse().unwrap()),
            true,
            Some(HeaderValue::from_static("hooks.example:8443")),
        );
        assert_eq!(forwarded, forwarded_value(&h));
        apply_policy(
            &mut h,
            &[],
            Some(ip_value("203.0.113.5".parse().unwrap())),
            forwarded,
        );
        for name in &POLICY[..7] {
            assert!(!h.contains_key(name), "{name} kept");
        }
        assert_eq!(h["x-real-ip"], "203.0.113.5");
        assert_eq!(
            h["forwarded"],
            "for=198.51.100.7, for=\"[2001:db8::1]\";proto=https;host=\"hooks.example:8443\""
        );
        assert_eq!(h.get_all("forwarded").iter().count(), 1);

        // No client address: no X-Real-IP at all. A hop that is no address: `unknown`.
        let mut h = map(&[("x-real-ip", "1.1.1.1"), ("x-forwarded-for", "junk")]);
        let forwarded = add_forwarded(&mut h, &ip_value("10.0.0.1".parse().unwrap()), false, None);
        assert_eq!(forwarded, forwarded_value(&h));
        apply_policy(&mut h, &[], None, forwarded);
        assert!(!h.contains_key("x-real-ip"));
        assert_eq!(h["forwarded"], "for=unknown, for=10.0.0.1;proto=http");

        // `keep` passes a header on untouched.
        let mut h = map(&sent);
        let keep = [POLICY[0].clone(), X_REAL_IP, header::FORWARDED];
        let forwarded = forwarded_value(&h);
        apply_policy(
            &mut h,
            &keep,
            Some(ip_value("203.0.113.5".parse().unwrap())),
            forwarded,
        );
        assert_eq!(h["x-original-url"], "/admin");
        assert_eq!(h["x-real-ip"], "127.0.0.1");
        assert_eq!(h["forwarded"], "for=127.0.0.1;host=admin.internal");
        assert!(!h.contains_key("x-rewrite-url"));
    }

    #[test]
    fn host_rules() {
        let a = |s: &'static str| http::uri::Authority::from_static(s);
        assert!(host_ok(&map(&[("host", "ex.com")]), None));
        assert!(host_ok(&map(&[]), None));
        assert!(host_ok(&map(&[]), Some(&a("ex.com:8443"))));
        assert!(host_ok(
            &map(&[("host", "EX.com:8443")]),
            Some(&a("ex.com:8443"))
        ));
        assert!(!host_ok(
            &map(&[("host", "ex.com"), ("host", "ex.com")]),
            None
        ));
        assert!(!host_ok(&map(&[("host", "")]), None));
        assert!(!host_ok(&map(&[("host", "user:pw@ex.com")]), None));
        assert!(!host_ok(&map(&[("host", "ex.com/x")]), None));
        assert!(!host_ok(&map(&[("host", "evil.com")]), Some(&a("ex.com"))));
        assert!(!host_ok(&map(&[]), Some(&a("user:pw@ex.com"))));
    }

    #[test]
    fn only_a_single_chunked_coding_passes() {
        assert!(transfer_coding_ok(&map(&[])));
        assert!(transfer_coding_ok(&map(&[(
            "transfer-encoding",
            "chunked"
        )])));
        assert!(transfer_coding_ok(&map(&[(
            "transfer-encoding",
            "Chunked "
        )])));
        for bad in ["gzip, chunked", "chunked, chunked", "gzip", "", "identity"] {
            assert!(
                !transfer_coding_ok(&map(&[("transfer-encoding", bad)])),
                "{bad:?}"
            );
        }
        assert!(!transfer_coding_ok(&map(&[
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "chunked")
        ])));
    }

    #[test]
    fn client_ip_untrusted_peer_ignores_header() {
        let h = map(&[("x-forwarded-for", "1.1.1.1")]);
        let trusted = [IpNet::parse("10.0.0.0/8").unwrap()];
        assert_eq!(
            client_ip("192.0.2.1".parse().unwrap(), &h, &trusted),
            Some("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn client_ip_rightmost_untrusted() {
        // The client forged "1.1.1.1"; the trusted proxy appended the real client 192.0.2.7.
        let h = map(&[("x-forwarded-for", "1.1.1.1, 192.0.2.7, 10.1.1.1")]);
        let trusted = [IpNet::parse("10.0.0.0/8").unwrap()];
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &h, &trusted),
            Some("192.0.2.7".parse().unwrap())
        );
        let h = map(&[("x-forwarded-for", "garbage")]);
        assert_eq!(client_ip("10.0.0.2".parse().unwrap(), &h, &trusted), None);
    }
}
