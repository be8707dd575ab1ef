//! `[queue]` and `[route.delivery]` (SPEC "Queued delivery"): where accepted requests wait,
//! and how a route delivers them.

use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeValue;

use super::{parse_size, Cx, Table};

/// `[queue]`: the spool every queued route shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub store: QueueStore,
    /// `store = "disk"`: the spool directory.
    pub path: PathBuf,
    /// `store = "redis"`: the Redis URL (may hold a password: never logged).
    pub url: Option<String>,
    /// Redis: entries a dead replica claimed are taken over after this.
    pub claim_after: Duration,
    pub max_bytes: u64,
    pub max_entries: u64,
    /// Whether the file has a `[queue]` table (else every value is a default).
    pub configured: bool,
}

/// `queue.store`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStore {
    Disk,
    Redis,
}

impl QueueStore {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStore::Disk => "disk",
            QueueStore::Redis => "redis",
        }
    }
}

/// `[route.delivery]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub mode: DeliveryMode,
    pub max_attempts: u32,
    pub max_age: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Attempts in flight toward the app.
    pub concurrency: u32,
    /// Attempts per second toward the app; 0 = unlimited.
    pub rate: u32,
    /// One attempt in flight at a time, in arrival order.
    pub ordered: bool,
}

/// `route.delivery.mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    Direct,
    Queued,
}

impl DeliveryMode {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Direct => "direct",
            DeliveryMode::Queued => "queued",
        }
    }
}

/// The default spool directory.
pub const DEFAULT_SPOOL_PATH: &str = "/var/lib/hookseal/spool";
const DEFAULT_CLAIM_AFTER: Duration = Duration::from_secs(30);
const DEFAULT_QUEUE_BYTES: u64 = 1 << 30;
const DEFAULT_QUEUE_ENTRIES: u64 = 1_000_000;
/// The largest `max_bytes` (1 TiB).
const MAX_QUEUE_BYTES: u64 = 1 << 40;

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            store: QueueStore::Disk,
            path: PathBuf::from(DEFAULT_SPOOL_PATH),
            url: None,
            claim_after: DEFAULT_CLAIM_AFTER,
            max_bytes: DEFAULT_QUEUE_BYTES,
            max_entries: DEFAULT_QUEUE_ENTRIES,
            configured: false,
        }
    }
}

impl Default for Delivery {
    /// The SPEC defaults (`mode = "direct"`).
    fn default() -> Delivery {
        let p = crate::queue::policy::Policy::default();
        Delivery {
            mode: DeliveryMode::Direct,
            max_attempts: p.max_attempts,
            max_age: p.max_age,
            backoff_initial: p.initial,
            backoff_max: p.max,
            concurrency: 16,
            rate: 0,
            ordered: false,
        }
    }
}

impl Delivery {
    /// Whether the route is queued.
    pub fn queued(&self) -> bool {
        self.mode == DeliveryMode::Queued
    }

    /// The retry policy of these settings.
    pub fn policy(&self) -> crate::queue::policy::Policy {
        crate::queue::policy::Policy {
            max_attempts: self.max_attempts,
            max_age: self.max_age,
            initial: self.backoff_initial,
            max: self.backoff_max,
        }
    }
}

/// The keys of `[queue]`.
pub(super) const QUEUE_KEYS: &[&str] = &[
    "store",
    "path",
    "url",
    "claim_after",
    "max_bytes",
    "max_entries",
];

/// The keys of `[route.delivery]`.
const DELIVERY_KEYS: &[&str] = &[
    "mode",
    "max_attempts",
    "max_age",
    "backoff",
    "concurrency",
    "rate",
    "ordered",
];

