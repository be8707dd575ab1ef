//! Route matching: method + normalized path → the route that owns the request.
//!
//! Matching uses a normalized form of the path (see [`normalize_path`]) so that spellings an
//! app framework would treat as the same endpoint (`/Hooks/GitHub/`, `/hooks//github`,
//! `/hooks/%67ithub`) cannot slip past a verifying route into a broader, unverified one. A path
//! that app servers disagree about (`/x/../hooks/github`, `/hooks%2Fgithub`, `/hooks/github;x`)
//! is refused unless every reading of it leads to the same route (see [`RouteTable::find`]).
//! The request is still forwarded with its path exactly as received.

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
    /// A path that servers may read in several ways (dot segments resolved or not, `%2F`,
    /// `%5C` and `\\` taken as separators or not, `;params` stripped from segments or not) is
    /// looked up under every such reading; when the readings lead to different routes, no route
    /// owns it and it is refused as [`Miss::NoRoute`]. Otherwise `/webhooks%2Fgithub` or
    /// `/webhooks/github;x` would reach a catch-all `none` route while a WSGI or Spring app
    /// serves it from its GitHub handler.
    ///
    /// # Errors
    /// [`Miss::NoRoute`] or [`Miss::MethodNotAllowed`].
    pub fn find(&self, method: &Method, path: &str) -> Result<&T, Miss> {
        let found = self.lookup(method, &normalize_path(path));
        let axes = Axes::of(path);
        if axes.any() {
            for reading in axes.readings() {
                if self.lookup(method, &read_path(path, reading)) != found {
                    return Err(Miss::NoRoute);
                }
            }
        }
        found.map(|i| &self.entries[i].2)
    }

    /// The index of the route for an already normalized `path`.
    ///
    /// The most specific matching path owns the request: only the routes with exactly that
    /// `path` or `path_prefix` are candidates, and when none of them allows `method` the answer
    /// is [`Miss::MethodNotAllowed`] — never a fall-through to a broader route. Otherwise a
    /// `GET` or `PUT` to a POST-only verifying path would reach a catch-all `none` route that
    /// allows that method, and an app whose handler ignores the method would process it
    /// unverified.
    fn lookup(&self, method: &Method, path: &str) -> Result<usize, Miss> {
        let mut owner: Option<&PathMatch> = None;
        for (i, (m, methods, _)) in self.entries.iter().enumerate() {
            // Entries are ordered most specific first: once a path owns the request, only
            // its own routes (same matcher) remain candidates.
            if owner.is_some_and(|o| o != m) {
                continue;
            }
            let hit = match m {
                PathMatch::Exact(p) => p == path,
                PathMatch::Prefix(p) => path.starts_with(p.as_str()) || prefix_dir_matches(p, path),
            };
            if hit {
                if methods.contains(method) {
                    return Ok(i);
                }
                owner = Some(m);
            }
        }
        Err(if owner.is_some() {
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
    Cow::Owned(read_path(path, CANONICAL))
}

/// One way a server may read a request path. hookseal matches routes by [`CANONICAL`]; the
/// others are checked for agreement (see [`RouteTable::find`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reading {
    /// `.` and `..` segments resolved (else kept as names).
    dots: bool,
    /// `%2F`, `%5C` and `\\` taken as `/` (else part of a segment's name).
    slashes: bool,
    /// Everything from `;` to the end of a segment dropped (Tomcat/Spring path parameters).
    params: bool,
}

const CANONICAL: Reading = Reading {
    dots: true,
    slashes: false,
    params: false,
};

/// Which readings of a path can differ from the canonical one (a cheap over-approximation).
#[derive(Debug, Clone, Copy)]
struct Axes {
    dots: bool,
    slashes: bool,
    params: bool,
}

impl Axes {
    fn of(path: &str) -> Axes {
        let lower = |s: &str| {
            path.as_bytes()
                .windows(3)
                .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
        };
        Axes {
            dots: path.contains('.') || lower("%2e"),
            slashes: path.contains('\\') || lower("%2f") || lower("%5c"),
            params: path.contains(';'),
        }
    }

    fn any(self) -> bool {
        self.dots || self.slashes || self.params
    }

    /// Every combination of the axes that are in play, except the canonical reading.
    fn readings(self) -> impl Iterator<Item = Reading> {
        (0u8..8)
            .map(move |bits| Reading {
                dots: if self.dots {
                    bits & 1 != 0
                } else {
                    CANONICAL.dots
                },
                slashes: if self.slashes {
                    bits & 2 != 0
                } else {
                    CANONICAL.slashes
                },
                params: if self.params {
                    bits & 4 != 0
                } else {
                    CANONICAL.params
                },
            })
            .filter(|r| *r != CANONICAL)
    }
}

/// `path` normalized under `r`: percent-escapes of unreserved characters decoded, ASCII
/// lower-cased, repeated slashes collapsed, a trailing slash dropped, plus what `r` says.
fn read_path(path: &str, r: Reading) -> String {
    let b = path.as_bytes();
    // Decode %XX of unreserved characters only; other escapes stay (upper-cased hex is
    // lowered with the rest, so %2F and %2f compare equal). A `%` that starts no escape is
    // written `%25`, what it means: otherwise `%%36%31` would normalize to `%61`, which a second
    // pass reads as `a` (found by the `route_match` fuzz target), and `/a%` and `/a%25`, the
    // same path to the app, would match differently.
    let mut decoded = Vec::with_capacity(b.len() + 2);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            ) {
                (Some(h), Some(l)) => {
                    let c = h * 16 + l;
                    if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                        decoded.push(c.to_ascii_lowercase());
                    } else if r.slashes && (c == b'/' || c == b'\\') {
                        decoded.push(b'/');
                    } else {
                        decoded.push(b'%');
                        decoded.push(b[i + 1].to_ascii_lowercase());
                        decoded.push(b[i + 2].to_ascii_lowercase());
                    }
                    i += 3;
                }
                _ => {
                    decoded.extend_from_slice(b"%25");
                    i += 1;
                }
            }
            continue;
        }
        if r.slashes && b[i] == b'\\' {
            decoded.push(b'/');
        } else {
            decoded.push(b[i].to_ascii_lowercase());
        }
        i += 1;
    }
    let decoded = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        let seg = if r.params {
            seg.split(';').next().unwrap_or_default()
        } else {
            seg
        };
        match seg {
            "" => {}
            "." if r.dots => {}
            ".." if r.dots => {
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
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A verifying exact route, a verifying prefix route and the catch-all `none` route.
    fn table() -> RouteTable<&'static str> {
        RouteTable::new(vec![
            (
                PathMatch::Exact(normalize_path("/webhooks/github").into_owned()),
                vec![Method::POST],
                "github",
            ),
            (
                PathMatch::Prefix(normalize_prefix("/hooks/sw/")),
                vec![Method::POST],
                "sw",
            ),
            (
                PathMatch::Prefix(normalize_prefix("/")),
                vec![Method::POST, Method::GET],
                "app",
            ),
        ])
    }

    fn find(path: &str) -> Result<&'static str, Miss> {
        table().find(&Method::POST, path).copied()
    }

    #[test]
    fn spellings_of_a_verified_path_reach_its_route() {
        for p in [
            "/webhooks/github",
            "/webhooks/github/",
            "/Webhooks/GitHub",
            "/webhooks//github",
            "/webhooks/%67ithub",
        ] {
            assert_eq!(find(p), Ok("github"), "{p}");
        }
        assert_eq!(find("/hooks/sw/a%2Fb"), Ok("sw"));
        assert_eq!(find("/app/file.json"), Ok("app"));
        assert_eq!(find("/app/a%2Fb;v=1"), Ok("app"));
        assert_eq!(
            table().find(&Method::PUT, "/webhooks/github"),
            Err(Miss::MethodNotAllowed)
        );
    }

    /// A method the verifying route does not allow is refused there, even though the
    /// catch-all `none` route allows it: the most specific path owns the request.
    #[test]
    fn a_method_never_falls_through_to_a_broader_route() {
        let t = table();
        assert_eq!(
            t.find(&Method::GET, "/webhooks/github"),
            Err(Miss::MethodNotAllowed)
        );
        assert_eq!(
            t.find(&Method::GET, "/hooks/sw/x"),
            Err(Miss::MethodNotAllowed)
        );
        assert_eq!(t.find(&Method::GET, "/elsewhere").copied(), Ok("app"));
        // A route of its own for the same path is how a GET (a provider's challenge) is let
        // through unverified.
        let t = RouteTable::new(vec![
            (
                PathMatch::Exact("/webhooks/github".into()),
                vec![Method::POST],
                "github",
            ),
            (
                PathMatch::Exact("/webhooks/github".into()),
                vec![Method::GET],
                "challenge",
            ),
            (PathMatch::Prefix("/".into()), vec![Method::GET], "app"),
        ]);
        assert_eq!(
            t.find(&Method::GET, "/webhooks/github").copied(),
            Ok("challenge")
        );
        assert_eq!(
            t.find(&Method::POST, "/webhooks/github").copied(),
            Ok("github")
        );
        assert_eq!(
            t.find(&Method::PUT, "/webhooks/github"),
            Err(Miss::MethodNotAllowed)
        );
    }

    /// Paths that an app server may route to a verifying handler while the canonical reading
    /// lands on the unverified catch-all (or the reverse) belong to no route.
    #[test]
    fn paths_read_differently_by_servers_belong_to_no_route() {
        for p in [
            // WSGI/CGI servers decode %2F into PATH_INFO: the app sees /webhooks/github.
            "/webhooks%2Fgithub",
            "/webhooks%2fgithub",
            "/webhooks%5Cgithub",
            "/webhooks\\github",
            // Tomcat/Spring drop ;params from each segment.
            "/webhooks/github;x=1",
            "/webhooks;x/github",
            "/webhooks/x/..;/github",
            // An app that does not resolve dot segments serves these from /hooks/sw/{x}.
            "/hooks/sw/..",
            "/hooks/sw/../app",
            "/hooks/sw/%2e%2e/app",
            // And one that does not resolve them serves these from its catch-all.
            "/webhooks/./github",
            "/x/../webhooks/github",
        ] {
            assert_eq!(find(p), Err(Miss::NoRoute), "{p}");
        }
    }

    #[test]
    fn canonical_reading_is_what_config_paths_use() {
        assert_eq!(normalize_path("/a/./b/../c//"), "/a/c");
        assert_eq!(normalize_path("/A%2Fb"), "/a%2fb");
        assert!(matches!(normalize_path("/plain/path"), Cow::Borrowed(_)));
        assert_eq!(
            read_path(
                "/a%2Fb;p/..",
                Reading {
                    dots: false,
                    slashes: true,
                    params: true
                }
            ),
            "/a/b/.."
        );
    }
}
