//! OpenTelemetry traces: W3C trace context in, spans out over OTLP/HTTP (README "Traces").
//!
//! With `[tracing] otlp_endpoint` absent nothing here runs per request: no id is made, no span
//! object exists, the request's `traceparent`/`tracestate` pass to the app untouched.
//!
//! With it set, each request is sampled once, at its start ([`Tracer::start`]): an incoming
//! valid `traceparent` decides by its sampled flag (parent-based), else `sample_ratio` decides
//! on the new trace id. A sampled request gets a `receive` span (kind server; the incoming
//! span as parent, if any) and, as children, `verify`, `replay_store` and `forward` (kind
//! client) for the stages it went through. The app receives `traceparent` with the same trace
//! id and the `forward` span as parent; `tracestate` is passed on as it came (the `receive`
//! span records it only when it is a valid W3C list: [`tracestate`]). The spans are
//! made at the end of the request from what its record measured ([`Tracer::finish_request`]).
//! Attributes: route, scheme, reason, result, status, method — never a header value, a
//! secret, a signature, a path or a body.
//!
//! Export: spans wait in a bounded in-memory queue ([`MAX_QUEUE`]); a background task
//! ([`Tracer::run`]) POSTs them, at most [`MAX_BATCH`] at a time, every second (or as soon as a
//! batch is full) as OTLP/HTTP JSON to `<otlp_endpoint>/v1/traces`, each POST bounded by
//! [`EXPORT_TIMEOUT`]. A full queue drops the new span, a failed POST drops its batch; both
//! are counted in `hookseal_trace_spans_dropped_total{reason}`. A request only ever takes the
//! queue's lock for a push: a collector that is down or slow never delays it.
//!
//! Crates: the incoming `traceparent`'s ids and flags and the `tracestate` list are read with
//! the `opentelemetry` API crate's `TraceId`, `SpanId`, `TraceFlags` and `TraceState` (only the
//! fixed-width framing of `traceparent` is checked here, because `from_hex` alone takes any
//! width); the OTLP messages and their JSON encoding are `opentelemetry-proto`'s. The queue,
//! the export loop and the POST are hookseal's, not the SDK's batch processor or the
//! `opentelemetry-otlp` exporter: hookseal records its spans after the fact from one record
//! (times it measured anyway) and needs a drop counter it can export; BENCHMARKS.md "Traces:
//! exporter choice" has the measurements. OTLP/HTTP JSON is part of the OTLP specification and
//! accepted by the OpenTelemetry Collector, Jaeger, Tempo and the vendors' OTLP intakes.
//!
//! Work done later for a request (queued delivery's enqueue and delivery attempts) joins its
//! trace through [`SpanContext`]: keep the request's `traceparent` (what the app would have
//! received), then per attempt `let span = parent.child(&tracer)`, send `span.traceparent()`
//! with it, and afterwards `tracer.submit(span.finish(Some(parent.span_id), "deliver",
//! Kind::Client, start, end, attrs, failed))`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::Full;
use prometheus::{IntCounter, IntCounterVec, Opts};
use tokio::sync::Notify;

use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

use crate::config::TracingConfig;

/// `traceparent`
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// A `tracestate` longer than this is not recorded (W3C asks vendors to propagate at least
/// 512 characters; the app gets the header as it came either way).
pub const MAX_TRACESTATE: usize = 512;
/// List members of a `tracestate` at most (W3C).
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A `tracestate` value checked as the W3C list it must be, in its canonical form (members
/// joined by `,` without blanks), for the `receive` span; `None` when it is empty, too long,
/// has more than [`MAX_TRACESTATE_MEMBERS`] members, or a key or value that is invalid (keys
/// and values are checked by the `opentelemetry` API crate's `TraceState`). Only the blanks
/// the W3C grammar allows around a member and empty members are handled here.
pub fn tracestate(v: &str) -> Option<String> {
    if v.len() > MAX_TRACESTATE {
        return None;
    }
    let members: Vec<&str> = v
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .collect();
    if members.is_empty() || members.len() > MAX_TRACESTATE_MEMBERS {
        return None;
    }
    let state: TraceState = members.join(",").parse().ok()?;
    Some(state.header())
}

/// Spans waiting for export at most; more are dropped (`reason="queue_full"`).
pub const MAX_QUEUE: usize = 4096;
/// Spans per POST at most.
pub const MAX_BATCH: usize = 512;
/// How often the queue is sent when no batch filled up first.
pub const EXPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Time for one POST, connect included; then the batch is dropped (`reason="export_failed"`).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(4);

/// The span kinds of OTLP (`SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Static(&'static str),
    Int(i64),
}

