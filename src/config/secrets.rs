//! Secret sources (`value`, `env`, `file`) of a route's `secrets` and of `replay.url`, and
//! the bounded reading of secret files.

use std::collections::HashMap;
use std::path::Path;

use toml::de::DeValue;

use super::{Cx, Table};
use crate::verify::{SchemeName, SecretMaterial};

/// What an `env`/`file` source reads as under `check --syntax-only`: not empty, and shaped
/// like a Redis URL so that `replay.url`'s scheme check passes. Never served.
pub(super) const UNREAD: &[u8] = b"redis://hookseal-syntax-only-unread";

impl Cx<'_> {
    /// `scheme`: `None` when the route's scheme is unknown, `Some(None)` for `"none"`.
    pub(crate) fn secrets(
        &mut self,
        t: &Table<'_, '_>,
        scheme: Option<Option<SchemeName>>,
    ) -> Option<Secrets> {
        let p = &t.path;
        let Some((key, item)) = self.entry(t, "secrets") else {
            let required = |s: SchemeName| s.def().secrets == crate::verify::SecretUse::Required;
            if scheme.is_some_and(|s| s.is_some_and(required)) {
                self.err(
                    t.span_start,
                    &format!("{p}.secrets"),
                    "missing (at least one secret)",
                );
                return None;
            }
            return Some(Secrets {
                material: Vec::new(),
                offsets: Vec::new(),
            });
        };
        if scheme == Some(None) {
            self.err(item.span().start, &key, "scheme \"none\" takes no secrets");
            return None;
        }
        let DeValue::Array(arr) = item.get_ref() else {
            self.err(
                item.span().start,
                &key,
                "must be an array of { id, value|env|file } tables",
            );
            return None;
        };
        if arr.is_empty() {
            self.err(item.span().start, &key, "must list at least one secret");
            return None;
        }
        let mut out = Secrets {
            material: Vec::new(),
            offsets: Vec::new(),
        };
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut ok = true;
        for (i, v) in arr.iter().enumerate() {
            let DeValue::Table(map) = v.get_ref() else {
                self.err(
                    v.span().start,
                    &key,
                    "each secret is a table { id, value|env|file }",
                );
                ok = false;
                continue;
            };
            let st = Table {
                path: format!("{key}[{i}]"),
                span_start: v.span().start,
                map,
            };
            self.check_keys(&st, &["id", "value", "env", "file"]);
            let id = self
                .opt_str(&st, "id")
                .map_or_else(|| i.to_string(), |(_, s)| s);
            if let Some(prev) = ids.insert(id.clone(), i) {
                self.err(
                    st.span_start,
                    &st.path,
                    format!("duplicate secret id {id:?} (also #{prev})"),
                );
                ok = false;
            }
            let sources = ["value", "env", "file"]
                .iter()
                .filter_map(|k| self.opt_str(&st, k).map(|(off, s)| (*k, off, s)))
                .collect::<Vec<_>>();
            let [(kind, off, src)] = sources.as_slice() else {
                self.err(
                    st.span_start,
                    &st.path,
                    "give exactly one of value, env, file",
                );
                ok = false;
                continue;
            };
            let bytes = match *kind {
                "value" => Some(src.as_bytes().to_vec()),
                _ => self.read_source(&st.path, kind, *off, src, "secret"),
            };
            match bytes {
                Some(bytes) if !bytes.is_empty() => {
                    out.material.push(SecretMaterial { id, bytes });
                    out.offsets.push(v.span().start);
                }
                Some(_) => {
                    self.err(*off, &st.path, "secret is empty");
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Reads an `env` or `file` source (`kind`), trimming a file's trailing newlines; reports a
    /// missing, unreadable or empty one at `off` as `<path>.<kind>`. `what` names the value in
    /// messages; the content itself never appears in them.
    pub(crate) fn read_source(
        &mut self,
        path: &str,
        kind: &str,
        off: usize,
        src: &str,
        what: &str,
    ) -> Option<Vec<u8>> {
        let key = format!("{path}.{kind}");
        if self.syntax_only {
            return Some(UNREAD.to_vec());
        }
        if kind == "env" {
            return match (self.env)(src) {
                Some(v) if !v.is_empty() => Some(v.into_bytes()),
                _ => {
                    self.err(
                        off,
                        &key,
                        format!("environment variable {src} is not set or empty"),
                    );
                    None
                }
            };
        }
        let file = self.resolve(src);
        self.watched.push(file.clone());
        match read_small_file(&file, MAX_SECRET_FILE_BYTES) {
            Ok(mut b) => {
                while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                    b.pop();
                }
                if b.is_empty() {
                    self.err(
                        off,
                        &key,
                        format!("{what} file {} is empty", file.display()),
                    );
                    None
                } else {
                    Some(b)
                }
            }
            Err(e) => {
                self.err(
                    off,
                    &key,
                    format!("cannot read {what} file {}: {e}", file.display()),
                );
                None
            }
        }
    }

    /// `replay.url` / `queue.url` (`what`): a string, or `{ env = "NAME" }` / `{ file = "PATH" }`
    /// so that a URL holding a password can come from a Secret. Returns `(offset, url)`.
    pub(crate) fn url_source(&mut self, t: &Table<'_, '_>, what: &str) -> Option<(usize, String)> {
        let (key, item) = self.entry(t, "url")?;
        let off = item.span().start;
        match item.get_ref() {
            DeValue::String(s) => Some((off, s.to_string())),
            DeValue::Table(map) => {
                let st = Table {
                    path: key.clone(),
                    span_start: off,
                    map,
                };
                self.check_keys(&st, &["env", "file"]);
                let sources = ["env", "file"]
                    .iter()
                    .filter_map(|k| self.opt_str(&st, k).map(|(o, s)| (*k, o, s)))
                    .collect::<Vec<_>>();
                let [(kind, o, src)] = sources.as_slice() else {
                    self.err(off, &key, "give exactly one of env, file");
                    return None;
                };
                let bytes = self.read_source(&key, kind, *o, src, what)?;
                match String::from_utf8(bytes) {
                    Ok(u) => Some((*o, u)),
                    Err(_) => {
                        self.err(*o, &key, "is not UTF-8");
                        None
                    }
                }
            }
            _ => {
                self.err(
                    off,
                    &key,
                    "must be a string, { env = \"NAME\" } or { file = \"PATH\" }",
                );
                None
            }
        }
    }
}

/// Most bytes of a secret or `replay.url` file.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a regular file of at most `limit` bytes. Anything else (a FIFO, which would block
/// the load forever, a device such as `/dev/zero`, a directory) or a larger file is an error,
/// found without reading it. Symlinks are followed (Kubernetes mounts Secrets through them).
pub(super) fn read_small_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let too_large = || Error::new(ErrorKind::InvalidData, format!("larger than {limit} bytes"));
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(out)
}

/// Resolved secrets of one route with the source offsets, for error lines.
pub(crate) struct Secrets {
    pub(crate) material: Vec<SecretMaterial>,
    pub(crate) offsets: Vec<usize>,
}
