//! Prometheus metrics: the families of SPEC.md on a `Registry` the process owns.
//!
//! Per-route handles ([`RouteMetrics`]) are resolved once when a config is loaded, so the
//! request path only increments; label values are route names from config and fixed codes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::error::Reason;

/// The `result` label of `hookseal_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Forwarded,
    Rejected,
    Duplicate,
    Observed,
    /// A verified request of a type the route's `events` list leaves out: answered 200.
    Filtered,
    /// Stored for queued delivery and answered 202.
    Queued,
    /// A provider handshake hookseal answered itself (SPEC "Handshakes").
    Handshake,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Forwarded,
        Outcome::Rejected,
        Outcome::Duplicate,
        Outcome::Observed,
        Outcome::Filtered,
        Outcome::Queued,
        Outcome::Handshake,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Rejected => "rejected",
            Outcome::Duplicate => "duplicate",
            Outcome::Observed => "observed",
            Outcome::Filtered => "filtered",
            Outcome::Queued => "queued",
            Outcome::Handshake => "handshake",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `class` label of `hookseal_upstream_responses_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamClass {
    S2xx,
    S3xx,
    S4xx,
    S5xx,
    Error,
    Timeout,
}

impl UpstreamClass {
    const ALL: [UpstreamClass; 6] = [
        UpstreamClass::S2xx,
        UpstreamClass::S3xx,
        UpstreamClass::S4xx,
        UpstreamClass::S5xx,
        UpstreamClass::Error,
        UpstreamClass::Timeout,
    ];

    /// The class of an upstream status.
    pub fn of(status: http::StatusCode) -> UpstreamClass {
        match status.as_u16() {
            200..=299 => UpstreamClass::S2xx,
            300..=399 => UpstreamClass::S3xx,
            400..=499 => UpstreamClass::S4xx,
            _ => UpstreamClass::S5xx,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            UpstreamClass::S2xx => "2xx",
            UpstreamClass::S3xx => "3xx",
            UpstreamClass::S4xx => "4xx",
            UpstreamClass::S5xx => "5xx",
            UpstreamClass::Error => "error",
            UpstreamClass::Timeout => "timeout",
        }
    }
}

/// A metric family with a `route` label, for [`Metrics::retain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    Requests,
    RequestDuration,
    VerifyDuration,
    UpstreamDuration,
    UpstreamResponses,
    BodyBytes,
    SignatureKey,
    Skew,
    Tolerance,
    Events,
}

/// One label set of a route-labelled family.
type Series = (Family, Vec<String>);

/// Buckets of `hookseal_request_duration_seconds` and `hookseal_upstream_duration_seconds`:
/// 1 ms to 15 s (senders such as Svix give up after 15 s).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
];

/// Buckets of `hookseal_verify_duration_seconds`: an HMAC over a webhook body takes
/// microseconds, an Ed25519 check tens of them.
pub const VERIFY_BUCKETS: [f64; 14] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1,
];

/// Buckets of `hookseal_timestamp_skew_seconds` (the absolute difference between the sender's
/// signed timestamp and our clock), dense around the usual 5 minute tolerance (240 s = 80 % of
/// it) and out to an hour.
pub const SKEW_BUCKETS: [f64; 14] = [
    0.0, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 240.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];

/// All metric families of the process.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    verify_duration: HistogramVec,
    upstream_duration: HistogramVec,
    upstream_responses: IntCounterVec,
    body_bytes: HistogramVec,
    signature_key: IntCounterVec,
    skew: HistogramVec,
    tolerance: GaugeVec,
    events: IntCounterVec,
    replay_errors: IntCounterVec,
    /// Unexpired replay entries evicted because the memory store was full.
    pub replay_evictions: IntCounter,
    /// `hookseal_inflight_requests`
    pub inflight: IntGauge,
    /// `hookseal_connections`
    pub connections: IntGauge,
    /// `hookseal_buffered_bytes`: request body bytes reserved from `limits.max_buffered_bytes`.
    pub buffered_bytes: IntGauge,
    /// `hookseal_upstream_connections`: open connections to the app.
    pub upstream_connections: IntGauge,
    /// `hookseal_replay_entries`: ids held by the memory replay store, all routes together.
    pub replay_entries: IntGauge,
    /// `hookseal_responses_abandoned_total`: connections dropped by `limits.write_timeout`.
    pub responses_abandoned: IntCounter,
    /// `hookseal_tls_handshake_errors_total`
    pub tls_handshake_errors: IntCounter,
    reloads: IntCounterVec,
    /// `hookseal_tls_certificate_reloads_total{result}`
    pub cert_reloads: IntCounterVec,
    /// `hookseal_config_last_reload_successful`
    reload_ok: IntGauge,
    /// `hookseal_config_last_reload_success_timestamp_seconds`
    reload_ok_at: Gauge,
    /// `hookseal_tls_certificate_expiry_timestamp_seconds{cert}`
    cert_expiry: GaugeVec,
    /// Handles for requests no route matched.
    pub unmatched: Arc<RouteMetrics>,
    /// The queued-delivery families (SPEC "Queued delivery").
    pub queue: crate::queue::metrics::QueueMetrics,
    /// The route-labelled series the config in force uses (see [`Metrics::retain`]).
    live: Arc<Mutex<HashSet<Series>>>,
}

