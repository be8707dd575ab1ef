//! Route matching: method + normalized path → the route that owns the request.
//!
//! Matching uses a normalized form of the path (see [`normalize_path`]) so that spellings an
//! app framework would treat as the same endpoint (`/Hooks/GitHub/`, `/hooks//github`,
//! `/hooks/%67ithub`, `/x/../hooks/github`) cannot slip past a verifying route into a broader,
//! unverified one. The request is still forwarded with its path exactly as received.

use std::borrow::Cow;

use http::Method;

/// How a route matches paths (already normalized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// `path = "..."`
    Exact(String),
    /// `path_prefix = "..."`
    Prefix(String),
}

/// The routes of one config, ordered for lookup.
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    /// (matcher, methods, value), exact paths first, then prefixes longest first.
    entries: Vec<(PathMatch, Vec<Method>, T)>,
}

/// Why no route took a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No route's path matches.
    NoRoute,
    /// A route's path matches, but none of those routes allows the method.
    MethodNotAllowed,
}

impl<T> RouteTable<T> {
    /// Builds a table; `entries` in any order.
    pub fn new(mut entries: Vec<(PathMatch, Vec<Method>, T)>) -> Self {
        entries.sort_by_key(|(m, _, _)| match m {
            PathMatch::Exact(_) => (0, 0),
            PathMatch::Prefix(p) => (1, usize::MAX - p.len()),
        });
        RouteTable { entries }
    }

    /// Finds the most specific route whose path matches and which allows `method`.
    ///
    /// # Errors
    /// [`Miss::NoRoute`] or [`Miss::MethodNotAllowed`].
    pub fn find(&self, method: &Method, path: &str) -> Result<&T, Miss> {
        let path = normalize_path(path);
        let mut path_matched = false;
        for (m, methods, value) in &self.entries {
            let hit = match m {
                PathMatch::Exact(p) => *p == *path,
                PathMatch::Prefix(p) => {
                    path.starts_with(p.as_str()) || prefix_dir_matches(p, &path)
                }
            };
            if hit {
                if methods.contains(method) {
                    return Ok(value);
                }
                path_matched = true;
            }
        }
        Err(if path_matched {
            Miss::MethodNotAllowed
        } else {
            Miss::NoRoute
        })
    }

    /// The values in lookup order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, _, v)| v)
    }
}

/// A prefix written with a trailing slash (`/webhooks/`) also owns the bare directory
/// (`/webhooks`), since normalization drops trailing slashes from request paths.
fn prefix_dir_matches(prefix: &str, path: &str) -> bool {
    prefix.len() > 1 && prefix.ends_with('/') && path == &prefix[..prefix.len() - 1]
}

/// The form of a path used for matching: percent-escapes of unreserved characters decoded,
/// ASCII lower-cased, repeated slashes collapsed, `.` and `..` segments resolved, and a trailing
/// slash dropped (except for `/` itself and for config prefixes, which keep theirs). Borrowed
/// when the path is already normal.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let b = path.as_bytes();
    let simple = b.first() == Some(&b'/')
        && !b.iter().any(|c| c.is_ascii_uppercase() || *c == b'%')
        && !path.contains("//")
        && !path.contains("/.")
        && (b.len() == 1 || b.last() != Some(&b'/'));
    if simple {
        return Cow::Borrowed(path);
    }
    // Decode %XX of unreserved characters only; other escapes stay (upper-cased hex is
    // lowered with the rest, so %2F and %2f compare equal).
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                let c = h * 16 + l;
                if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                    decoded.push(c.to_ascii_lowercase());
                    i += 3;
                    continue;
                }
            }
        }
        decoded.push(b[i].to_ascii_lowercase());
        i += 1;
    }
    let decoded = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// The matching form of a configured `path_prefix`: normalized like a request path, but a
/// trailing slash the author wrote is kept (`/webhooks/` must not match `/webhooksfoo`).
pub fn normalize_prefix(prefix: &str) -> String {
    let mut p = normalize_path(prefix).into_owned();
    if prefix.ends_with('/') && !p.ends_with('/') {
        p.push('/');
    }
    p
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
