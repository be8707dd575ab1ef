//! A naive reference implementation of route matching, written independently of
//! `src/route.rs`, for the property tests (`properties.rs`) and the `route_match` fuzz target
//! (which includes this file by path). Slow and obvious on purpose: per-segment decoding, a
//! linear scan scoring every route, every one of the 256 readings of the target tried (no
//! shortcut for readings that cannot change anything).

#![allow(dead_code)]

use http::Method;
use unicode_normalization::UnicodeNormalization as _;

/// A route's path as the table holds it (already in matching form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefPattern {
    Exact(String),
    Prefix(String),
}

/// Why no route took the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefMiss {
    NoRoute,
    MethodNotAllowed,
    Ambiguous,
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c) || (b'A'..=b'F').contains(&c)
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_' || c == b'~'
}

/// How a server may read a request target (see `src/route.rs`): dot segments resolved,
/// `%2F`/`%5C`/`\\` taken as `/`, `;params` (also `%3B`) dropped from segments, NUL cuts the path
/// and control characters or spaces are trimmed from segments, a `.format` suffix dropped from
/// the last segment, Unicode compatibility folding (NFKC, lower-cased), and where the path is
/// taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefReading {
    pub dots: bool,
    pub slashes: bool,
    pub params: bool,
    pub trim: bool,
    pub format: bool,
    pub unicode: bool,
    pub from: RefFrom,
}

/// Where a reading takes the path from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefFrom {
    /// The path.
    Path,
    /// The path, less a leading `//authority` (once decoded).
    Authority,
    /// The path, less a first segment `*.php`.
    Script,
    /// The query up to `&` or `?` when it decodes to something starting with `/`, else the path.
    Query,
}

/// What hookseal matches by.
pub const REF_CANONICAL: RefReading = RefReading {
    dots: true,
    slashes: false,
    params: false,
    trim: false,
    format: false,
    unicode: false,
    from: RefFrom::Path,
};

/// All 256 readings.
pub fn all_readings() -> Vec<RefReading> {
    let mut out = Vec::new();
    for from in [
        RefFrom::Path,
        RefFrom::Authority,
        RefFrom::Script,
        RefFrom::Query,
    ] {
        for bits in 0u32..64 {
            out.push(RefReading {
                dots: bits & 1 != 0,
                slashes: bits & 2 != 0,
                params: bits & 4 != 0,
                trim: bits & 8 != 0,
                format: bits & 16 != 0,
                unicode: bits & 32 != 0,
                from,
            });
        }
    }
    out
}

/// Splits a path into units: a `%` with two hex digits after it, or one byte.
fn units(path: &str) -> Vec<&[u8]> {
    let b = path.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let n = if b[i] == b'%'
            && b.get(i + 1..i + 3)
                .is_some_and(|p| p.iter().all(|c| is_hex(*c)))
        {
            3
        } else {
            1
        };
        out.push(&b[i..i + n]);
        i += n;
    }
    out
}

/// Unicode folding: escapes of bytes 0x80-0xFF become those bytes, the text (lossy UTF-8) is
/// NFKC-normalized and lower-cased.
fn fold(text: &str) -> String {
    let mut bytes: Vec<u8> = Vec::new();
    for u in units(text) {
        match u {
            [b'%', h, l] => {
                let v = u8::from_str_radix(std::str::from_utf8(&[*h, *l]).unwrap_or("00"), 16)
                    .unwrap_or(0);
                if v >= 0x80 {
                    bytes.push(v);
                } else {
                    bytes.extend_from_slice(u);
                }
            }
            other => bytes.extend_from_slice(other),
        }
    }
    String::from_utf8_lossy(&bytes)
        .nfkc()
        .collect::<String>()
        .to_lowercase()
}

