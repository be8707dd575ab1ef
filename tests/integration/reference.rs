//! A naive reference implementation of route matching, written independently of
//! `src/route.rs`, for the property tests (`properties.rs`) and the `route_match` fuzz target
//! (which includes this file by path). Slow and obvious on purpose: per-segment decoding, a
//! linear scan scoring every route, every reading of the path tried.

#![allow(dead_code)]

use http::Method;

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
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c) || (b'A'..=b'F').contains(&c)
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_' || c == b'~'
}

/// How a server may read a path (see `src/route.rs`): dot segments resolved, `%2F`/`%5C`/`\\`
/// taken as `/`, `;params` dropped from segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefReading {
    pub dots: bool,
    pub slashes: bool,
    pub params: bool,
}

/// What hookseal matches by.
pub const REF_CANONICAL: RefReading = RefReading {
    dots: true,
    slashes: false,
    params: false,
};

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

/// The path decoded under `r`: an escape of an unreserved character becomes it, of `/` or `\\`
/// a separator when `r.slashes`, any other stays (hex lower-cased); a `%` that starts no
/// escape is spelled `%25`; `\\` is a separator when `r.slashes`; then ASCII lower-cased.
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
                } else {
                    out.extend_from_slice(u);
                }
            }
            [b'%'] => out.extend_from_slice(b"%25"),
            [b'\\'] if r.slashes => out.push(b'/'),
            other => out.extend_from_slice(other),
        }
    }
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

/// The path as read under `r`, in matching form.
pub fn read(path: &str, r: RefReading) -> String {
    let mut stack: Vec<String> = Vec::new();
    for raw in decode(path, r).split('/') {
        let seg = if r.params {
            raw.split(';').next().unwrap_or("")
        } else {
            raw
        };
        if seg.is_empty() || (r.dots && seg == ".") {
            continue;
        }
        if r.dots && seg == ".." {
            stack.pop();
            continue;
        }
        stack.push(seg.to_owned());
    }
    if stack.is_empty() {
        return "/".to_owned();
    }
    stack.iter().map(|s| format!("/{s}")).collect()
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

/// The route that takes `method path`: the same under all eight readings, or none.
pub fn find(
    routes: &[(RefPattern, Vec<Method>)],
    method: &Method,
    path: &str,
) -> Result<usize, RefMiss> {
    let canonical = find_read(routes, method, &normalize(path));
    for bits in 0u8..8 {
        let r = RefReading {
            dots: bits & 1 != 0,
            slashes: bits & 2 != 0,
            params: bits & 4 != 0,
        };
        if find_read(routes, method, &read(path, r)) != canonical {
            return Err(RefMiss::NoRoute);
        }
    }
    canonical
}
