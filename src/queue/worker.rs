//! The delivery worker (SPEC "Queued delivery"): per queued route, claims due entries from
//! the spool and sends each to the route's upstream as direct forwarding would (the same
//! client, head and body) plus `x-hookseal-attempt` and `x-hookseal-queued-at`, then applies
//! [`super::policy`]: delivered, retried later, or dead-lettered.
//!
//! - **Limits**: a route has at most `concurrency` attempts in flight (1 when `ordered`), and
//!   starts at most `rate` per second (a token bucket of one: attempts start `1/rate` apart).
//! - **Ordered**: one entry at a time, in arrival order; an entry waiting for its retry holds
//!   back every later one (it is retried in place, the lease kept, rather than rescheduled).
//! - **Wake-ups**: a stored request wakes the route loops at once; otherwise each polls every
//!   [`IDLE_POLL`] (so a rescheduled entry starts at most that late).
//! - **Reload**: every [`RELOAD_POLL`] the worker compares the queued routes in force with
//!   the ones it runs: a new, changed or removed route gets a new loop (or none); the old loop
//!   stops claiming and lets its attempts finish. The store itself (`[queue]`) is fixed at start.
//! - **Store errors**: an attempt whose outcome the spool cannot record (ack, reschedule or
//!   dead letter failed) keeps its lease: with Redis another consumer (or this one) reclaims it
//!   after `claim_after`; on disk it is claimed again at the next start. Either way it is
//!   attempted again (at-least-once), never lost.
//! - **Shutdown**: loops stop claiming; attempts in flight get `limits.shutdown_grace`; what is
//!   left stays in the spool (an attempt cut short is claimed again at the next start, its
//!   attempt already counted).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Request, Uri, Version};
use http_body::Body as _;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::accept::{ATTEMPT, QUEUED_AT};
use super::policy::{self, AttemptResult, Decision, RateLimiter};
use super::{Claimed, Failure, Spool};
use crate::body::RawBody;
use crate::config::Delivery;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::replay::{Key, ReplayStore};
use crate::upstream::UpstreamError;

/// How often an idle route loop looks for due entries (rescheduled ones included).
pub const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often the worker looks for a changed set of queued routes.
pub const RELOAD_POLL: Duration = Duration::from_secs(1);
/// How much longer than `1/rate` two attempts of a rate-limited route start apart (see
/// [`RateLimiter::with_margin`]): `rate = 10` starts them 105 ms apart.
pub const RATE_MARGIN_PERCENT: u32 = 5;
/// Most entries one claim takes.
const CLAIM_BATCH: usize = 64;
/// Most bytes of an app's response body read (to reuse the connection); the rest is dropped.
const DRAIN_LIMIT: usize = 64 * 1024;

/// What the worker needs of one queued route (built from the config in force).
#[derive(Debug, Clone)]
pub struct Target {
    /// The route name.
    pub name: String,
    /// The app it delivers to.
    pub upstream: Authority,
    /// `[route.delivery]`
    pub delivery: Delivery,
    /// `upstream.timeout`: no answer head within it is a failed attempt.
    pub timeout: Duration,
    /// The route's replay partition: a delivered id is marked done in it.
    pub replay: ReplayStore,
    /// Whether the route dedupes on the message id.
    pub dedupe: bool,
    /// How long a delivered id is kept as done.
    pub done_ttl: Duration,
}

impl Target {
    /// Whether a loop built for `self` must be rebuilt for `other`.
    fn differs(&self, other: &Target) -> bool {
        self.upstream != other.upstream
            || self.delivery != other.delivery
            || self.timeout != other.timeout
            || self.dedupe != other.dedupe
            || self.done_ttl != other.done_ttl
    }
}

/// What every route loop shares.
struct Shared {
    proxy: Arc<Proxy>,
    spool: Spool,
    metrics: Arc<Metrics>,
    /// This replica's consumer name (Redis).
    consumer: String,
    claim_after: Duration,
    wake: Arc<Notify>,
}

/// The delivery worker of one process.
pub struct Worker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("consumer", &self.shared.consumer)
            .finish_non_exhaustive()
    }
}

/// A consumer name unique to this process: host name and pid.
pub fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty() && h.len() <= 64)
        .unwrap_or_else(|| "hookseal".to_owned());
    format!("{host}-{}", std::process::id())
}

struct Running {
    target: Target,
    stop: watch::Sender<bool>,
}

