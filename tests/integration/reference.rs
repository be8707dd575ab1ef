//! A naive reference implementation of route matching, written independently of
//! `src/route.rs`, for the property tests (`properties.rs`) and the `route_match` fuzz target
//! (which includes this file by path). Slow and obvious on purpose: per-segment decoding, a
//! linear scan scoring every route.

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

/// One segment: `%XX` of an unreserved character decoded, a `%` that starts no escape
/// spelled `%25`, then ASCII lower-cased. A decoded character is never `/`, so decoding per
/// segment equals decoding the whole path first.
fn decode_segment(seg: &str) -> String {
    let b = seg.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let pair = b.get(i + 1..i + 3).filter(|p| p.iter().all(|c| is_hex(*c)));
        match pair {
            None => {
                out.extend_from_slice(b"%25");
                i += 1;
            }
            Some(p) => {
                let text = std::str::from_utf8(p).unwrap_or("zz");
                match u8::from_str_radix(text, 16) {
                    Ok(c) if is_unreserved(c) => out.push(c),
                    _ => out.extend_from_slice(&b[i..i + 3]),
                }
                i += 3;
            }
        }
    }
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

/// The matching form of a request path.
pub fn normalize(path: &str) -> String {
    let mut stack: Vec<String> = Vec::new();
    for raw in path.split('/') {
        let seg = decode_segment(raw);
        if seg.is_empty() || seg == "." {
            continue;
        }
        if seg == ".." {
            stack.pop();
            continue;
        }
        stack.push(seg);
    }
    if stack.is_empty() {
        return "/".to_owned();
    }
    stack.iter().map(|s| format!("/{s}")).collect()
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

/// The index of the route that takes `method path`: among the routes that match the path and
/// allow the method, the most specific one (exact beats any prefix, longer prefix beats
/// shorter), the earliest on a tie.
pub fn find(
    routes: &[(RefPattern, Vec<Method>)],
    method: &Method,
    path: &str,
) -> Result<usize, RefMiss> {
    let norm = normalize(path);
    let mut best: Option<(usize, usize)> = None;
    let mut any_path = false;
    for (i, (p, methods)) in routes.iter().enumerate() {
        let Some(s) = score(p, &norm) else { continue };
        any_path = true;
        if !methods.contains(method) {
            continue;
        }
        if best.is_none_or(|(bs, _)| s > bs) {
            best = Some((s, i));
        }
    }
    match best {
        Some((_, i)) => Ok(i),
        None if any_path => Err(RefMiss::MethodNotAllowed),
        None => Err(RefMiss::NoRoute),
    }
}
