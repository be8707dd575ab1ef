//! The TOML walker: a loading context ([`Cx`]) that collects every problem as
//! `file:line: key: message`, a table being read ([`Table`]), and the typed accessors the
//! section readers use. Each accessor reports its own error and returns `None` on failure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::verify::OptionTable;

use super::{nearest, parse_duration, parse_size, ConfigError, EnvLookup, IpNet, MAX_SIZE};

pub(crate) type Item<'i> = Spanned<DeValue<'i>>;

/// Loading context: the source text for line numbers, the environment, collected errors.
pub(crate) struct Cx<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
    pub(crate) env: EnvLookup<'a>,
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) watched: Vec<PathBuf>,
    /// `check --syntax-only`: `env`/`file` sources and TLS files are not read.
    pub(crate) syntax_only: bool,
}

/// A table being read: which keys were consumed, so leftovers are reported as unknown.
pub(crate) struct Table<'t, 'i> {
    pub(crate) path: String,
    pub(crate) span_start: usize,
    pub(crate) map: &'t DeTable<'i>,
}

impl<'a> Cx<'a> {
    pub(crate) fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(crate) fn err(&mut self, offset: usize, key: &str, message: impl Into<String>) {
        let line = self.line(offset);
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    pub(crate) fn check_keys(&mut self, t: &Table<'_, '_>, known: &[&str]) {
        for (k, _) in t.map.iter() {
            if !known.contains(&k.get_ref().as_ref()) {
                let key = join(&t.path, k.get_ref());
                let hint = nearest(k.get_ref(), known)
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                self.err(
                    k.span().start,
                    &key,
                    format!("unknown key{hint}; expected one of: {}", known.join(", ")),
                );
            }
        }
    }

    pub(crate) fn entry<'t, 'i>(
        &mut self,
        t: &Table<'t, 'i>,
        name: &str,
    ) -> Option<(String, &'t Item<'i>)> {
        t.map.get(name).map(|v| (join(&t.path, name), v))
    }

    pub(crate) fn subtable<'t, 'i>(
        &mut self,
        t: &Table<'t, 'i>,
        name: &str,
    ) -> Option<Table<'t, 'i>> {
        let (key, item) = self.entry(t, name)?;
        match item.get_ref() {
            DeValue::Table(map) => Some(Table {
                path: key,
                span_start: item.span().start,
                map,
            }),
            _ => {
                self.err(item.span().start, &key, "must be a table");
                None
            }
        }
    }

    pub(crate) fn str_of(&mut self, key: &str, item: &Item<'_>) -> Option<String> {
        match item.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.err(item.span().start, key, "must be a string");
                None
            }
        }
    }

    /// An optional string: `(offset, value)`. A wrong type is reported and reads as absent.
    pub(crate) fn opt_str(&mut self, t: &Table<'_, '_>, name: &str) -> Option<(usize, String)> {
        let (key, item) = self.entry(t, name)?;
        self.str_of(&key, item).map(|s| (item.span().start, s))
    }

    pub(crate) fn opt_bool(
        &mut self,
        t: &Table<'_, '_>,
        name: &str,
    ) -> Option<Option<(usize, bool)>> {
        let Some((key, item)) = self.entry(t, name) else {
            return Some(None);
        };
        match item.get_ref() {
            DeValue::Boolean(b) => Some(Some((item.span().start, *b))),
            _ => {
                self.err(item.span().start, &key, "must be true or false");
                None
            }
        }
    }

    pub(crate) fn required_path(&mut self, t: &Table<'_, '_>, name: &str) -> Option<PathBuf> {
        match self.opt_str(t, name) {
            Some((_, s)) => Some(self.resolve(&s)),
            None => {
                self.err(t.span_start, &join(&t.path, name), "missing");
                None
            }
        }
    }

    pub(crate) fn opt_path(&mut self, t: &Table<'_, '_>, name: &str) -> Option<PathBuf> {
        self.opt_str(t, name).map(|(_, s)| self.resolve(&s))
    }

    /// Relative paths are relative to the config file's directory.
    pub(crate) fn resolve(&self, s: &str) -> PathBuf {
        let p = Path::new(s);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.file.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    pub(crate) fn socket_addr(
        &mut self,
        t: &Table<'_, '_>,
        name: &str,
        default: &str,
    ) -> Option<SocketAddr> {
        let Some((key, item)) = self.entry(t, name) else {
            return default.parse().ok();
        };
        let s = self.str_of(&key, item)?;
        match s.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    item.span().start,
                    &key,
                    "must be an IP:port address like \"0.0.0.0:8443\"",
                );
                None
            }
        }
    }

    pub(crate) fn duration(
        &mut self,
        t: &Table<'_, '_>,
        name: &str,
        default: Duration,
        positive: bool,
    ) -> Option<Duration> {
        let Some((key, item)) = self.entry(t, name) else {
            return Some(default);
        };
        let s = self.str_of(&key, item)?;
        match parse_duration(&s) {
            Some(d) if !positive || !d.is_zero() => Some(d),
            _ => {
                let what = if positive { "greater than 0 " } else { "" };
                self.err(
                    item.span().start,
                    &key,
                    format!(
                        "{s:?} is not a duration {what}like \"250ms\", \"10s\", \"5m\", \"1h\""
                    ),
                );
                None
            }
        }
    }

    pub(crate) fn size(
        &mut self,
        t: &Table<'_, '_>,
        name: &str,
        default: u64,
        min: u64,
    ) -> Option<u64> {
        let Some((key, item)) = self.entry(t, name) else {
            return Some(default);
        };
        let parsed = match item.get_ref() {
            DeValue::Integer(i) => i.as_str().parse::<u64>().ok().filter(|_| i.radix() == 10),
            DeValue::String(s) => parse_size(s),
            _ => None,
        };
        match parsed {
            Some(n) if n >= min && n <= MAX_SIZE => Some(n),
            _ => {
                self.err(
                    item.span().start,
                    &key,
                    format!(
                        "{} is not a size from {min} bytes to 1GiB, like 65536, \"64KiB\" or \"1MiB\"",
                        shown(item.get_ref())
                    ),
                );
                None
            }
        }
    }

    pub(crate) fn int(
        &mut self,
        t: &Table<'_, '_>,
        name: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let Some((key, item)) = self.entry(t, name) else {
            return Some(default);
        };
        let parsed = match item.get_ref() {
            DeValue::Integer(i) if i.radix() == 10 => {
                i.as_str().replace('_', "").parse::<i64>().ok()
            }
            _ => None,
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.err(
                    item.span().start,
                    &key,
                    format!("must be an integer from {min} to {max}"),
                );
                None
            }
        }
    }

    pub(crate) fn nets(&mut self, t: &Table<'_, '_>, name: &str) -> Option<Vec<IpNet>> {
        let Some((key, item)) = self.entry(t, name) else {
            return Some(Vec::new());
        };
        let DeValue::Array(arr) = item.get_ref() else {
            self.err(item.span().start, &key, "must be an array of CIDR strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for v in arr.iter() {
            match v.get_ref() {
                DeValue::String(s) => match IpNet::parse(s) {
                    Some(n) => out.push(n),
                    None => {
                        self.err(
                            v.span().start,
                            &key,
                            format!("{s:?} is not a CIDR like \"10.0.0.0/8\""),
                        );
                        ok = false;
                    }
                },
                _ => {
                    self.err(v.span().start, &key, "must be an array of CIDR strings");
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    pub(crate) fn upstream_url(&mut self, key: &str, item: &Item<'_>) -> Option<Uri> {
        let s = self.str_of(key, item)?;
        match s.parse::<Uri>() {
            Ok(u)
                if u.scheme_str() == Some("http")
                    // No `user:password@`: hookseal never sends it, and `check` prints the URL.
                    && u.authority().is_some_and(|a| !a.as_str().contains('@'))
                    && u.path_and_query()
                        .is_none_or(|pq| pq.as_str() == "/" || pq.as_str().is_empty()) =>
            {
                Some(u)
            }
            _ => {
                self.err(
                    item.span().start,
                    key,
                    "must be an http://host:port url with no user:password@ and no path (the app on loopback)",
                );
                None
            }
        }
    }
}

/// A table with the context that reports its problems: what a scheme's option parser reads
/// through ([`OptionTable`]).
pub(crate) struct View<'c, 'a, 't, 'i> {
    cx: &'c mut Cx<'a>,
    t: Table<'t, 'i>,
}

impl<'a> Cx<'a> {
    /// `t` as a scheme's option parser sees it.
    pub(crate) fn view<'c, 't, 'i>(&'c mut self, t: &Table<'t, 'i>) -> View<'c, 'a, 't, 'i> {
        View {
            cx: self,
            t: Table {
                path: t.path.clone(),
                span_start: t.span_start,
                map: t.map,
            },
        }
    }
}

impl OptionTable for View<'_, '_, '_, '_> {
    fn path(&self) -> &str {
        &self.t.path
    }

    fn start(&self) -> usize {
        self.t.span_start
    }

    fn check_keys(&mut self, known: &[&str]) {
        self.cx.check_keys(&self.t, known);
    }

    fn opt_str(&mut self, name: &str) -> Option<(usize, String)> {
        self.cx.opt_str(&self.t, name)
    }

    fn subtable(&mut self, name: &str) -> Option<Box<dyn OptionTable + '_>> {
        let t = self.cx.subtable(&self.t, name)?;
        Some(Box::new(View {
            cx: &mut *self.cx,
            t,
        }))
    }

    fn err(&mut self, offset: usize, key: &str, message: String) {
        self.cx.err(offset, key, message);
    }
}

/// A config value as written, for messages about values that are never secret (durations,
/// sizes): strings quoted, other scalars as they are, tables and arrays by kind.
pub(crate) fn shown(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("{s:?}"),
        DeValue::Integer(i) => i.as_str().to_owned(),
        DeValue::Float(f) => f.as_str().to_owned(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(_) => "an array".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}
