//! A route's `event`, `events`, `dedupe_key` and `dedupe_window` (SPEC "Events and dedupe
//! keys"): read in [`Cx::event_keys`], judged against the route's scheme in
//! [`Cx::route_events`] once that is built.

use std::time::Duration;

use toml::de::DeValue;

use super::walk::{join, Item};
use super::{parse_duration, Cx, Table};
use crate::events::{DedupeKey, EventSource, Pointer, RouteEvents, MAX_EVENT_LEN, OTHER};
use crate::verify::NO_SCHEME;
use crate::verify::{Scheme, SignedContent};

/// Most types in an `events` list (each is a metric label).
pub const MAX_EVENTS: usize = 64;

/// The four keys as read, each with its offset, before the scheme is known.
#[derive(Debug, Default)]
pub(super) struct EventKeys {
    event: Option<(usize, EventSource)>,
    events: Option<(usize, Vec<String>)>,
    dedupe_key: Option<(usize, DedupeKey)>,
    dedupe_window: Option<(usize, Duration)>,
}

impl EventKeys {
    /// Whether `dedupe_key` names something other than the message id (the route then dedupes
    /// by default, with or without a message id).
    pub(super) fn keyed(&self) -> bool {
        matches!(&self.dedupe_key, Some((_, k)) if *k != DedupeKey::Id)
    }
}

/// A window: the config's durations, and whole days (`"7d"`).
fn window(s: &str) -> Option<Duration> {
    match s.strip_suffix('d') {
        Some(days)
            if !days.is_empty() && days.len() <= 6 && days.bytes().all(|b| b.is_ascii_digit()) =>
        {
            days.parse::<u64>()
                .ok()
                .map(|n| Duration::from_secs(n * 86_400))
        }
        _ => parse_duration(s),
    }
}