/// Where a span sits in its trace: what `traceparent` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl SpanContext {
    /// Parses a W3C `traceparent` (version `00`, or a later version read as `00`); `None` when
    /// it is invalid (then it is ignored, as the recommendation says).
    ///
    /// The framing (fixed widths, `-` separators, lowercase hex only, version `ff` and extra
    /// fields on `00` refused) is checked here, because `opentelemetry`'s `from_hex` takes any
    /// width (a 31-digit trace id, a leading `+`); the ids, flags and their validity are the
    /// `opentelemetry` API crate's `TraceId`, `SpanId` and `TraceFlags`.
    pub fn parse(v: &[u8]) -> Option<SpanContext> {
        if v.len() < 55 || (v.len() > 55 && (v[..2] == *b"00" || v[55] != b'-')) {
            return None;
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' || v[..2] == *b"ff" {
            return None;
        }
        let lower_hex = |s: &[u8]| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        if !lower_hex(&v[..2])
            || !lower_hex(&v[3..35])
            || !lower_hex(&v[36..52])
            || !lower_hex(&v[53..55])
        {
            return None;
        }
        // ASCII from here on (checked just above).
        let v = std::str::from_utf8(&v[..55]).ok()?;
        let trace_id = TraceId::from_hex(&v[3..35]).ok()?;
        let span_id = SpanId::from_hex(&v[36..52]).ok()?;
        let flags = TraceFlags::new(u8::from_str_radix(&v[53..55], 16).ok()?);
        if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
            return None;
        }
        Some(SpanContext {
            trace_id: trace_id.to_bytes(),
            span_id: span_id.to_bytes(),
            sampled: flags.is_sampled(),
        })
    }

    /// The `traceparent` value naming this span as the parent.
    pub fn traceparent(&self) -> HeaderValue {
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::NOT_SAMPLED
        };
        let v = format!(
            "00-{}-{}-{:02x}",
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            flags.to_u8()
        );
        HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("-"))
    }

    /// A new span of the same trace (its parent is `self`).
    pub fn child(&self, tracer: &Tracer) -> SpanContext {
        SpanContext {
            trace_id: self.trace_id,
            span_id: tracer.span_id(),
            sampled: self.sampled,
        }
    }

    /// The finished span of this context, for [`Tracer::submit`].
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &self,
        parent: Option<[u8; 8]>,
        name: &'static str,
        kind: Kind,
        start: SystemTime,
        end: SystemTime,
        attributes: Vec<(&'static str, Value)>,
        error: bool,
    ) -> Span {
        Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent,
            trace_state: None,
            name,
            kind,
            start,
            end,
            attributes,
            error,
        }
    }
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub trace_state: Option<String>,
    pub name: &'static str,
    pub kind: Kind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Value)>,
    /// OTLP status `ERROR` (else unset).
    pub error: bool,
}

/// A sampled request's trace: made at its start, finished at its end.
#[derive(Debug)]
pub struct RequestTrace {
    trace_id: [u8; 16],
    receive: [u8; 8],
    forward: [u8; 8],
    /// The sender's span (from its `traceparent`).
    parent: Option<[u8; 8]>,
    trace_state: Option<String>,
    wall: SystemTime,
    at: Instant,
}

impl RequestTrace {
    /// Whether the trace came with the request (else hookseal started it).
    pub fn continued(&self) -> bool {
        self.parent.is_some()
    }

    /// The `traceparent` the app receives: this trace, the `forward` span as parent.
    pub fn forward_traceparent(&self) -> HeaderValue {
        SpanContext {
            trace_id: self.trace_id,
            span_id: self.forward,
            sampled: true,
        }
        .traceparent()
    }

    fn time(&self, t: Instant) -> SystemTime {
        match t.checked_duration_since(self.at) {
            Some(d) => self.wall + d,
            None => self.wall,
        }
    }
}

