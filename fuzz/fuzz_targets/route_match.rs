//! Route matching on arbitrary request paths, against a table with exact paths, prefixes with
//! and without a trailing slash and a catch-all. Oracle: `normalize_path` agrees with the naive
//! reference of `tests/integration/reference.rs`, is idempotent and yields a canonical path;
//! `RouteTable::find` on the input as a request target (`path?query`) picks the route the
//! reference picks (under all its readings: authority, format, trim, Unicode, front
//! controllers…), for each of three methods. Past the work budget (`READ_BUDGET`: a target
//! over 4 KiB with every reading in play) `find` may refuse as `Ambiguous` where the reference,
//! which has no budget, answers: that refusal is fail-closed, and the only difference allowed.

#![no_main]

use std::sync::OnceLock;

use hookseal::route::{normalize_path, normalize_prefix, Miss, PathMatch, RouteTable};
use hookseal_fuzz::reference::{self, RefPattern};
use http::Method;
use libfuzzer_sys::fuzz_target;

type Table = (RouteTable<usize>, Vec<(RefPattern, Vec<Method>)>);

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        let post = || vec![Method::POST];
        let routes: Vec<(bool, &str, Vec<Method>)> = vec![
            (true, "/hooks/github", post()),
            (true, "/webhooks/supaglue", post()),
            (true, "/api/v1/items", vec![Method::GET, Method::PUT]),
            (false, "/webhooks/", post()),
            (false, "/hooks/stripe", post()),
            (false, "/api", vec![Method::GET]),
            (false, "/", vec![Method::GET]),
        ];
        let mut entries = Vec::new();
        let mut refs = Vec::new();
        for (i, (exact, p, methods)) in routes.into_iter().enumerate() {
            let (m, r) = if exact {
                let n = normalize_path(p).into_owned();
                (PathMatch::Exact(n.clone()), RefPattern::Exact(n))
            } else {
                let n = normalize_prefix(p);
                (PathMatch::Prefix(n.clone()), RefPattern::Prefix(n))
            };
            entries.push((m, methods.clone(), i));
            refs.push((r, methods));
        }
        (RouteTable::new(entries), refs)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let norm = normalize_path(path);
    assert_eq!(norm, reference::normalize(path), "{path:?}");
    assert_eq!(normalize_path(&norm), norm, "not idempotent: {path:?}");
    assert!(norm.starts_with('/'));
    assert!(!norm.contains("//"), "{norm:?}");
    assert!(norm == "/" || !norm.ends_with('/'), "{norm:?}");
    let (t, refs) = table();
    for method in [Method::GET, Method::POST, Method::PUT] {
        let got = t.find(&method, path).copied();
        let want = reference::find(refs, &method, path);
        match (got, want) {
            (Err(Miss::Ambiguous), _) if path.len() > 4096 => {}
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{method} {path:?}"),
            (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}").replace("Ref", "")),
            (a, b) => panic!("{method} {path:?}: table {a:?}, reference {b:?}"),
        }
    }
});
