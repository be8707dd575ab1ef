//! Generic HMAC (`scheme = "hmac"`, `[route.hmac]`), SPEC "Config".
//!
//! * `header`: the signature header. Several signatures may be sent, separated by spaces or
//!   commas (when `prefix` itself contains a comma, only spaces separate). Every entry must
//!   carry `prefix` exactly (case-sensitive); entries without it are ignored, and a header with
//!   no prefixed entry is malformed. Any prefixed entry may match any secret.
//! * `algorithm`: sha1 | sha256 | sha512; key = the secret's UTF-8 bytes.
//! * `encoding`, compared constant-time as text against the computed MAC: `hex` = lowercase
//!   only (like GitHub; uppercase → bad signature), `base64` = standard alphabet with padding,
//!   `base64url` = URL-safe alphabet, with or without padding (both forms are common; `sign()`
//!   emits it unpadded).
//! * `timestamp_header` (optional): required when configured; strict integer unix seconds
//!   (else malformed); checked against the window (default 300 s, symmetric). `{timestamp}`
//!   inserts the header's **raw text** (what the sender signed). Without `{timestamp}` in the
//!   payload the timestamp is unsigned and the window check is advisory only.
//! * `id_header` (optional): the message id. Required when `{id}` is in the payload
//!   (inserted verbatim); otherwise optional (id `None` when absent).
//! * `signed_payload`: literal text with placeholders `{body}` (raw body), `{timestamp}`,
//!   `{id}`, `{method}` (e.g. `POST`), `{path}` (path **and query** as received: a signature
//!   over the path alone would let the query be altered). Default `{body}`. Validated in
//!   [`Scheme::new`](super::Scheme::new): unknown placeholders, unbalanced braces,
//!   `{timestamp}` without `timestamp_header`, `{id}` without `id_header` and a payload without
//!   `{body}` (the body would be forwarded unauthenticated) are configuration errors.

use std::time::Duration;

use http::HeaderName;
use subtle::Choice;

use super::public_url::path_and_query;
use super::{
    b64_std, check_window, ct_eq, first_match, hex_lower, intern, mac_keys, optional_id,
    parse_unix, required, Body, Encoding, HmacAlgorithm, HmacOptions, Input, MacKey, MessageId,
    OptionTable, OptionsDef, SchemeDef, SchemeError, SchemeOptions, SecretMaterial, Verified,
    Verifier, VerifyError,
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(Vec<u8>),
    Body,
    Timestamp,
    Id,
    Method,
    Path,
}

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "hmac",
    message_id: MessageId::Configured,
    headers: &[],
    options: &["hmac"],
    parse_options: Some(&OPTIONS),
    build: |options, secrets| Ok(std::sync::Arc::new(Generic::new(options, secrets)?)),
    sign: |r| {
        sign_headers(
            r.options,
            r.secret,
            r.id,
            r.timestamp,
            r.method,
            r.path_and_query,
            r.body,
        )
    },
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
pub(crate) struct Generic {
    keys: Vec<MacKey>,
    header: &'static str,
    encoding: Encoding,
    prefix: String,
    ts_header: Option<&'static str>,
    id_header: Option<&'static str>,
    id_signed: bool,
    template: Vec<Seg>,
}

fn header_name(what: &str, s: &str) -> Result<&'static str, SchemeError> {
    HeaderName::from_bytes(s.as_bytes())
        .map_err(|_| SchemeError::config(format!("hmac.{what}: invalid header name {s:?}")))?;
    Ok(intern(s))
}

fn parse_template(s: &str) -> Result<Vec<Seg>, SchemeError> {
    let mut segs = Vec::new();
    let mut lit = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        lit.extend_from_slice(&rest.as_bytes()[..i]);
        if rest.as_bytes()[i] == b'}' {
            return Err(SchemeError::config("hmac.signed_payload: unbalanced '}'"));
        }
        let after = &rest[i + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| SchemeError::config("hmac.signed_payload: unbalanced '{'"))?;
        let seg = match &after[..end] {
            "body" => Seg::Body,
            "timestamp" => Seg::Timestamp,
            "id" => Seg::Id,
            "method" => Seg::Method,
            "path" => Seg::Path,
            other => {
                return Err(SchemeError::config(format!(
                    "hmac.signed_payload: unknown placeholder {{{other}}} (known: {{body}} \
                     {{timestamp}} {{id}} {{method}} {{path}})"
                )))
            }
        };
        if !lit.is_empty() {
            segs.push(Seg::Lit(std::mem::take(&mut lit)));
        }
        segs.push(seg);
        rest = &after[end + 1..];
    }
    lit.extend_from_slice(rest.as_bytes());
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    Ok(segs)
}