/// What the end of a request knows, for its spans. Times are the record's.
#[derive(Debug, Default)]
pub struct RequestEnd<'a> {
    pub route: &'a str,
    pub scheme: Option<&'static str>,
    pub method: &'a str,
    pub result: Option<&'static str>,
    pub reason: Option<&'static str>,
    pub status: Option<u16>,
    /// Verification: start and duration.
    pub verify: Option<(Instant, Duration)>,
    /// The replay store's claim: start and end.
    pub store: Option<(Instant, Instant)>,
    /// Forwarding: start and duration, and whether the app answered.
    pub forward: Option<(Instant, Duration, bool)>,
}

/// The time marks of a request that only traces use; written only when the request is
/// traced.
#[derive(Debug, Default, Clone, Copy)]
pub struct Marks {
    pub verify_start: Option<Instant>,
    pub store: Option<(Instant, Instant)>,
    pub forward_start: Option<Instant>,
}

/// The span queue and its exporter. One per process; cheap when tracing is off.
#[derive(Debug)]
pub struct Tracer {
    queue: Mutex<Vec<Span>>,
    wake: Notify,
    ids: AtomicU64,
    seed: [u64; 2],
    dropped: IntCounterVec,
    dropped_full: IntCounter,
    dropped_failed: IntCounter,
    exported: IntCounter,
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer::new()
    }
}

