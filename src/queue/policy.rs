//! The delivery policy, as pure functions of their inputs (the clock and the randomness are
//! arguments), so every rule is unit-tested without a network or wall time.
//!
//! - [`classify`]: what an attempt's result means (delivered, retry, dead).
//! - [`Policy::decide`]: when to try again, or to give up (`max_attempts`, `max_age`), with
//!   exponential backoff and jitter, never sooner than the app's `Retry-After`.
//! - [`parse_retry_after`]: `Retry-After` as delta-seconds or an HTTP-date.
//! - [`RateLimiter`]: `rate` attempts per second toward the app.
//! - [`permits`]: how many attempts a route may have in flight (`concurrency`, `ordered`).

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What came back from one attempt to deliver an entry to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The app answered with this status.
    Status(u16),
    /// No connection could be made (refused, reset before an answer, DNS, TLS).
    ConnectError,
    /// No answer within the upstream timeout.
    Timeout,
}

/// What an attempt's result means for the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: remove the entry, mark the dedupe entry delivered.
    Delivered,
    /// Connect error, timeout, 5xx, 408, 429: try again later.
    Retry,
    /// Any other status (1xx, 3xx, other 4xx): dead-letter at once.
    Dead,
}

/// SPEC "Queued delivery": 2xx delivered; connect error, timeout, 5xx, 408, 429 retried; any
/// other status dead-lettered at once.
pub fn classify(result: AttemptResult) -> Outcome {
    match result {
        AttemptResult::ConnectError | AttemptResult::Timeout => Outcome::Retry,
        AttemptResult::Status(s) if (200..300).contains(&s) => Outcome::Delivered,
        AttemptResult::Status(s) if (500..600).contains(&s) || s == 408 || s == 429 => {
            Outcome::Retry
        }
        AttemptResult::Status(_) => Outcome::Dead,
    }
}

/// Why an entry was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// The app refused it with a status that is not retried.
    Refused,
    /// `max_attempts` attempts were made.
    MaxAttempts,
    /// The next attempt would start past `queued_at + max_age`.
    MaxAge,
}

impl DeadReason {
    /// Short text for the entry's `last_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Refused => "refused",
            DeadReason::MaxAttempts => "max_attempts",
            DeadReason::MaxAge => "max_age",
        }
    }
}

/// What to do with an entry after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Acknowledge: the app has it.
    Delivered,
    /// Reschedule: the next attempt no sooner than this unix time in milliseconds.
    RetryAt(u64),
    /// Move to the dead letters.
    Dead(DeadReason),
}

/// A route's retry settings (`[route.delivery]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// No attempt starts later than this after the entry was queued.
    pub max_age: Duration,
    /// The delay before the second attempt (`backoff.initial`).
    pub initial: Duration,
    /// The largest backoff delay (`backoff.max`); a `Retry-After` may ask for more.
    pub max: Duration,
}

impl Default for Policy {
    /// The SPEC defaults: 12 attempts, 24 h, backoff 1 s … 10 min.
    fn default() -> Policy {
        Policy {
            max_attempts: 12,
            max_age: Duration::from_secs(24 * 3600),
            initial: Duration::from_secs(1),
            max: Duration::from_secs(600),
        }
    }
}

impl Policy {
    /// The delay after attempt number `attempt` (1-based) failed, before `Retry-After`.
    ///
    /// The ceiling is `initial · 2^(attempt-1)`, capped at `max`; the delay is drawn uniformly
    /// from its upper half ("equal jitter": `jitter` in `[0, 1)` picks the point), and never
    /// below `initial` nor above `max`. Jitter keeps many entries that failed together (the app
    /// was down) from all coming back in the same instant.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let initial = self.initial.min(self.max);
        let shift = attempt.saturating_sub(1).min(40);
        let ceiling = initial
            .checked_mul(1u32 << shift.min(31))
            .and_then(|d| d.checked_mul(1u32 << shift.saturating_sub(31)))
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = ceiling / 2;
        (half + half.mul_f64(jitter)).clamp(initial, self.max)
    }

    /// The decision after attempt number `attempt` (1-based: the count including this one)
    /// of an entry queued at `queued_at_ms` ended with `result` at `now_ms`.
    ///
    /// `retry_after` is the app's `Retry-After` (see [`parse_retry_after`]), if any; `jitter`
    /// is a uniform random number in `[0, 1)`.
    pub fn decide(
        &self,
        result: AttemptResult,
        attempt: u32,
        queued_at_ms: u64,
        now_ms: u64,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Decision {
        match classify(result) {
            Outcome::Delivered => return Decision::Delivered,
            Outcome::Dead => return Decision::Dead(DeadReason::Refused),
            Outcome::Retry => {}
        }
        if attempt >= self.max_attempts.max(1) {
            return Decision::Dead(DeadReason::MaxAttempts);
        }
        let delay = self
            .backoff(attempt, jitter)
            .max(retry_after.unwrap_or_default());
        let at = now_ms.saturating_add(millis(delay));
        if at > queued_at_ms.saturating_add(millis(self.max_age)) {
            return Decision::Dead(DeadReason::MaxAge);
        }
        Decision::RetryAt(at)
    }
}