/// One route's pre-resolved handles.
#[derive(Debug)]
pub struct RouteMetrics {
    requests: Vec<Option<IntCounter>>,
    /// `hookseal_request_duration_seconds{route}`
    pub request_duration: Histogram,
    /// `hookseal_verify_duration_seconds{route,scheme}`
    pub verify_duration: Option<Histogram>,
    /// `hookseal_upstream_duration_seconds{route}`
    pub upstream_duration: Histogram,
    upstream_responses: Vec<IntCounter>,
    /// `hookseal_request_body_bytes{route}`
    pub body_bytes: Histogram,
    /// `hookseal_signature_key_total{route,key}`, indexed like the route's secrets.
    pub signature_key: Vec<IntCounter>,
    /// `hookseal_timestamp_skew_seconds{route}`
    pub skew: Histogram,
    /// `hookseal_events_total{route,event}` ([`Metrics::route_events`]).
    pub events: EventCounters,
    /// Every label set these handles belong to.
    series: Vec<Series>,
}

impl Metrics {
    /// Creates every family on a fresh registry.
    ///
    /// # Panics
    /// Never in practice: registration fails only on duplicate or malformed names, which are
    /// constants here and covered by the unit tests.
    #[allow(clippy::expect_used)]
    pub fn new() -> Metrics {
        Self::try_new().expect("metric definitions are valid")
    }