impl Worker {
    /// A worker delivering `proxy`'s queued routes from `spool`.
    pub fn new(
        proxy: Arc<Proxy>,
        spool: Spool,
        metrics: Arc<Metrics>,
        claim_after: Duration,
    ) -> Worker {
        let wake = proxy.queue_wake();
        Worker {
            shared: Arc::new(Shared {
                proxy,
                spool,
                metrics,
                consumer: consumer_name(),
                claim_after,
                wake,
            }),
        }
    }

    /// Runs until `stop` turns true, then lets attempts in flight finish within `grace`.
    pub async fn run(self, mut stop: watch::Receiver<bool>, grace: Duration) {
        let mut running: HashMap<String, Running> = HashMap::new();
        let mut loops = JoinSet::new();
        loop {
            let targets = self.shared.proxy.snapshot().delivery_targets();
            let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            self.shared.metrics.queue.retain(&names);
            running.retain(|name, r| {
                let keep = targets
                    .iter()
                    .any(|t| &t.name == name && !r.target.differs(t));
                if !keep {
                    let _ = r.stop.send(true);
                }
                keep
            });
            for t in targets {
                if running.contains_key(&t.name) {
                    continue;
                }
                let (tx, rx) = watch::channel(false);
                loops.spawn(route_loop(
                    Arc::clone(&self.shared),
                    Arc::new(t.clone()),
                    rx,
                ));
                running.insert(
                    t.name.clone(),
                    Running {
                        target: t,
                        stop: tx,
                    },
                );
            }
            while loops.try_join_next().is_some() {}
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = tokio::time::sleep(RELOAD_POLL) => {}
            }
        }
        for r in running.values() {
            let _ = r.stop.send(true);
        }
        let drained =
            tokio::time::timeout(grace, async { while loops.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                "delivery attempts still in flight after shutdown_grace were cut short; their entries stay in the spool"
            );
            loops.abort_all();
        }
        // The last acknowledgements, durable before the process exits.
        if let Err(e) = self.shared.spool.persist().await {
            tracing::warn!(error = %e, "spool: cannot make the last acknowledgements durable");
        }
    }
}

/// Waits until `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One route's loop: claim what is due within the limits, attempt each in its own task.
async fn route_loop(shared: Arc<Shared>, t: Arc<Target>, mut stop: watch::Receiver<bool>) {
    let d = t.delivery;
    let slots = policy::concurrency_limit(d.concurrency, d.ordered);
    // Two buckets of the same rate: one paces the claims (so no more is claimed than can
    // start), the other the sends themselves, so that the time a claim took cannot bring two
    // attempts closer together than `1/rate` at the app.
    let claim_rate = RateLimiter::new(d.rate);
    let send_rate = Arc::new(RateLimiter::with_margin(d.rate, RATE_MARGIN_PERCENT));
    let redis = matches!(shared.spool, Spool::Redis(_));
    let claim_after_ms = u64::try_from(shared.claim_after.as_millis()).unwrap_or(u64::MAX);
    let reclaim_every = (shared.claim_after / 2).max(Duration::from_secs(1));
    let mut next_reclaim = Instant::now();
    let mut attempts = JoinSet::new();
    let mut last_error_log: Option<Instant> = None;
    'outer: loop {
        while attempts.try_join_next().is_some() {}
        let first = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let mut permits = vec![first];
        if d.rate == 0 {
            while permits.len() < CLAIM_BATCH {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
        }
        tokio::select! {
            () = claim_rate.acquire() => {}
            () = stopped(&mut stop) => break,
        }
        // Registered before the claim, so a request stored during it is not missed.
        let wake = shared.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let now = policy::unix_ms(SystemTime::now());
        let claimed = if redis && Instant::now() >= next_reclaim {
            next_reclaim = Instant::now() + reclaim_every;
            match shared
                .spool
                .reclaim(&t.name, &shared.consumer, claim_after_ms, permits.len())
                .await
            {
                Ok(v) if !v.is_empty() => Ok(v),
                Ok(_) => {
                    shared
                        .spool
                        .claim(&t.name, &shared.consumer, permits.len(), now)
                        .await
                }
                Err(e) => Err(e),
            }
        } else {
            shared
                .spool
                .claim(&t.name, &shared.consumer, permits.len(), now)
                .await
        };
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                if last_error_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    last_error_log = Some(Instant::now());
                    tracing::warn!(route = %t.name, store = shared.spool.kind(), error = %e, "spool: cannot claim entries to deliver");
                }
                drop(permits);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue 'outer,
                    () = stopped(&mut stop) => break 'outer,
                }
            }
        };
        if claimed.is_empty() {
            drop(permits);
            tokio::select! {
                () = &mut wake => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
                () = stopped(&mut stop) => break,
            }
            continue;
        }
        for (c, permit) in claimed.into_iter().zip(permits.drain(..)) {
            attempts.spawn(deliver(
                Arc::clone(&shared),
                Arc::clone(&t),
                Arc::clone(&send_rate),
                c,
                permit,
                stop.clone(),
            ));
        }
    }
    // Stop claiming; the attempts in flight finish (the worker bounds the wait).
    while attempts.join_next().await.is_some() {}
}