/// `[route.hmac]`: read on every route, so its problems are reported whatever the scheme;
/// required by, and only allowed with, a scheme that lists `hmac` in its `options`.
static OPTIONS: OptionsDef = OptionsDef {
    parse: |route, out| match table(route) {
        Some(hmac) => {
            out.hmac = hmac;
            true
        }
        None => false,
    },
    check: |options, scheme| {
        let takes_hmac = scheme.is_some_and(|n| n.def().options.contains(&"hmac"));
        match (takes_hmac, &options.hmac, scheme) {
            (true, None, Some(n)) => Err((
                "hmac",
                format!("scheme \"{}\" needs a [route.hmac] table", n.as_str()),
            )),
            (false, Some(_), _) => Err(("hmac", "only allowed with scheme = \"hmac\"".to_owned())),
            _ => Ok(()),
        }
    },
};

/// The `[route.hmac]` table: `Some(None)` when the route has none, `None` after a problem.
fn table(route: &mut dyn OptionTable) -> Option<Option<HmacOptions>> {
    let Some(mut h) = route.subtable("hmac") else {
        return Some(None);
    };
    let h = &mut *h;
    h.check_keys(&[
        "header",
        "algorithm",
        "encoding",
        "prefix",
        "timestamp_header",
        "id_header",
        "signed_payload",
    ]);
    let header = match h.opt_str("header") {
        Some((off, s)) => {
            if HeaderName::from_bytes(s.as_bytes()).is_err() {
                let key = format!("{}.header", h.path());
                h.err(off, &key, "not a valid header name".to_owned());
                None
            } else {
                Some(s)
            }
        }
        None => {
            let key = format!("{}.header", h.path());
            h.err(h.start(), &key, "missing".to_owned());
            None
        }
    };
    let algorithm = match h.opt_str("algorithm") {
        None => Some(HmacAlgorithm::Sha256),
        Some((off, s)) => match s.as_str() {
            "sha1" => Some(HmacAlgorithm::Sha1),
            "sha256" => Some(HmacAlgorithm::Sha256),
            "sha512" => Some(HmacAlgorithm::Sha512),
            _ => {
                let key = format!("{}.algorithm", h.path());
                h.err(off, &key, "sha1, sha256 or sha512".to_owned());
                None
            }
        },
    };
    let encoding = match h.opt_str("encoding") {
        None => Some(Encoding::Hex),
        Some((off, s)) => match s.as_str() {
            "hex" => Some(Encoding::Hex),
            "base64" => Some(Encoding::Base64),
            "base64url" => Some(Encoding::Base64Url),
            _ => {
                let key = format!("{}.encoding", h.path());
                h.err(off, &key, "hex, base64 or base64url".to_owned());
                None
            }
        },
    };
    let timestamp_header = optional_header(h, "timestamp_header");
    let id_header = optional_header(h, "id_header");
    let prefix = h.opt_str("prefix").map(|(_, s)| s).unwrap_or_default();
    let signed_payload = h
        .opt_str("signed_payload")
        .map_or_else(|| "{body}".to_owned(), |(_, s)| s);
    Some(Some(HmacOptions {
        header: header?,
        algorithm: algorithm?,
        encoding: encoding?,
        prefix,
        timestamp_header,
        id_header,
        signed_payload,
    }))
}

/// An optional header-name key of `[route.hmac]`; an invalid name is reported (and kept:
/// building the scheme refuses it again).
fn optional_header(h: &mut dyn OptionTable, name: &str) -> Option<String> {
    h.opt_str(name).map(|(off, s)| {
        if HeaderName::from_bytes(s.as_bytes()).is_err() {
            let key = format!("{}.{name}", h.path());
            h.err(off, &key, "not a valid header name".to_owned());
        }
        s
    })
}

pub(crate) fn options(o: &SchemeOptions) -> Result<&HmacOptions, SchemeError> {
    o.hmac
        .as_ref()
        .ok_or_else(|| SchemeError::config("scheme hmac needs a [route.hmac] table"))
}