    fn try_new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let latency = LATENCY_BUCKETS.to_vec();
        let requests = IntCounterVec::new(
            Opts::new(
                "hookseal_requests_total",
                "Requests by route, result and reason.",
            ),
            &["route", "result", "reason"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "hookseal_request_duration_seconds",
                "Time from request head to response head, by route.",
            )
            .buckets(latency.clone()),
            &["route"],
        )?;
        let verify_duration = HistogramVec::new(
            HistogramOpts::new(
                "hookseal_verify_duration_seconds",
                "Time spent verifying the signature, by route and scheme.",
            )
            .buckets(VERIFY_BUCKETS.to_vec()),
            &["route", "scheme"],
        )?;
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "hookseal_upstream_duration_seconds",
                "Time until the upstream answered with a response head, by route.",
            )
            .buckets(latency),
            &["route"],
        )?;
        let upstream_responses = IntCounterVec::new(
            Opts::new(
                "hookseal_upstream_responses_total",
                "Upstream answers by status class.",
            ),
            &["route", "class"],
        )?;
        let body_bytes = HistogramVec::new(
            HistogramOpts::new(
                "hookseal_request_body_bytes",
                "Request body sizes, by route.",
            )
            .buckets(vec![
                256.0,
                1024.0,
                4096.0,
                16384.0,
                65536.0,
                262_144.0,
                1_048_576.0,
                4_194_304.0,
                16_777_216.0,
            ]),
            &["route"],
        )?;
        let signature_key = IntCounterVec::new(
            Opts::new(
                "hookseal_signature_key_total",
                "Verified requests by the secret that matched: shows when a key is unused.",
            ),
            &["route", "key"],
        )?;
        let skew = HistogramVec::new(
            HistogramOpts::new(
                "hookseal_timestamp_skew_seconds",
                "Absolute difference between the sender's signed timestamp and our clock, \
                 for verified requests, by route.",
            )
            .buckets(SKEW_BUCKETS.to_vec()),
            &["route"],
        )?;
        let tolerance = GaugeVec::new(
            Opts::new(
                "hookseal_timestamp_tolerance_seconds",
                "The timestamp window of each verifying route, to compare the skew with.",
            ),
            &["route"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "hookseal_events_total",
                "Verified requests by route and event type (a listed type or _other), \
                 filtered ones included.",
            ),
            &["route", "event"],
        )?;
        let replay_errors = IntCounterVec::new(
            Opts::new(
                "hookseal_replay_store_errors_total",
                "Replay store failures by store.",
            ),
            &["store"],
        )?;
        let replay_evictions = IntCounter::new(
            "hookseal_replay_evictions_total",
            "Unexpired message ids evicted because the memory replay store was full.",
        )?;
        let inflight = IntGauge::new(
            "hookseal_inflight_requests",
            "Requests being handled right now.",
        )?;
        let connections = IntGauge::new("hookseal_connections", "Open client connections.")?;
        let buffered_bytes = IntGauge::new(
            "hookseal_buffered_bytes",
            "Request body bytes buffered (reserved from limits.max_buffered_bytes).",
        )?;
        let upstream_connections = IntGauge::new(
            "hookseal_upstream_connections",
            "Open connections to the app, busy and idle.",
        )?;
        let replay_entries = IntGauge::new(
            "hookseal_replay_entries",
            "Message ids held by the memory replay store, all routes together (updated every second; 0 with Redis).",
        )?;
        let responses_abandoned = IntCounter::new(
            "hookseal_responses_abandoned_total",
            "Client connections dropped because a response was not read within limits.write_timeout.",
        )?;
        let tls_handshake_errors = IntCounter::new(
            "hookseal_tls_handshake_errors_total",
            "TLS handshakes that failed or timed out.",
        )?;
        let reloads = IntCounterVec::new(
            Opts::new("hookseal_config_reloads_total", "Config reloads by result."),
            &["result"],
        )?;
        let cert_reloads = IntCounterVec::new(
            Opts::new(
                "hookseal_tls_certificate_reloads_total",
                "TLS certificate reloads by result.",
            ),
            &["result"],
        )?;
        let reload_ok = IntGauge::new(
            "hookseal_config_last_reload_successful",
            "1 if the config in force came from the last load or reload attempt, 0 if that failed.",
        )?;
        let reload_ok_at = Gauge::new(
            "hookseal_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load or reload.",
        )?;
        let cert_expiry = GaugeVec::new(
            Opts::new(
                "hookseal_tls_certificate_expiry_timestamp_seconds",
                "notAfter of the certificate in force (unix seconds): cert=\"listener\" is the \
                 listener's, cert=\"client_ca\" the earliest of the client CA file.",
            ),
            &["cert"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("hookseal_build_info", "Build information; always 1."),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for r in ["ok", "error"] {
            reloads.with_label_values(&[r]);
            cert_reloads.with_label_values(&[r]);
        }

        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(verify_duration.clone()))?;
        registry.register(Box::new(upstream_duration.clone()))?;
        registry.register(Box::new(upstream_responses.clone()))?;
        registry.register(Box::new(body_bytes.clone()))?;
        registry.register(Box::new(signature_key.clone()))?;
        registry.register(Box::new(skew.clone()))?;
        registry.register(Box::new(tolerance.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(replay_errors.clone()))?;
        registry.register(Box::new(replay_evictions.clone()))?;
        registry.register(Box::new(inflight.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(buffered_bytes.clone()))?;
        registry.register(Box::new(upstream_connections.clone()))?;
        registry.register(Box::new(replay_entries.clone()))?;
        registry.register(Box::new(responses_abandoned.clone()))?;
        registry.register(Box::new(tls_handshake_errors.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(cert_reloads.clone()))?;
        registry.register(Box::new(reload_ok.clone()))?;
        registry.register(Box::new(reload_ok_at.clone()))?;
        registry.register(Box::new(cert_expiry.clone()))?;
        registry.register(Box::new(build_info))?;
        let queue = crate::queue::metrics::QueueMetrics::new(&registry)?;
        registry.register(Box::new(crate::fetch::failures().clone()))?;
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, ...
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        let mut m = Metrics {
            registry,
            requests,
            request_duration,
            verify_duration,
            upstream_duration,
            upstream_responses,
            body_bytes,
            signature_key,
            skew,
            tolerance,
            events,
            replay_errors,
            replay_evictions,
            inflight,
            connections,
            buffered_bytes,
            upstream_connections,
            replay_entries,
            responses_abandoned,
            tls_handshake_errors,
            reloads,
            cert_reloads,
            reload_ok,
            reload_ok_at,
            cert_expiry,
            unmatched: Arc::new(RouteMetrics::placeholder()),
            queue,
            live: Arc::new(Mutex::new(HashSet::new())),
        };
        m.unmatched = Arc::new(m.route(crate::config::UNMATCHED_ROUTE, None, &[], false, None));
        Ok(m)
    }

    /// Exports a family defined elsewhere (the trace exporter's counters); a second
    /// registration of the same family is ignored.
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) {
        let _ = self.registry.register(c);
    }

    /// Resolves the handles of one route. `scheme` is None for routes that don't verify;
    /// `observe`: the route is in observe mode (only then are `result="observed"` series made);
    /// `tolerance`: the timestamp window of a verifying route.
    pub fn route(
        &self,
        name: &str,
        scheme: Option<&str>,
        key_ids: &[String],
        observe: bool,
        tolerance: Option<std::time::Duration>,
    ) -> RouteMetrics {
        self.route_for(name, scheme, key_ids, observe, tolerance, false)
    }

    /// [`Metrics::route`] of a route that is `queued` (`[route.delivery] mode = "queued"`):
    /// it has `result="queued"` and the `queue_*` rejection series.
    pub fn route_for(
        &self,
        name: &str,
        scheme: Option<&str>,
        key_ids: &[String],
        observe: bool,
        tolerance: Option<std::time::Duration>,
        queued: bool,
    ) -> RouteMetrics {
        let unmatched = name == crate::config::UNMATCHED_ROUTE;
        let mut series = Vec::new();
        let mut label = |family: Family, values: &[&str]| {
            series.push((family, values.iter().map(|v| (*v).to_owned()).collect()));
        };
        let mut requests = vec![None; Outcome::ALL.len() * Reason::ALL.len()];
        let def = scheme
            .and_then(crate::verify::SchemeName::parse)
            .map(crate::verify::SchemeName::def);
        for outcome in Outcome::ALL {
            for reason in Reason::ALL {
                let fits = meaningful(outcome, reason, unmatched, def, observe);
                if fits_queue(fits, outcome, reason, observe, queued) {
                    let values = [name, outcome.as_str(), reason.as_str()];
                    label(Family::Requests, &values);
                    requests[outcome.index() * Reason::ALL.len() + reason.index()] =
                        Some(self.requests.with_label_values(&values));
                }
            }
        }
        label(Family::RequestDuration, &[name]);
        let verify_duration = scheme.map(|s| {
            label(Family::VerifyDuration, &[name, s]);
            self.verify_duration.with_label_values(&[name, s])
        });
        let upstream = !unmatched;
        if upstream {
            label(Family::UpstreamDuration, &[name]);
            label(Family::BodyBytes, &[name]);
        }
        let upstream_responses = UpstreamClass::ALL
            .iter()
            .filter(|_| upstream)
            .map(|c| {
                label(Family::UpstreamResponses, &[name, c.as_str()]);
                self.upstream_responses
                    .with_label_values(&[name, c.as_str()])
            })
            .collect();
        let signature_key = key_ids
            .iter()
            .filter(|_| scheme.is_some())
            .map(|k| {
                label(Family::SignatureKey, &[name, k]);
                self.signature_key.with_label_values(&[name, k])
            })
            .collect();
        if scheme.is_some() {
            label(Family::Skew, &[name]);
        }
        if let (Some(_), Some(t)) = (scheme, tolerance) {
            label(Family::Tolerance, &[name]);
            self.tolerance
                .with_label_values(&[name])
                .set(t.as_secs_f64());
        }
        RouteMetrics {
            requests,
            request_duration: self.request_duration.with_label_values(&[name]),
            verify_duration,
            // Detached handles where the family does not apply (the unmatched route reads no
            // body and has no upstream; a route that doesn't verify has no timestamps).
            upstream_duration: if upstream {
                self.upstream_duration.with_label_values(&[name])
            } else {
                detached_histogram()
            },
            upstream_responses,
            body_bytes: if upstream {
                self.body_bytes.with_label_values(&[name])
            } else {
                detached_histogram()
            },
            signature_key,
            skew: if scheme.is_some() {
                self.skew.with_label_values(&[name])
            } else {
                detached_histogram()
            },
            events: EventCounters::default(),
            series,
        }
    }

    /// The event handles of route `name` that reads event types: `events_total` for each type
    /// of `listed` and `_other` (with a list), or for the first
    /// [`crate::events::DISCOVERED_LABELS`] types seen (without one); and, with a list outside
    /// observe mode, the `result="filtered"` series.
    pub fn route_events(
        &self,
        r: &mut RouteMetrics,
        name: &str,
        listed: Option<&[String]>,
        observe: bool,
    ) {
        let mut fixed = Vec::new();
        let mut add = |label: &str| {
            fixed.push((
                label.to_owned(),
                self.events.with_label_values(&[name, label]),
            ));
        };
        if let Some(list) = listed {
            list.iter().for_each(|t| add(t));
            if !observe {
                let values = [name, Outcome::Filtered.as_str(), Reason::Ok.as_str()];
                r.series.push((
                    Family::Requests,
                    values.iter().map(|v| (*v).to_owned()).collect(),
                ));
                let i = Outcome::Filtered.index() * Reason::ALL.len() + Reason::Ok.index();
                if let Some(slot) = r.requests.get_mut(i) {
                    *slot = Some(self.requests.with_label_values(&values));
                }
            }
        }
        add(crate::events::OTHER);
        r.events = EventCounters {
            route: name.to_owned(),
            fixed,
            discover: listed.is_none().then(|| {
                Arc::new(Discovered {
                    family: self.events.clone(),
                    live: Arc::clone(&self.live),
                    seen: Mutex::new(Vec::new()),
                })
            }),
        };
    }

    /// Makes the route-labelled series exactly those of `routes` (plus `_unmatched`): called
    /// with a freshly built config's handles, it drops the series of routes, keys, schemes and
    /// modes the config no longer has, so reloads cannot grow the label sets without bound.
    /// Requests still finishing under the old config count into detached handles.
    pub fn retain<'a>(&self, routes: impl IntoIterator<Item = &'a RouteMetrics>) {
        let mut keep: HashSet<Series> = self.unmatched.series.iter().cloned().collect();
        for r in routes {
            keep.extend(r.series.iter().cloned());
            keep.extend(r.events.series());
        }
        let mut live = match self.live.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (family, values) in live.difference(&keep) {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            // A series that is already gone is fine.
            let _ = match family {
                Family::Requests => self.requests.remove_label_values(&values),
                Family::RequestDuration => self.request_duration.remove_label_values(&values),
                Family::VerifyDuration => self.verify_duration.remove_label_values(&values),
                Family::UpstreamDuration => self.upstream_duration.remove_label_values(&values),
                Family::UpstreamResponses => self.upstream_responses.remove_label_values(&values),
                Family::BodyBytes => self.body_bytes.remove_label_values(&values),
                Family::SignatureKey => self.signature_key.remove_label_values(&values),
                Family::Skew => self.skew.remove_label_values(&values),
                Family::Tolerance => self.tolerance.remove_label_values(&values),
                Family::Events => self.events.remove_label_values(&values),
            };
        }
        *live = keep;
    }

    /// `hookseal_replay_store_errors_total{store}`
    pub fn replay_error(&self, store: &str) -> IntCounter {
        self.replay_errors.with_label_values(&[store])
    }

    /// `hookseal_config_reloads_total{result}`, and `hookseal_config_last_reload_successful`
    /// (0 after a failed reload until one succeeds) with its timestamp.
    pub fn reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
        if ok {
            self.config_applied();
        } else {
            self.reload_ok.set(0);
        }
    }

    /// A config was loaded and put in force (at start, or by a reload).
    pub fn config_applied(&self) {
        self.reload_ok.set(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.reload_ok_at.set(now);
    }

    /// `hookseal_tls_certificate_expiry_timestamp_seconds{cert}` from the TLS setup in force
    /// (`client_ca` only while a client CA is configured).
    pub fn tls_in_force(&self, tls: &crate::tls::ServerTls) {
        self.cert_expiry
            .with_label_values(&["listener"])
            .set(unix_seconds(tls.not_after));
        match tls.client_ca_not_after {
            Some(t) => self
                .cert_expiry
                .with_label_values(&["client_ca"])
                .set(unix_seconds(t)),
            None => {
                // Not there is fine.
                let _ = self.cert_expiry.remove_label_values(&["client_ca"]);
            }
        }
    }

    /// The registry's contents in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a family that fails to encode is skipped.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Seconds since the epoch (negative before it).
fn unix_seconds(t: std::time::SystemTime) -> f64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// A histogram in no registry: observations go nowhere.
fn detached_histogram() -> Histogram {
    #[allow(clippy::expect_used)]
    Histogram::with_opts(HistogramOpts::new("detached", "not exported")).expect("valid histogram")
}

/// One route's `hookseal_events_total` handles: fixed labels (the `events` list and
/// `_other`), and for a route without a list the types seen so far, up to a cap.
#[derive(Debug, Default)]
pub struct EventCounters {
    route: String,
    fixed: Vec<(String, IntCounter)>,
    discover: Option<Arc<Discovered>>,
}

#[derive(Debug)]
struct Discovered {
    family: IntCounterVec,
    live: Arc<Mutex<HashSet<Series>>>,
    seen: Mutex<Vec<(String, IntCounter)>>,
}

impl EventCounters {
    /// The counter of event type `event` (`None`: the request had none, counted `_other`).
    /// Empty handles (a route that reads no type) count nothing.
    pub fn counter(&self, event: Option<&[u8]>) -> Option<IntCounter> {
        let other = || {
            self.fixed
                .iter()
                .find(|(l, _)| l == crate::events::OTHER)
                .map(|(_, c)| c.clone())
        };
        let Some(event) = event else {
            return other();
        };
        if let Some((_, c)) = self.fixed.iter().find(|(l, _)| l.as_bytes() == event) {
            return Some(c.clone());
        }
        let Some(d) = &self.discover else {
            return other();
        };
        let Ok(label) = std::str::from_utf8(event) else {
            return other();
        };
        let mut seen = d.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = seen.iter().find(|(l, _)| l == label) {
            return Some(c.clone());
        }
        if seen.len() >= crate::events::DISCOVERED_LABELS {
            return other();
        }
        let c = d.family.with_label_values(&[&self.route, label]);
        d.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((Family::Events, vec![self.route.clone(), label.to_owned()]));
        seen.push((label.to_owned(), c.clone()));
        Some(c)
    }

    /// Every label set of these handles.
    fn series(&self) -> Vec<Series> {
        let mut out: Vec<Series> = self
            .fixed
            .iter()
            .map(|(l, _)| (Family::Events, vec![self.route.clone(), l.clone()]))
            .collect();
        if let Some(d) = &self.discover {
            let seen = d.seen.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(
                seen.iter()
                    .map(|(l, _)| (Family::Events, vec![self.route.clone(), l.clone()])),
            );
        }
        out
    }
}

impl RouteMetrics {
    fn placeholder() -> RouteMetrics {
        let h = detached_histogram;
        RouteMetrics {
            requests: Vec::new(),
            request_duration: h(),
            verify_duration: None,
            upstream_duration: h(),
            upstream_responses: Vec::new(),
            body_bytes: h(),
            signature_key: Vec::new(),
            skew: h(),
            events: EventCounters::default(),
            series: Vec::new(),
        }
    }

    /// Counts one request.
    pub fn count(&self, outcome: Outcome, reason: Reason) {
        if let Some(Some(c)) = self
            .requests
            .get(outcome.index() * Reason::ALL.len() + reason.index())
        {
            c.inc();
        }
    }

    /// Counts one upstream answer.
    pub fn upstream(&self, class: UpstreamClass) {
        if let Some(c) = self.upstream_responses.get(class as usize) {
            c.inc();
        }
    }
}

/// [`meaningful`] adjusted for queued delivery: a queued route answers `queued` (`ok`) and
/// can be refused `queue_full`/`queue_unavailable`; an observing queued route counts what it
/// stored as `observed` (as a direct one counts what it forwarded); only a queued route has
/// the `queue_*` reasons.
fn fits_queue(fits: bool, outcome: Outcome, reason: Reason, observe: bool, queued: bool) -> bool {
    let queue_reason = matches!(reason, Reason::QueueFull | Reason::QueueUnavailable);
    match outcome {
        Outcome::Queued => queued && !observe && reason == Reason::Ok,
        Outcome::Rejected if queue_reason => queued,
        _ => fits && !queue_reason,
    }
}

/// Which (result, reason) pairs can happen on a route, so only those series are created.
/// `scheme`: the route's scheme (`None`: no verification); `observe`: the route is in observe mode.
fn meaningful(
    outcome: Outcome,
    reason: Reason,
    unmatched: bool,
    scheme: Option<&crate::verify::SchemeDef>,
    observe: bool,
) -> bool {
    use Reason as R;
    let verifies = scheme.is_some();
    // The reasons only some engines give: only on their routes.
    let engine = match reason {
        R::TopicNotAllowed | R::BadCertUrl | R::CertUnavailable | R::ConfirmFailed => {
            Some(scheme.is_some_and(|d| d.name == "sns"))
        }
        R::BadToken | R::TokenExpired | R::ClaimMismatch | R::KeysUnavailable => {
            Some(scheme.is_some_and(|d| d.options.contains(&"jwt")))
        }
        R::BadVerifyToken => Some(scheme.is_some_and(|d| matches!(d.name, "meta" | "msgraph"))),
        _ => None,
    };
    if engine == Some(false) {
        return false;
    }
    if outcome == Outcome::Handshake {
        return scheme.is_some_and(|d| d.handshakes) && reason == R::Ok;
    }
    // A route of a scheme with a GET handshake serves GET for it: any other GET there is
    // refused 405 by the route itself.
    if reason == R::MethodNotAllowed && !unmatched {
        return outcome == Outcome::Rejected && scheme.is_some_and(|d| d.get_handshake.is_some());
    }
    if unmatched {
        return outcome == Outcome::Rejected
            && matches!(reason, R::NoRoute | R::AmbiguousPath | R::MethodNotAllowed);
    }
    let upstream = matches!(reason, R::UpstreamUnavailable | R::UpstreamTimeout);
    let verdict = matches!(
        reason,
        R::MissingSignature
            | R::MalformedSignature
            | R::StaleTimestamp
            | R::FutureTimestamp
            | R::BadSignature
            | R::InFlight
            | R::ReplayStoreUnavailable
            | R::Duplicate
    ) || engine.is_some();
    match outcome {
        Outcome::Forwarded => !observe && (reason == R::Ok || upstream),
        Outcome::Duplicate => !observe && verifies && reason == R::Duplicate,
        Outcome::Rejected => {
            !matches!(
                reason,
                R::Ok | R::NoRoute | R::AmbiguousPath | R::MethodNotAllowed
            ) && !upstream
                && reason != R::Duplicate
                && (!verdict || (verifies && !observe))
        }
        Outcome::Observed => observe && (reason == R::Ok || upstream || (verifies && verdict)),
        // Made by [`Metrics::route_events`] for a route with an `events` list only.
        Outcome::Filtered => false,
        Outcome::Queued => false,
        Outcome::Handshake => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_exported() {
        let m = Metrics::new();
        let r = m.route("gh", Some("github"), &["current".into()], false, None);
        r.count(Outcome::Rejected, Reason::BadSignature);
        r.count(Outcome::Forwarded, Reason::Ok);
        r.count(Outcome::Forwarded, Reason::Ok);
        let text = m.encode();
        assert!(text.contains(
            "hookseal_requests_total{reason=\"bad_signature\",result=\"rejected\",route=\"gh\"} 1"
        ));
        assert!(text.contains(
            "hookseal_requests_total{reason=\"ok\",result=\"forwarded\",route=\"gh\"} 2"
        ));
        assert!(text.contains("hookseal_build_info{version="));
        assert!(text.contains("hookseal_request_duration_seconds_bucket{route=\"gh\",le=\"15\"}"));
    }

    fn series(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn latency_buckets_span_1ms_to_15s() {
        for b in [&LATENCY_BUCKETS[..], &VERIFY_BUCKETS[..], &SKEW_BUCKETS[..]] {
            assert!(b.windows(2).all(|w| w[0] < w[1]), "increasing: {b:?}");
        }
        assert_eq!(LATENCY_BUCKETS.first(), Some(&0.001));
        assert_eq!(LATENCY_BUCKETS.last(), Some(&15.0));
        // Absolute skew: from 0, with an edge at 80 % of the default 5 minute tolerance.
        assert_eq!(SKEW_BUCKETS.first(), Some(&0.0));
        assert!(SKEW_BUCKETS.contains(&240.0) && SKEW_BUCKETS.contains(&300.0));
        let m = Metrics::new();
        let r = m.route("gh", Some("github"), &[], false, None);
        r.request_duration.observe(0.0004);
        r.upstream_duration.observe(14.0);
        let text = m.encode();
        for (name, le, n) in [
            ("hookseal_request_duration_seconds", "0.001", 1),
            ("hookseal_upstream_duration_seconds", "10", 0),
            ("hookseal_upstream_duration_seconds", "15", 1),
        ] {
            let line = format!("{name}_bucket{{route=\"gh\",le=\"{le}\"}} {n}");
            assert!(text.contains(&line), "{line} in\n{text}");
        }
    }

    #[test]
    fn unmatched_route_has_only_what_can_happen() {
        let m = Metrics::new();
        let text = m.encode();
        let unmatched: Vec<&str> = series(&text)
            .into_iter()
            .filter(|l| l.contains("route=\"_unmatched\""))
            .filter(|l| !l.contains("_bucket{"))
            .collect();
        assert_eq!(
            unmatched,
            [
                "hookseal_request_duration_seconds_sum{route=\"_unmatched\"} 0",
                "hookseal_request_duration_seconds_count{route=\"_unmatched\"} 0",
                "hookseal_requests_total{reason=\"ambiguous_path\",result=\"rejected\",route=\"_unmatched\"} 0",
                "hookseal_requests_total{reason=\"method_not_allowed\",result=\"rejected\",route=\"_unmatched\"} 0",
                "hookseal_requests_total{reason=\"no_route\",result=\"rejected\",route=\"_unmatched\"} 0",
            ]
        );
    }

    #[test]
    fn only_a_queued_route_has_the_queued_and_queue_series() {
        let m = Metrics::new();
        let q = m.route_for("q", Some("github"), &[], false, None, true);
        let _d = m.route("d", Some("github"), &[], false, None);
        let _o = m.route_for("o", Some("github"), &[], true, None, true);
        q.count(Outcome::Queued, Reason::Ok);
        let text = m.encode();
        assert!(
            text.contains("hookseal_requests_total{reason=\"ok\",result=\"queued\",route=\"q\"} 1"),
            "{text}"
        );
        for reason in ["queue_full", "queue_unavailable"] {
            let q = format!("{{reason=\"{reason}\",result=\"rejected\",route=\"q\"}} 0");
            assert!(text.contains(&q), "{q}");
            assert!(!text.contains(&format!(
                "{{reason=\"{reason}\",result=\"rejected\",route=\"d\"}}"
            )));
        }
        assert!(!text.contains("result=\"queued\",route=\"d\""));
        // An observing queued route counts what it stored as observed, never queued.
        assert!(!text.contains("result=\"queued\",route=\"o\""));
        assert!(text.contains("{reason=\"queue_full\",result=\"rejected\",route=\"o\"} 0"));
    }

    #[test]
    fn route_handles_create_their_series_at_once() {
        let m = Metrics::new();
        let keys = ["current".to_owned(), "previous".to_owned()];
        let _r = m.route(
            "sw",
            Some("standard-webhooks"),
            &keys,
            false,
            Some(std::time::Duration::from_secs(300)),
        );
        let _ms = m.route(
            "fast",
            Some("paddle"),
            &keys,
            false,
            Some(std::time::Duration::from_millis(2500)),
        );
        let text = m.encode();
        for line in [
            "hookseal_signature_key_total{key=\"current\",route=\"sw\"} 0",
            "hookseal_signature_key_total{key=\"previous\",route=\"sw\"} 0",
            "hookseal_timestamp_tolerance_seconds{route=\"sw\"} 300",
            "hookseal_timestamp_tolerance_seconds{route=\"fast\"} 2.5",
            "hookseal_timestamp_skew_seconds_count{route=\"sw\"} 0",
            "hookseal_upstream_responses_total{class=\"timeout\",route=\"sw\"} 0",
            "hookseal_verify_duration_seconds_count{route=\"sw\",scheme=\"standard-webhooks\"} 0",
            "hookseal_requests_total{reason=\"bad_signature\",result=\"rejected\",route=\"sw\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // A route that doesn't verify has no key, skew or verify series.
        let m = Metrics::new();
        let _r = m.route(
            "app",
            None,
            &keys,
            false,
            Some(std::time::Duration::from_secs(300)),
        );
        let text = m.encode();
        for family in [
            "hookseal_signature_key_total{",
            "hookseal_timestamp_skew_seconds_count{",
            "hookseal_timestamp_tolerance_seconds{",
            "hookseal_verify_duration_seconds_count{",
            "result=\"duplicate\"",
            "reason=\"bad_signature\"",
        ] {
            assert!(!text.contains(family), "{family} in\n{text}");
        }
    }

    #[test]
    fn retain_drops_series_of_routes_and_keys_no_longer_configured() {
        let m = Metrics::new();
        let two = ["current".to_owned(), "previous".to_owned()];
        let old_a = m.route("a", Some("github"), &two, false, None);
        let old_b = m.route("b", Some("github"), &two, true, None);
        m.retain([&old_a, &old_b]);
        old_a.signature_key[1].inc();
        old_b.count(Outcome::Observed, Reason::BadSignature);
        let text = m.encode();
        assert!(text.contains("hookseal_signature_key_total{key=\"previous\",route=\"a\"} 1"));
        assert!(text.contains("route=\"b\""));

        // Reload: `previous` retired from a, b gone, c new.
        let new_a = m.route("a", Some("github"), &two[..1], false, None);
        let new_c = m.route("c", None, &[], false, None);
        m.retain([&new_a, &new_c]);
        let text = m.encode();
        assert!(!text.contains("key=\"previous\""), "{text}");
        assert!(!text.contains("route=\"b\""), "{text}");
        assert!(text.contains("hookseal_signature_key_total{key=\"current\",route=\"a\"} 0"));
        assert!(text
            .contains("hookseal_requests_total{reason=\"ok\",result=\"forwarded\",route=\"c\"} 0"));
        assert!(
            text.contains("route=\"_unmatched\""),
            "unmatched series stay"
        );
        // Handles of the old config still work (into detached series) and stay out of /metrics.
        old_b.count(Outcome::Observed, Reason::BadSignature);
        assert!(!m.encode().contains("route=\"b\""));
    }
}
