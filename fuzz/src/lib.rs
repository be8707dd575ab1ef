//! Shared code of the hookseal fuzz targets: the text format of `verify_request` inputs, and
//! the oracles each target checks besides "does not panic".
//!
//! # `verify_request` input format
//!
//! HTTP-like text, so seeds made from the SDK vectors stay readable and the fuzzer can mutate
//! header names as well as values:
//!
//! ```text
//! <scheme> <now> <tolerance-seconds|-> <public_url|->
//! hmac <header> <sha1|sha256|sha512> <hex|base64|base64url> <prefix|-> <ts-header|-> <id-header|-> <signed_payload>
//! secret <bytes>
//! secret <bytes>
//! <METHOD> <request-target>
//! <Header-Name>: <value>
//!
//! <body>
//! ```
//!
//! The `hmac` line is optional (only `scheme = "hmac"` reads it); any number of `secret`
//! lines; header lines until the first empty line; everything after it is the body. A header
//! whose name or value is not valid HTTP is dropped (hyper would never hand it over).

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use hookseal::verify::{
    Encoding, HmacAlgorithm, HmacOptions, Input, Scheme, SchemeName, SchemeOptions, SecretMaterial,
    Verified, VerifyError,
};

#[path = "../../tests/integration/reference.rs"]
pub mod reference;

/// An owned request.
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Request {
    /// A `POST` to `target` with these headers (invalid ones dropped).
    pub fn new(method: Method, target: &str, headers: &[(&[u8], &[u8])], body: &[u8]) -> Request {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
                map.append(n, v);
            }
        }
        Request {
            method,
            uri: target.parse().unwrap_or_else(|_| Uri::from_static("/")),
            headers: map,
            body: body.to_vec(),
        }
    }

    /// The verifier's view of it.
    pub fn input(&self) -> Input<'_> {
        Input {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            body: self.body[..].into(),
        }
    }
}

/// One decoded `verify_request` input.
pub struct Case {
    pub scheme: SchemeName,
    pub now: i64,
    pub options: SchemeOptions,
    pub secrets: Vec<SecretMaterial>,
    pub request: Request,
}

fn dash(s: &str) -> Option<String> {
    (s != "-").then(|| s.to_owned())
}

fn parse_hmac(rest: &str) -> Option<HmacOptions> {
    let f: Vec<&str> = rest.splitn(7, ' ').collect();
    let [header, alg, enc, prefix, ts, id, payload] = f.as_slice() else {
        return None;
    };
    Some(HmacOptions {
        header: (*header).to_owned(),
        algorithm: match *alg {
            "sha1" => HmacAlgorithm::Sha1,
            "sha512" => HmacAlgorithm::Sha512,
            _ => HmacAlgorithm::Sha256,
        },
        encoding: match *enc {
            "base64" => Encoding::Base64,
            "base64url" => Encoding::Base64Url,
            _ => Encoding::Hex,
        },
        prefix: dash(prefix).unwrap_or_default(),
        timestamp_header: dash(ts),
        id_header: dash(id),
        signed_payload: (*payload).to_owned(),
    })
}

/// Decodes a `verify_request` input; `None` when the first line names no scheme.
pub fn parse_case(data: &[u8]) -> Option<Case> {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(data.len());
    let head = &data[..split];
    let body = data.get(split + 2..).unwrap_or(&[]);
    let mut lines = head.split(|b| *b == b'\n');

    let first = std::str::from_utf8(lines.next()?).ok()?;
    let mut f = first.split(' ');
    let scheme = SchemeName::parse(f.next()?)?;
    let now = f
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_735_689_600);
    let tolerance = f
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let public_url = f.next().and_then(dash);

    let mut hmac = None;
    let mut secrets = Vec::new();
    let mut request_line: &[u8] = b"POST /";
    for line in lines.by_ref() {
        if let Some(rest) = line.strip_prefix(b"hmac ") {
            hmac = std::str::from_utf8(rest).ok().and_then(parse_hmac);
        } else if let Some(rest) = line.strip_prefix(b"secret ") {
            secrets.push(SecretMaterial {
                id: secrets.len().to_string(),
                bytes: rest.to_vec(),
            });
        } else {
            request_line = line;
            break;
        }
    }
    let request_line = String::from_utf8_lossy(request_line);
    let (method, target) = request_line.split_once(' ').unwrap_or(("POST", "/"));
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST);

    let headers: Vec<(&[u8], &[u8])> = lines
        .filter_map(|l| {
            let colon = l.iter().position(|b| *b == b':')?;
            let value = &l[colon + 1..];
            Some((&l[..colon], value.strip_prefix(b" ").unwrap_or(value)))
        })
        .collect();
    Some(Case {
        scheme,
        now,
        options: SchemeOptions {
            hmac,
            tolerance,
            public_url,
            // The handshake schemes' tokens (meta, msgraph), fixed: the fuzzer finds them in
            // the corpus's targets and bodies.
            engine: hookseal::verify::EngineOptions {
                verify_token: Some(b"fuzz-verify-token".to_vec()),
                client_state: Some(b"fuzz-client-state".to_vec()),
                ..Default::default()
            },
            ..SchemeOptions::default()
        },
        secrets,
        request: Request::new(method, target, &headers, body),
    })
}

/// Checks that hold for every verification result, whatever the input.
///
/// # Panics
/// When an invariant is broken (that is the finding).
pub fn check_verified(
    scheme: &Scheme,
    secrets: usize,
    now: i64,
    r: &Result<Verified, VerifyError>,
) {
    if let Ok(v) = r {
        assert!(
            v.key_index < secrets,
            "key index {} of {secrets}",
            v.key_index
        );
        if let Some(ts) = v.timestamp {
            let tol = i128::from(scheme.tolerance().as_secs());
            let skew = i128::from(ts) - i128::from(now);
            assert!(
                skew.abs() <= tol,
                "accepted timestamp {ts} at {now} (tol {tol})"
            );
        }
    }
}

/// Strict unix seconds as documented in `src/verify/mod.rs`: ASCII digits only, at most 40 of
/// them, fits an `i64`.
pub fn reference_unix(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 40 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
