//! `[[route]]`: each route's name, path, methods, scheme, options and secrets, and the checks
//! across routes (duplicate names, overlapping paths, replay capacity shares).

use std::time::Duration;

use http::Method;
use toml::de::DeValue;

use super::secrets::UNREAD;
use super::*;
use crate::route::{normalize_path, normalize_prefix};
use crate::verify::{SchemeName, DEFAULT_TOLERANCE, NO_SCHEME};

impl Cx<'_> {
    pub(crate) fn routes(
        &mut self,
        root: &Table<'_, '_>,
        limits: Option<&Limits>,
        replay: Option<&Replay>,
    ) -> Option<Vec<RouteConfig>> {
        let Some((_, item)) = self.entry(root, "route") else {
            self.err(0, "route", "no [[route]] configured");
            return None;
        };
        let DeValue::Array(arr) = item.get_ref() else {
            self.err(
                item.span().start,
                "route",
                "must be an array of tables ([[route]])",
            );
            return None;
        };
        let default_body = limits.map_or(DEFAULT_MAX_BODY, |l| l.max_body_bytes);
        let mut ok = true;
        // (offset, key) of the first `replay_capacity`, and their sum.
        let mut shares: (Option<(usize, String)>, u64) = (None, 0);
        let mut routes = Vec::new();
        let mut seen: Vec<(usize, String, PathMatch, Vec<Method>)> = Vec::new();
        for (i, item) in arr.iter().enumerate() {
            let DeValue::Table(map) = item.get_ref() else {
                self.err(item.span().start, "route", "must be a table");
                ok = false;
                continue;
            };
            let t = Table {
                path: format!("route[{i}]"),
                span_start: item.span().start,
                map,
            };
            let mut ident = None;
            let route = self.route(&t, default_body, &mut ident);
            if let Some((path_off, name, path, methods)) = ident {
                for (first_off, first_name, first_path, first_methods) in &seen {
                    if *first_name == name {
                        self.err(
                            path_off,
                            &format!("{}.name", t.path),
                            format!(
                                "duplicate route name {name:?} (first at line {})",
                                self.line(*first_off)
                            ),
                        );
                        ok = false;
                    }
                    if *first_path == path && first_methods.iter().any(|m| methods.contains(m)) {
                        self.err(path_off, &format!("{}.path", t.path), format!(
                            "route {name:?} matches the same requests as route {first_name:?} (line {})",
                            self.line(*first_off)
                        ));
                        ok = false;
                    }
                }
                seen.push((path_off, name, path, methods));
            }
            match route {
                Some(r) => {
                    if let (Some(n), Some(item)) = (r.replay_capacity, map.get("replay_capacity")) {
                        shares.0.get_or_insert((
                            item.span().start,
                            format!("{}.replay_capacity", t.path),
                        ));
                        shares.1 += n as u64;
                    }
                    routes.push(r)
                }
                None => ok = false,
            }
        }
        if let (Some((off, key)), Some(replay)) = (shares.0, replay) {
            if shares.1 > replay.capacity as u64 {
                self.err(
                    off,
                    &key,
                    format!(
                        "the routes' replay_capacity add up to {}, more than replay.capacity ({})",
                        shares.1, replay.capacity
                    ),
                );
                ok = false;
            }
        }
        if routes.is_empty() && ok {
            self.err(item.span().start, "route", "no [[route]] configured");
            return None;
        }
        ok.then_some(routes)
    }

    /// One `[[route]]`. `ident` receives (offset of the path key, name, path, methods) as soon as
    /// those parse, so overlaps are reported even when something else in the route is wrong.
    pub(crate) fn route(
        &mut self,
        t: &Table<'_, '_>,
        default_body: u64,
        ident: &mut Option<(usize, String, PathMatch, Vec<Method>)>,
    ) -> Option<RouteConfig> {
        self.check_keys(
            t,
            &[
                "name",
                "path",
                "path_prefix",
                "methods",
                "scheme",
                "secrets",
                "tolerance",
                "dedupe",
                "replay_capacity",
                "max_body_bytes",
                "upstream",
                "mode",
            ]
            .into_iter()
            // The schemes' own keys (`hmac`, `public_url`), in registry order.
            .chain(crate::verify::SchemeName::all().flat_map(|n| n.def().options.iter().copied()))
            .fold(Vec::new(), |mut keys, k| {
                if !keys.contains(&k) {
                    keys.push(k);
                }
                keys
            })
            .into_iter()
            .chain([
                "allow_from",
                "event",
                "events",
                "dedupe_key",
                "dedupe_window",
                "delivery",
            ])
            .collect::<Vec<_>>(),
        );
        let p = &t.path;
        let name = match self.opt_str(t, "name") {
            Some((off, n)) => {
                let name = RouteName::parse(&n);
                if name.is_none() {
                    self.err(
                        off,
                        &format!("{p}.name"),
                        "must be 1-64 characters of [A-Za-z0-9._-] (and not \"_unmatched\")",
                    );
                }
                name
            }
            None => {
                self.err(t.span_start, &format!("{p}.name"), "missing");
                None
            }
        };
        let path = match (self.opt_str(t, "path"), self.opt_str(t, "path_prefix")) {
            (Some(_), Some((off, _))) => {
                self.err(
                    off,
                    &format!("{p}.path_prefix"),
                    "give either path or path_prefix",
                );
                None
            }
            (None, None) => {
                self.err(
                    t.span_start,
                    &format!("{p}.path"),
                    "missing (path or path_prefix)",
                );
                None
            }
            (Some((off, s)), None) => self.route_path(off, &format!("{p}.path"), &s, false),
            (None, Some((off, s))) => self.route_path(off, &format!("{p}.path_prefix"), &s, true),
        };
        let methods = self.methods(t);
        if let (Some(n), Some(pm), Some(ms)) = (&name, &path, &methods) {
            let off = self
                .opt_str(t, "path")
                .or_else(|| self.opt_str(t, "path_prefix"))
                .map_or(t.span_start, |(off, _)| off);
            *ident = Some((off, n.as_str().to_owned(), pm.clone(), ms.clone()));
        }
        let scheme_name = match self.opt_str(t, "scheme") {
            Some((off, s)) if s == NO_SCHEME => Some((off, None)),
            Some((off, s)) => match SchemeName::parse(&s) {
                Some(n) => Some((off, Some(n))),
                None => {
                    self.err(
                        off,
                        &format!("{p}.scheme"),
                        format!(
                            "unknown scheme {s:?}; one of: {}",
                            SchemeName::all_names().join(", ")
                        ),
                    );
                    None
                }
            },
            None => {
                self.err(t.span_start, &format!("{p}.scheme"), "missing");
                None
            }
        };
        let tolerance = match self.entry(t, "tolerance") {
            None => Some(None),
            Some((key, item)) => match self.str_of(&key, item) {
                Some(s) => match parse_duration(&s) {
                    // Timestamps are whole seconds: a shorter window would refuse most genuine
                    // deliveries and keep ids for less than the second they share.
                    Some(d) if d >= Duration::from_secs(1) => Some(Some(d)),
                    _ => {
                        self.err(
                            item.span().start,
                            &key,
                            format!("{s:?} is not a duration of at least 1s like \"5m\""),
                        );
                        None
                    }
                },
                None => None,
            },
        };
        let dedupe = self.opt_bool(t, "dedupe");
        let event_keys = self.event_keys(t);
        let replay_capacity = match self.entry(t, "replay_capacity") {
            None => Some(None),
            Some((_, item)) => self
                .int(t, "replay_capacity", 1, 1, 1 << 32)
                .map(|n| Some((item.span().start, n as usize))),
        };
        let max_body_bytes = self.size(t, "max_body_bytes", default_body, 1);
        let upstream = match self.entry(t, "upstream") {
            None => Some(None),
            Some((key, item)) => self
                .upstream_url(&key, item)
                .and_then(|u| UpstreamUrl::new(&u))
                .map(Some),
        };
        let mode = match self.opt_str(t, "mode") {
            None => Some(Mode::Enforce),
            Some((off, s)) => match s.as_str() {
                "enforce" => Some(Mode::Enforce),
                "observe" => Some(Mode::Observe),
                _ => {
                    self.err(
                        off,
                        &format!("{p}.mode"),
                        "must be \"enforce\" or \"observe\"",
                    );
                    None
                }
            },
        };
        let allow_from = self.nets(t, "allow_from");
        let delivery = self.delivery(t);
        // Each scheme's own options, read by the scheme's module on every route.
        let mut options = SchemeOptions::default();
        let mut options_ok = true;
        for def in crate::verify::option_defs() {
            let mut view = self.view(t);
            options_ok &= (def.parse)(&mut view, &mut options);
        }
        let secrets = self.secrets(t, scheme_name.map(|(_, n)| n));
        let engine = self.engine_options(t, scheme_name.and_then(|(_, n)| n));

        let (scheme_off, scheme_name) = scheme_name?;
        let (engine, engine_unread) = engine?;
        if !options_ok {
            return None;
        }
        options.engine = engine;
        for def in crate::verify::option_defs() {
            if let Err((key, message)) = (def.check)(&options, scheme_name) {
                self.err(scheme_off, &format!("{p}.{key}"), message);
                return None;
            }
        }
        let secrets = secrets?;
        options.tolerance = tolerance?;
        let scheme = match scheme_name.map(|n| Scheme::new(n, &options, &secrets.material)) {
            None => None,
            Some(Ok(s)) => Some(s),
            // --syntax-only: a secret that was not read cannot be judged (the route's name,
            // path and methods were checked already).
            Some(Err(_)) if engine_unread => return None,
            Some(Err(e))
                if self.syntax_only
                    && e.secret_index
                        .and_then(|i| secrets.material.get(i))
                        .is_some_and(|m| m.bytes == UNREAD) =>
            {
                return None;
            }
            Some(Err(e)) => {
                let (off, key) = match e.secret_index.and_then(|i| secrets.offsets.get(i)) {
                    Some(&off) => (off, format!("{p}.secrets[{}]", e.secret_index.unwrap_or(0))),
                    None => (scheme_off, format!("{p}.scheme")),
                };
                self.err(off, &key, e.message);
                return None;
            }
        };
        let has_message_id = scheme.as_ref().is_some_and(Scheme::has_message_id);
        let event_keys = event_keys?;
        let keyed = event_keys.keyed() && scheme.is_some();
        let dedupe = match dedupe? {
            Some((off, true)) if !has_message_id && !keyed => {
                self.err(
                    off,
                    &format!("{p}.dedupe"),
                    format!(
                        "scheme {:?} carries no message id to dedupe on",
                        scheme_name.map_or(NO_SCHEME, SchemeName::as_str)
                    ),
                );
                return None;
            }
            Some((_, d)) => d,
            None => has_message_id || keyed,
        };
        let events = self.route_events(p, event_keys, scheme.as_ref(), dedupe)?;
        let delivery = delivery?;
        // A queued entry is deduplicated and marked delivered by its message id; a key bound to
        // the signed content would be checked only until the entry is stored. Refused rather
        // than half-kept.
        if delivery.queued() && !matches!(events.dedupe_key, crate::events::DedupeKey::Id) {
            self.err(
                t.span_start,
                &format!("{p}.dedupe_key"),
                "only \"id\" with [route.delivery] mode = \"queued\" (for now)",
            );
            return None;
        }
        let replay_capacity = match replay_capacity? {
            Some((off, _)) if !dedupe => {
                self.err(
                    off,
                    &format!("{p}.replay_capacity"),
                    "only for a route that dedupes",
                );
                return None;
            }
            r => r.map(|(_, n)| n),
        };
        let tolerance = scheme.as_ref().map_or(
            options.tolerance.unwrap_or(DEFAULT_TOLERANCE),
            Scheme::tolerance,
        );
        Some(RouteConfig {
            name: name?,
            path: path?,
            methods: methods?,
            secret_ids: secrets.material.iter().map(|s| s.id.clone()).collect(),
            scheme,
            options,
            tolerance,
            dedupe,
            events,
            replay_capacity,
            max_body_bytes: max_body_bytes?,
            upstream: upstream?,
            mode: mode?,
            allow_from: allow_from?,
            delivery,
        })
    }

    pub(crate) fn route_path(
        &mut self,
        off: usize,
        key: &str,
        s: &str,
        prefix: bool,
    ) -> Option<PathMatch> {
        if !s.starts_with('/')
            || s.bytes()
                .any(|b| b.is_ascii_control() || b == b' ' || b == b'?')
        {
            self.err(
                off,
                key,
                "must start with '/' and contain no spaces, '?' or control bytes",
            );
            return None;
        }
        Some(if prefix {
            PathMatch::Prefix(normalize_prefix(s))
        } else {
            PathMatch::Exact(normalize_path(s).into_owned())
        })
    }

    pub(crate) fn methods(&mut self, t: &Table<'_, '_>) -> Option<Vec<Method>> {
        let Some((key, item)) = self.entry(t, "methods") else {
            return Some(vec![Method::POST]);
        };
        let DeValue::Array(arr) = item.get_ref() else {
            self.err(
                item.span().start,
                &key,
                "must be an array of strings like [\"POST\"]",
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for v in arr.iter() {
            match v.get_ref() {
                DeValue::String(s)
                    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase()) =>
                {
                    match Method::from_bytes(s.as_bytes()) {
                        Ok(m) if !out.contains(&m) => out.push(m),
                        _ => {
                            self.err(v.span().start, &key, format!("duplicate method {s:?}"));
                            ok = false;
                        }
                    }
                }
                _ => {
                    self.err(
                        v.span().start,
                        &key,
                        "methods are upper-case strings like \"POST\"",
                    );
                    ok = false;
                }
            }
        }
        if out.is_empty() && ok {
            self.err(item.span().start, &key, "must list at least one method");
            ok = false;
        }
        ok.then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    /// `key: message` of every problem in `route`, after a valid `[upstream]`.
    fn problems(route: &str) -> Vec<String> {
        let text = format!("[upstream]\nurl = \"http://127.0.0.1:8080\"\n[[route]]\n{route}");
        Config::parse(Path::new("t.toml"), &text, &|_| None)
            .unwrap_err()
            .0
            .iter()
            .map(|e| format!("{}: {}: {}", e.line, e.key, e.message))
            .collect()
    }

    #[test]
    fn a_queued_route_dedupes_on_the_message_id_only() {
        let base =
            "name = \"a\"\npath = \"/a\"\nscheme = \"github\"\nsecrets = [{ value = \"x\" }]\n";
        for key in ["\"signature\"", "{ json = \"/id\" }"] {
            assert_eq!(
                problems(&format!(
                    "{base}dedupe_key = {key}\n[route.delivery]\nmode = \"queued\"\n"
                )),
                ["3: route[0].dedupe_key: only \"id\" with [route.delivery] mode = \"queued\" (for now)"]
            );
        }
        let ok = format!("{base}dedupe_key = \"id\"\n[route.delivery]\nmode = \"queued\"\n");
        let text = format!("[upstream]\nurl = \"http://127.0.0.1:8080\"\n[[route]]\n{ok}");
        assert!(Config::parse(Path::new("t.toml"), &text, &|_| None).is_ok());
    }

    #[test]
    fn scheme_options_are_read_by_their_scheme_with_line_and_key() {
        let base = "name = \"a\"\npath = \"/a\"\n";
        assert_eq!(
            problems(&format!(
                "{base}scheme = \"hmac\"\nsecrets = [{{ value = \"x\" }}]\n"
            )),
            ["6: route[0].hmac: scheme \"hmac\" needs a [route.hmac] table"]
        );
        assert_eq!(
            problems(&format!(
                "{base}scheme = \"github\"\nsecrets = [{{ value = \"x\" }}]\n\
                 [route.hmac]\nheader = \"X-Sig\"\n"
            )),
            ["6: route[0].hmac: only allowed with scheme = \"hmac\""]
        );
        assert_eq!(
            problems(&format!(
                "{base}scheme = \"nope\"\n[route.hmac]\nheader = \"X Sig\"\nalgorithm = \"md5\"\n\
                 encoding = \"b32\"\nid_header = \"a b\"\nprefx = \"\"\n"
            )),
            [
                // The list of names is the registry's (every scheme and alias, then `none`).
                format!(
                    "6: route[0].scheme: unknown scheme \"nope\"; one of: {}",
                    crate::verify::SchemeName::all_names().join(", ")
                ),
                "8: route[0].hmac.header: not a valid header name".to_owned(),
                "9: route[0].hmac.algorithm: sha1, sha256 or sha512".to_owned(),
                "10: route[0].hmac.encoding: hex, base64 or base64url".to_owned(),
                "11: route[0].hmac.id_header: not a valid header name".to_owned(),
                "12: route[0].hmac.prefx: unknown key (did you mean `prefix`?); expected one of: \
                 header, algorithm, encoding, prefix, timestamp_header, id_header, signed_payload"
                    .to_owned(),
            ]
        );
        assert_eq!(
            problems(&format!(
                "{base}scheme = \"twilio\"\nsecrets = [{{ value = \"x\" }}]\npublic_url = 5\n\
                 publik_url = \"x\"\n"
            )),
            [
                "6: route[0].scheme: scheme twilio needs public_url (the URL the provider calls)",
                "8: route[0].public_url: must be a string",
                "9: route[0].publik_url: unknown key (did you mean `public_url`?); expected one \
                 of: name, path, path_prefix, methods, scheme, secrets, tolerance, dedupe, \
                 replay_capacity, max_body_bytes, upstream, mode, hmac, public_url, topics, cert_host, confirm, ca_file, jwt, verify_token, client_state, allow_from, event, events, dedupe_key, dedupe_window, delivery",
            ]
        );
    }
}
