//! Event types, the event filter and dedupe keys (SPEC "Events and dedupe keys").
//!
//! Everything here runs after the signature verified (step 3b of the pipeline), on what was
//! verified: an event type is read from a header or, with an RFC 6901 JSON pointer, from the
//! verified body; a dedupe key is the message id, a digest of the signed content, or an id read
//! from the signed body.
//!
//! Reading a pointer never builds the document: one pass of `serde_json` over the body walks
//! the pointer's path and skips everything else (`IgnoredAny`, which keeps no tree and no
//! recursion), so a pass costs time linear in the body (bounded by `max_body_bytes`) and
//! memory proportional to the value found (capped below). A body that is not one JSON value,
//! that nests deeper than `serde_json`'s limit (128) along the path, whose pointer target is
//! missing, appears twice (a duplicate object key: which copy the app reads is parser-
//! dependent), or is not a usable scalar, yields nothing: no event type (README "Events and
//! filters"), no id (the key falls back to the signed content).

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

use crate::replay::Key;
use crate::verify::{Body, SignedContent, Verified};

/// Longest event type kept (bytes of printable ASCII); a longer one reads as no type.
pub const MAX_EVENT_LEN: usize = 128;
/// Longest id a `{ json = ... }` dedupe key reads; a longer one reads as no id.
pub const MAX_ID_LEN: usize = 1024;
/// Most reference tokens in a configured pointer.
pub const MAX_POINTER_TOKENS: usize = 32;
/// Longest configured pointer, in bytes.
pub const MAX_POINTER_LEN: usize = 512;
/// The `event` label of a type not in the route's `events` list, or of a request without one.
pub const OTHER: &str = "_other";
/// A route without an `events` list labels the first this many distinct types it sees by
/// their name, the rest `_other` (README "Metrics").
pub const DISCOVERED_LABELS: usize = 32;
/// The dedupe window where a request carries no signed timestamp and the route sets none.
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// An RFC 6901 JSON pointer, parsed: `""` is the whole document, `/a/0/b~1c` the tokens
/// `a`, `0`, `b/c`.
#[derive(Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl fmt::Debug for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl Pointer {
    /// Parses a pointer.
    ///
    /// # Errors
    /// A pointer that does not start with `/` (the empty pointer, the whole document, is no
    /// event type or id either), an escape other than `~0`/`~1`, or one over the size limits.
    pub fn parse(s: &str) -> Result<Pointer, String> {
        if !s.starts_with('/') {
            return Err(format!(
                "{s:?} is not a JSON pointer (RFC 6901) like \"/type\" or \"/event/type\""
            ));
        }
        if s.len() > MAX_POINTER_LEN {
            return Err(format!("longer than {MAX_POINTER_LEN} bytes"));
        }
        let mut tokens = Vec::new();
        for raw in s[1..].split('/') {
            let mut t = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    t.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => t.push('~'),
                    Some('1') => t.push('/'),
                    _ => return Err(format!("{s:?}: '~' must be followed by 0 or 1 (RFC 6901)")),
                }
            }
            tokens.push(t);
        }
        if tokens.len() > MAX_POINTER_TOKENS {
            return Err(format!("more than {MAX_POINTER_TOKENS} reference tokens"));
        }
        Ok(Pointer {
            text: s.to_owned(),
            tokens,
        })
    }

    /// The pointer as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scalar at this pointer in `body`: a string as it is, an integer in decimal. `None`
    /// for anything else (see the module docs); never panics, whatever the bytes.
    pub fn extract(&self, body: &[u8]) -> Option<String> {
        // serde_json skips a string it is told to ignore without checking its UTF-8: a body
        // that is not UTF-8 is not JSON (RFC 8259 §8.1), whatever part of it is skipped.
        std::str::from_utf8(body).ok()?;
        self.run(serde_json::Deserializer::from_slice(body))
    }

    /// As [`Pointer::extract`], on a body as the frames it arrived in: read in place, never
    /// joined into one copy.
    pub fn extract_body(&self, body: Body<'_>) -> Option<String> {
        let mut pieces = body.pieces();
        match (pieces.next(), pieces.next()) {
            (None, _) => self.extract(&[]),
            (Some(one), None) => self.extract(one),
            (Some(first), Some(second)) => {
                if !utf8(body) {
                    return None;
                }
                let reader = Pieces {
                    current: first,
                    rest: std::iter::once(second).chain(pieces),
                };
                self.run(serde_json::Deserializer::from_reader(reader))
            }
        }
    }

    fn run<'de, R: serde_json::de::Read<'de>>(
        &self,
        mut de: serde_json::Deserializer<R>,
    ) -> Option<String> {
        let hit = Seek { path: &self.tokens }.deserialize(&mut de).ok()?;
        de.end().ok()?;
        match hit {
            Hit::One(s) => Some(s),
            Hit::None | Hit::Unusable => None,
        }
    }
}