/// The path decoded under `r`: an escape of an unreserved character becomes it, of `/` or `\\`
/// a separator when `r.slashes`, of `;` a `;` when `r.params`, `%00` the end of the path and
/// other control characters or a space that character when `r.trim`; any other stays (hex
/// lower-cased); a `%` that starts no escape is spelled `%25`; `\\` is a separator when
/// `r.slashes`; a raw NUL ends the path when `r.trim`; then ASCII lower-cased.
fn decode(path: &str, r: RefReading) -> String {
    let mut out: Vec<u8> = Vec::new();
    for u in units(path) {
        match u {
            [b'%', h, l] => {
                let text = std::str::from_utf8(&[*h, *l])
                    .map(str::to_owned)
                    .unwrap_or_default();
                let c = u8::from_str_radix(&text, 16).unwrap_or(0);
                if is_unreserved(c) {
                    out.push(c);
                } else if r.slashes && (c == b'/' || c == b'\\') {
                    out.push(b'/');
                } else if r.params && c == b';' {
                    out.push(c);
                } else if r.trim && c == 0 {
                    break;
                } else if r.trim && c <= 0x20 {
                    out.push(c);
                } else {
                    out.extend_from_slice(u);
                }
            }
            [b'%'] => out.extend_from_slice(b"%25"),
            [b'\\'] if r.slashes => out.push(b'/'),
            [0] if r.trim => break,
            other => out.extend_from_slice(other),
        }
    }
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

/// A decoded path in matching form under `r`.
fn assemble(decoded: &str, r: RefReading) -> String {
    let mut raw: Vec<&str> = decoded.split('/').collect();
    if r.from == RefFrom::Authority && decoded.starts_with("//") {
        if let Some(i) = raw.iter().position(|s| !s.is_empty()) {
            raw.remove(i);
        }
    }
    let mut stack: Vec<String> = Vec::new();
    for raw in raw {
        let mut seg = raw.to_owned();
        if r.params {
            if let Some(i) = seg.find(';') {
                seg.truncate(i);
            }
        }
        if r.trim {
            seg = seg
                .trim_start_matches(|c: char| (c as u32) <= 0x20)
                .trim_end_matches(|c: char| (c as u32) <= 0x20)
                .to_owned();
        }
        if seg.is_empty() || (r.dots && seg == ".") {
            continue;
        }
        if r.dots && seg == ".." {
            stack.pop();
            continue;
        }
        stack.push(seg);
    }
    if r.from == RefFrom::Script && stack.first().is_some_and(|s| s.ends_with(".php")) {
        stack.remove(0);
    }
    if r.format {
        if let Some(last) = stack.last_mut() {
            let cut = last.char_indices().find(|(i, c)| *i > 0 && *c == '.');
            if let Some((i, _)) = cut {
                last.truncate(i);
            }
        }
    }
    if stack.is_empty() {
        return "/".to_owned();
    }
    stack.iter().map(|s| format!("/{s}")).collect()
}

/// The path as read under `r`, in matching form (`r.from` = `Query` reads it as the path).
pub fn read(path: &str, r: RefReading) -> String {
    let text = if r.unicode {
        fold(path)
    } else {
        path.to_owned()
    };
    assemble(&decode(&text, r), r)
}

/// The request target (`path?query`) as read under `r`.
pub fn read_target(target: &str, r: RefReading) -> String {
    let (path, query) = match target.find('?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    if r.from == RefFrom::Query {
        if let Some(q) = query {
            let end = q.find(['&', '?']).unwrap_or(q.len());
            let text = if r.unicode {
                fold(&q[..end])
            } else {
                q[..end].to_owned()
            };
            let decoded = decode(&text, r);
            if decoded.starts_with('/') {
                return assemble(&decoded, r);
            }
        }
    }
    read(path, r)
}

/// The matching form of a request path.
pub fn normalize(path: &str) -> String {
    read(path, REF_CANONICAL)
}

/// How specific a match is (higher wins), or `None` when the pattern does not match.
fn score(p: &RefPattern, norm: &str) -> Option<usize> {
    match p {
        RefPattern::Exact(e) => (e == norm).then_some(usize::MAX),
        RefPattern::Prefix(pre) => {
            let dir = pre.len() > 1 && pre.ends_with('/') && norm == &pre[..pre.len() - 1];
            (norm.starts_with(pre.as_str()) || dir).then_some(pre.len())
        }
    }
}

/// The index of the route that takes `method path` under one reading: the most specific
/// matching path owns the request (exact beats any prefix, longer prefix beats shorter); among
/// the routes with that path, the earliest that allows the method; none → method not allowed
/// (never a broader route).
fn find_read(
    routes: &[(RefPattern, Vec<Method>)],
    method: &Method,
    norm: &str,
) -> Result<usize, RefMiss> {
    let best = routes.iter().filter_map(|(p, _)| score(p, norm)).max();
    let Some(best) = best else {
        return Err(RefMiss::NoRoute);
    };
    routes
        .iter()
        .position(|(p, methods)| score(p, norm) == Some(best) && methods.contains(method))
        .ok_or(RefMiss::MethodNotAllowed)
}

/// The route that takes `method target`: the same under all 256 readings, or none
/// (ambiguous). The work budget of `src/route.rs` (targets over 4 KiB with every reading in
/// play are refused) is not modelled: the inputs given to this reference are shorter.
pub fn find(
    routes: &[(RefPattern, Vec<Method>)],
    method: &Method,
    target: &str,
) -> Result<usize, RefMiss> {
    let path = target.split('?').next().unwrap_or_default();
    let canonical = find_read(routes, method, &normalize(path));
    for r in all_readings() {
        if find_read(routes, method, &read_target(target, r)) != canonical {
            return Err(RefMiss::Ambiguous);
        }
    }
    canonical
}
