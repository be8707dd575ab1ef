//! The JWKS cache of a `jwt` route whose keys come from a URL.
//!
//! * Fetched through [`Fetcher`] (allow-list: exactly the URL's host), on first use.
//! * Kept until `Cache-Control: max-age` passes, clamped to `[min_ttl, max_ttl]`
//!   (`default_ttl` without one; `no-store`/`no-cache` count as `min_ttl`).
//! * A token whose `kid` is not in the cached set triggers one refetch, at most one per
//!   `refetch_interval` whatever the number of such tokens (a flood of made-up `kid`s cannot
//!   turn into a flood of fetches); concurrent requests share one fetch.
//! * A failed fetch keeps the cached keys: they serve until they expire. With no unexpired
//!   keys the answer is [`JwtError::KeysUnavailable`] (fail closed), and a new attempt is made
//!   at most once per `refetch_interval`.
//!
//! The clock is passed in (`now: Instant`) so tests can move it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{JwtError, KeySet};
use crate::fetch::Fetcher;

/// Cache timings of a [`JwksCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksOptions {
    /// Shortest time a fetched JWKS is kept.
    pub min_ttl: Duration,
    /// Longest time a fetched JWKS is kept.
    pub max_ttl: Duration,
    /// Time kept when the response has no `max-age`.
    pub default_ttl: Duration,
    /// Least time between two fetches not due to expiry (unknown `kid`, retry after failure).
    pub refetch_interval: Duration,
}

impl Default for JwksOptions {
    fn default() -> JwksOptions {
        JwksOptions {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(3600),
            refetch_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    keys: Option<(Arc<KeySet>, Instant)>,
    last_attempt: Option<Instant>,
}

impl State {
    fn fresh(&self, now: Instant) -> Option<Arc<KeySet>> {
        self.keys
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(k, _)| Arc::clone(k))
    }

    fn may_attempt(&self, now: Instant, interval: Duration) -> bool {
        self.last_attempt
            .is_none_or(|t| now.saturating_duration_since(t) >= interval)
    }
}

/// A JWKS fetched from a URL and cached.
#[derive(Debug)]
pub struct JwksCache {
    fetcher: Fetcher,
    url: String,
    host: String,
    options: JwksOptions,
    state: Mutex<State>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
    failures: AtomicU64,
}

impl JwksCache {
    /// A cache of the JWKS at `url` (`https`, with a host).
    pub fn new(fetcher: Fetcher, url: &str, options: JwksOptions) -> Result<JwksCache, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| format!("jwks_url {url:?} is not a URL"))?;
        let host = match (uri.scheme_str(), uri.host()) {
            (Some("https"), Some(h)) if !h.is_empty() => h.to_ascii_lowercase(),
            _ => return Err(format!("jwks_url {url:?} is not an https URL")),
        };
        Ok(JwksCache {
            fetcher,
            url: url.to_owned(),
            host,
            options,
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Fetches attempted so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Fetches that failed so far (network, status, size, or a JWKS without usable keys).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The keys to verify a token with `kid` at `now`.
    pub async fn keys(&self, now: Instant, kid: Option<&str>) -> Result<Arc<KeySet>, JwtError> {
        let interval = self.options.refetch_interval;
        let (seen_attempt, may_attempt) = {
            let st = self.lock();
            match st.fresh(now) {
                Some(k) if kid.is_none_or(|kid| k.has_kid(kid)) => return Ok(k),
                _ => (st.last_attempt, st.may_attempt(now, interval)),
            }
        };
        let _one = self.fetching.lock().await;
        if !may_attempt {
            // Rate-limited: no new fetch, but the outcome of one in flight (just awaited) counts.
            return self.lock().fresh(now).ok_or(JwtError::KeysUnavailable);
        }
        {
            let st = self.lock();
            if st.last_attempt != seen_attempt {
                // Another request fetched meanwhile: use its outcome.
                return st.fresh(now).ok_or(JwtError::KeysUnavailable);
            }
        }
        self.lock().last_attempt = Some(now);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch().await {
            Ok((keys, ttl)) => {
                let keys = Arc::new(keys);
                self.lock().keys = Some((Arc::clone(&keys), now + ttl));
                Ok(keys)
            }
            Err(why) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %self.url, error = %why, "JWKS fetch failed");
                self.lock().fresh(now).ok_or(JwtError::KeysUnavailable)
            }
        }
    }

    async fn fetch(&self) -> Result<(KeySet, Duration), String> {
        let got = self
            .fetcher
            .get(&self.url, &[self.host.as_str()])
            .await
            .map_err(|e| e.to_string())?;
        let keys = KeySet::from_jwks_json(&got.body)?;
        let ttl = max_age(&got.headers)
            .unwrap_or(self.options.default_ttl)
            .clamp(self.options.min_ttl, self.options.max_ttl);
        Ok((keys, ttl))
    }
}

/// `Cache-Control: max-age=N` (`no-store` / `no-cache` → zero); `None` without either.
fn max_age(headers: &http::HeaderMap) -> Option<Duration> {
    let mut found = None;
    for v in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(v) = v.to_str() else { continue };
        for directive in v.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-store" || lower == "no-cache" {
                return Some(Duration::ZERO);
            }
            if let Some(n) = lower.strip_prefix("max-age=") {
                if let Ok(n) = n.trim_matches('"').parse::<u64>() {
                    found = Some(Duration::from_secs(n));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(http::header::CACHE_CONTROL, v.parse().unwrap());
            max_age(&m)
        };
        assert_eq!(
            h("public, max-age=19204, must-revalidate, no-transform"),
            Some(Duration::from_secs(19204))
        );
        assert_eq!(h("no-store"), Some(Duration::ZERO));
        assert_eq!(h("public"), None);
        assert_eq!(h("max-age=abc"), None);
        assert_eq!(max_age(&http::HeaderMap::new()), None);
    }
}
