//! The signed URL for schemes that sign the URL the provider called (`twilio`, `square`).
//!
//! A sidecar cannot rebuild that URL from `Host` / `X-Forwarded-*` (TLS is terminated in front
//! of it, ports and hosts are rewritten), so the route configures `public_url`: the URL the
//! provider was told to call, exactly as registered with the provider (scheme, host, optional
//! port, path).
//!
//! **How the signed URL is formed** (documented decision):
//! * scheme, authority (host and port, userinfo if any) and path come from `public_url`,
//!   verbatim. If `public_url` has no path at all (`https://hooks.example.com`), the inbound
//!   request's path is used instead (one `public_url` for a `path_prefix` route).
//! * the query is the inbound request's query string exactly as received (`?` + query, when
//!   the request target has a `?`). A query written in `public_url` is ignored: the provider
//!   calls the registered URL including its query, so the request carries it anyway, and
//!   Twilio appends per-request parameters (`bodySHA256`) that no static config can know.
//! * a fragment in `public_url` is dropped (never sent).

use super::SchemeError;

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
    /// path (may be empty)
    path: String,
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
            path: path.to_owned(),
            default_port,
        })
    }

    fn build(&self, port: Option<&str>, path_and_query: &str) -> String {
        let (req_path, req_query) = match path_and_query.find('?') {
            Some(i) => (&path_and_query[..i], Some(&path_and_query[i + 1..])),
            None => (path_and_query, None),
        };
        let mut s = String::with_capacity(64 + path_and_query.len());
        s.push_str(&self.scheme_sep);
        s.push_str(&self.userinfo);
        s.push_str(&self.host);
        if let Some(p) = port {
            s.push(':');
            s.push_str(p);
        }
        if self.path.is_empty() {
            s.push_str(req_path);
        } else {
            s.push_str(&self.path);
        }
        if let Some(q) = req_query {
            s.push('?');
            s.push_str(q);
        }
        s
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

/// The request's path and query as received (origin form).
pub(crate) fn path_and_query(uri: &http::Uri) -> &str {
    uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_url_from_public_url_and_request_query() {
        let u = PublicUrl::parse("https://h.example.com/twilio/sms?ignored=1").unwrap();
        assert_eq!(
            u.url("/x?a=1&b=2"),
            "https://h.example.com/twilio/sms?a=1&b=2"
        );
        assert_eq!(u.url("/x"), "https://h.example.com/twilio/sms");
        let [a, b] = u.twilio_variants("/x?a=1");
        assert_eq!(a, "https://h.example.com/twilio/sms?a=1");
        assert_eq!(b, "https://h.example.com:443/twilio/sms?a=1");
        let o = PublicUrl::parse("http://u:p@[::1]:8080").unwrap();
        assert_eq!(o.url("/p?q"), "http://u:p@[::1]:8080/p?q");
        assert_eq!(o.twilio_variants("/p")[0], "http://u:p@[::1]/p");
        assert!(PublicUrl::parse("ftp://x/").is_err());
        assert!(PublicUrl::parse("https:///x").is_err());
        assert!(PublicUrl::parse("https://x:abc/").is_err());
    }
}