/// Whether a body in frames is UTF-8, a character split between frames included.
fn utf8(body: Body<'_>) -> bool {
    // The start of a character cut off at the end of the last frame (at most 3 bytes).
    let mut carry: Vec<u8> = Vec::new();
    for piece in body.pieces() {
        let mut p = piece;
        while !carry.is_empty() {
            let Some((&b, rest)) = p.split_first() else {
                break;
            };
            carry.push(b);
            p = rest;
            match std::str::from_utf8(&carry) {
                Ok(_) => carry.clear(),
                Err(e) if e.error_len().is_some() || carry.len() >= 4 => return false,
                Err(_) => {}
            }
        }
        if !carry.is_empty() {
            continue;
        }
        match std::str::from_utf8(p) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => carry.extend_from_slice(&p[e.valid_up_to()..]),
            Err(_) => return false,
        }
    }
    carry.is_empty()
}

/// The frames of a body as one reader, in order.
struct Pieces<'a, I> {
    current: &'a [u8],
    rest: I,
}

impl<'a, I: Iterator<Item = &'a [u8]>> std::io::Read for Pieces<'a, I> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if !self.current.is_empty() {
                let n = self.current.len().min(buf.len());
                buf[..n].copy_from_slice(&self.current[..n]);
                self.current = &self.current[n..];
                return Ok(n);
            }
            match self.rest.next() {
                Some(next) => self.current = next,
                None => return Ok(0),
            }
        }
    }
}

/// What a walk found at the pointer.
enum Hit {
    None,
    One(String),
    /// Found, but not one usable scalar (an object, a float, a duplicate key, too long).
    Unusable,
}