/// Milliseconds, saturating, rounded up (a delay is never shortened).
fn millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// The delay a `Retry-After` value asks for, seen at `now`: delta-seconds (`"120"`) or an
/// HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`, and the obsolete RFC 850 and asctime forms).
/// A date in the past is a delay of zero. `None` for anything else (the header is then
/// ignored, and the backoff alone decides).
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // More than ~30 years of digits saturate; the max_age check then dead-letters.
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// Unix time in milliseconds.
pub fn unix_ms(t: SystemTime) -> u64 {
    millis(t.duration_since(UNIX_EPOCH).unwrap_or_default())
}

/// How many attempts a route may have in flight toward its app: `concurrency` (at least 1),
/// or 1 when `ordered`.
///
/// `ordered = true` means more than one permit: the worker claims a route's entries one at a
/// time in arrival order and claims the next only once the previous one is delivered or
/// dead-lettered, so an entry waiting for its retry holds back every later one (head-of-line
/// blocking is the price of order). The worker takes a permit of a
/// `tokio::sync::Semaphore` sized by this before each attempt.
pub fn permits(concurrency: u32, ordered: bool) -> usize {
    if ordered {
        1
    } else {
        usize::try_from(concurrency.max(1)).unwrap_or(usize::MAX)
    }
}

/// The semaphore a route's worker takes a permit of before each attempt: [`permits`] permits.
pub fn concurrency_limit(
    concurrency: u32,
    ordered: bool,
) -> std::sync::Arc<tokio::sync::Semaphore> {
    std::sync::Arc::new(tokio::sync::Semaphore::new(permits(concurrency, ordered)))
}

/// `rate` attempts per second toward one route's app: a token bucket holding one token, so
/// attempts start at least `1/rate` apart and no window of one second ever holds more than
/// `rate` of them (a bigger bucket would let a burst through right after a quiet spell).
///
/// Times are nanoseconds on a clock of the caller's choosing ([`RateLimiter::reserve`]), so
/// tests drive it with a fake clock; the worker uses [`RateLimiter::acquire`].
#[derive(Debug)]
pub struct RateLimiter {
    /// Nanoseconds between two attempts, rounded up; 0 = unlimited.
    interval: u64,
    /// The earliest time the next attempt may start.
    next: Mutex<u64>,
    /// The origin of [`RateLimiter::acquire`]'s clock.
    origin: tokio::time::Instant,
}

impl RateLimiter {
    /// A limiter for `rate` attempts per second; 0 = unlimited.
    pub fn new(rate: u32) -> RateLimiter {
        RateLimiter {
            interval: if rate == 0 {
                0
            } else {
                1_000_000_000u64.div_ceil(u64::from(rate))
            },
            next: Mutex::new(0),
            origin: tokio::time::Instant::now(),
        }
    }

    /// As [`RateLimiter::new`], with each interval longer by `margin_percent` percent: what
    /// the app measures is the arrival of the attempts, which network and scheduling jitter
    /// can bring closer together than they started; the margin keeps any one second at the
    /// app at or below `rate`.
    pub fn with_margin(rate: u32, margin_percent: u32) -> RateLimiter {
        let mut r = RateLimiter::new(rate);
        r.interval = r
            .interval
            .saturating_mul(100 + u64::from(margin_percent))
            .div_ceil(100);
        r
    }

    /// Reserves the next slot for a caller arriving at `now` (ns): returns the time at which
    /// its attempt may start (`now` or later). Reservations are served in call order.
    pub fn reserve(&self, now: u64) -> u64 {
        if self.interval == 0 {
            return now;
        }
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let at = now.max(*next);
        *next = at.saturating_add(self.interval);
        at
    }