impl Generic {
    pub(crate) fn new(
        options: &SchemeOptions,
        secrets: &[SecretMaterial],
    ) -> Result<Generic, SchemeError> {
        let o = self::options(options)?;
        let header = header_name("header", &o.header)?;
        let ts_header = o
            .timestamp_header
            .as_deref()
            .map(|h| header_name("timestamp_header", h))
            .transpose()?;
        let id_header = o
            .id_header
            .as_deref()
            .map(|h| header_name("id_header", h))
            .transpose()?;
        let template = parse_template(&o.signed_payload)?;
        if !template.contains(&Seg::Body) {
            return Err(SchemeError::config(
                "hmac.signed_payload must contain {body}",
            ));
        }
        if template.contains(&Seg::Timestamp) && ts_header.is_none() {
            return Err(SchemeError::config(
                "hmac.signed_payload uses {timestamp} but hmac.timestamp_header is not set",
            ));
        }
        let id_signed = template.contains(&Seg::Id);
        if id_signed && id_header.is_none() {
            return Err(SchemeError::config(
                "hmac.signed_payload uses {id} but hmac.id_header is not set",
            ));
        }
        Ok(Generic {
            keys: mac_keys(o.algorithm, secrets),
            header,
            encoding: o.encoding,
            prefix: o.prefix.clone(),
            ts_header,
            id_header,
            id_signed,
            template,
        })
    }

    fn parts<'a>(
        &'a self,
        method: &'a str,
        path: &'a str,
        ts: &'a str,
        id: &'a str,
        body: Body<'a>,
    ) -> Vec<&'a [u8]> {
        let mut parts = Vec::with_capacity(self.template.len() + 4);
        for s in &self.template {
            match s {
                Seg::Lit(l) => parts.push(l.as_slice()),
                Seg::Body => parts.extend(body.pieces()),
                Seg::Timestamp => parts.push(ts.as_bytes()),
                Seg::Id => parts.push(id.as_bytes()),
                Seg::Method => parts.push(method.as_bytes()),
                Seg::Path => parts.push(path.as_bytes()),
            }
        }
        parts
    }
}

impl Verifier for Generic {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let h = input.headers;
        let sig = required(h, self.header)?;
        let ts_text = self.ts_header.map(|n| required(h, n)).transpose()?;
        let id_text = match self.id_header {
            Some(n) if self.id_signed => Some(required(h, n)?),
            _ => None,
        };
        let candidates: Vec<&[u8]> = split_entries(sig, &self.prefix)
            .filter_map(|e| e.strip_prefix(self.prefix.as_str()))
            .map(str::as_bytes)
            .collect();
        if candidates.is_empty() {
            return Err(VerifyError::MalformedSignature(self.header));
        }
        let ts = match (ts_text, self.ts_header) {
            (Some(t), Some(n)) => Some(parse_unix(t).ok_or(VerifyError::MalformedSignature(n))?),
            _ => None,
        };
        if let Some(ts) = ts {
            check_window(ts, now, tol)?;
        }
        let pq = path_and_query(input.uri);
        let parts = self.parts(
            input.method.as_str(),
            pq,
            ts_text.unwrap_or(""),
            id_text.unwrap_or(""),
            input.body,
        );
        let encoding = self.encoding;
        let key_index = first_match(self.keys.len(), |i| {
            let mac = self.keys[i].compute(&parts);
            let (a, b) = encode(encoding, mac.as_bytes());
            let mut any = Choice::from(0);
            for c in &candidates {
                any |= ct_eq(a.as_bytes(), c);
                if let Some(b) = &b {
                    any |= ct_eq(b.as_bytes(), c);
                }
            }
            any
        })
        .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: match self.id_header {
                Some(n) => optional_id(h, n)?,
                None => None,
            },
            timestamp: ts,
        })
    }

    fn configured_id(&self) -> bool {
        self.id_header.is_some()
    }

    fn timestamp_is_signed(&self) -> bool {
        self.template.contains(&Seg::Timestamp)
    }

    /// The body is always signed (a payload without `{body}` is refused); the id where
    /// `{id}` is in the payload.
    fn signed_content(&self) -> Option<super::SignedContent> {
        Some(super::SignedContent::Body { id: self.id_signed })
    }
}

/// Entries of a signature header: split on spaces and commas (only spaces when the prefix
/// contains a comma), empty pieces skipped.
fn split_entries<'a>(sig: &'a str, prefix: &str) -> impl Iterator<Item = &'a str> {
    let comma = !prefix.contains(',');
    sig.split(move |c| c == ' ' || (comma && c == ','))
        .filter(|e| !e.is_empty())
}

/// The accepted text form(s) of a MAC.
fn encode(encoding: Encoding, mac: &[u8]) -> (String, Option<String>) {
    use base64::Engine as _;
    match encoding {
        Encoding::Hex => (hex_lower(mac), None),
        Encoding::Base64 => (b64_std(mac), None),
        Encoding::Base64Url => (
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac),
            Some(base64::engine::general_purpose::URL_SAFE.encode(mac)),
        ),
    }
}

