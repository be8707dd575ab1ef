//! The route keys of the fetching engines and the handshakes (SPEC "Handshakes", "More
//! schemes"): `topics`, `cert_host`, `confirm` (sns), `[route.jwt]` (jwt, google-pubsub,
//! plaid), `verify_token` (meta), `client_state` (msgraph), `ca_file` (the schemes that
//! fetch). Each key is accepted only on a route whose scheme lists it in its
//! [`crate::verify::SchemeDef::options`]; whether a scheme *needs* it is its `build`'s
//! business (reported at the route's `scheme` key).

use toml::de::DeValue;

use super::secrets::{read_small_file, UNREAD};
use super::{parse_duration, Cx, Table};
use crate::verify::{Confirm, EngineOptions, JwtRouteOptions, SchemeName, SnsRouteOptions};

/// The keys of this file, for the route's known-keys list.
pub(super) const ROUTE_KEYS: &[&str] = &[
    "topics",
    "cert_host",
    "confirm",
    "jwt",
    "verify_token",
    "client_state",
    "ca_file",
];

const JWT_KEYS: &[&str] = &[
    "jwks_url",
    "keys",
    "algorithms",
    "issuers",
    "audiences",
    "leeway",
    "claims",
    "header",
];

/// Largest `ca_file` read.
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