impl Cx<'_> {
    /// Reads the four keys; a malformed one is reported and `None` returned.
    pub(super) fn event_keys(&mut self, t: &Table<'_, '_>) -> Option<EventKeys> {
        let mut ok = true;
        let mut keys = EventKeys::default();
        if let Some((key, item)) = self.entry(t, "event") {
            match self.source(&key, item) {
                Some(s) => keys.event = Some((item.span().start, s)),
                None => ok = false,
            }
        }
        if let Some((key, item)) = self.entry(t, "events") {
            match self.event_list(&key, item) {
                Some(l) => keys.events = Some((item.span().start, l)),
                None => ok = false,
            }
        }
        if let Some((key, item)) = self.entry(t, "dedupe_key") {
            let parsed = match item.get_ref() {
                DeValue::String(s) if s == "id" => Some(DedupeKey::Id),
                DeValue::String(s) if s == "signature" => Some(DedupeKey::Signature),
                DeValue::Table(_) => self.json_only(&key, item).map(DedupeKey::Json),
                _ => None,
            };
            match parsed {
                Some(k) => keys.dedupe_key = Some((item.span().start, k)),
                None => {
                    if !matches!(item.get_ref(), DeValue::Table(_)) {
                        self.err(
                            item.span().start,
                            &key,
                            "must be \"id\", \"signature\" or { json = \"/pointer\" }",
                        );
                    }
                    ok = false;
                }
            }
        }
        if let Some((key, item)) = self.entry(t, "dedupe_window") {
            let d = self
                .str_of(&key, item)
                .and_then(|s| window(&s))
                .filter(|d| *d >= Duration::from_secs(1));
            match d {
                Some(d) => keys.dedupe_window = Some((item.span().start, d)),
                None => {
                    self.err(
                        item.span().start,
                        &key,
                        "must be a duration of at least 1s like \"7d\" or \"72h\"",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(keys)
    }

    /// `{ header = "Name" }` or `{ json = "/pointer" }`.
    fn source(&mut self, key: &str, item: &Item<'_>) -> Option<EventSource> {
        let DeValue::Table(map) = item.get_ref() else {
            self.err(
                item.span().start,
                key,
                "must be { header = \"Name\" } or { json = \"/pointer\" }",
            );
            return None;
        };
        let t = Table {
            path: key.to_owned(),
            span_start: item.span().start,
            map,
        };
        self.check_keys(&t, &["header", "json"]);
        match (self.opt_str(&t, "header"), map.get("json")) {
            (Some((off, h)), None) => match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(name) => Some(EventSource::Header(name)),
                Err(_) => {
                    self.err(off, &join(key, "header"), "not a valid header name");
                    None
                }
            },
            (None, Some(_)) => self.json_only(key, item).map(EventSource::Json),
            _ => {
                self.err(
                    item.span().start,
                    key,
                    "give exactly one of header = \"Name\" or json = \"/pointer\"",
                );
                None
            }
        }
    }

    /// `{ json = "/pointer" }`, the only key of its table.
    fn json_only(&mut self, key: &str, item: &Item<'_>) -> Option<Pointer> {
        let DeValue::Table(map) = item.get_ref() else {
            return None;
        };
        let t = Table {
            path: key.to_owned(),
            span_start: item.span().start,
            map,
        };
        if !map.contains_key("header") {
            self.check_keys(&t, &["json"]);
        }
        let Some((off, p)) = self.opt_str(&t, "json") else {
            self.err(item.span().start, key, "must be { json = \"/pointer\" }");
            return None;
        };
        match Pointer::parse(&p) {
            Ok(p) => Some(p),
            Err(e) => {
                self.err(off, &join(key, "json"), e);
                None
            }
        }
    }

    /// `events = ["a", "b"]`: 1 to [`MAX_EVENTS`] distinct types of printable ASCII.
    fn event_list(&mut self, key: &str, item: &Item<'_>) -> Option<Vec<String>> {
        let off = item.span().start;
        let DeValue::Array(arr) = item.get_ref() else {
            self.err(off, key, "must be an array of event types");
            return None;
        };
        if arr.is_empty() || arr.len() > MAX_EVENTS {
            self.err(
                off,
                key,
                format!("must list 1 to {MAX_EVENTS} event types (an empty list would filter every request)"),
            );
            return None;
        }
        let mut out: Vec<String> = Vec::new();
        for v in arr.iter() {
            let ok = match v.get_ref() {
                DeValue::String(s) => {
                    let s = s.to_string();
                    let valid = !s.is_empty()
                        && s.len() <= MAX_EVENT_LEN
                        && s.bytes().all(|b| (0x20..0x7f).contains(&b))
                        && s != OTHER;
                    if valid && !out.contains(&s) {
                        out.push(s);
                        true
                    } else {
                        false
                    }
                }
                _ => false,
            };
            if !ok {
                self.err(
                    v.span().start,
                    key,
                    format!(
                        "each event type: a distinct string of 1-{MAX_EVENT_LEN} printable ASCII characters, not \"{OTHER}\""
                    ),
                );
                return None;
            }
        }
        Some(out)
    }

    /// The route's settings, judged against its scheme (`None` for `scheme = "none"`) and
    /// whether it dedupes. A problem is reported against the key at fault.
    pub(super) fn route_events(
        &mut self,
        p: &str,
        keys: EventKeys,
        scheme: Option<&Scheme>,
        dedupe: bool,
    ) -> Option<RouteEvents> {
        let name = scheme.map_or(NO_SCHEME, |s| s.name().as_str());
        let mut ok = true;
        if scheme.is_none() {
            for (k, off) in [
                ("event", keys.event.as_ref().map(|e| e.0)),
                ("events", keys.events.as_ref().map(|e| e.0)),
                ("dedupe_key", keys.dedupe_key.as_ref().map(|e| e.0)),
                ("dedupe_window", keys.dedupe_window.as_ref().map(|e| e.0)),
            ] {
                if let Some(off) = off {
                    self.err(
                        off,
                        &format!("{p}.{k}"),
                        "needs a verifying scheme: it applies to what the signature verified",
                    );
                    ok = false;
                }
            }
            return ok.then(RouteEvents::default);
        }
        let source = match (&keys.event, &keys.events, scheme) {
            (Some((_, s)), _, _) => Some(s.clone()),
            (None, Some((off, _)), Some(s)) => match s.default_event().source() {
                Some(src) => Some(src),
                None => {
                    self.err(
                        *off,
                        &format!("{p}.events"),
                        format!(
                            "scheme {name:?} names no event type: set event = {{ header = \"...\" }} or {{ json = \"/...\" }}"
                        ),
                    );
                    ok = false;
                    None
                }
            },
            _ => None,
        };
        if let Some((off, k)) = &keys.dedupe_key {
            let has_id = scheme.is_some_and(Scheme::has_message_id);
            let content = scheme.map_or(SignedContent::Unsupported, Scheme::signed_content);
            let problem = match k {
                DedupeKey::Id if !has_id => Some(format!("scheme {name:?} carries no message id")),
                DedupeKey::Signature if content == SignedContent::Unsupported => {
                    let token = scheme.is_some_and(|s| !s.name().def().body_signed);
                    Some(if token {
                        format!("scheme {name:?} sends a constant token, not a signature of the content: every request would be a duplicate of the first")
                    } else {
                        format!("scheme {name:?} does not describe its signed content; use \"id\" or {{ json = \"/...\" }}")
                    })
                }
                _ if !dedupe => Some("the route does not dedupe (dedupe = false)".to_owned()),
                _ => None,
            };
            if let Some(problem) = problem {
                self.err(*off, &format!("{p}.dedupe_key"), problem);
                ok = false;
            }
        }
        if let (Some((off, _)), false) = (&keys.dedupe_window, dedupe) {
            self.err(
                *off,
                &format!("{p}.dedupe_window"),
                "only for a route that dedupes",
            );
            ok = false;
        }
        ok.then(|| RouteEvents {
            source,
            allow: keys.events.map(|(_, l)| l),
            dedupe_key: keys.dedupe_key.map(|(_, k)| k).unwrap_or_default(),
            dedupe_window: keys.dedupe_window.map(|(_, d)| d),
        })
    }
}