/// The headers a sender configured like this route would send.
pub(crate) fn sign_headers(
    options: &SchemeOptions,
    secret: &[u8],
    id: Option<&str>,
    ts: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, SchemeError> {
    let secrets = [SecretMaterial {
        id: "0".into(),
        bytes: secret.to_vec(),
    }];
    let g = Generic::new(options, &secrets)?;
    if g.id_signed && id.is_none() {
        return Err(SchemeError::config(
            "this hmac route signs {id}: an id is required",
        ));
    }
    let ts_text = ts.to_string();
    let parts = g.parts(
        method,
        path_and_query,
        &ts_text,
        id.unwrap_or(""),
        Body::new(body),
    );
    let mac = g.keys[0].compute(&parts);
    let mut out = vec![(
        g.header.to_owned(),
        format!("{}{}", g.prefix, encode(g.encoding, mac.as_bytes()).0),
    )];
    if let Some(n) = g.ts_header {
        out.push((n.to_owned(), ts_text));
    }
    if let (Some(n), Some(id)) = (g.id_header, id) {
        out.push((n.to_owned(), id.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req_full, scheme, sn};
    use crate::verify::HmacAlgorithm;

    fn opts(payload: &str, enc: Encoding, prefix: &str) -> SchemeOptions {
        SchemeOptions {
            hmac: Some(HmacOptions {
                header: "X-Sig".into(),
                algorithm: HmacAlgorithm::Sha256,
                encoding: enc,
                prefix: prefix.into(),
                timestamp_header: Some("X-Ts".into()),
                id_header: Some("X-Id".into()),
                signed_payload: payload.into(),
            }),
            ..SchemeOptions::default()
        }
    }

    #[test]
    fn option_validation() {
        let ok = |p: &str| Scheme::new(sn("hmac"), &opts(p, Encoding::Hex, ""), &[sec()]);
        assert!(ok("{timestamp}.{id}.{method} {path}\n{body}").is_ok());
        assert!(ok("{bodyx}").is_err());
        assert!(ok("{body").is_err());
        assert!(ok("body}").is_err());
        assert!(ok("{timestamp}").is_err()); // no {body}
        let mut o = opts("{timestamp}.{body}", Encoding::Hex, "");
        o.hmac.as_mut().unwrap().timestamp_header = None;
        assert!(Scheme::new(sn("hmac"), &o, &[sec()]).is_err());
        let mut o = opts("{id}.{body}", Encoding::Hex, "");
        o.hmac.as_mut().unwrap().id_header = None;
        assert!(Scheme::new(sn("hmac"), &o, &[sec()]).is_err());
        assert!(Scheme::new(sn("hmac"), &SchemeOptions::default(), &[sec()]).is_err());
    }

    use crate::verify::Scheme;
    fn sec() -> SecretMaterial {
        crate::verify::tests::secret("k")
    }

    #[test]
    fn round_trip_every_encoding_and_lists() {
        for enc in [Encoding::Hex, Encoding::Base64, Encoding::Base64Url] {
            let o = opts("{method} {path} {id}.{timestamp}.{body}", enc, "v1=");
            let s = scheme(sn("hmac"), &o, &["old", "k"]);
            let hs = sign_headers(&o, b"k", Some("m1"), 500, "POST", "/p?q=1", b"b").unwrap();
            let sig = hs[0].1.clone();
            let other = sign_headers(&o, b"old", Some("m2"), 500, "POST", "/p?q=1", b"b").unwrap();
            let list = format!("{}, {sig}", other[0].1);
            let h = [("X-Sig", list.as_str()), ("X-Ts", "500"), ("X-Id", "m1")];
            let v = s
                .verify(&req_full("POST", "/p?q=1", &h, b"b").input(), 500)
                .unwrap();
            assert_eq!(v.key_index, 1);
            assert_eq!(v.id.unwrap(), "m1");
            assert_eq!(v.timestamp, Some(500));
            // path and query are signed
            let e = s
                .verify(&req_full("POST", "/p?q=2", &h, b"b").input(), 500)
                .unwrap_err();
            assert_eq!(e, VerifyError::BadSignature);
            // entries must carry the prefix
            let bare = sig.trim_start_matches("v1=");
            let h = [("X-Sig", bare), ("X-Ts", "500"), ("X-Id", "m1")];
            let e = s
                .verify(&req_full("POST", "/p?q=1", &h, b"b").input(), 500)
                .unwrap_err();
            assert_eq!(e, VerifyError::MalformedSignature("X-Sig"));
        }
    }
}
