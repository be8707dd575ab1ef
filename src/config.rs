//! Configuration: the TOML file of SPEC.md, parsed with spans, validated in full, secrets resolved.
//!
//! Loading walks the spanned TOML tree by hand instead of deriving serde structs, so that every
//! problem — an unknown key, a bad duration, an overlapping route, a secret that does not resolve
//! — is collected and reported together as `file:line: key: message`, not just the first one.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, Uri};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

mod observe;
pub use observe::{DebugConfig, TracingConfig, DEFAULT_REJECTIONS, MAX_REJECTIONS};

use crate::route::{normalize_path, normalize_prefix, PathMatch};
mod queue;
pub use queue::{Delivery, DeliveryMode, Queue, QueueStore, DEFAULT_SPOOL_PATH};

mod engines;
use crate::verify::{
    Encoding, HmacAlgorithm, HmacOptions, Scheme, SchemeName, SchemeOptions, SecretMaterial,
    DEFAULT_TOLERANCE, NO_SCHEME,
};

/// The validated configuration. Secrets are resolved and every scheme is ready to verify.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from.
    pub source: PathBuf,
    pub listen: Listen,
    pub admin: Admin,
    pub limits: Limits,
    pub upstream: Upstream,
    pub replay: Replay,
    pub forwarding: Forwarding,
    /// `[queue]` (defaults when absent).
    pub queue: Queue,
    pub routes: Vec<RouteConfig>,
    /// `[debug]`
    pub debug: DebugConfig,
    /// `[tracing]`; `None`: off.
    pub tracing: Option<TracingConfig>,
    /// Every file the config depends on (secrets, certificates), for reload watching.
    pub watched_files: Vec<PathBuf>,
}

/// `[listen]`
#[derive(Debug, Clone)]
pub struct Listen {
    pub address: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// The certificate, key and client CA of `tls`, read and checked when the config loaded.
    pub server_tls: Option<crate::tls::ServerTls>,
    /// Peers whose `X-Forwarded-For` is believed (`[listen].trusted_proxies`).
    pub trusted_proxies: Vec<IpNet>,
}

/// `[listen].tls`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// `[admin]`
#[derive(Debug, Clone)]
pub struct Admin {
    pub address: SocketAddr,
}

/// `[limits]`
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: u64,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    pub drain_delay: Duration,
    /// A connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    /// Request body bytes buffered at once, all requests together (README "Slow and abusive
    /// clients").
    pub max_buffered_bytes: u64,
    /// Concurrent HTTP/2 streams a client may open on one connection.
    pub max_concurrent_streams: u32,
    /// A response the client has not taken more of for this long is abandoned.
    pub write_timeout: Duration,
}

/// `[upstream]`
#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: Uri,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Open connections to the app, all upstreams together.
    pub max_connections: usize,
}

/// `[replay]`
#[derive(Debug, Clone)]
pub struct Replay {
    pub store: StoreKind,
    pub url: Option<String>,
    pub capacity: usize,
    pub on_store_error: OnStoreError,
    pub command_timeout: Duration,
}

/// `[forwarding]`
#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    /// Proxy headers of [`crate::headers::POLICY`] passed to the app as the client sent them.
    pub keep: Vec<http::HeaderName>,
}

/// `replay.store`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Redis,
}

impl StoreKind {
    /// The config word (`memory`, `redis`).
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Redis => "redis",
        }
    }
}

/// `replay.on_store_error`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Fail closed: 503 `replay_store_unavailable`.
    Reject,
    /// Forward without dedupe when the store cannot be reached.
    Allow,
}

/// `route.mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Observe,
}

impl Mode {
    /// The config word (`enforce`, `observe`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Observe => "observe",
        }
    }
}

/// One `[[route]]`, validated.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub path: PathMatch,
    pub methods: Vec<Method>,
    /// The route's verifier; `None` for `scheme = "none"` (forwarded unverified).
    pub scheme: Option<Scheme>,
    /// What the scheme was built from besides the secrets (`hookseal sign --route` uses it).
    pub options: SchemeOptions,
    /// Secret ids in config order (`x-hookseal-key`, metric label).
    pub secret_ids: Vec<String>,
    pub tolerance: Duration,
    pub dedupe: bool,
    /// `replay_capacity`: this route's memory replay partition, when set.
    pub replay_capacity: Option<usize>,
    pub max_body_bytes: u64,
    pub upstream: Option<Uri>,
    pub mode: Mode,
    pub allow_from: Vec<IpNet>,
    /// `[route.delivery]`
    pub delivery: Delivery,
}