impl Tracer {
    /// An idle tracer; its counters are exported once [`Tracer::register`]ed.
    #[allow(clippy::expect_used)]
    pub fn new() -> Tracer {
        let mut seed = [0u8; 16];
        let random =
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed).is_ok();
        let mut seed = [
            u64::from_le_bytes(seed[..8].try_into().unwrap_or_default()),
            u64::from_le_bytes(seed[8..].try_into().unwrap_or_default()),
        ];
        if !random {
            let t = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            seed = [t, t ^ u64::from(std::process::id()).rotate_left(32)];
        }
        let dropped = IntCounterVec::new(
            Opts::new(
                "hookseal_trace_spans_dropped_total",
                "Spans not exported: the export queue was full, or the collector did not take them.",
            ),
            &["reason"],
        )
        .expect("a valid metric definition");
        let exported = IntCounter::new(
            "hookseal_trace_spans_exported_total",
            "Spans the OTLP collector accepted.",
        )
        .expect("a valid metric definition");
        Tracer {
            queue: Mutex::new(Vec::new()),
            wake: Notify::new(),
            ids: AtomicU64::new(0),
            seed,
            dropped_full: dropped.with_label_values(&["queue_full"]),
            dropped_failed: dropped.with_label_values(&["export_failed"]),
            dropped,
            exported,
        }
    }

    /// Exports the counters on `metrics`' registry.
    pub fn register(&self, metrics: &crate::metrics::Metrics) {
        metrics.register(Box::new(self.dropped.clone()));
        metrics.register(Box::new(self.exported.clone()));
    }

    /// Spans dropped so far (queue full, export failed).
    pub fn dropped(&self) -> (u64, u64) {
        (self.dropped_full.get(), self.dropped_failed.get())
    }

    fn next(&self, lane: usize) -> u64 {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let z = crate::proxy::splitmix(self.seed[lane] ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if z == 0 {
            1
        } else {
            z
        }
    }

    /// A new, non-zero span id.
    pub fn span_id(&self) -> [u8; 8] {
        self.next(0).to_be_bytes()
    }

    fn trace_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next(0).to_be_bytes());
        id[8..].copy_from_slice(&self.next(1).to_be_bytes());
        id
    }

    /// The sampling decision for a request with `headers`, at its start: `Some` when it is
    /// traced.
    pub fn start(&self, cfg: &TracingConfig, headers: &HeaderMap) -> Option<RequestTrace> {
        let incoming = headers
            .get(&TRACEPARENT)
            .and_then(|v| SpanContext::parse(v.as_bytes()));
        let (trace_id, parent) = match &incoming {
            Some(p) if !p.sampled => return None,
            Some(p) => (p.trace_id, Some(p.span_id)),
            None => {
                let id = self.trace_id();
                // The ratio applies to the trace id's low 8 bytes, as trace-id-ratio samplers do.
                let r = u64::from_be_bytes(id[8..].try_into().unwrap_or_default());
                if cfg.sample_ratio < 1.0 && (r as f64) >= cfg.sample_ratio * u64::MAX as f64 {
                    return None;
                }
                (id, None)
            }
        };
        let trace_state = incoming
            .as_ref()
            .and(headers.get(&TRACESTATE))
            .and_then(|v| v.to_str().ok())
            .and_then(tracestate);
        Some(RequestTrace {
            trace_id,
            receive: self.span_id(),
            forward: self.span_id(),
            parent,
            trace_state,
            wall: SystemTime::now(),
            at: Instant::now(),
        })
    }

    /// The spans of a finished request, queued for export.
    pub fn finish_request(&self, t: RequestTrace, end: &RequestEnd<'_>) {
        let now = Instant::now();
        let mut common = vec![("hookseal.route", Value::Str(end.route.to_owned()))];
        if let Some(s) = end.scheme {
            common.push(("hookseal.scheme", Value::Static(s)));
        }
        let failed = end.reason.is_some_and(|r| r != "ok" && r != "duplicate");
        let mut attrs = common.clone();
        attrs.push(("http.request.method", Value::Str(end.method.to_owned())));
        if let Some(r) = end.result {
            attrs.push(("hookseal.result", Value::Static(r)));
        }
        if let Some(r) = end.reason {
            attrs.push(("hookseal.reason", Value::Static(r)));
        }
        if let Some(s) = end.status {
            attrs.push(("http.response.status_code", Value::Int(i64::from(s))));
        }
        let span =
            |id: [u8; 8], parent, name, kind, from: Instant, to: Instant, attributes, error| Span {
                trace_id: t.trace_id,
                span_id: id,
                parent,
                trace_state: None,
                name,
                kind,
                start: t.time(from),
                end: t.time(to),
                attributes,
                error,
            };
        let mut spans = Vec::with_capacity(4);
        let mut receive = span(
            t.receive,
            t.parent,
            "receive",
            Kind::Server,
            t.at,
            now,
            attrs,
            failed,
        );
        receive.trace_state = t.trace_state.clone();
        spans.push(receive);
        let child = Some(t.receive);
        if let Some((at, d)) = end.verify {
            let verify_failed = matches!(
                end.reason,
                Some(
                    "missing_signature"
                        | "malformed_signature"
                        | "stale_timestamp"
                        | "future_timestamp"
                        | "bad_signature"
                )
            );
            spans.push(span(
                self.span_id(),
                child,
                "verify",
                Kind::Internal,
                at,
                at + d,
                common.clone(),
                verify_failed,
            ));
        }
        if let Some((from, to)) = end.store {
            let store_failed = end.reason == Some("replay_store_unavailable");
            spans.push(span(
                self.span_id(),
                child,
                "replay_store",
                Kind::Client,
                from,
                to,
                common.clone(),
                store_failed,
            ));
        }
        if let Some((at, d, answered)) = end.forward {
            let mut a = common;
            if answered {
                if let Some(s) = end.status {
                    a.push(("http.response.status_code", Value::Int(i64::from(s))));
                }
            }
            spans.push(span(
                t.forward,
                child,
                "forward",
                Kind::Client,
                at,
                at + d,
                a,
                !answered,
            ));
        }
        for s in spans {
            self.submit(s);
        }
    }

    /// Queues one finished span for export; drops it (counted) when the queue is full.
    pub fn submit(&self, span: Span) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= MAX_QUEUE {
            drop(q);
            self.dropped_full.inc();
            return;
        }
        q.push(span);
        let full = q.len() >= MAX_BATCH;
        drop(q);
        if full {
            self.wake.notify_one();
        }
    }

    fn take_batch(&self) -> Vec<Span> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let n = q.len().min(MAX_BATCH);
        q.drain(..n).collect()
    }

    /// Exports queued spans until `stop` completes, then sends what is queued once more
    /// (the caller bounds that: [`FLUSH_TIMEOUT`]). `current` gives the tracing config in
    /// force (reload may change or remove it); spans left when it is `None` are dropped.
    pub async fn run(
        self: Arc<Self>,
        current: impl Fn() -> Option<TracingConfig>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_connect_timeout(Some(EXPORT_TIMEOUT));
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build(connector);
        tokio::pin!(stop);
        loop {
            let stopping = tokio::select! {
                () = &mut stop => true,
                () = tokio::time::sleep(EXPORT_INTERVAL) => false,
                () = self.wake.notified() => false,
            };
            loop {
                let batch = self.take_batch();
                if batch.is_empty() {
                    break;
                }
                let n = batch.len() as u64;
                let Some(cfg) = current() else {
                    self.dropped_failed.inc_by(n);
                    continue;
                };
                let body = encode(&cfg.service_name, &batch);
                let ok = post(&client, &cfg.otlp_endpoint, body).await;
                if ok {
                    self.exported.inc_by(n);
                } else {
                    self.dropped_failed.inc_by(n);
                }
            }
            if stopping {
                return;
            }
        }
    }
}

