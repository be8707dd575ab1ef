//! Configuration: the TOML file of SPEC.md, parsed with spans, validated in full, secrets resolved.
//!
//! Loading walks the spanned TOML tree by hand instead of deriving serde structs, so that every
//! problem — an unknown key, a bad duration, an overlapping route, a secret that does not resolve
//! — is collected and reported together as `file:line: key: message`, not just the first one.

//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | the validated types, their defaults, the entry points ([`Config::load`]) |
//! | `walk.rs` | the walker: [`Cx`] (context, errors), [`Table`], the typed accessors |
//! | `sections.rs` | the top-level sections and the whole file |
//! | `routes.rs` | `[[route]]` and the checks across routes |
//! | `secrets.rs` | secret sources and secret-file reading |
//! | `units.rs` | durations and sizes |
//! | `error.rs` | [`ConfigError`], [`ConfigErrors`], the "did you mean" hint |

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::Authority;
use http::{Method, Uri};
use toml::de::DeTable;

use crate::route::PathMatch;
use crate::verify::{Scheme, SchemeOptions};

mod engines;
mod error;
mod events;
mod observe;
mod queue;
mod routes;
mod secrets;
mod sections;
mod units;
mod walk;

/// `[listen].tls`: the files, which [`crate::tls::load`] reads and checks.
pub use crate::tls::TlsFiles;
pub use error::{ConfigError, ConfigErrors};
pub use observe::{DebugConfig, TracingConfig, DEFAULT_REJECTIONS, MAX_REJECTIONS};
pub use queue::{Delivery, DeliveryMode, Queue, QueueStore, DEFAULT_SPOOL_PATH};
pub use units::{fmt_duration, parse_duration, parse_size};

use error::nearest;
use walk::{Cx, Table};

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
    pub url: UpstreamUrl,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Open connections to the app, all upstreams together.
    pub max_connections: usize,
}

/// `[replay]`
#[derive(Debug, Clone)]
pub struct Replay {
    pub store: StoreKind,
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

/// `replay.store`, with `replay.url` for Redis: a Redis store without a URL cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Redis {
        /// `redis://` or `rediss://`; may hold a password, so it is never logged or printed.
        url: String,
    },
}

impl StoreKind {
    /// The config word (`memory`, `redis`).
    pub fn as_str(&self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Redis { .. } => "redis",
        }
    }

    /// The Redis URL, for a Redis store.
    pub fn url(&self) -> Option<&str> {
        match self {
            StoreKind::Memory => None,
            StoreKind::Redis { url } => Some(url),
        }
    }
}

/// `upstream.url` (and a route's `upstream`): the app's `http://host:port`, parsed once; no
/// user info, no path. Printed as `http://host:port/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl(Authority);

impl UpstreamUrl {
    /// The `http://` URL's authority, when `uri` is one (the walker has checked the rest).
    fn new(uri: &Uri) -> Option<UpstreamUrl> {
        uri.authority().cloned().map(UpstreamUrl)
    }

    /// `host:port`, what requests to the app are addressed to.
    pub fn authority(&self) -> &Authority {
        &self.0
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("http://{}/", self.0))
    }
}

/// A route's `name`: 1-64 characters of `[A-Za-z0-9._-]`, not [`UNMATCHED_ROUTE`]. Safe as a
/// header value and a metric label.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteName(String);

impl RouteName {
    /// `s`, if it is a valid route name.
    pub fn parse(s: &str) -> Option<RouteName> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s != UNMATCHED_ROUTE;
        valid.then(|| RouteName(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for RouteName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl PartialEq<str> for RouteName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for RouteName {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
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
    pub name: RouteName,
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
    /// `event`, `events`, `dedupe_key`, `dedupe_window` (src/config/events.rs).
    pub events: crate::events::RouteEvents,
    /// `replay_capacity`: this route's memory replay partition, when set.
    pub replay_capacity: Option<usize>,
    pub max_body_bytes: u64,
    pub upstream: Option<UpstreamUrl>,
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
        let text = read_file(path)?;
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
        let text = read_file(path)?;
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

/// The config file's text; a file that cannot be read is the one problem.
fn read_file(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: 0,
            key: String::new(),
            message: format!("cannot read config file: {e}"),
        }])
    })
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