/// An IPv4 or IPv6 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, 0 when the problem is not tied to a line (file unreadable).
    pub line: usize,
    pub key: String,
    pub message: String,
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// Where environment variables come from: the process, or a map in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

// === impl Config ===

impl Config {
    /// How many keys route `r` may hold in the memory replay store: its `replay_capacity`, or
    /// an equal share of what `[replay] capacity` leaves after the routes that set one, among
    /// the other routes that dedupe.
    pub fn replay_capacity(&self, r: &RouteConfig) -> usize {
        if let Some(n) = r.replay_capacity {
            return n;
        }
        let deduping = self.routes.iter().filter(|r| r.dedupe);
        let (set, unset) = deduping.fold((0usize, 0usize), |(set, unset), r| {
            match r.replay_capacity {
                Some(n) => (set.saturating_add(n), unset),
                None => (set, unset + 1),
            }
        });
        (self.replay.capacity.saturating_sub(set) / unset.max(1)).max(1)
    }

    /// Loads, validates and resolves the config at `path`, reading env secrets from the process.
    ///
    /// # Errors
    /// Every problem found, each with file, line and key.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// As [`Config::load`], with an injectable environment.
    ///
    /// # Errors
    /// Every problem found, each with file, line and key.
    pub fn load_with_env(path: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: 0,
                key: String::new(),
                message: format!("cannot read config file: {e}"),
            }])
        })?;
        Self::parse(path, &text, env)
    }

    /// Parses config text; `path` is used for messages and to resolve relative secret files.
    ///
    /// # Errors
    /// Every problem found, each with file, line and key.
    pub fn parse(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigErrors> {
        Self::parse_with(path, text, env, false)
    }

    /// `hookseal check --syntax-only`: validates the file at `path` as [`Config::load`] does,
    /// except that no `env`/`file` source (secrets, `replay.url`) and no TLS file is read, so
    /// it runs in CI without the secrets. Problems that only those files and values can show
    /// (a `whsec_` secret that is not base64, an expired certificate) are not found.
    ///
    /// # Errors
    /// Every problem found, each with file, line and key.
    pub fn check_syntax(path: &Path) -> Result<(), ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: 0,
                key: String::new(),
                message: format!("cannot read config file: {e}"),
            }])
        })?;
        match Self::parse_with(path, &text, &|_| None, true) {
            // No error, but a route whose scheme needs the unread secrets was left out.
            Err(e) if e.0.is_empty() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    fn parse_with(
        path: &Path,
        text: &str,
        env: EnvLookup<'_>,
        syntax_only: bool,
    ) -> Result<Config, ConfigErrors> {
        let mut cx = Cx {
            file: path,
            text,
            env,
            errors: Vec::new(),
            watched: Vec::new(),
            syntax_only,
        };
        let (doc, parse_errors) = DeTable::parse_recoverable(text);
        for e in parse_errors {
            let line = e.span().map_or(0, |s| cx.line(s.start));
            cx.errors.push(ConfigError {
                file: path.to_owned(),
                line,
                key: String::new(),
                message: format!("TOML syntax: {}", e.message().trim()),
            });
        }
        if !cx.errors.is_empty() {
            return Err(ConfigErrors(cx.errors));
        }
        let config = cx.config(doc.get_ref());
        if cx.errors.is_empty() {
            if let Some(config) = config {
                return Ok(config);
            }
        }
        cx.errors.sort_by_key(|e| e.line);
        Err(ConfigErrors(cx.errors))
    }
}

// === impl IpNet ===