/// How long shutdown waits for the last spans to be sent.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

async fn post(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    endpoint: &http::Uri,
    body: Bytes,
) -> bool {
    let Some(authority) = endpoint.authority() else {
        return false;
    };
    let uri = format!("http://{authority}/v1/traces");
    let Ok(req) = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
    else {
        return false;
    };
    let sent = tokio::time::timeout(EXPORT_TIMEOUT, async {
        let resp = client.request(req).await.ok()?;
        let ok = resp.status().is_success();
        // Read (and bound) the answer so the connection can be reused.
        let _ = http_body_util::BodyExt::collect(http_body_util::Limited::new(
            resp.into_body(),
            64 * 1024,
        ))
        .await;
        Some(ok)
    })
    .await;
    matches!(sent, Ok(Some(true)))
}

/// An `ExportTraceServiceRequest` in OTLP/HTTP JSON: the messages are `opentelemetry-proto`'s,
/// and so is their JSON encoding (ids as hex, enums as integers, 64-bit integers as strings).
pub fn encode(service_name: &str, spans: &[Span]) -> Bytes {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        self as trace, status::StatusCode, ResourceSpans, ScopeSpans,
    };
    let nanos = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    };
    let kv = |key: &str, value: any_value::Value| KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    };
    let text = |v: &str| any_value::Value::StringValue(v.to_owned());
    let spans = spans
        .iter()
        .map(|s| trace::Span {
            trace_id: s.trace_id.to_vec(),
            span_id: s.span_id.to_vec(),
            trace_state: s.trace_state.clone().unwrap_or_default(),
            parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: s.name.to_owned(),
            kind: s.kind as i32,
            start_time_unix_nano: nanos(s.start),
            end_time_unix_nano: nanos(s.end),
            attributes: s
                .attributes
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Str(x) => text(x),
                        Value::Static(x) => text(x),
                        Value::Int(i) => any_value::Value::IntValue(*i),
                    };
                    kv(k, v)
                })
                .collect(),
            status: Some(trace::Status {
                code: if s.error {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                } as i32,
                ..trace::Status::default()
            }),
            ..trace::Span::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", text(service_name)),
                    kv("service.version", text(env!("CARGO_PKG_VERSION"))),
                ],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "hookseal".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..InstrumentationScope::default()
                }),
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    // Serializing these messages to JSON cannot fail (no maps with non-string keys, no
    // non-finite floats); an empty body would only be refused by the collector (counted).
    Bytes::from(serde_json::to_vec(&request).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ratio: f64) -> TracingConfig {
        TracingConfig {
            otlp_endpoint: "http://127.0.0.1:4318".parse().unwrap(),
            service_name: "hookseal".into(),
            sample_ratio: ratio,
        }
    }

    #[test]
    fn traceparent_parses_and_prints_per_w3c() {
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = SpanContext::parse(tp).unwrap();
        assert!(c.sampled);
        assert_eq!(
            crate::hex::encode(&c.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(c.traceparent().as_bytes(), tp);
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            // What `from_hex` alone would take: a sign, a short id padded with a blank.
            b"00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0f067aa0ba902b7 -01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            b"",
        ] {
            assert!(
                SpanContext::parse(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A later version with more fields is read as version 00.
        let future = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what";
        assert!(!SpanContext::parse(future).unwrap().sampled);
    }

    #[test]
    fn tracestate_is_kept_only_as_a_valid_w3c_list() {
        assert_eq!(
            tracestate("congo=t61rcWkgMzE").as_deref(),
            Some("congo=t61rcWkgMzE")
        );
        // Blanks around members and empty members are allowed, and dropped.
        assert_eq!(
            tracestate(" rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE\t").as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(tracestate("t@vendor=x").as_deref(), Some("t@vendor=x"));
        let many = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(tracestate(&many(32)).is_some());
        for bad in [
            String::new(),
            " , ".into(),
            "Congo=x".into(),
            "novalue".into(),
            "a=b=c".into(),
            "1@@v=x".into(),
            many(33),
            format!("k={}", "v".repeat(MAX_TRACESTATE)),
        ] {
            assert_eq!(tracestate(&bad), None, "{bad}");
        }
    }

    #[test]
    fn sampling_follows_the_parent_then_the_ratio() {
        let t = Tracer::new();
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        );
        assert!(t.start(&cfg(1.0), &h).is_none(), "parent not sampled");
        h.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        h.insert(TRACESTATE, HeaderValue::from_static("vendor=x"));
        let rt = t
            .start(&cfg(0.0), &h)
            .expect("parent sampled wins over the ratio");
        assert_eq!(
            crate::hex::encode(&rt.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            rt.parent,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert_eq!(rt.trace_state.as_deref(), Some("vendor=x"));
        let fwd = rt.forward_traceparent();
        let fwd = SpanContext::parse(fwd.as_bytes()).unwrap();
        assert_eq!((fwd.trace_id, fwd.span_id), (rt.trace_id, rt.forward));
        let none = HeaderMap::new();
        assert!((0..100).all(|_| t.start(&cfg(1.0), &none).is_some()));
        assert!((0..100).all(|_| t.start(&cfg(0.0), &none).is_none()));
        let half = (0..4000)
            .filter(|_| t.start(&cfg(0.5), &none).is_some())
            .count();
        assert!((1600..2400).contains(&half), "{half}");
    }

    #[test]
    fn later_work_joins_the_trace_through_a_child_context() {
        // What queued delivery does per attempt (module docs).
        let t = Tracer::new();
        let parent =
            SpanContext::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let attempt = parent.child(&t);
        assert_eq!(attempt.trace_id, parent.trace_id);
        assert_ne!(attempt.span_id, parent.span_id);
        let sent = SpanContext::parse(attempt.traceparent().as_bytes()).unwrap();
        assert_eq!(sent, attempt);
        let now = SystemTime::now();
        let attrs = vec![
            ("hookseal.route", Value::Static("gh")),
            ("hookseal.attempt", Value::Int(2)),
        ];
        t.submit(attempt.finish(
            Some(parent.span_id),
            "deliver",
            Kind::Client,
            now,
            now,
            attrs,
            true,
        ));
        let v: serde_json::Value = serde_json::from_slice(&encode("s", &t.take_batch())).unwrap();
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["name"], "deliver");
        assert_eq!(span["kind"], 3);
        assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["attributes"][1]["value"]["intValue"], "2");
        assert_eq!(span["status"]["code"], 2);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let t = Tracer::new();
        let c = SpanContext {
            trace_id: [1; 16],
            span_id: [2; 8],
            sampled: true,
        };
        let now = SystemTime::now();
        for _ in 0..MAX_QUEUE + 10 {
            t.submit(c.finish(None, "x", Kind::Internal, now, now, vec![], false));
        }
        assert_eq!(t.dropped(), (10, 0));
        assert_eq!(t.take_batch().len(), MAX_BATCH);
    }

    #[test]
    fn request_spans_encode_as_otlp_json_with_parents() {
        let t = Tracer::new();
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let rt = t.start(&cfg(1.0), &h).unwrap();
        let at = Instant::now();
        let end = RequestEnd {
            route: "gh",
            scheme: Some("github"),
            method: "POST",
            result: Some("rejected"),
            reason: Some("bad_signature"),
            status: Some(401),
            verify: Some((at, Duration::from_micros(5))),
            ..RequestEnd::default()
        };
        t.finish_request(rt, &end);
        let spans = t.take_batch();
        assert_eq!(spans.len(), 2);
        let v: serde_json::Value = serde_json::from_slice(&encode("svc", &spans)).unwrap();
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"];
        assert_eq!(s[0]["name"], "receive");
        assert_eq!(s[0]["kind"], 2);
        assert_eq!(s[0]["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(s[0]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s[0]["status"]["code"], 2);
        assert_eq!(s[1]["name"], "verify");
        assert_eq!(s[1]["parentSpanId"], s[0]["spanId"]);
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "svc"
        );
    }
}