/// Walks `path` from the value the deserializer is at.
struct Seek<'p> {
    path: &'p [String],
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = Hit;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Hit, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = Hit;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Hit, E> {
        Ok(match self.path {
            [] if v.len() <= MAX_ID_LEN => Hit::One(v.to_owned()),
            [] => Hit::Unusable,
            _ => Hit::None,
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Hit, E> {
        Ok(match self.path {
            [] => Hit::One(v.to_string()),
            _ => Hit::None,
        })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Hit, E> {
        Ok(match self.path {
            [] => Hit::One(v.to_string()),
            _ => Hit::None,
        })
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Hit, E> {
        Ok(self.scalar_other())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Hit, E> {
        Ok(self.scalar_other())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Hit, E> {
        Ok(self.scalar_other())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Hit, A::Error> {
        let Some((want, rest)) = self.path.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Hit::Unusable);
        };
        let mut hit = Hit::None;
        let mut seen = false;
        while let Some(is_wanted) = map.next_key_seed(KeySeed(want))? {
            if is_wanted {
                let found = map.next_value_seed(Seek { path: rest })?;
                // A duplicate key: which copy the app reads depends on its parser.
                hit = if seen { Hit::Unusable } else { found };
                seen = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(hit)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Hit, A::Error> {
        // RFC 6901: an array index is "0" or digits without a leading zero.
        let index = match self.path.first() {
            Some(t) if t == "0" || (!t.starts_with('0') && !t.is_empty()) => {
                t.parse::<usize>().ok()
            }
            _ => None,
        };
        let mut hit = if self.path.is_empty() {
            Hit::Unusable
        } else {
            Hit::None
        };
        let mut i = 0usize;
        loop {
            if Some(i) == index {
                match seq.next_element_seed(Seek {
                    path: &self.path[1..],
                })? {
                    Some(h) => hit = h,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i = i.saturating_add(1);
        }
        Ok(hit)
    }
}

impl Seek<'_> {
    fn scalar_other(&self) -> Hit {
        if self.path.is_empty() {
            Hit::Unusable
        } else {
            Hit::None
        }
    }
}

/// An object key: whether it is the wanted token (compared, not kept).
struct KeySeed<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// How a route reads its event type (`event = ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// `{ header = "X-GitHub-Event" }`
    Header(HeaderName),
    /// `{ json = "/type" }`
    Json(Pointer),
}

/// A scheme's default event source (its `SchemeDef`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultEvent {
    /// The provider names no event type hookseal can read.
    None,
    Header(&'static str),
    Json(&'static str),
}

impl DefaultEvent {
    /// The source this default stands for.
    pub fn source(self) -> Option<EventSource> {
        match self {
            DefaultEvent::None => None,
            DefaultEvent::Header(h) => HeaderName::from_bytes(h.as_bytes())
                .ok()
                .map(EventSource::Header),
            DefaultEvent::Json(p) => Pointer::parse(p).ok().map(EventSource::Json),
        }
    }
}

impl EventSource {
    /// The verified request's event type: 1 to [`MAX_EVENT_LEN`] bytes of printable ASCII
    /// (space included), from a header sent once or the scalar at the pointer. `None`
    /// otherwise: absent, sent twice, unusable (see the module docs).
    pub fn read(&self, headers: &HeaderMap, body: Body<'_>) -> Option<HeaderValue> {
        let text = match self {
            EventSource::Header(name) => {
                let mut all = headers.get_all(name).iter();
                let v = all.next()?;
                if all.next().is_some() {
                    return None;
                }
                v.to_str().ok()?.to_owned()
            }
            EventSource::Json(p) => p.extract_body(body)?,
        };
        let ok = !text.is_empty()
            && text.len() <= MAX_EVENT_LEN
            && text.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !ok {
            return None;
        }
        HeaderValue::from_str(&text).ok()
    }
}

/// `dedupe_key`: what a verified delivery is deduplicated on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DedupeKey {
    /// The scheme's message id (`x-hookseal-id`), as before.
    #[default]
    Id,
    /// A digest of the signed content (README "Replay protection").
    Signature,
    /// The scalar at this pointer in the signed body; the signed content when there is none.
    Json(Pointer),
}

impl DedupeKey {
    /// The config word.
    pub fn describe(&self) -> String {
        match self {
            DedupeKey::Id => "id".to_owned(),
            DedupeKey::Signature => "signature".to_owned(),
            DedupeKey::Json(p) => format!("json:{}", p.as_str()),
        }
    }
}

/// A route's event and dedupe settings (`event`, `events`, `dedupe_key`, `dedupe_window`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteEvents {
    /// Where the event type comes from; `None`: the route reads none (no parse, no
    /// `x-hookseal-event`, no `hookseal_events_total`).
    pub source: Option<EventSource>,
    /// The allow-list; `None`: every type is forwarded.
    pub allow: Option<Vec<String>>,
    pub dedupe_key: DedupeKey,
    /// `dedupe_window` as configured.
    pub dedupe_window: Option<Duration>,
}

impl RouteEvents {
    /// How long a delivered key is kept: for a request whose timestamp was signed (and
    /// checked), at least twice the tolerance (a replay inside the window must still find it);
    /// otherwise the route's `dedupe_window`, by default [`DEFAULT_DEDUPE_WINDOW`].
    pub fn done_ttl(&self, tolerance: Duration, signed_timestamp: bool) -> Duration {
        if signed_timestamp {
            self.dedupe_window
                .unwrap_or(Duration::ZERO)
                .max(tolerance * 2)
        } else {
            self.dedupe_window.unwrap_or(DEFAULT_DEDUPE_WINDOW)
        }
    }

    /// The settings that differ from the defaults, for `hookseal check`: `""`, or
    /// ` event=… events=[…] dedupe_key=… dedupe_window=…` (those that are set).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        match &self.source {
            Some(EventSource::Header(h)) => out.push_str(&format!(" event=header:{h}")),
            Some(EventSource::Json(p)) => out.push_str(&format!(" event=json:{}", p.as_str())),
            None => {}
        }
        if let Some(list) = &self.allow {
            out.push_str(&format!(" events=[{}]", list.join(",")));
        }
        if self.dedupe_key != DedupeKey::Id {
            out.push_str(&format!(" dedupe_key={}", self.dedupe_key.describe()));
        }
        if let Some(w) = self.dedupe_window {
            out.push_str(&format!(
                " dedupe_window={}",
                crate::config::fmt_duration(w)
            ));
        }
        out
    }

    /// Whether `event` passes the allow-list.
    pub fn allows(&self, event: Option<&HeaderValue>) -> bool {
        match &self.allow {
            None => true,
            Some(list) => event.is_some_and(|e| list.iter().any(|t| t.as_bytes() == e.as_bytes())),
        }
    }
}

/// What the key of a verified request is derived from, besides its route.
pub struct KeyInput<'a> {
    pub verified: &'a Verified,
    /// What the route's scheme signs ([`crate::verify::Scheme::signed_content`]).
    pub content: SignedContent,
    /// Whether the request's timestamp was covered by the signature.
    pub timestamp_signed: bool,
    pub headers: &'a HeaderMap,
    pub body: Body<'a>,
}

/// The dedupe key of a verified request on route `route`, or `None` when it has none (not
/// deduplicated, as a request without its optional id header before).
pub fn dedupe_key(route: &str, key: &DedupeKey, input: &KeyInput<'_>) -> Option<Key> {
    match key {
        // The same key as before this setting existed: marks survive an upgrade.
        DedupeKey::Id => input
            .verified
            .id
            .as_ref()
            .map(|id| Key::new(route, id.as_bytes())),
        DedupeKey::Signature => signed_key(route, input),
        DedupeKey::Json(p) => match p.extract_body(input.body) {
            Some(id) => {
                let mut m = Vec::with_capacity(6 + id.len());
                m.extend_from_slice(b"\0json\0");
                m.extend_from_slice(id.as_bytes());
                Some(Key::new(route, &m))
            }
            None => signed_key(route, input),
        },
    }
}

/// The key from the signed content: SHA-256 over what the signature covers, so that it is
/// the same for a delivery whatever its unsigned headers (a fresh id header), whichever of the
/// route's secrets (or of several signatures in the header) matched, and cannot differ for
/// one delivery without the signature failing.
fn signed_key(route: &str, input: &KeyInput<'_>) -> Option<Key> {
    let mut h = Sha256::new();
    h.update(b"hookseal/signed/v1\0");
    match input.content {
        SignedContent::Unsupported => return None,
        SignedContent::Header(name) => {
            // The one canonical signature value (compared as exact text, sent once).
            h.update(b"header\0");
            h.update(input.headers.get(name)?.as_bytes());
        }
        SignedContent::Body { id } => {
            h.update(b"body\0");
            match input.verified.timestamp.filter(|_| input.timestamp_signed) {
                Some(ts) => {
                    h.update([1]);
                    h.update(ts.to_be_bytes());
                }
                None => h.update([0]),
            }
            match input.verified.id.as_ref().filter(|_| id) {
                Some(v) => {
                    h.update([1]);
                    h.update((v.len() as u64).to_be_bytes());
                    h.update(v.as_bytes());
                }
                None => h.update([0]),
            }
            for piece in input.body.pieces() {
                h.update(piece);
            }
        }
    }
    let digest = h.finalize();
    let mut m = [0u8; 37];
    m[..5].copy_from_slice(b"\0sig\0");
    m[5..].copy_from_slice(&digest);
    Some(Key::new(route, &m))
}

#[cfg(test)]
mod tests;