    /// Waits for this caller's slot (tokio time).
    pub async fn acquire(&self) {
        if self.interval == 0 {
            return;
        }
        let now = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let at = self.reserve(now);
        if at > now {
            tokio::time::sleep_until(self.origin + Duration::from_nanos(at)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn classification() {
        use AttemptResult::*;
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(classify(Status(s)), Outcome::Delivered, "{s}");
        }
        for s in [500, 502, 503, 504, 599, 408, 429] {
            assert_eq!(classify(Status(s)), Outcome::Retry, "{s}");
        }
        assert_eq!(classify(ConnectError), Outcome::Retry);
        assert_eq!(classify(Timeout), Outcome::Retry);
        for s in [
            100, 301, 304, 400, 401, 403, 404, 409, 410, 413, 422, 499, 600,
        ] {
            assert_eq!(classify(Status(s)), Outcome::Dead, "{s}");
        }
    }

    #[test]
    fn backoff_grows_exponentially_within_bounds() {
        let p = Policy {
            initial: S,
            max: Duration::from_secs(60),
            ..Policy::default()
        };
        // Jitter 0 → the lower half's bottom (but never below initial); near 1 → the ceiling.
        assert_eq!(p.backoff(1, 0.0), S);
        assert_eq!(p.backoff(1, 0.999_999), S);
        assert_eq!(p.backoff(2, 0.0), S);
        assert_eq!(p.backoff(3, 0.0), Duration::from_secs(2));
        assert!(p.backoff(3, 0.999_999) > Duration::from_millis(3999));
        assert_eq!(p.backoff(4, 0.5), Duration::from_secs(6));
        for attempt in [7, 8, 20, 40, 1000, u32::MAX] {
            for j in [0.0, 0.3, 0.999_999] {
                let d = p.backoff(attempt, j);
                assert!(
                    d >= Duration::from_secs(30) && d <= p.max,
                    "{attempt} {j} {d:?}"
                );
            }
        }
        // Jitter spreads: different draws, different delays.
        assert_ne!(p.backoff(5, 0.1), p.backoff(5, 0.9));
        // Odd inputs never panic and stay in bounds.
        for j in [f64::NAN, f64::INFINITY, -1.0, 2.0] {
            let d = p.backoff(5, j);
            assert!(d >= p.initial && d <= p.max);
        }
        let odd = Policy {
            initial: Duration::from_secs(100),
            max: Duration::from_secs(10),
            ..p
        };
        assert_eq!(odd.backoff(1, 0.5), Duration::from_secs(10));
    }

    #[test]
    fn decisions() {
        let p = Policy {
            max_attempts: 3,
            max_age: Duration::from_secs(3600),
            initial: S,
            max: Duration::from_secs(60),
        };
        let q = 1_000_000; // queued_at, ms
        let d = |r, attempt, now, ra| p.decide(r, attempt, q, now, ra, 0.0);
        use AttemptResult::*;
        assert_eq!(d(Status(204), 1, q, None), Decision::Delivered);
        assert_eq!(d(Status(204), 3, q, None), Decision::Delivered);
        assert_eq!(
            d(Status(410), 1, q, None),
            Decision::Dead(DeadReason::Refused)
        );
        assert_eq!(d(Status(503), 1, q, None), Decision::RetryAt(q + 1000));
        assert_eq!(
            d(Timeout, 2, q + 10, None),
            Decision::RetryAt(q + 10 + 1000)
        );
        assert_eq!(
            d(Status(503), 3, q, None),
            Decision::Dead(DeadReason::MaxAttempts)
        );
        // Retry-After wins over a shorter backoff, and is honoured above backoff.max.
        assert_eq!(
            d(Status(503), 1, q, Some(Duration::from_secs(2))),
            Decision::RetryAt(q + 2000)
        );
        assert_eq!(
            d(Status(429), 1, q, Some(Duration::from_secs(120))),
            Decision::RetryAt(q + 120_000)
        );
        // A shorter Retry-After does not shorten the backoff.
        assert_eq!(
            d(Status(503), 1, q, Some(Duration::from_millis(10))),
            Decision::RetryAt(q + 1000)
        );
        // The next attempt would start past max_age: dead now, not later.
        assert_eq!(
            d(Status(500), 1, q + 3_599_500, None),
            Decision::Dead(DeadReason::MaxAge)
        );
        assert_eq!(
            d(Status(500), 1, q, Some(Duration::from_secs(7200))),
            Decision::Dead(DeadReason::MaxAge)
        );
        assert_eq!(
            d(Status(500), 1, q + 3_599_000, None),
            Decision::RetryAt(q + 3_600_000)
        );
        // max_attempts = 0 behaves as 1.
        let once = Policy {
            max_attempts: 0,
            ..p
        };
        assert_eq!(
            once.decide(Status(500), 1, q, q, None, 0.0),
            Decision::Dead(DeadReason::MaxAttempts)
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_000); // 2015-10-21T07:20:00Z
        let p = |v: &str| parse_retry_after(v.as_bytes(), now);
        assert_eq!(p("2"), Some(Duration::from_secs(2)));
        assert_eq!(p(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(p("0"), Some(Duration::ZERO));
        assert_eq!(
            p("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        let eight_min = Some(Duration::from_secs(480));
        assert_eq!(p("Wed, 21 Oct 2015 07:28:00 GMT"), eight_min);
        assert_eq!(p("Wednesday, 21-Oct-15 07:28:00 GMT"), eight_min);
        assert_eq!(p("Wed Oct 21 07:28:00 2015"), eight_min);
        // In the past: no extra wait.
        assert_eq!(p("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "2 s",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
        assert_eq!(parse_retry_after(b"\xff1", now), None);
    }

    #[test]
    fn permits_for_concurrency_and_order() {
        assert_eq!(permits(16, false), 16);
        assert_eq!(permits(0, false), 1);
        assert_eq!(permits(16, true), 1);
        let ordered = concurrency_limit(16, true);
        let held = ordered.clone().try_acquire_owned().unwrap();
        assert!(ordered.try_acquire().is_err(), "one in flight at a time");
        drop(held);
        assert!(ordered.try_acquire().is_ok());
        assert_eq!(concurrency_limit(16, false).available_permits(), 16);
    }

    /// Most starts in any half-open window `[t, t + 1 s)`.
    fn max_in_any_second(starts: &[u64]) -> usize {
        let mut sorted = starts.to_vec();
        sorted.sort_unstable();
        (0..sorted.len())
            .map(|i| {
                sorted[i..]
                    .iter()
                    .take_while(|&&t| t < sorted[i] + 1_000_000_000)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn rate_10_burst_of_100_never_more_than_10_per_second() {
        let limiter = RateLimiter::new(10);
        // All 100 arrive at once, on a fake clock.
        let t0 = 5_000_000_000;
        let starts: Vec<u64> = (0..100).map(|_| limiter.reserve(t0)).collect();
        assert_eq!(max_in_any_second(&starts), 10);
        assert_eq!(starts[0], t0, "the first goes at once");
        // …and the burst is not slowed more than the rate requires: done in ~10 s.
        assert!(starts[99] - t0 < 10_000_000_000, "{}", starts[99] - t0);

        // Arrivals spread irregularly, with quiet gaps (a bucket that saved up would burst).
        let limiter = RateLimiter::new(10);
        let mut now = 0u64;
        let mut starts = Vec::new();
        for i in 0..300u64 {
            now += match i % 7 {
                0 => 2_500_000_000,
                1 | 2 => 0,
                _ => 13_000_000,
            };
            let at = limiter.reserve(now);
            assert!(at >= now);
            starts.push(at);
        }
        assert!(max_in_any_second(&starts) <= 10);
    }

    #[test]
    fn a_margin_leaves_room_for_jitter_in_every_second() {
        let limiter = RateLimiter::with_margin(10, 5);
        let starts: Vec<u64> = (0..100).map(|_| limiter.reserve(0)).collect();
        assert_eq!(starts[1] - starts[0], 105_000_000);
        // Each start moved by up to ±20 ms (arrival jitter): still at most 10 in any second.
        let jittered: Vec<u64> = starts
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s + 20_000_000 + if i % 2 == 0 { 20_000_000 } else { 0 }
                    - 20_000_000 * (i as u64 % 3 / 2)
            })
            .collect();
        let mut sorted = jittered.clone();
        sorted.sort_unstable();
        assert!(max_in_any_second(&sorted) <= 10);
        assert_eq!(
            RateLimiter::with_margin(0, 5).reserve(9),
            9,
            "0 stays unlimited"
        );
    }

    #[test]
    fn rate_odd_values() {
        let unlimited = RateLimiter::new(0);
        assert!((0..1000).all(|_| unlimited.reserve(7) == 7));
        // 3/s: the interval rounds up, so three never fit in less than a second.
        let three = RateLimiter::new(3);
        let starts: Vec<u64> = (0..30).map(|_| three.reserve(0)).collect();
        assert_eq!(max_in_any_second(&starts), 3);
    }

    #[tokio::test]
    async fn acquire_waits_for_the_slot() {
        let limiter = RateLimiter::new(50); // 20 ms apart
        let started = tokio::time::Instant::now();
        for _ in 0..4 {
            limiter.acquire().await;
        }
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert!(RateLimiter::new(0).interval == 0);
    }
}
