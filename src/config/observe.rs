//! `[debug]` and `[tracing]`: the record of rejections and the OpenTelemetry export (README
//! "Why did I get 401?" and "Traces").

use http::Uri;
use toml::de::DeValue;

use super::walk::join;
use super::{Cx, Table};

/// `[debug]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugConfig {
    /// Most rejected requests kept for `/debug/rejections`, all routes together; 0 = none.
    pub rejections: usize,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            rejections: DEFAULT_REJECTIONS,
        }
    }
}

/// `[debug] rejections` when absent.
pub const DEFAULT_REJECTIONS: usize = 1000;
/// The largest `[debug] rejections`.
pub const MAX_REJECTIONS: usize = 100_000;

/// `[tracing]`, present only when `otlp_endpoint` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// The OTLP/HTTP base URL (`http://host:port`, no path); spans go to `/v1/traces`.
    pub otlp_endpoint: Uri,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// Share of new traces recorded (an incoming `traceparent`'s sampled flag decides for its
    /// own trace), 0.0 to 1.0.
    pub sample_ratio: f64,
}

impl Cx<'_> {
    pub(super) fn debug(&mut self, t: Option<&Table<'_, '_>>) -> Option<DebugConfig> {
        let Some(t) = t else {
            return Some(DebugConfig::default());
        };
        self.check_keys(t, &["rejections"]);
        let n = self.int(
            t,
            "rejections",
            DEFAULT_REJECTIONS as i64,
            0,
            MAX_REJECTIONS as i64,
        )?;
        Some(DebugConfig {
            rejections: usize::try_from(n).ok()?,
        })
    }

    /// `Some(None)`: tracing off (no table, or no `otlp_endpoint`).
    pub(super) fn tracing(&mut self, t: Option<&Table<'_, '_>>) -> Option<Option<TracingConfig>> {
        let Some(t) = t else {
            return Some(None);
        };
        self.check_keys(t, &["otlp_endpoint", "service_name", "sample_ratio"]);
        let endpoint = match self.entry(t, "otlp_endpoint") {
            None => None,
            Some((key, item)) => {
                let s = self.str_of(&key, item)?;
                match s.parse::<Uri>() {
                    Ok(u)
                        if u.scheme_str() == Some("http")
                            && u.authority().is_some_and(|a| !a.as_str().contains('@'))
                            && u.path_and_query()
                                .is_none_or(|pq| pq.as_str() == "/" || pq.as_str().is_empty()) =>
                    {
                        Some(u)
                    }
                    _ => {
                        self.err(
                            item.span().start,
                            &key,
                            "must be an http://host:port url with no user:password@ and no path \
                             (an OTLP/HTTP collector; spans are POSTed to /v1/traces)",
                        );
                        return None;
                    }
                }
            }
        };
        let service_name = match self.opt_str(t, "service_name") {
            None => DEFAULT_SERVICE_NAME.to_owned(),
            Some((off, s)) => {
                let ok = !s.is_empty()
                    && s.len() <= 128
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
                if !ok {
                    self.err(
                        off,
                        &join(&t.path, "service_name"),
                        "must be 1 to 128 characters of [A-Za-z0-9._-/]",
                    );
                    return None;
                }
                s
            }
        };
        let sample_ratio = self.ratio(t, "sample_ratio", 1.0)?;
        Some(endpoint.map(|otlp_endpoint| TracingConfig {
            otlp_endpoint,
            service_name,
            sample_ratio,
        }))
    }

    /// A number from 0 to 1 (an integer 0 or 1 too).
    fn ratio(&mut self, t: &Table<'_, '_>, name: &str, default: f64) -> Option<f64> {
        let Some((key, item)) = self.entry(t, name) else {
            return Some(default);
        };
        let parsed = match item.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) if i.radix() == 10 => i.as_str().parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(r) if (0.0..=1.0).contains(&r) => Some(r),
            _ => {
                self.err(item.span().start, &key, "must be a number from 0.0 to 1.0");
                None
            }
        }
    }
}

