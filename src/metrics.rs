//! Prometheus metrics: the families of SPEC.md on a `Registry` the process owns.
//!
//! Per-route handles ([`RouteMetrics`]) are resolved once when a config is loaded, so the
//! request path only increments; label values are route names from config and fixed codes.

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::error::Reason;

/// The `result` label of `hookseal_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Forwarded,
    Rejected,
    Duplicate,
    Observed,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Forwarded,
        Outcome::Rejected,
        Outcome::Duplicate,
        Outcome::Observed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Rejected => "rejected",
            Outcome::Duplicate => "duplicate",
            Outcome::Observed => "observed",
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
    replay_errors: IntCounterVec,
    /// Unexpired replay entries evicted because the memory store was full.
    pub replay_evictions: IntCounter,
    /// `hookseal_inflight_requests`
    pub inflight: IntGauge,
    /// `hookseal_connections`
    pub connections: IntGauge,
    /// `hookseal_tls_handshake_errors_total`
    pub tls_handshake_errors: IntCounter,
    reloads: IntCounterVec,
    /// `hookseal_tls_certificate_reloads_total{result}`
    pub cert_reloads: IntCounterVec,
    /// Handles for requests no route matched.
    pub unmatched: Arc<RouteMetrics>,
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
        let latency = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
        ];
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
            .buckets(vec![
                0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001,
                0.002_5, 0.005, 0.01, 0.025,
            ]),
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
                "Sender clock minus ours, from signed timestamps, by route.",
            )
            .buckets(vec![
                -600.0, -300.0, -120.0, -60.0, -30.0, -10.0, -5.0, -1.0, 0.0, 1.0, 5.0, 10.0, 30.0,
                60.0, 120.0, 300.0, 600.0,
            ]),
            &["route"],
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
        registry.register(Box::new(replay_errors.clone()))?;
        registry.register(Box::new(replay_evictions.clone()))?;
        registry.register(Box::new(inflight.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(tls_handshake_errors.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(cert_reloads.clone()))?;
        registry.register(Box::new(build_info))?;

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
            replay_errors,
            replay_evictions,
            inflight,
            connections,
            tls_handshake_errors,
            reloads,
            cert_reloads,
            unmatched: Arc::new(RouteMetrics::placeholder()),
        };
        m.unmatched = Arc::new(m.route(crate::config::UNMATCHED_ROUTE, None, &[], false));
        Ok(m)
    }

    /// Resolves the handles of one route. `scheme` is None for routes that don't verify;
    /// `observe`: the route is in observe mode (only then are `result="observed"` series made).
    pub fn route(
        &self,
        name: &str,
        scheme: Option<&str>,
        key_ids: &[String],
        observe: bool,
    ) -> RouteMetrics {
        let unmatched = name == crate::config::UNMATCHED_ROUTE;
        let mut requests = vec![None; Outcome::ALL.len() * Reason::ALL.len()];
        for outcome in Outcome::ALL {
            for reason in Reason::ALL {
                if meaningful(outcome, reason, unmatched, scheme.is_some(), observe) {
                    requests[outcome.index() * Reason::ALL.len() + reason.index()] =
                        Some(self.requests.with_label_values(&[
                            name,
                            outcome.as_str(),
                            reason.as_str(),
                        ]));
                }
            }
        }
        RouteMetrics {
            requests,
            request_duration: self.request_duration.with_label_values(&[name]),
            verify_duration: scheme.map(|s| self.verify_duration.with_label_values(&[name, s])),
            upstream_duration: self.upstream_duration.with_label_values(&[name]),
            upstream_responses: UpstreamClass::ALL
                .iter()
                .map(|c| {
                    self.upstream_responses
                        .with_label_values(&[name, c.as_str()])
                })
                .collect(),
            body_bytes: self.body_bytes.with_label_values(&[name]),
            signature_key: key_ids
                .iter()
                .map(|k| self.signature_key.with_label_values(&[name, k]))
                .collect(),
            skew: self.skew.with_label_values(&[name]),
        }
    }

    /// `hookseal_replay_store_errors_total{store}`
    pub fn replay_error(&self, store: &str) -> IntCounter {
        self.replay_errors.with_label_values(&[store])
    }

    /// `hookseal_config_reloads_total{result}`
    pub fn reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
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

impl RouteMetrics {
    fn placeholder() -> RouteMetrics {
        let h = || Histogram::with_opts(HistogramOpts::new("placeholder", "placeholder"));
        #[allow(clippy::expect_used)]
        let h = || h().expect("valid histogram");
        RouteMetrics {
            requests: Vec::new(),
            request_duration: h(),
            verify_duration: None,
            upstream_duration: h(),
            upstream_responses: Vec::new(),
            body_bytes: h(),
            signature_key: Vec::new(),
            skew: h(),
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

/// Which (result, reason) pairs can happen on a route, so only those series are created.
/// `verifies`: the scheme is not `none`; `observe`: the route is in observe mode.
fn meaningful(
    outcome: Outcome,
    reason: Reason,
    unmatched: bool,
    verifies: bool,
    observe: bool,
) -> bool {
    use Reason as R;
    if unmatched {
        return outcome == Outcome::Rejected && matches!(reason, R::NoRoute | R::MethodNotAllowed);
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
    );
    match outcome {
        Outcome::Forwarded => !observe && (reason == R::Ok || upstream),
        Outcome::Duplicate => !observe && verifies && reason == R::Duplicate,
        Outcome::Rejected => {
            !matches!(reason, R::Ok | R::NoRoute | R::MethodNotAllowed)
                && !upstream
                && reason != R::Duplicate
                && (!verdict || (verifies && !observe))
        }
        Outcome::Observed => observe && (reason == R::Ok || upstream || (verifies && verdict)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_exported() {
        let m = Metrics::new();
        let r = m.route("gh", Some("github"), &["current".into()], false);
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
}