impl Cx<'_> {
    /// The engine keys of one route. `None`: an error was reported. The flag: a source was
    /// not read (`check --syntax-only`), so the scheme cannot be judged.
    pub(super) fn engine_options(
        &mut self,
        t: &Table<'_, '_>,
        scheme: Option<SchemeName>,
    ) -> Option<(EngineOptions, bool)> {
        let p = t.path.clone();
        let takes = |k: &str| scheme.is_some_and(|n| n.def().options.contains(&k));
        let mut ok = true;
        for key in ROUTE_KEYS {
            if t.map.get(*key).is_some() && !takes(key) {
                let off = t.map.get(*key).map_or(t.span_start, |v| v.span().start);
                let with: Vec<&str> = SchemeName::all()
                    .filter(|n| n.def().options.contains(key))
                    .map(SchemeName::as_str)
                    .collect();
                self.err(
                    off,
                    &format!("{p}.{key}"),
                    format!("only allowed with scheme {}", with.join(", ")),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let mut unread = false;
        let mut out = EngineOptions::default();
        if takes("topics") {
            let topics = self.str_list(t, "topics")?.unwrap_or_default();
            let cert_host = self.opt_str(t, "cert_host").map(|(_, s)| s);
            let confirm = match self.opt_str(t, "confirm") {
                None => Confirm::Auto,
                Some((_, s)) if s == "auto" => Confirm::Auto,
                Some((_, s)) if s == "forward" => Confirm::Forward,
                Some((off, _)) => {
                    self.err(
                        off,
                        &format!("{p}.confirm"),
                        "must be \"auto\" or \"forward\"",
                    );
                    return None;
                }
            };
            out.sns = Some(SnsRouteOptions {
                topics,
                cert_host,
                confirm,
            });
        }
        if takes("verify_token") {
            out.verify_token = self.secret_source(t, "verify_token", &mut unread)?;
        }
        if takes("client_state") {
            out.client_state = self.secret_source(t, "client_state", &mut unread)?;
        }
        if let Some((off, path)) = self.opt_str(t, "ca_file") {
            if self.syntax_only {
                unread = true;
            } else {
                let file = self.resolve(&path);
                self.watched.push(file.clone());
                match read_small_file(&file, MAX_CA_FILE_BYTES) {
                    Ok(pem) => out.ca_pem = Some(pem),
                    Err(e) => {
                        self.err(
                            off,
                            &format!("{p}.ca_file"),
                            format!("cannot read {}: {e}", file.display()),
                        );
                        return None;
                    }
                }
            }
        }
        if takes("jwt") {
            if let Some(j) = self.subtable(t, "jwt") {
                out.jwt = Some(self.jwt_options(&j, &mut unread)?);
            } else if t.map.get("jwt").is_some() {
                return None;
            }
        }
        Some((out, unread))
    }

    fn jwt_options(&mut self, t: &Table<'_, '_>, unread: &mut bool) -> Option<JwtRouteOptions> {
        self.check_keys(t, JWT_KEYS);
        let p = t.path.clone();
        let leeway = match self.opt_str(t, "leeway") {
            None => None,
            Some((off, s)) => match parse_duration(&s) {
                Some(d) => Some(d),
                None => {
                    self.err(
                        off,
                        &format!("{p}.leeway"),
                        format!("{s:?} is not a duration like \"60s\""),
                    );
                    return None;
                }
            },
        };
        let keys = self.secret_source(t, "keys", unread)?;
        let keys = match keys {
            // `check --syntax-only`: an unread JWKS reads as an empty one.
            Some(k) if k == UNREAD => Some(br#"{"keys":[]}"#.to_vec()),
            k => k,
        };
        let mut claims = Vec::new();
        if let Some(c) = self.subtable(t, "claims") {
            for (k, v) in c.map.iter() {
                let name = k.get_ref().to_string();
                let key = format!("{}.{name}", c.path);
                let values = match v.get_ref() {
                    DeValue::Array(a) => a.iter().map(|x| claim_value(x.get_ref())).collect(),
                    one => vec![claim_value(one)],
                };
                let Some(values) = values.into_iter().collect::<Option<Vec<_>>>() else {
                    self.err(
                        v.span().start,
                        &key,
                        "claim values are strings, booleans or integers",
                    );
                    return None;
                };
                if values.is_empty() {
                    self.err(v.span().start, &key, "must list at least one value");
                    return None;
                }
                claims.push((name, values));
            }
        } else if t.map.get("claims").is_some() {
            return None;
        }
        Some(JwtRouteOptions {
            jwks_url: self.opt_str(t, "jwks_url").map(|(_, s)| s),
            keys,
            algorithms: self.str_list(t, "algorithms")?,
            issuers: self.str_list(t, "issuers")?.unwrap_or_default(),
            audiences: self.str_list(t, "audiences")?.unwrap_or_default(),
            leeway,
            claims,
            header: self.opt_str(t, "header").map(|(_, s)| s),
        })
    }

    /// An optional array of strings. Outer `None`: reported.
    fn str_list(&mut self, t: &Table<'_, '_>, name: &str) -> Option<Option<Vec<String>>> {
        let Some((key, item)) = self.entry(t, name) else {
            return Some(None);
        };
        let DeValue::Array(arr) = item.get_ref() else {
            self.err(item.span().start, &key, "must be an array of strings");
            return None;
        };
        let mut out = Vec::new();
        for v in arr.iter() {
            match v.get_ref() {
                DeValue::String(s) if !s.is_empty() => out.push(s.to_string()),
                _ => {
                    self.err(
                        v.span().start,
                        &key,
                        "must be an array of non-empty strings",
                    );
                    return None;
                }
            }
        }
        Some(Some(out))
    }

    /// An optional `{ value | env | file }` table. Outer `None`: reported.
    fn secret_source(
        &mut self,
        t: &Table<'_, '_>,
        name: &str,
        unread: &mut bool,
    ) -> Option<Option<Vec<u8>>> {
        let Some((key, item)) = self.entry(t, name) else {
            return Some(None);
        };
        let DeValue::Table(map) = item.get_ref() else {
            self.err(
                item.span().start,
                &key,
                "must be a table { value | env | file }",
            );
            return None;
        };
        let st = Table {
            path: key.clone(),
            span_start: item.span().start,
            map,
        };
        self.check_keys(&st, &["value", "env", "file"]);
        let sources = ["value", "env", "file"]
            .iter()
            .filter_map(|k| self.opt_str(&st, k).map(|(off, s)| (*k, off, s)))
            .collect::<Vec<_>>();
        let [(kind, off, src)] = sources.as_slice() else {
            self.err(st.span_start, &key, "give exactly one of value, env, file");
            return None;
        };
        let bytes = match *kind {
            "value" => src.as_bytes().to_vec(),
            _ => self.read_source(&key, kind, *off, src, name)?,
        };
        if bytes.is_empty() {
            self.err(*off, &key, "is empty");
            return None;
        }
        if bytes == UNREAD {
            *unread = true;
        }
        Some(Some(bytes))
    }
}

fn claim_value(v: &DeValue<'_>) -> Option<serde_json::Value> {
    match v {
        DeValue::String(s) => Some(serde_json::Value::String(s.to_string())),
        DeValue::Boolean(b) => Some(serde_json::Value::Bool(*b)),
        DeValue::Integer(i) if i.radix() == 10 => {
            i.as_str().parse::<i64>().ok().map(serde_json::Value::from)
        }
        _ => None,
    }
}
