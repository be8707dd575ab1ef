//! Route matching: method + normalized path → the route that owns the request.
//!
//! Matching uses a normalized form of the path (see [`normalize_path`]) so that spellings an
//! app framework would treat as the same endpoint (`/Hooks/GitHub/`, `/hooks//github`,
//! `/hooks/%67ithub`) cannot slip past a verifying route into a broader, unverified one.
//!
//! **One rule for the readings of a path**: servers and frameworks read the same request
//! target in different ways (dot segments, `%2F`, `;params`, a leading `//` taken as an
//! authority, a `.json` format suffix, trailing whitespace or NUL, `?/route` front
//! controllers, Unicode compatibility folding: see `Reading`). A request belongs to a route
//! only when every such reading leads to that same route; when readings disagree, no route
//! owns it and it is refused as ambiguous (see [`RouteTable::find`]). So a request that some
//! common reading would send to a verifying route is never forwarded by another, unverified
//! one. The request is still forwarded with its path exactly as received.

use std::borrow::Cow;

use http::Method;
use unicode_normalization::UnicodeNormalization as _;

/// How a route matches paths (already normalized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// `path = "..."`
    Exact(String),
    /// `path_prefix = "..."`
    Prefix(String),
}

impl PathMatch {
    /// Whether this matcher takes `path` (already normalized).
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()) || prefix_dir_matches(p, path),
        }
    }
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
    /// Readings of the path that servers use lead to different routes (or to a route and to
    /// none), or the path is too long to check all its readings: no route owns it.
    Ambiguous,
}

/// The most work [`RouteTable::find`] spends on the readings of one request target: number
/// of readings × target length, in bytes. At most 256 readings (see [`Axes::readings`]), so
/// every target up to 4 KiB is always checked in full, and one with at most 8 readings (a
/// `.` alone puts 8 in play: dots × format × script) up to 128 KiB, more than `http` accepts. Past it the target is
/// refused as [`Miss::Ambiguous`] (fail closed), so one request costs at most ~1 MiB of
/// linear passes over its target.
pub const READ_BUDGET: usize = 1 << 20;

impl<T> RouteTable<T> {
    /// Builds a table; `entries` in any order.
    pub fn new(mut entries: Vec<(PathMatch, Vec<Method>, T)>) -> Self {
        entries.sort_by_key(|(m, _, _)| match m {
            PathMatch::Exact(_) => (0, 0),
            PathMatch::Prefix(p) => (1, usize::MAX - p.len()),
        });
        RouteTable { entries }
    }

