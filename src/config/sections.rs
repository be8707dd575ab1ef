//! The top-level sections: `[listen]`, `[admin]`, `[limits]`, `[upstream]`, `[replay]`,
//! `[forwarding]`, and the whole file (`Cx::config`).

use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::walk::join;
use super::*;

impl Cx<'_> {
    pub(crate) fn config(&mut self, root: &DeTable<'_>) -> Option<Config> {
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

    pub(crate) fn listen(&mut self, t: Option<&Table<'_, '_>>) -> Option<Listen> {
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

    pub(crate) fn admin(&mut self, t: Option<&Table<'_, '_>>) -> Option<Admin> {
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

    pub(crate) fn limits(&mut self, t: Option<&Table<'_, '_>>) -> Option<Limits> {
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

    pub(crate) fn upstream(&mut self, t: &Table<'_, '_>) -> Option<Upstream> {
        self.check_keys(t, &["url", "connect_timeout", "timeout", "max_connections"]);
        let url = match self.entry(t, "url") {
            Some((key, item)) => self
                .upstream_url(&key, item)
                .and_then(|u| UpstreamUrl::new(&u)),
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

    pub(crate) fn replay(&mut self, t: Option<&Table<'_, '_>>) -> Option<Replay> {
        let defaults = Replay {
            store: StoreKind::Memory,
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
        // Whether the store is Redis; the URL joins it below.
        let redis = match self.opt_str(t, "store") {
            None => Some(false),
            Some((off, s)) => match s.as_str() {
                "memory" => Some(false),
                "redis" => Some(true),
                _ => {
                    self.err(off, "replay.store", "must be \"memory\" or \"redis\"");
                    None
                }
            },
        };
        let url = self.url_source(t, "replay.url").map(|(off, s)| {
            // Never echo the URL: it may hold a password.
            if !(s.starts_with("redis://") || s.starts_with("rediss://")) {
                self.err(off, "replay.url", "must start with redis:// or rediss://");
            }
            s
        });
        if redis == Some(true) && url.is_none() && !t.map.contains_key("url") {
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
        let store = match redis? {
            false => StoreKind::Memory,
            // Without a URL, `replay.url` was reported above.
            true => StoreKind::Redis { url: url? },
        };
        Some(Replay {
            store,
            capacity: capacity? as usize,
            on_store_error: on_store_error?,
            command_timeout: command_timeout?,
        })
    }

    pub(crate) fn forwarding(&mut self, t: Option<&Table<'_, '_>>) -> Option<Forwarding> {
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
}