impl IpNet {
    /// Parses `"10.0.0.0/8"`, `"2001:db8::/32"` or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Option<IpNet> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = s.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

// === impl ConfigErrors ===

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A duration in the config's own notation, in the largest unit that holds it whole (`0s`,
/// `250ms`, `90s`, `5m`, `1h`): what [`parse_duration`] reads back. Used in logs and `check`.
/// Sub-millisecond parts (never from config) are shown as fractional seconds.
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() % 1_000_000 != 0 {
        return format!("{}s", d.as_secs_f64());
    }
    let ms = d.as_millis();
    match ms {
        0 => "0s".to_owned(),
        _ if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ if ms % 1000 == 0 => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"1h"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.len() > 12 {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// Parses `"64KiB"`, `"1MiB"`, `"1GiB"`, `"512B"` or a plain number of bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.len() > 15 {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

// === the walker ===

type Item<'i> = Spanned<DeValue<'i>>;

/// Loading context: the source text for line numbers, the environment, collected errors.
struct Cx<'a> {
    file: &'a Path,
    text: &'a str,
    env: EnvLookup<'a>,
    errors: Vec<ConfigError>,
    watched: Vec<PathBuf>,
    /// `check --syntax-only`: `env`/`file` sources and TLS files are not read.
    syntax_only: bool,
}

/// What an `env`/`file` source reads as under `check --syntax-only`: not empty, and shaped
/// like a Redis URL so that `replay.url`'s scheme check passes. Never served.
const UNREAD: &[u8] = b"redis://hookseal-syntax-only-unread";

/// A table being read: which keys were consumed, so leftovers are reported as unknown.
struct Table<'t, 'i> {
    path: String,
    span_start: usize,
    map: &'t DeTable<'i>,
}

impl<'a> Cx<'a> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err(&mut self, offset: usize, key: &str, message: impl Into<String>) {
        let line = self.line(offset);
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn config(&mut self, root: &DeTable<'_>) -> Option<Config> {
        let root = Table {
            path: String::new(),
            span_start: 0,
            map: root,
        };
        self.check_keys(
            &root,
            &[
                "listen",
                "admin",
                "limits",
                "upstream",
                "replay",
                "forwarding",
                "queue",
                "route",
                "debug",
                "tracing",
            ],
        );

        let t = self.subtable(&root, "listen");
        let listen = self.listen(t.as_ref());
        let t = self.subtable(&root, "admin");
        let admin = self.admin(t.as_ref());
        let t = self.subtable(&root, "limits");
        let limits = self.limits(t.as_ref());
        let upstream = match self.subtable(&root, "upstream") {
            Some(t) => self.upstream(&t),
            None => {
                self.err(0, "upstream", "missing section [upstream] (the app's url)");
                None
            }
        };
        let t = self.subtable(&root, "replay");
        let replay = self.replay(t.as_ref());
        let t = self.subtable(&root, "forwarding");
        let forwarding = self.forwarding(t.as_ref());
        let t = self.subtable(&root, "queue");
        let queue = self.queue(t.as_ref());
        let routes = self.routes(&root, limits.as_ref(), replay.as_ref());
        let t = self.subtable(&root, "debug");
        let debug = self.debug(t.as_ref());
        let t = self.subtable(&root, "tracing");
        let tracing = self.tracing(t.as_ref());

        if let (Some(l), Some(routes)) = (&limits, &routes) {
            for r in routes
                .iter()
                .filter(|r| r.max_body_bytes > l.max_buffered_bytes)
            {
                self.err(
                    0,
                    "limits.max_buffered_bytes",
                    format!("smaller than route {}'s max_body_bytes", r.name),
                );
            }
        }
        if let (Some(l), Some(a)) = (&listen, &admin) {
            if l.address == a.address {
                self.err(0, "admin.address", "must differ from listen.address");
            }
        }
        let watched = std::mem::take(&mut self.watched);
        Some(Config {
            source: self.file.to_owned(),
            listen: listen?,
            admin: admin?,
            limits: limits?,
            upstream: upstream?,
            replay: replay?,
            forwarding: forwarding?,
            queue: queue?,
            routes: routes?,
            debug: debug?,
            tracing: tracing?,
            watched_files: watched,
        })
    }

    // --- sections ---

    fn listen(&mut self, t: Option<&Table<'_, '_>>) -> Option<Listen> {
        let Some(t) = t else {
            return Some(Listen {
                address: DEFAULT_LISTEN.parse().ok()?,
                tls: None,
                server_tls: None,
                trusted_proxies: Vec::new(),
            });
        };
        self.check_keys(t, &["address", "tls", "trusted_proxies"]);
        let address = self.socket_addr(t, "address", DEFAULT_LISTEN);
        let tls = match self.subtable(t, "tls") {
            None => Some(None),
            Some(tls) => {
                self.check_keys(&tls, &["cert", "key", "client_ca"]);
                let cert = self.required_path(&tls, "cert");
                let key = self.required_path(&tls, "key");
                let client_ca = self.opt_path(&tls, "client_ca");
                match (cert, key) {
                    (Some(cert), Some(key)) => {
                        self.watched.push(cert.clone());
                        self.watched.push(key.clone());
                        if let Some(ca) = &client_ca {
                            self.watched.push(ca.clone());
                        }
                        let files = TlsFiles {
                            cert,
                            key,
                            client_ca,
                        };
                        // --syntax-only: the files are not read.
                        let loaded = (!self.syntax_only)
                            .then(|| crate::tls::load(&files, std::time::SystemTime::now()));
                        match loaded {
                            None => Some(None),
                            Some(Ok(server)) => Some(Some((files, server))),
                            Some(Err(problems)) => {
                                for p in problems {
                                    let name = p.key.as_str();
                                    let off = tls
                                        .map
                                        .get(name)
                                        .map_or(tls.span_start, |v| v.span().start);
                                    self.err(off, &join(&tls.path, name), p.message);
                                }
                                None
                            }
                        }
                    }
                    _ => None,
                }
            }
        };
        let (tls, server_tls) = match tls {
            Some(Some((files, server))) => (Some(Some(files)), Some(server)),
            Some(None) => (Some(None), None),
            None => (None, None),
        };
        let trusted_proxies = self.nets(t, "trusted_proxies");
        Some(Listen {
            address: address?,
            tls: tls?,
            server_tls,
            trusted_proxies: trusted_proxies?,
        })
    }

    fn admin(&mut self, t: Option<&Table<'_, '_>>) -> Option<Admin> {
        let Some(t) = t else {
            return Some(Admin {
                address: DEFAULT_ADMIN.parse().ok()?,
            });
        };
        self.check_keys(t, &["address"]);
        Some(Admin {
            address: self.socket_addr(t, "address", DEFAULT_ADMIN)?,
        })
    }

    fn limits(&mut self, t: Option<&Table<'_, '_>>) -> Option<Limits> {
        let defaults = Limits {
            max_body_bytes: DEFAULT_MAX_BODY,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            drain_delay: Duration::ZERO,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED,
            max_concurrent_streams: DEFAULT_MAX_STREAMS,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
        };
        let Some(t) = t else { return Some(defaults) };
        self.check_keys(
            t,
            &[
                "max_body_bytes",
                "header_timeout",
                "body_timeout",
                "max_connections",
                "shutdown_grace",
                "drain_delay",
                "idle_timeout",
                "max_headers",
                "max_header_bytes",
                "max_buffered_bytes",
                "max_concurrent_streams",
                "write_timeout",
            ],
        );
        let max_body_bytes = self.size(t, "max_body_bytes", defaults.max_body_bytes, 1);
        let header_timeout = self.duration(t, "header_timeout", defaults.header_timeout, true);
        let body_timeout = self.duration(t, "body_timeout", defaults.body_timeout, true);
        let max_connections = self.int(
            t,
            "max_connections",
            defaults.max_connections as i64,
            1,
            1 << 20,
        );
        let shutdown_grace = self.duration(t, "shutdown_grace", defaults.shutdown_grace, false);
        let drain_delay = self.duration(t, "drain_delay", defaults.drain_delay, false);
        let idle_timeout = self.duration(t, "idle_timeout", defaults.idle_timeout, true);
        let max_headers = self.int(t, "max_headers", defaults.max_headers as i64, 1, 10_000);
        let max_header_bytes = self.size(
            t,
            "max_header_bytes",
            defaults.max_header_bytes as u64,
            MIN_HEADER_BYTES as u64,
        );
        let max_buffered_bytes = self.size(t, "max_buffered_bytes", defaults.max_buffered_bytes, 1);
        if let (Some(budget), Some(body)) = (max_buffered_bytes, max_body_bytes) {
            if budget < body {
                let off = self
                    .entry(t, "max_buffered_bytes")
                    .map_or(t.span_start, |(_, i)| i.span().start);
                self.err(
                    off,
                    "limits.max_buffered_bytes",
                    "must be at least limits.max_body_bytes",
                );
            }
        }
        let max_concurrent_streams = self.int(
            t,
            "max_concurrent_streams",
            i64::from(defaults.max_concurrent_streams),
            1,
            1000,
        );
        let write_timeout = self.duration(t, "write_timeout", defaults.write_timeout, true);
        Some(Limits {
            max_body_bytes: max_body_bytes?,
            header_timeout: header_timeout?,
            body_timeout: body_timeout?,
            max_connections: max_connections? as usize,
            shutdown_grace: shutdown_grace?,
            drain_delay: drain_delay?,
            idle_timeout: idle_timeout?,
            max_headers: max_headers? as usize,
            max_header_bytes: usize::try_from(max_header_bytes?).ok()?,
            max_buffered_bytes: max_buffered_bytes?,
            max_concurrent_streams: max_concurrent_streams? as u32,
            write_timeout: write_timeout?,
        })
    }

    fn upstream(&mut self, t: &Table<'_, '_>) -> Option<Upstream> {
        self.check_keys(t, &["url", "connect_timeout", "timeout", "max_connections"]);
        let url = match self.entry(t, "url") {
            Some((key, item)) => self.upstream_url(&key, item),
            None => {
                self.err(
                    t.span_start,
                    "upstream.url",
                    "missing (the app's http:// url)",
                );
                None
            }
        };
        let connect_timeout = self.duration(t, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, true);
        let timeout = self.duration(t, "timeout", DEFAULT_UPSTREAM_TIMEOUT, true);
        let max_connections = self.int(
            t,
            "max_connections",
            DEFAULT_UPSTREAM_CONNECTIONS as i64,
            1,
            1 << 16,
        );
        Some(Upstream {
            url: url?,
            connect_timeout: connect_timeout?,
            timeout: timeout?,
            max_connections: max_connections? as usize,
        })
    }

    fn replay(&mut self, t: Option<&Table<'_, '_>>) -> Option<Replay> {
        let defaults = Replay {
            store: StoreKind::Memory,
            url: None,
            capacity: DEFAULT_REPLAY_CAPACITY,
            on_store_error: OnStoreError::Reject,
            command_timeout: DEFAULT_STORE_TIMEOUT,
        };
        let Some(t) = t else { return Some(defaults) };
        self.check_keys(
            t,
            &[
                "store",
                "url",
                "capacity",
                "on_store_error",
                "command_timeout",
            ],
        );
        let store = match self.opt_str(t, "store") {
            None => Some(StoreKind::Memory),
            Some((off, s)) => match s.as_str() {
                "memory" => Some(StoreKind::Memory),
                "redis" => Some(StoreKind::Redis),
                _ => {
                    self.err(off, "replay.store", "must be \"memory\" or \"redis\"");
                    None
                }
            },
        };
        let url = self.replay_url(t).map(|(off, s)| {
            // Never echo the URL: it may hold a password.
            if !(s.starts_with("redis://") || s.starts_with("rediss://")) {
                self.err(off, "replay.url", "must start with redis:// or rediss://");
            }
            s
        });
        if store == Some(StoreKind::Redis) && url.is_none() && !t.map.contains_key("url") {
            self.err(
                t.span_start,
                "replay.url",
                "required with store = \"redis\"",
            );
        }
        let capacity = self.int(t, "capacity", defaults.capacity as i64, 1, 1 << 32);
        let on_store_error = match self.opt_str(t, "on_store_error") {
            None => Some(OnStoreError::Reject),
            Some((off, s)) => match s.as_str() {
                "reject" => Some(OnStoreError::Reject),
                "allow" => Some(OnStoreError::Allow),
                _ => {
                    self.err(
                        off,
                        "replay.on_store_error",
                        "must be \"reject\" or \"allow\"",
                    );
                    None
                }
            },
        };
        let command_timeout = self.duration(t, "command_timeout", defaults.command_timeout, true);
        Some(Replay {
            store: store?,
            url,
            capacity: capacity? as usize,
            on_store_error: on_store_error?,
            command_timeout: command_timeout?,
        })
    }

    fn forwarding(&mut self, t: Option<&Table<'_, '_>>) -> Option<Forwarding> {
        let Some(t) = t else {
            return Some(Forwarding::default());
        };
        self.check_keys(t, &["keep"]);
        let Some((key, item)) = self.entry(t, "keep") else {
            return Some(Forwarding::default());
        };
        let DeValue::Array(arr) = item.get_ref() else {
            self.err(item.span().start, &key, "must be an array of header names");
            return None;
        };
        let mut keep = Vec::new();
        let mut ok = true;
        for v in arr.iter() {
            let known = match v.get_ref() {
                DeValue::String(s) => crate::headers::POLICY
                    .iter()
                    .find(|h| h.as_str().eq_ignore_ascii_case(s)),
                _ => None,
            };
            match known {
                Some(h) => keep.push(h.clone()),
                None => {
                    let names: Vec<&str> =
                        crate::headers::POLICY.iter().map(|h| h.as_str()).collect();
                    self.err(
                        v.span().start,
                        &key,
                        format!(
                            "must name headers of the forwarding policy: {}",
                            names.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(Forwarding { keep })
    }

    fn routes(
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
    fn route(
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
                "hmac",
                "public_url",
                "allow_from",
                "delivery",
            ]
            .into_iter()
            .chain(engines::ROUTE_KEYS.iter().copied())
            .collect::<Vec<_>>(),
        );
        let p = &t.path;
        let name = match self.opt_str(t, "name") {
            Some((off, n)) => {
                let valid = !n.is_empty()
                    && n.len() <= 64
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    && n != UNMATCHED_ROUTE;
                if !valid {
                    self.err(
                        off,
                        &format!("{p}.name"),
                        "must be 1-64 characters of [A-Za-z0-9._-] (and not \"_unmatched\")",
                    );
                    None
                } else {
                    Some(n)
                }
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
            *ident = Some((off, n.clone(), pm.clone(), ms.clone()));
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
        let replay_capacity = match self.entry(t, "replay_capacity") {
            None => Some(None),
            Some((_, item)) => self
                .int(t, "replay_capacity", 1, 1, 1 << 32)
                .map(|n| Some((item.span().start, n as usize))),
        };
        let max_body_bytes = self.size(t, "max_body_bytes", default_body, 1);
        let upstream = match self.entry(t, "upstream") {
            None => Some(None),
            Some((key, item)) => self.upstream_url(&key, item).map(Some),
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
        let hmac = self.hmac_options(t);
        let public_url = self.opt_str(t, "public_url").map(|(_, s)| s);
        let secrets = self.secrets(t, scheme_name.map(|(_, n)| n));
        let engine = self.engine_options(t, scheme_name.and_then(|(_, n)| n));

        let (scheme_off, scheme_name) = scheme_name?;
        let (engine, engine_unread) = engine?;
        let hmac = hmac?;
        // The `[route.hmac]` table: required by, and only allowed with, a scheme that reads it.
        let takes_hmac = scheme_name.is_some_and(|n| n.def().options.contains(&"hmac"));
        if let (true, None, Some(n)) = (takes_hmac, &hmac, scheme_name) {
            self.err(
                scheme_off,
                &format!("{p}.hmac"),
                format!("scheme \"{}\" needs a [route.hmac] table", n.as_str()),
            );
            return None;
        }
        if !takes_hmac && hmac.is_some() {
            self.err(
                scheme_off,
                &format!("{p}.hmac"),
                "only allowed with scheme = \"hmac\"",
            );
            return None;
        }
        let secrets = secrets?;
        let options = SchemeOptions {
            hmac,
            tolerance: tolerance?,
            engine,
            public_url,
        };
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
        let dedupe = match dedupe? {
            Some((off, true)) if !has_message_id => {
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
            None => has_message_id,
        };
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
            replay_capacity,
            max_body_bytes: max_body_bytes?,
            upstream: upstream?,
            mode: mode?,
            allow_from: allow_from?,
            delivery: delivery?,
        })
    }

    fn route_path(&mut self, off: usize, key: &str, s: &str, prefix: bool) -> Option<PathMatch> {
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

    fn methods(&mut self, t: &Table<'_, '_>) -> Option<Vec<Method>> {
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

    fn hmac_options(&mut self, t: &Table<'_, '_>) -> Option<Option<HmacOptions>> {
        let Some(h) = self.subtable(t, "hmac") else {
            return Some(None);
        };
        self.check_keys(
            &h,
            &[
                "header",
                "algorithm",
                "encoding",
                "prefix",
                "timestamp_header",
                "id_header",
                "signed_payload",
            ],
        );
        let header = match self.opt_str(&h, "header") {
            Some((off, s)) => {
                if http::HeaderName::from_bytes(s.as_bytes()).is_err() {
                    self.err(
                        off,
                        &format!("{}.header", h.path),
                        "not a valid header name",
                    );
                    None
                } else {
                    Some(s)
                }
            }
            None => {
                self.err(h.span_start, &format!("{}.header", h.path), "missing");
                None
            }
        };
        let algorithm = match self.opt_str(&h, "algorithm") {
            None => Some(HmacAlgorithm::Sha256),
            Some((off, s)) => match s.as_str() {
                "sha1" => Some(HmacAlgorithm::Sha1),
                "sha256" => Some(HmacAlgorithm::Sha256),
                "sha512" => Some(HmacAlgorithm::Sha512),
                _ => {
                    self.err(
                        off,
                        &format!("{}.algorithm", h.path),
                        "sha1, sha256 or sha512",
                    );
                    None
                }
            },
        };
        let encoding = match self.opt_str(&h, "encoding") {
            None => Some(Encoding::Hex),
            Some((off, s)) => match s.as_str() {
                "hex" => Some(Encoding::Hex),
                "base64" => Some(Encoding::Base64),
                "base64url" => Some(Encoding::Base64Url),
                _ => {
                    self.err(
                        off,
                        &format!("{}.encoding", h.path),
                        "hex, base64 or base64url",
                    );
                    None
                }
            },
        };
        let header_opt = |cx: &mut Self, k: &str| {
            cx.opt_str(&h, k).map(|(off, s)| {
                if http::HeaderName::from_bytes(s.as_bytes()).is_err() {
                    cx.err(off, &format!("{}.{k}", h.path), "not a valid header name");
                }
                s
            })
        };
        let timestamp_header = header_opt(self, "timestamp_header");
        let id_header = header_opt(self, "id_header");
        let prefix = self
            .opt_str(&h, "prefix")
            .map(|(_, s)| s)
            .unwrap_or_default();
        let signed_payload = self
            .opt_str(&h, "signed_payload")
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

    /// `scheme`: `None` when the route's scheme is unknown, `Some(None)` for `"none"`.
    fn secrets(
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
    fn read_source(
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

    /// `replay.url`: a string, or `{ env = "NAME" }` / `{ file = "PATH" }` so that a URL holding
    /// a password can come from a Secret. Returns `(offset, url)`.
    fn replay_url(&mut self, t: &Table<'_, '_>) -> Option<(usize, String)> {
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
                let bytes = self.read_source(&key, kind, *o, src, "replay.url")?;
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

    // --- typed accessors; each reports its own error and returns None on failure ---

    fn check_keys(&mut self, t: &Table<'_, '_>, known: &[&str]) {
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

    fn entry<'t, 'i>(&mut self, t: &Table<'t, 'i>, name: &str) -> Option<(String, &'t Item<'i>)> {
        t.map.get(name).map(|v| (join(&t.path, name), v))
    }

    fn subtable<'t, 'i>(&mut self, t: &Table<'t, 'i>, name: &str) -> Option<Table<'t, 'i>> {
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

    fn str_of(&mut self, key: &str, item: &Item<'_>) -> Option<String> {
        match item.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.err(item.span().start, key, "must be a string");
                None
            }
        }
    }

    /// An optional string: `(offset, value)`. A wrong type is reported and reads as absent.
    fn opt_str(&mut self, t: &Table<'_, '_>, name: &str) -> Option<(usize, String)> {
        let (key, item) = self.entry(t, name)?;
        self.str_of(&key, item).map(|s| (item.span().start, s))
    }

    fn opt_bool(&mut self, t: &Table<'_, '_>, name: &str) -> Option<Option<(usize, bool)>> {
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

    fn required_path(&mut self, t: &Table<'_, '_>, name: &str) -> Option<PathBuf> {
        match self.opt_str(t, name) {
            Some((_, s)) => Some(self.resolve(&s)),
            None => {
                self.err(t.span_start, &join(&t.path, name), "missing");
                None
            }
        }
    }

    fn opt_path(&mut self, t: &Table<'_, '_>, name: &str) -> Option<PathBuf> {
        self.opt_str(t, name).map(|(_, s)| self.resolve(&s))
    }

    /// Relative paths are relative to the config file's directory.
    fn resolve(&self, s: &str) -> PathBuf {
        let p = Path::new(s);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.file.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    fn socket_addr(&mut self, t: &Table<'_, '_>, name: &str, default: &str) -> Option<SocketAddr> {
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

    fn duration(
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

    fn size(&mut self, t: &Table<'_, '_>, name: &str, default: u64, min: u64) -> Option<u64> {
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

    fn int(
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

    fn nets(&mut self, t: &Table<'_, '_>, name: &str) -> Option<Vec<IpNet>> {
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

    fn upstream_url(&mut self, key: &str, item: &Item<'_>) -> Option<Uri> {
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

/// Most bytes of a secret or `replay.url` file.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a regular file of at most `limit` bytes. Anything else (a FIFO, which would block
/// the load forever, a device such as `/dev/zero`, a directory) or a larger file is an error,
/// found without reading it. Symlinks are followed (Kubernetes mounts Secrets through them).
fn read_small_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
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
struct Secrets {
    material: Vec<SecretMaterial>,
    offsets: Vec<usize>,
}

/// A config value as written, for messages about values that are never secret (durations,
/// sizes): strings quoted, other scalars as they are, tables and arrays by kind.
fn shown(v: &DeValue<'_>) -> String {
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

/// The known key closest to an unknown one, when it is close enough to be a typo: at most one
/// edit for short keys, two from 6 characters on (Levenshtein distance; keys are short).
fn nearest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    if unknown.len() > 64 {
        return None;
    }
    let limit = if unknown.chars().count() >= 6 { 2 } else { 1 };
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The `route` label of requests no route matched.
pub const UNMATCHED_ROUTE: &str = "_unmatched";

const DEFAULT_LISTEN: &str = "0.0.0.0:8443";
const DEFAULT_ADMIN: &str = "127.0.0.1:9090";
const DEFAULT_MAX_BODY: u64 = 1 << 20;
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_MAX_CONNECTIONS: usize = 4096;
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_HEADERS: usize = 100;
const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
const MIN_HEADER_BYTES: usize = 8192;
/// 64 MiB: half of the chart's 128 MiB memory limit (README "Slow and abusive clients").
const DEFAULT_MAX_BUFFERED: u64 = 64 << 20;
/// Webhook senders open a handful of streams at a time; browsers' 100 is not needed here.
const DEFAULT_MAX_STREAMS: u32 = 64;
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_UPSTREAM_CONNECTIONS: usize = 256;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_REPLAY_CAPACITY: usize = 1_000_000;
const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(250);
const MAX_SIZE: u64 = 1 << 30;

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn durations_print_in_config_notation_and_read_back() {
        for text in ["0s", "250ms", "1500ms", "90s", "5m", "1h", "25h"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(fmt_duration(d), text);
        }
        assert_eq!(fmt_duration(Duration::from_secs(60)), "1m");
        assert_eq!(fmt_duration(Duration::from_micros(1500)), "0.0015s");
    }

    #[test]
    fn unknown_keys_suggest_a_close_known_one() {
        let known = ["tolerance", "dedupe", "mode", "path", "path_prefix"];
        assert_eq!(nearest("tolerence", &known), Some("tolerance"));
        assert_eq!(nearest("tollerance", &known), Some("tolerance"));
        assert_eq!(nearest("dedup", &known), Some("dedupe"));
        assert_eq!(nearest("mdoe", &known), None, "two edits on a short key");
        assert_eq!(nearest("colour", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
