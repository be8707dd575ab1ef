//! W3C trace context of incoming webhooks (`otel::SpanContext::parse`, `otel::tracestate`):
//! the framing of `traceparent` and the list handling of `tracestate` are hookseal's, the ids,
//! flags and list members are checked by the `opentelemetry` API crate. The first byte picks
//! the header. Oracles: a parsed `traceparent` has non-zero ids and prints back to a value
//! that parses to the same context (and, for version `00` with flags `00`/`01`, to the input
//! itself); a kept `tracestate` is no longer than the input and is kept unchanged when checked
//! again.

#![no_main]

use hookseal::otel::{tracestate, SpanContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [which, v @ ..] = data else { return };
    if which & 1 == 0 {
        if let Some(c) = SpanContext::parse(v) {
            assert!(c.trace_id != [0; 16] && c.span_id != [0; 8]);
            let printed = c.traceparent();
            assert_eq!(SpanContext::parse(printed.as_bytes()), Some(c));
            if v.len() == 55 && v[..2] == *b"00" && (v[53..] == *b"00" || v[53..] == *b"01") {
                assert_eq!(printed.as_bytes(), v);
            }
        }
    } else if let Ok(s) = std::str::from_utf8(v) {
        if let Some(kept) = tracestate(s) {
            assert!(kept.len() <= s.len());
            assert_eq!(tracestate(&kept).as_deref(), Some(kept.as_str()));
        }
    }
});