/// `[tracing] service_name` when absent.
pub const DEFAULT_SERVICE_NAME: &str = "hookseal";

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    const BASE: &str = "[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
                        [[route]]\nname = \"a\"\npath = \"/a\"\nscheme = \"none\"\n";

    fn load(extra: &str) -> Result<Config, Vec<(usize, String, String)>> {
        let text = format!("{extra}\n{BASE}");
        Config::parse(Path::new("t.toml"), &text, &|_| None).map_err(|e| {
            e.0.into_iter()
                .map(|e| (e.line, e.key, e.message))
                .collect()
        })
    }

    #[test]
    fn defaults_and_accepted_forms() {
        let c = load("").unwrap();
        assert_eq!(c.debug.rejections, DEFAULT_REJECTIONS);
        assert!(c.tracing.is_none(), "off by default");
        let c = load("[debug]\nrejections = 0\n[tracing]\nservice_name = \"x\"").unwrap();
        assert_eq!(c.debug.rejections, 0);
        assert!(c.tracing.is_none(), "no endpoint: off");
        let c = load(
            "[debug]\nrejections = 100_000\n[tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"\n\
             service_name = \"shop-hookseal\"\nsample_ratio = 0.25",
        )
        .unwrap();
        assert_eq!(c.debug.rejections, MAX_REJECTIONS);
        let t = c.tracing.unwrap();
        assert_eq!(
            t.otlp_endpoint.authority().unwrap().as_str(),
            "127.0.0.1:4318"
        );
        assert_eq!(
            (t.service_name.as_str(), t.sample_ratio),
            ("shop-hookseal", 0.25)
        );
        let t = load("[tracing]\notlp_endpoint = \"http://collector:4318/\"\nsample_ratio = 0")
            .unwrap()
            .tracing
            .unwrap();
        assert_eq!((t.service_name.as_str(), t.sample_ratio), ("hookseal", 0.0));
    }

    #[test]
    fn each_error_names_its_line_and_key() {
        for (extra, line, key, needle) in [
            (
                "[debug]\nrejections = 100001",
                2,
                "debug.rejections",
                "from 0 to 100000",
            ),
            (
                "[debug]\nrejections = -1",
                2,
                "debug.rejections",
                "from 0 to 100000",
            ),
            (
                "[debug]\nrejection = 5",
                2,
                "debug.rejection",
                "did you mean `rejections`",
            ),
            (
                "[tracing]\notlp_endpoint = \"https://collector:4318\"",
                2,
                "tracing.otlp_endpoint",
                "http://host:port",
            ),
            (
                "[tracing]\notlp_endpoint = \"http://u:p@collector:4318\"",
                2,
                "tracing.otlp_endpoint",
                "no user:password@",
            ),
            (
                "[tracing]\notlp_endpoint = \"http://collector:4318/v1/traces\"",
                2,
                "tracing.otlp_endpoint",
                "no path",
            ),
            (
                "[tracing]\nsample_ratio = 1.5",
                2,
                "tracing.sample_ratio",
                "0.0 to 1.0",
            ),
            (
                "[tracing]\nsample_ratio = \"1\"",
                2,
                "tracing.sample_ratio",
                "0.0 to 1.0",
            ),
            (
                "[tracing]\nservice_name = \"a b\"",
                2,
                "tracing.service_name",
                "[A-Za-z0-9._-/]",
            ),
            (
                "[tracing]\nendpoint = \"x\"",
                2,
                "tracing.endpoint",
                "unknown key",
            ),
        ] {
            let errors = load(extra).map(|_| ()).unwrap_err();
            assert!(
                errors
                    .iter()
                    .any(|(l, k, m)| *l == line && k == key && m.contains(needle)),
                "{extra}: {errors:?}"
            );
        }
    }
}
