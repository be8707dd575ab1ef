//! The signed URL for schemes that sign the URL the provider called (`twilio`, `square`).
//!
//! A sidecar cannot rebuild the public scheme, host and port from `Host` / `X-Forwarded-*`
//! (TLS is terminated in front of it, ports and hosts are rewritten), so the route configures
//! `public_url`: the URL the provider was told to call, as registered with the provider.
//!
//! **How the signed URL is formed** (documented decision):
//! * scheme and authority (host and port, userinfo if any) come from `public_url`, verbatim.
//! * the path and the query are the request's, exactly as received (`?` + query when the
//!   request target has a `?`). So a genuine delivery for `/twilio/sms` replayed to
//!   `/twilio/admin/delete-all` (on a `path_prefix = "/twilio/"` route) is signed for another
//!   URL and refused: neither scheme signs a timestamp, so a signature not bound to the path
//!   would open every path of the route, forever. A proxy in front of hookseal must therefore
//!   not rewrite the path (the app sees the path the provider called, as it does anyway).
//! * a path in `public_url` (other than none or `/`) pins the route to that path: a request
//!   whose path is not exactly it, byte for byte, fails with `bad_signature` before any MAC
//!   is computed. On a `path_prefix` route that means only that one path verifies, which
//!   `hookseal check` warns about; give `public_url` without a path there.
//! * a query written in `public_url` is ignored: the provider calls the registered URL
//!   including its query, so the request carries it anyway, and Twilio appends per-request
//!   parameters (`bodySHA256`) that no static config can know.
//! * a fragment in `public_url` is dropped (never sent).

use super::{OptionsDef, SchemeError};

/// `public_url = "https://..."` of a route: read on every route, used by the URL-signing
/// schemes (which refuse to build without it), ignored by the others.
pub(crate) static OPTIONS: OptionsDef = OptionsDef {
    parse: |route, out| {
        out.public_url = route.opt_str("public_url").map(|(_, s)| s);
        true
    },
    check: |_, _| Ok(()),
};

/// A parsed `public_url`.
#[derive(Debug, Clone)]
pub(crate) struct PublicUrl {
    /// `scheme://`
    scheme_sep: String,
    /// userinfo@ (may be empty)
    userinfo: String,
    /// host (with brackets for IPv6)
    host: String,
    /// explicit port, if any
    port: Option<String>,
    /// The only request path accepted, when `public_url` has one (other than `/`).
    pin: Option<String>,
    /// `https` → 443, `http` → 80
    default_port: u16,
}

impl PublicUrl {
    pub(crate) fn parse(s: &str) -> Result<PublicUrl, SchemeError> {
        let bad = |why: &str| SchemeError::config(format!("public_url: {why}"));
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("must be an absolute http(s) URL"))?;
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "https" => 443,
            "http" => 80,
            _ => return Err(bad("scheme must be http or https")),
        };
        if s.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad("must not contain whitespace"));
        }
        // Drop fragment, then query.
        let rest = rest.split('#').next().unwrap_or("");
        let rest = rest.split('?').next().unwrap_or("");
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (&authority[..=i], &authority[i + 1..]),
            None => ("", authority),
        };
        // Port: after the last ':' that is not inside an IPv6 literal.
        let (host, port) = match hostport.rfind(':') {
            Some(i) if !hostport[i..].contains(']') => (&hostport[..i], Some(&hostport[i + 1..])),
            _ => (hostport, None),
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        if let Some(p) = port {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("invalid port"));
            }
        }
        Ok(PublicUrl {
            scheme_sep: format!("{scheme}://"),
            userinfo: userinfo.to_owned(),
            host: host.to_owned(),
            port: port.map(str::to_owned),
            pin: (!path.is_empty() && path != "/").then(|| path.to_owned()),
            default_port,
        })
    }

    fn build(&self, port: Option<&str>, path_and_query: &str) -> String {
        let mut s = String::with_capacity(64 + path_and_query.len());
        s.push_str(&self.scheme_sep);
        s.push_str(&self.userinfo);
        s.push_str(&self.host);
        if let Some(p) = port {
            s.push(':');
            s.push_str(p);
        }
        s.push_str(path_and_query);
        s
    }

    /// Whether a request to `path_and_query` may verify: always, unless `public_url` has a
    /// path, which the request's path must then equal exactly.
    pub(crate) fn allows(&self, path_and_query: &str) -> bool {
        match &self.pin {
            None => true,
            Some(pin) => path_and_query.split('?').next() == Some(pin.as_str()),
        }
    }

    /// Whether `public_url` has a path (see [`PublicUrl::allows`]).
    pub(crate) fn has_path(&self) -> bool {
        self.pin.is_some()
    }

    /// The signed URL as configured (port as written in `public_url`).
    pub(crate) fn url(&self, path_and_query: &str) -> String {
        self.build(self.port.as_deref(), path_and_query)
    }

    /// The Twilio SDK's two variants: without any port, and with the port (explicit, or the
    /// scheme's default added).
    pub(crate) fn twilio_variants(&self, path_and_query: &str) -> [String; 2] {
        let default = self.default_port.to_string();
        let with = self.port.as_deref().unwrap_or(&default);
        [
            self.build(None, path_and_query),
            self.build(Some(with), path_and_query),
        ]
    }
}