impl Cx<'_> {
    /// `[queue]`; defaults when absent.
    pub(super) fn queue(&mut self, t: Option<&Table<'_, '_>>) -> Option<Queue> {
        let d = Queue::default();
        let Some(t) = t else { return Some(d) };
        self.check_keys(t, QUEUE_KEYS);
        let store = match self.opt_str(t, "store") {
            None => Some(QueueStore::Disk),
            Some((_, s)) if s == "disk" => Some(QueueStore::Disk),
            Some((_, s)) if s == "redis" => Some(QueueStore::Redis),
            Some((off, _)) => {
                self.err(off, "queue.store", "must be \"disk\" or \"redis\"");
                None
            }
        };
        let path = match self.opt_str(t, "path") {
            Some((off, s)) if s.is_empty() => {
                self.err(off, "queue.path", "must not be empty");
                None
            }
            Some((_, s)) => Some(self.resolve(&s)),
            None => Some(d.path.clone()),
        };
        // A URL from a file keeps no trailing newline (`trim`), as before.
        let url = self
            .url_source(t, "queue.url")
            .map(|(off, u)| (off, u.trim().to_owned()));
        if let Some((off, u)) = &url {
            // Never echo the URL: it may hold a password.
            if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                self.err(*off, "queue.url", "must start with redis:// or rediss://");
            }
        }
        if store == Some(QueueStore::Redis) && url.is_none() && !t.map.contains_key("url") {
            self.err(t.span_start, "queue.url", "required with store = \"redis\"");
        }
        let claim_after = self.duration(t, "claim_after", d.claim_after, true);
        let max_bytes = self.queue_bytes(t);
        let max_entries = self.int(t, "max_entries", d.max_entries as i64, 1, 1 << 40);
        Some(Queue {
            store: store?,
            path: path?,
            url: url.map(|(_, u)| u),
            claim_after: claim_after?,
            max_bytes: max_bytes?,
            max_entries: max_entries? as u64,
            configured: true,
        })
    }

    /// `queue.max_bytes`: a size up to 1 TiB.
    fn queue_bytes(&mut self, t: &Table<'_, '_>) -> Option<u64> {
        let Some((key, item)) = self.entry(t, "max_bytes") else {
            return Some(DEFAULT_QUEUE_BYTES);
        };
        let parsed = match item.get_ref() {
            DeValue::Integer(i) => i.as_str().parse::<u64>().ok().filter(|_| i.radix() == 10),
            DeValue::String(s) => parse_size(s),
            _ => None,
        };
        match parsed {
            Some(n) if (1024..=MAX_QUEUE_BYTES).contains(&n) => Some(n),
            _ => {
                self.err(
                    item.span().start,
                    &key,
                    "must be a size from 1KiB to 1TiB, like \"512MiB\" or \"1GiB\"",
                );
                None
            }
        }
    }

    /// `[route.delivery]` of the route table `t`; defaults (direct) when absent.
    pub(super) fn delivery(&mut self, t: &Table<'_, '_>) -> Option<Delivery> {
        let d = Delivery::default();
        let Some(t) = self.subtable(t, "delivery") else {
            // A `delivery` that is not a table was reported by `subtable`.
            return (!t.map.contains_key("delivery")).then_some(d);
        };
        self.check_keys(&t, DELIVERY_KEYS);
        let p = t.path.clone();
        let mode = match self.opt_str(&t, "mode") {
            None => Some(DeliveryMode::Direct),
            Some((_, s)) if s == "direct" => Some(DeliveryMode::Direct),
            Some((_, s)) if s == "queued" => Some(DeliveryMode::Queued),
            Some((off, _)) => {
                self.err(
                    off,
                    &format!("{p}.mode"),
                    "must be \"direct\" or \"queued\"",
                );
                None
            }
        };
        let max_attempts = self.int(&t, "max_attempts", i64::from(d.max_attempts), 1, 1000);
        let max_age = self.duration(&t, "max_age", d.max_age, true);
        let (initial, max) = match self.subtable(&t, "backoff") {
            Some(b) => {
                self.check_keys(&b, &["initial", "max"]);
                (
                    self.duration(&b, "initial", d.backoff_initial, true),
                    self.duration(&b, "max", d.backoff_max, true),
                )
            }
            None if t.map.contains_key("backoff") => (None, None),
            None => (Some(d.backoff_initial), Some(d.backoff_max)),
        };
        if let (Some(i), Some(m)) = (initial, max) {
            if i > m {
                let off = t
                    .map
                    .get("backoff")
                    .map_or(t.span_start, |b| b.span().start);
                self.err(
                    off,
                    &format!("{p}.backoff"),
                    "initial must not be longer than max",
                );
            }
        }
        let concurrency = self.int(&t, "concurrency", i64::from(d.concurrency), 1, 4096);
        let rate = self.int(&t, "rate", 0, 0, 1_000_000);
        let ordered = self.opt_bool(&t, "ordered");
        Some(Delivery {
            mode: mode?,
            max_attempts: max_attempts? as u32,
            max_age: max_age?,
            backoff_initial: initial?,
            backoff_max: max?,
            concurrency: concurrency? as u32,
            rate: rate? as u32,
            ordered: ordered?.is_some_and(|(_, b)| b),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    const BASE: &str = "[upstream]\nurl = \"http://127.0.0.1:8080\"\n";
    const ROUTE: &str = "[[route]]\nname = \"r\"\npath = \"/h\"\nscheme = \"none\"\n";

    fn parse(text: &str) -> Result<Config, String> {
        let env = |name: &str| (name == "QURL").then(|| "redis://:pw@127.0.0.1:6379/1".to_owned());
        Config::parse(Path::new("/etc/hookseal/h.toml"), text, &env).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_spec_ones() {
        let c = parse(&format!("{BASE}{ROUTE}")).unwrap();
        assert_eq!(c.queue, Queue::default());
        assert!(!c.queue.configured);
        assert_eq!(c.queue.path, PathBuf::from("/var/lib/hookseal/spool"));
        let d = c.routes[0].delivery;
        assert_eq!(d, Delivery::default());
        assert_eq!(d.mode, DeliveryMode::Direct);
        assert_eq!(
            (d.max_attempts, d.max_age, d.concurrency, d.rate, d.ordered),
            (12, Duration::from_secs(86400), 16, 0, false)
        );
        assert_eq!(
            (d.backoff_initial, d.backoff_max),
            (Duration::from_secs(1), Duration::from_secs(600))
        );
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(&format!(
            "{BASE}[queue]\nstore = \"redis\"\nurl = {{ env = \"QURL\" }}\npath = \"spool\"\n\
             claim_after = \"45s\"\nmax_bytes = \"2GiB\"\nmax_entries = 10\n\
             {ROUTE}[route.delivery]\nmode = \"queued\"\nmax_attempts = 3\nmax_age = \"1h\"\n\
             backoff = {{ initial = \"2s\", max = \"1m\" }}\nconcurrency = 4\nrate = 10\nordered = true\n"
        ))
        .unwrap();
        let q = &c.queue;
        assert_eq!(q.store, QueueStore::Redis);
        assert_eq!(q.url.as_deref(), Some("redis://:pw@127.0.0.1:6379/1"));
        assert_eq!(
            q.path,
            PathBuf::from("/etc/hookseal/spool"),
            "relative to the config file"
        );
        assert_eq!(q.claim_after, Duration::from_secs(45));
        assert_eq!((q.max_bytes, q.max_entries), (2 << 30, 10));
        let d = c.routes[0].delivery;
        assert!(d.queued());
        assert_eq!(
            (d.max_attempts, d.max_age, d.concurrency, d.rate, d.ordered),
            (3, Duration::from_secs(3600), 4, 10, true)
        );
        assert_eq!(d.policy().initial, Duration::from_secs(2));
        assert_eq!(d.policy().max, Duration::from_secs(60));
    }

    #[test]
    fn mistakes_are_reported_with_their_key() {
        for (text, needle) in [
            (
                "[queue]\nstore = \"s3\"\n",
                "queue.store: must be \"disk\" or \"redis\"",
            ),
            (
                "[queue]\nstore = \"redis\"\n",
                "queue.url: required with store = \"redis\"",
            ),
            (
                "[queue]\nurl = \"http://x\"\n",
                "queue.url: must start with redis://",
            ),
            (
                "[queue]\nmax_bytes = \"5\"\n",
                "queue.max_bytes: must be a size",
            ),
            (
                "[queue]\nmax_entries = 0\n",
                "queue.max_entries: must be an integer",
            ),
            ("[queue]\nclaim_after = \"0s\"\n", "queue.claim_after"),
            ("[queue]\nstor = \"disk\"\n", "did you mean `store`"),
        ] {
            let e = parse(&format!("{BASE}{text}{ROUTE}")).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        for (text, needle) in [
            (
                "mode = \"later\"\n",
                "route[0].delivery.mode: must be \"direct\" or \"queued\"",
            ),
            ("max_attempts = 0\n", "route[0].delivery.max_attempts"),
            ("concurrency = 0\n", "route[0].delivery.concurrency"),
            ("rate = -1\n", "route[0].delivery.rate"),
            (
                "ordered = 1\n",
                "route[0].delivery.ordered: must be true or false",
            ),
            (
                "backoff = { initial = \"1m\", max = \"1s\" }\n",
                "route[0].delivery.backoff: initial must not be longer than max",
            ),
            (
                "backoff = { min = \"1s\" }\n",
                "route[0].delivery.backoff.min: unknown key",
            ),
            ("retries = 3\n", "route[0].delivery.retries: unknown key"),
        ] {
            let e = parse(&format!("{BASE}{ROUTE}[route.delivery]\n{text}")).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let e = parse(&format!("{BASE}{ROUTE}delivery = \"queued\"\n")).unwrap_err();
        assert!(e.contains("route[0].delivery: must be a table"), "{e}");
    }
}