/// What an attempt got from the app.
struct Answer {
    result: AttemptResult,
    retry_after: Option<Duration>,
}

/// One claimed entry until it is delivered, rescheduled or dead (an ordered route retries
/// in place until then).
async fn deliver(
    shared: Arc<Shared>,
    t: Arc<Target>,
    rate: Arc<RateLimiter>,
    mut claimed: Claimed,
    _permit: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempt = claimed.entry.attempts.max(1);
    loop {
        rate.acquire().await;
        let answer = attempt_once(&shared, &t, &mut claimed, attempt).await;
        let now = policy::unix_ms(SystemTime::now());
        let e = &claimed.entry;
        let decision = t.delivery.policy().decide(
            answer.result,
            attempt,
            e.queued_at,
            now,
            answer.retry_after,
            jitter(&e.id, attempt),
        );
        let status = match answer.result {
            AttemptResult::Status(s) => Some(s),
            _ => None,
        };
        let error = match answer.result {
            AttemptResult::Status(_) => None,
            AttemptResult::ConnectError => Some("connect".to_owned()),
            AttemptResult::Timeout => Some("timeout".to_owned()),
        };
        let q = &shared.metrics.queue;
        let stored = match decision {
            Decision::Delivered => {
                q.attempt(&t.name, "delivered");
                q.delivered_after(&t.name, now.saturating_sub(e.queued_at) as f64 / 1000.0);
                mark_delivered(&shared, &t, &claimed).await;
                shared.spool.ack(&claimed).await
            }
            Decision::RetryAt(at) if t.delivery.ordered && !*stop.borrow() => {
                q.attempt(&t.name, "retry");
                // Head of line: wait here, the lease kept, then try the same entry again.
                let wait = Duration::from_millis(at.saturating_sub(now));
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stopped(&mut stop) => {
                        let failure = Failure { status, error };
                        log_store(&t, shared.spool.reschedule(&claimed, at, &failure).await);
                        return;
                    }
                }
                attempt += 1;
                continue;
            }
            Decision::RetryAt(at) => {
                q.attempt(&t.name, "retry");
                let failure = Failure { status, error };
                shared.spool.reschedule(&claimed, at, &failure).await
            }
            Decision::Dead(why) => {
                q.attempt(&t.name, "dead");
                let error = Some(match error {
                    Some(e) => format!("{}: {e}", why.as_str()),
                    None => why.as_str().to_owned(),
                });
                tracing::warn!(route = %t.name, id = %e.id, attempts = attempt, status = ?status, reason = why.as_str(), "delivery dead-lettered");
                shared
                    .spool
                    .dead_letter(&claimed, &Failure { status, error })
                    .await
            }
        };
        log_store(&t, stored);
        return;
    }
}

fn log_store(t: &Target, r: Result<(), super::QueueError>) {
    if let Err(e) = r {
        tracing::warn!(route = %t.name, error = %e, "spool: cannot record a delivery attempt; the entry will be attempted again");
    }
}

/// On the app's 2xx: the id is marked done in the replay store (a later duplicate is
/// answered 200 `duplicate`), when the route dedupes and the entry's id is the message id.
async fn mark_delivered(shared: &Shared, t: &Target, claimed: &Claimed) {
    let e = &claimed.entry;
    let is_message_id = e
        .headers
        .iter()
        .any(|(n, v)| n == crate::headers::ID.as_str().as_bytes() && v == e.id.as_bytes());
    if !(t.dedupe && is_message_id) {
        return;
    }
    let key = Key::new(&t.name, e.id.as_bytes());
    if let Err(err) = t.replay.finish(&key, true, t.done_ttl).await {
        shared.proxy.replay_errors().inc();
        tracing::warn!(route = %t.name, error = %err, "replay store: could not mark a delivery done");
    }
}