/// Whether a `public_url` has a path, which pins its route to that one path (see the module
/// doc); false when it does not parse. `hookseal check` warns about one on a prefix route.
pub fn pins_path(public_url: &str) -> bool {
    PublicUrl::parse(public_url).is_ok_and(|u| u.has_path())
}

/// The request's path and query as received (origin form).
pub(crate) fn path_and_query(uri: &http::Uri) -> &str {
    uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_url_from_public_url_and_request_path_and_query() {
        let u = PublicUrl::parse("https://h.example.com/twilio/sms?ignored=1").unwrap();
        assert_eq!(
            u.url("/twilio/sms?a=1&b=2"),
            "https://h.example.com/twilio/sms?a=1&b=2"
        );
        assert_eq!(u.url("/twilio/sms"), "https://h.example.com/twilio/sms");
        let [a, b] = u.twilio_variants("/twilio/sms?a=1");
        assert_eq!(a, "https://h.example.com/twilio/sms?a=1");
        assert_eq!(b, "https://h.example.com:443/twilio/sms?a=1");
        let o = PublicUrl::parse("http://u:p@[::1]:8080").unwrap();
        assert_eq!(o.url("/p?q"), "http://u:p@[::1]:8080/p?q");
        assert_eq!(o.twilio_variants("/p")[0], "http://u:p@[::1]/p");
        assert!(PublicUrl::parse("ftp://x/").is_err());
        assert!(PublicUrl::parse("https:///x").is_err());
        assert!(PublicUrl::parse("https://x:abc/").is_err());
    }

    /// Issue 17, finding 3: the signed URL carries the request's path, never the configured
    /// one, and a configured path admits only itself.
    #[test]
    fn the_request_path_is_signed_and_a_configured_path_pins_it() {
        let pinned = PublicUrl::parse("https://h.example.com/twilio/sms").unwrap();
        assert_eq!(
            pinned.url("/twilio/admin/delete-all?a=1"),
            "https://h.example.com/twilio/admin/delete-all?a=1"
        );
        assert!(pinned.has_path() && pins_path("https://h.example.com/twilio/sms"));
        assert!(pinned.allows("/twilio/sms"));
        assert!(pinned.allows("/twilio/sms?a=/x"));
        for other in [
            "/twilio/admin/delete-all",
            "/Twilio/sms",
            "/twilio/sms/",
            "/twilio//sms",
        ] {
            assert!(!pinned.allows(other), "{other}");
        }
        for open in [
            "https://h.example.com",
            "https://h.example.com/",
            "https://h.example.com?x=1",
        ] {
            let u = PublicUrl::parse(open).unwrap();
            assert!(
                !u.has_path() && !pins_path(open) && u.allows("/anything?x"),
                "{open}"
            );
            assert_eq!(u.url("/a/b?c"), "https://h.example.com/a/b?c");
        }
    }
}
