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
//! id and the `forward` span as parent; `tracestate` is passed on as it came. The spans are
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
//! Why OTLP/HTTP JSON written here instead of `opentelemetry-otlp`: hookseal records its spans
//! after the fact from one record (times it measured anyway), needs a drop counter it can
//! export, and the exporter's `http-proto` transport pulled 26 more crates (tonic, prost,
//! rand, async-trait, …) into a tree of 166; this uses the hyper client and serde_json the
//! binary already has. OTLP/HTTP JSON is part of the OTLP specification and accepted by the
//! OpenTelemetry Collector, Jaeger, Tempo and the vendors' OTLP intakes.
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

use crate::config::TracingConfig;

/// `traceparent`
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

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
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut flags = [0u8; 1];
        if !crate::hex::decode_into(&v[3..35], &mut trace_id)
            || !crate::hex::decode_into(&v[36..52], &mut span_id)
            || !crate::hex::decode_into(&v[53..55], &mut flags)
        {
            return None;
        }
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(SpanContext {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }

    /// The `traceparent` value naming this span as the parent.
    pub fn traceparent(&self) -> HeaderValue {
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        hex_into(&self.trace_id, &mut out[3..35]);
        out[35] = b'-';
        hex_into(&self.span_id, &mut out[36..52]);
        out[52] = b'-';
        out[53..].copy_from_slice(if self.sampled { b"01" } else { b"00" });
        HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static("-"))
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
            .filter(|s| s.len() <= 512)
            .map(str::to_owned);
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

/// An `ExportTraceServiceRequest` in OTLP/HTTP JSON (ids as hex, enums as integers, 64-bit
/// integers as strings).
pub fn encode(service_name: &str, spans: &[Span]) -> Bytes {
    use serde_json::{json, Value as J};
    let nanos = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_string()
    };
    let spans: Vec<J> = spans
        .iter()
        .map(|s| {
            let attributes: Vec<J> = s
                .attributes
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::Str(x) => json!({ "stringValue": x }),
                        Value::Static(x) => json!({ "stringValue": x }),
                        Value::Int(i) => json!({ "intValue": i.to_string() }),
                    };
                    json!({ "key": k, "value": value })
                })
                .collect();
            let mut o = json!({
                "traceId": crate::hex::encode(&s.trace_id),
                "spanId": crate::hex::encode(&s.span_id),
                "name": s.name,
                "kind": s.kind as i32,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.end),
                "attributes": attributes,
                "status": { "code": if s.error { 2 } else { 0 } },
            });
            if let Some(p) = s.parent {
                o["parentSpanId"] = J::String(crate::hex::encode(&p));
            }
            if let Some(ts) = &s.trace_state {
                o["traceState"] = J::String(ts.clone());
            }
            o
        })
        .collect();
    let doc = json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": service_name } },
                { "key": "service.version", "value": { "stringValue": env!("CARGO_PKG_VERSION") } },
            ]},
            "scopeSpans": [{
                "scope": { "name": "hookseal", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    });
    Bytes::from(doc.to_string())
}

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    use crate::hex::DIGITS;
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
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