    /// Finds the most specific route whose path matches and which allows `method`;
    /// `target` is the request's path and query as received (origin form, `/p?q`).
    ///
    /// The path is matched in its [`normalize_path`] form, then under every other
    /// [`Reading`] in play; when the readings lead to different routes, no route owns it and
    /// it is refused as [`Miss::Ambiguous`]. Otherwise `//evil.example/webhooks/github` (the
    /// path `/webhooks/github` to Node's `new URL(req.url, base)`), `/webhooks/github.json`
    /// (Rails' `(.:format)`), `/webhooks%2Fgithub` (WSGI) or `/index.php?/webhooks/github`
    /// (a PHP front controller) would reach a catch-all `none` route while the app serves it
    /// from its GitHub handler. The same refusal keeps a verified request from being served
    /// by another handler of the app (`/hooks/sw/x/..%2F..%2Fadmin`).
    ///
    /// # Errors
    /// [`Miss::NoRoute`], [`Miss::MethodNotAllowed`] or [`Miss::Ambiguous`].
    pub fn find(&self, method: &Method, target: &str) -> Result<&T, Miss> {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let found = self.lookup(method, &normalize_path(path));
        let axes = Axes::of(path, query);
        if axes.any() {
            if axes.count().saturating_mul(target.len()) > READ_BUDGET {
                return Err(Miss::Ambiguous);
            }
            for reading in axes.readings() {
                if self.lookup(method, &read_target(path, query, reading)) != found {
                    return Err(Miss::Ambiguous);
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
            if m.matches(path) {
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
    if is_normal(path.as_bytes()) {
        return Cow::Borrowed(path);
    }
    Cow::Owned(read_path(path, CANONICAL))
}

/// Whether [`normalize_path`] leaves `b` as it is: it starts with `/`, has no uppercase letter,
/// no `%`, no `//` or `/.`, and no trailing `/` (unless it is `/`). One pass over the bytes,
/// for every request (two substring searches cost more than the whole path's bytes).
fn is_normal(b: &[u8]) -> bool {
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut prev = 0u8;
    for &c in b {
        if c.is_ascii_uppercase() || c == b'%' || (prev == b'/' && (c == b'/' || c == b'.')) {
            return false;
        }
        prev = c;
    }
    b.len() == 1 || prev != b'/'
}

/// One way a server may read a request target. hookseal matches routes by [`CANONICAL`]; the
/// others are checked for agreement (see [`RouteTable::find`]). Every combination of the
/// flags and one [`Source`] is a reading: servers combine them (Spring: `;params` and dot
/// segments; Node: an authority, dot segments and `\`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reading {
    /// `.` and `..` segments resolved (else kept as names).
    dots: bool,
    /// `%2F`, `%5C` and `\\` taken as `/` (else part of a segment's name).
    slashes: bool,
    /// Everything from `;` (or `%3B`) to the end of a segment dropped (Tomcat/Spring path
    /// parameters).
    params: bool,
    /// The path cut at the first NUL (`%00`), control characters and spaces (`%09`, `%20`…)
    /// trimmed from both ends of each segment (C-string handling, `strip()`).
    trim: bool,
    /// A format suffix dropped: the last segment cut at its first `.` that is not its first
    /// character (Rails `(.:format)`, Spring suffix patterns: `/github.json` → `/github`).
    format: bool,
    /// Percent-escapes of non-ASCII UTF-8 decoded, the text folded by Unicode compatibility
    /// (NFKC) and lower-cased (`／` → `/`, `ｇ` → `g`, the Kelvin sign → `k`), then read as
    /// usual.
    unicode: bool,
    /// Where the path comes from.
    source: Source,
}

/// Where a reading takes the path from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The request path.
    Path,
    /// The request path with a leading `//authority` dropped when it starts with `//` once
    /// decoded (`new URL(req.url, base)`, Python's `urlparse`, PHP's `parse_url`:
    /// `//x:1@y/webhooks/github` → `/webhooks/github`).
    Authority,
    /// The request path without a first segment ending in `.php` (PATH_INFO of a PHP front
    /// controller: `/index.php/webhooks/github` → `/webhooks/github`).
    Script,
    /// The query up to its first `&` or `?`, when it starts with `/` once decoded (front
    /// controllers routing by the query: `/?/webhooks/github`); else the request path.
    Query,
}

const CANONICAL: Reading = Reading {
    dots: true,
    slashes: false,
    params: false,
    trim: false,
    format: false,
    unicode: false,
    source: Source::Path,
};

/// Which readings of a target can differ from the canonical one: a cheap over-approximation
/// (an axis out of play gives the canonical reading's answer whichever value it takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Axes {
    dots: bool,
    slashes: bool,
    params: bool,
    trim: bool,
    format: bool,
    unicode: bool,
    authority: bool,
    script: bool,
    query: bool,
}

/// A byte that can put a reading axis in play: a dot, an escape, a backslash, a `;`, a
/// control character or space, or non-ASCII.
fn in_play(c: u8) -> bool {
    matches!(c, b'.' | b'%' | b'\\' | b';') || c <= b' ' || c >= 0x80
}

impl Axes {
    /// [`Axes::of_all`], in one pass over the target when no byte of it can put an axis in
    /// play (most request targets): then only a leading `//` (an authority) and a query that
    /// starts with `/` can. Equal to [`Axes::of_all`] on every target (property test).
    fn of(path: &str, query: Option<&str>) -> Axes {
        let b = path.as_bytes();
        let q = query.unwrap_or("").as_bytes();
        if b.iter().chain(q).any(|c| in_play(*c)) {
            return Axes::of_all(path, query);
        }
        Axes {
            dots: false,
            slashes: false,
            params: false,
            trim: false,
            format: false,
            unicode: false,
            authority: b.starts_with(b"//"),
            script: false,
            query: q.first() == Some(&b'/'),
        }
    }

    fn of_all(path: &str, query: Option<&str>) -> Axes {
        let b = path.as_bytes();
        let q = query.unwrap_or("").as_bytes();
        let has = |s: &str| {
            b.windows(s.len())
                .chain(q.windows(s.len()))
                .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
        };
        let any_byte = |f: &dyn Fn(u8) -> bool| b.iter().chain(q).any(|c| f(*c));
        // NFKC can turn a non-ASCII character into any ASCII text: then every axis is in play.
        let unicode = any_byte(&|c| c >= 0x80)
            || b.windows(2)
                .chain(q.windows(2))
                .any(|w| w[0] == b'%' && matches!(w[1], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'));
        let dots = unicode || any_byte(&|c| c == b'.') || has("%2e");
        // A unit that may decode to a separator: `/`, `\` or an escape.
        let sep = |c: Option<&u8>| matches!(c, Some(b'/' | b'\\' | b'%'));
        let second = match b.first() {
            Some(b'/' | b'\\') => b.get(1),
            Some(b'%') => b.get(3),
            _ => None,
        };
        Axes {
            dots,
            slashes: unicode || any_byte(&|c| c == b'\\') || has("%2f") || has("%5c"),
            params: unicode || any_byte(&|c| c == b';') || has("%3b"),
            trim: unicode || any_byte(&|c| c <= b' ') || has("%0") || has("%1") || has("%20"),
            format: dots,
            unicode,
            authority: unicode || (sep(b.first()) && sep(second)),
            script: dots,
            query: unicode || sep(q.first()),
        }
    }

    fn flags(self) -> [bool; 6] {
        [
            self.dots,
            self.slashes,
            self.params,
            self.trim,
            self.format,
            self.unicode,
        ]
    }

    fn sources(self) -> impl Iterator<Item = Source> {
        [
            (true, Source::Path),
            (self.authority, Source::Authority),
            (self.script, Source::Script),
            (self.query, Source::Query),
        ]
        .into_iter()
        .filter_map(|(on, s)| on.then_some(s))
    }

    fn any(self) -> bool {
        self.flags().contains(&true) || self.sources().nth(1).is_some()
    }

    /// How many readings [`Axes::readings`] yields plus one (the canonical reading):
    /// 2^(flags in play) × sources in play ≤ 2^6 × 4 = 256.
    fn count(self) -> usize {
        (1usize << self.flags().iter().filter(|f| **f).count()) * self.sources().count()
    }

    /// Every combination of the axes that are in play, except the canonical reading.
    fn readings(self) -> impl Iterator<Item = Reading> {
        let on = self.flags();
        self.sources()
            .flat_map(move |source| {
                (0u8..64)
                    // Only combinations that flip axes in play.
                    .filter(move |bits| (0..6).all(|i| on[i] || bits & (1 << i) == 0))
                    .map(move |bits| {
                        let flip = |i: u8, canonical: bool| canonical ^ (bits & (1 << i) != 0);
                        Reading {
                            dots: flip(0, CANONICAL.dots),
                            slashes: flip(1, CANONICAL.slashes),
                            params: flip(2, CANONICAL.params),
                            trim: flip(3, CANONICAL.trim),
                            format: flip(4, CANONICAL.format),
                            unicode: flip(5, CANONICAL.unicode),
                            source,
                        }
                    })
            })
            .filter(|r| *r != CANONICAL)
    }
}

/// The target (`path`, `query`) read under `r`, in matching form.
fn read_target(path: &str, query: Option<&str>, r: Reading) -> String {
    if r.source == Source::Query {
        if let Some(q) = query {
            let q = q.split(['&', '?']).next().unwrap_or_default();
            let q = if r.unicode {
                fold_unicode(q)
            } else {
                Cow::Borrowed(q)
            };
            let decoded = decode(&q, r);
            if decoded.starts_with('/') {
                return segments(&decoded, r);
            }
        }
    }
    let p = if r.unicode {
        fold_unicode(path)
    } else {
        Cow::Borrowed(path)
    };
    read_path(&p, r)
}

/// Percent-escapes of non-ASCII bytes decoded (escapes of ASCII stay as written), NFKC,
/// then lower-cased.
fn fold_unicode(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    let mut raw = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            ) {
                if h >= 8 {
                    raw.push(h * 16 + l);
                    i += 3;
                    continue;
                }
            }
        }
        raw.push(b[i]);
        i += 1;
    }
    let folded: String = String::from_utf8_lossy(&raw).nfkc().collect();
    Cow::Owned(folded.to_lowercase())
}

/// `path` normalized under `r`: percent-escapes of unreserved characters decoded, ASCII
/// lower-cased, repeated slashes collapsed, a trailing slash dropped, plus what `r` says
/// (except [`Reading::unicode`] and [`Source::Query`], which [`read_target`] applies).
fn read_path(path: &str, r: Reading) -> String {
    segments(&decode(path, r), r)
}

/// `path` with its escapes decoded under `r`.
fn decode(path: &str, r: Reading) -> String {
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
                    } else if r.params && c == b';' {
                        decoded.push(b';');
                    } else if r.trim && c == 0 {
                        break;
                    } else if r.trim && c <= b' ' {
                        decoded.push(c);
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
        } else if r.trim && b[i] == 0 {
            break;
        } else {
            decoded.push(b[i].to_ascii_lowercase());
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// A decoded path split into segments and put back together under `r`.
fn segments(decoded: &str, r: Reading) -> String {
    let mut skip_authority = r.source == Source::Authority && decoded.starts_with("//");
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        if skip_authority && !seg.is_empty() {
            skip_authority = false;
            continue;
        }
        let seg = if r.params {
            seg.split(';').next().unwrap_or_default()
        } else {
            seg
        };
        let seg = if r.trim {
            seg.trim_matches(|c: char| c <= ' ')
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
    if r.source == Source::Script && segments.first().is_some_and(|s| s.ends_with(".php")) {
        segments.remove(0);
    }
    if r.format {
        if let Some(last) = segments.last_mut() {
            let dot = last.char_indices().skip(1).find(|(_, c)| *c == '.');
            if let Some((i, _)) = dot {
                *last = &last[..i];
            }
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

    proptest::proptest! {
        /// The one-pass [`Axes::of`] says what the full scan says, on targets made of the
        /// bytes that matter to it (escapes, separators, dots, controls, non-ASCII) and plain
        /// ones.
        #[test]
        fn axes_in_one_pass_equal_the_full_scan(
            path in proptest::prop_oneof![
                "[/a-zA-Z0-9_~:@!$&'()*+,=-]{0,24}",
                "[/a-zA-Z0-9._~%;:@!$&'()*+,=\\\\ \t\u{0}\u{80}-\u{10ffff}-]{0,24}",
            ],
            query in proptest::option::of(proptest::prop_oneof![
                "[/a-z0-9&?=]{0,12}",
                "[/a-z0-9.%;&?=\\\\ \u{80}-\u{ff}]{0,12}",
            ]),
        ) {
            proptest::prop_assert_eq!(
                Axes::of(&path, query.as_deref()),
                Axes::of_all(&path, query.as_deref())
            );
        }

        /// The one-pass [`is_normal`] says what the substring searches it replaced said.
        #[test]
        fn is_normal_equals_the_searches_it_replaced(path in "[/.%aAzZ09_-]{0,12}") {
            let b = path.as_bytes();
            let searched = b.first() == Some(&b'/')
                && !b.iter().any(|c| c.is_ascii_uppercase() || *c == b'%')
                && !path.contains("//")
                && !path.contains("/.")
                && (b.len() == 1 || b.last() != Some(&b'/'));
            proptest::prop_assert_eq!(is_normal(b), searched);
        }
    }

    #[test]
    fn plain_targets_put_only_the_authority_and_query_in_play() {
        for (target, authority, query) in [
            ("/hook", false, false),
            ("//evil/hook", true, false),
            ("/?/webhooks/github", false, true),
            ("/a?b=/c", false, false),
        ] {
            let (p, q) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target, None),
            };
            let axes = Axes::of(p, q);
            assert_eq!(axes, Axes::of_all(p, q), "{target}");
            assert_eq!((axes.authority, axes.query), (authority, query), "{target}");
            assert_eq!(axes.any(), authority || query, "{target}");
        }
    }

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
            assert_eq!(find(p), Err(Miss::Ambiguous), "{p}");
        }
    }

    /// Each reading the review found, alone: the canonical reading lands on the catch-all,
    /// the named server reading on a verifying route.
    #[test]
    fn every_reading_of_a_verifying_path_is_refused() {
        for p in [
            // A leading `//` is an authority to Node's URL, Python's urlparse, PHP's parse_url.
            "//evil.example/webhooks/github",
            "//x:1/webhooks/github",
            "//x@y/webhooks/github",
            "//x/./webhooks/github",
            "///webhooks/github",
            "/\\evil.example/webhooks/github",
            "//evil.example/hooks/sw/x",
            // Format suffixes (Rails `(.:format)`, Spring suffix patterns).
            "/webhooks/github.json",
            "/webhooks/github.xml",
            "/webhooks/github.",
            "/webhooks/github%2ejson",
            "/hooks/sw.json",
            // NUL and trailing whitespace.
            "/webhooks/github%00",
            "/webhooks/github%00.html",
            "/webhooks/github%20",
            "/webhooks/github%09",
            "/webhooks/github%0a",
            // `%3B` read as `;`.
            "/webhooks/github%3Bx",
            "/webhooks/github%3bx=1",
            // Front controllers: routing by the query, PATH_INFO after the script.
            "/?/webhooks/github",
            "/index.php?/webhooks/github",
            "/index.php?/webhooks/github&x=1",
            "/index.php?%2Fwebhooks%2Fgithub",
            "/index.php/webhooks/github",
            // Unicode compatibility folding.
            "/webhooks%EF%BC%8Fgithub",
            "/webhooks\u{ff0f}github",
            "/webhooks/\u{ff47}\u{ff49}\u{ff54}\u{ff48}\u{ff55}\u{ff42}",
            "/webhooks/%EF%BD%87ithub",
            "/hoo\u{212a}s/sw/x",
            "/hooks/sw\u{2024}json",
        ] {
            assert_eq!(find(p), Err(Miss::Ambiguous), "{p}");
        }
        // The upstream sees no difference either way: the same readings on a path of the
        // catch-all that no verifying route could read as its own are fine.
        for p in [
            "/app/file.json",
            "/app/file.",
            "/app/a%2Fb;v=1",
            "//cdn.example/app/x",
            "/app/x%20",
            "/app/x%00",
            "/index.php?/app/x",
            "/index.php/app/x",
            "/?a=/webhooks/github",
            "/app/\u{ff47}ithub",
            "/app/caf%C3%A9",
        ] {
            assert_eq!(find(p), Ok("app"), "{p}");
        }
        // A verifying prefix route keeps its own paths, and a query that is not a path.
        for p in [
            "/hooks/sw/a.json",
            "/hooks/sw/x%20",
            "/hooks/sw/%EF%BC%8F",
            "/hooks/sw/x?/hooks/sw/y",
        ] {
            assert_eq!(find(p), Ok("sw"), "{p}");
        }
        assert_eq!(find("/webhooks/github?tenant=acme.com&x=/y"), Ok("github"));
    }

    /// Every reading in play is checked, at most 256 of them, and a target too long for that
    /// is refused rather than read in part.
    #[test]
    fn readings_are_bounded() {
        let all = Axes::of("/\u{ff0f}", Some("/x"));
        assert_eq!(all.count(), 256);
        assert_eq!(all.readings().count(), 255);
        let dots = Axes::of("/a.json", None);
        assert_eq!(dots.count(), 8, "dots × format × script");
        assert_eq!(Axes::of("/plain/path", Some("a=1")).count(), 1);
        // A long plain-ASCII path with a dot: 8 readings fit.
        let long = format!("/app/{}.json", "a".repeat(100_000));
        assert_eq!(find(&long), Ok("app"));
        // Every reading in play: 4 KiB fits, more does not.
        let fits = format!("/app/\u{ff41}{}", "a".repeat(4096 - 8));
        assert_eq!(fits.len(), 4096);
        assert_eq!(find(&fits), Ok("app"));
        assert_eq!(find(&format!("{fits}a")), Err(Miss::Ambiguous));
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
                    params: true,
                    ..CANONICAL
                }
            ),
            "/a/b/.."
        );
    }
}