/// Sends the entry once: its stored head and body, plus the attempt number and queue time.
/// The first attempt takes the header map the proxy held, if the spool kept it; a later one
/// builds the headers from the entry.
async fn attempt_once(shared: &Shared, t: &Target, claimed: &mut Claimed, attempt: u32) -> Answer {
    let head = claimed.take_head();
    let e = &claimed.entry;
    let Some(req) = request(e, head, attempt) else {
        // A stored head that no longer parses is never sendable: refuse it for good.
        return Answer {
            result: AttemptResult::Status(400),
            retry_after: None,
        };
    };
    match shared
        .proxy
        .client()
        .send(req, &t.upstream, t.timeout)
        .await
    {
        Ok(resp) => {
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| policy::parse_retry_after(v.as_bytes(), SystemTime::now()));
            let status = resp.status().as_u16();
            drain(resp.into_body(), t.timeout).await;
            Answer {
                result: AttemptResult::Status(status),
                retry_after,
            }
        }
        Err(UpstreamError::Timeout) => Answer {
            result: AttemptResult::Timeout,
            retry_after: None,
        },
        Err(UpstreamError::Unavailable | UpstreamError::Busy) => Answer {
            result: AttemptResult::ConnectError,
            retry_after: None,
        },
    }
}

/// Reads a little of the app's response body, so its connection can be reused; a larger or
/// slow one is dropped (its connection closed).
async fn drain(mut body: crate::upstream::UpstreamBody, timeout: Duration) {
    let _ = tokio::time::timeout(timeout.min(Duration::from_secs(5)), async {
        let mut read = 0usize;
        while let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            match frame {
                Ok(f) => {
                    read += f.data_ref().map_or(0, Bytes::len);
                    if read > DRAIN_LIMIT {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    })
    .await;
}

/// The request of attempt `attempt` of `e`: what direct forwarding would have sent, plus
/// `x-hookseal-attempt` and `x-hookseal-queued-at`. `head`, when the spool kept it, is the
/// same header list as the proxy held it: copied instead of parsed again.
fn request(
    e: &super::Entry,
    head: Option<http::HeaderMap>,
    attempt: u32,
) -> Option<Request<RawBody>> {
    let mut req = Request::new(RawBody::from_bytes(e.body.clone()));
    *req.method_mut() = http::Method::from_bytes(e.method.as_bytes()).ok()?;
    *req.uri_mut() = e.path_and_query.parse::<Uri>().ok()?;
    *req.version_mut() = Version::HTTP_11;
    if let Some(head) = head {
        *req.headers_mut() = head;
    } else {
        let h = req.headers_mut();
        for (n, v) in e.headers.iter() {
            let name = HeaderName::from_bytes(n).ok()?;
            let value = HeaderValue::from_bytes(v).ok()?;
            h.append(name, value);
        }
    }
    let h = req.headers_mut();
    h.insert(ATTEMPT, HeaderValue::from(attempt));
    h.insert(QUEUED_AT, HeaderValue::from(e.queued_at / 1000));
    Some(req)
}

/// A number in `[0, 1)` that differs between entries and attempts (the backoff's jitter;
/// not a secret).
fn jitter(id: &str, attempt: u32) -> f64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut z = u64::from(nanos) ^ (u64::from(attempt) << 32);
    for b in id.bytes() {
        z = (z ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_the_stored_head_plus_attempt_and_queue_time() {
        let e = super::super::Entry::new(
            "m1",
            "r",
            "POST",
            "/hook?a=1",
            vec![
                (b"host".to_vec(), b"app".to_vec()),
                (b"x-hookseal-id".to_vec(), b"m1".to_vec()),
                (b"x-dup".to_vec(), b"1".to_vec()),
                (b"x-dup".to_vec(), b"2".to_vec()),
            ],
            Bytes::from_static(b"{}"),
            1_700_000_000_123,
        );
        let r = request(&e, None, 3).unwrap();
        assert_eq!(r.method(), http::Method::POST);
        assert_eq!(r.uri(), "/hook?a=1");
        assert_eq!(r.headers()["x-hookseal-attempt"], "3");
        assert_eq!(r.headers()["x-hookseal-queued-at"], "1700000000");
        assert_eq!(r.headers().get_all("x-dup").iter().count(), 2);
        assert_eq!(r.body().len(), 2);
        let mut bad = e.clone();
        bad.headers.push(b"bad name", b"v");
        assert!(request(&bad, None, 1).is_none());

        // The head the proxy held gives the same request, header for header, in order.
        let mut head = http::HeaderMap::new();
        for (n, v) in e.headers.iter() {
            head.append(
                HeaderName::from_bytes(n).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        let from_head = request(&e, Some(head), 3).unwrap();
        let list = |r: &Request<RawBody>| -> Vec<(String, Vec<u8>)> {
            r.headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        assert_eq!(list(&from_head), list(&r));
        assert_eq!((from_head.method(), from_head.uri()), (r.method(), r.uri()));
    }

    #[test]
    fn jitter_is_in_range() {
        for i in 0..1000 {
            let j = jitter(&format!("id{i}"), i);
            assert!((0.0..1.0).contains(&j));
        }
    }
}
