//! The Redis spool: Redis Streams, shared by every replica.
//!
//! Keys of route `R` (all under [`KEY_PREFIX`]):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `hookseal:queue:R:stream` | stream, consumer group `hookseal` | due entries (field `e` = the encoded [`Entry`]) |
//! | `hookseal:queue:R:delayed` | sorted set | rescheduled entries, scored by `next_attempt_at` (ms) |
//! | `hookseal:queue:R:dead` | stream | dead letters (field `e`) |
//! | `hookseal:queue:R:ids` | hash | id → encoded size, for every queued, undelivered entry (dedupe) |
//! | `hookseal:queue:usage` | hash | `entries`, `bytes` of every route, dead letters included (the caps) |
//!
//! Every change is one Lua script (atomic). A claim first moves the due entries of `delayed`
//! to the stream, then reads with `XREADGROUP` under the replica's consumer name; the entry
//! stays in the group's pending list until acknowledged. A replica that dies leaves its
//! entries pending: `RedisSpool::reclaim` takes those idle longer than `claim_after` with
//! `XAUTOCLAIM`. The attempt count handed out is the count stored in the entry plus the
//! stream's delivery counter (`XPENDING`), so attempts begun by a dead replica still count.
//!
//! The scripts touch several keys, so a Redis Cluster is not supported (one server, or a
//! primary with replicas).

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Client, ConnectionAddr, Script, Value};

use super::{Claimed, DeadInfo, Entry, Failure, Lease, Limits, QueueError, RouteStats};

/// Prefix of every key this store writes.
pub const KEY_PREFIX: &str = "hookseal:queue:";
/// The consumer group of every route's stream.
pub const GROUP: &str = "hookseal";
/// Due entries moved from `delayed` to the stream per claim, at most.
const PROMOTE_MAX: usize = 256;

/// KEYS: ids, stream, usage. ARGV: id, blob, max_bytes, max_entries.
/// Returns 0 (stored), 1 (already queued), 2 (full).
static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
local size = string.len(ARGV[2])
local n = tonumber(redis.call('HGET', KEYS[3], 'entries') or '0')
local b = tonumber(redis.call('HGET', KEYS[3], 'bytes') or '0')
if n + 1 > tonumber(ARGV[4]) or b + size > tonumber(ARGV[3]) then return 2 end
redis.call('HSET', KEYS[1], ARGV[1], size)
redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'entries', 1)
redis.call('HINCRBY', KEYS[3], 'bytes', size)
return 0
",
    )
});

/// KEYS: stream, delayed. ARGV: group, consumer, count, now_ms, promote_max.
/// Returns [[stream_id, blob, deliveries], …].
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4], 'LIMIT', 0, ARGV[5])
for _, blob in ipairs(due) do
  redis.call('XADD', KEYS[1], '*', 'e', blob)
  redis.call('ZREM', KEYS[2], blob)
end
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
local out = {}
if r then
  for _, m in ipairs(r[1][2]) do
    table.insert(out, {m[1], m[2][2], 1})
  end
end
return out
",
    )
});

/// KEYS: stream. ARGV: group, consumer, min_idle_ms, count.
/// Returns [[stream_id, blob, deliveries], …].
static RECLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0', 'COUNT', ARGV[4])
local out = {}
for _, m in ipairs(r[2]) do
  if m and m[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], m[1], m[1], 1)
    local n = 1
    if p[1] then n = p[1][4] end
    table.insert(out, {m[1], m[2][2], n})
  end
end
return out
",
    )
});

/// KEYS: stream, ids, usage. ARGV: group, stream_id, id, size.
/// Returns 1 if the entry was still pending here (now removed), else 0.
static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[3])
redis.call('HINCRBY', KEYS[3], 'entries', -1)
redis.call('HINCRBY', KEYS[3], 'bytes', -tonumber(ARGV[4]))
return 1
",
    )
});

/// KEYS: stream, delayed, usage. ARGV: group, stream_id, blob, next_at, old_size.
static RESCHEDULE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('HINCRBY', KEYS[3], 'bytes', string.len(ARGV[3]) - tonumber(ARGV[5]))
return 1
",
    )
});

/// KEYS: stream, dead, ids, usage. ARGV: group, stream_id, blob, id, old_size.
static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], '*', 'e', ARGV[3])
redis.call('HDEL', KEYS[3], ARGV[4])
redis.call('HINCRBY', KEYS[4], 'bytes', string.len(ARGV[3]) - tonumber(ARGV[5]))
return 1
",
    )
});

/// KEYS: dead, stream, ids, usage. ARGV: dead_stream_id, id, blob, old_size.
/// Returns 1 (requeued), 0 (no such dead letter), 2 (the id is queued again: kept dead).
static RETRY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then return 2 end
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local size = string.len(ARGV[3])
redis.call('XADD', KEYS[2], '*', 'e', ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], size)
redis.call('HINCRBY', KEYS[4], 'bytes', size - tonumber(ARGV[4]))
return 1
",
    )
});

/// KEYS: dead, usage. ARGV: dead_stream_id, size. Returns 1 if deleted.
static PURGE_ONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], 'entries', -1)
redis.call('HINCRBY', KEYS[2], 'bytes', -tonumber(ARGV[2]))
return 1
",
    )
});

/// A spool in Redis Streams. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisSpool {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    manager: OnceLock<ConnectionManager>,
    command_timeout: Duration,
    limits: Limits,
}

impl std::fmt::Debug for RedisSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the client: its connection info holds the password.
        f.debug_struct("RedisSpool")
            .field("command_timeout", &self.inner.command_timeout)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

/// Key `hookseal:queue:<route>:<part>`.
pub fn key(route: &str, part: &str) -> String {
    format!("{KEY_PREFIX}{route}:{part}")
}

fn usage_key() -> String {
    format!("{KEY_PREFIX}usage")
}

impl RedisSpool {
    /// A spool for `url` (`redis://…` or `rediss://…`). Nothing is connected here: the first
    /// command connects, and the connection is re-made after Redis restarts.
    ///
    /// # Errors
    ///
    /// [`QueueError::InvalidUrl`] for a malformed URL, or `rediss://` before a rustls crypto
    /// provider is installed.
    pub fn new(
        url: &str,
        command_timeout: Duration,
        limits: Limits,
    ) -> Result<RedisSpool, QueueError> {
        let client = Client::open(url).map_err(|_| {
            QueueError::InvalidUrl("expected redis://[:password@]host[:port][/db] or rediss://")
        })?;
        if matches!(
            client.get_connection_info().addr(),
            ConnectionAddr::TcpTls { .. }
        ) && rustls::crypto::CryptoProvider::get_default().is_none()
        {
            return Err(QueueError::InvalidUrl(
                "rediss:// needs a rustls crypto provider installed first",
            ));
        }
        Ok(RedisSpool {
            inner: Arc::new(Inner {
                client,
                manager: OnceLock::new(),
                command_timeout,
                limits,
            }),
        })
    }

    pub(super) async fn enqueue(&self, entry: &Entry) -> Result<(), QueueError> {
        let mut conn = self.manager()?;
        let mut call = ENQUEUE.key(key(&entry.route, "ids"));
        call.key(key(&entry.route, "stream"))
            .key(usage_key())
            .arg(&entry.id)
            .arg(entry.encode())
            .arg(self.inner.limits.max_bytes)
            .arg(self.inner.limits.max_entries);
        match self.bounded(call.invoke_async::<i64>(&mut conn)).await? {
            0 => Ok(()),
            1 => Err(QueueError::AlreadyQueued),
            2 => Err(QueueError::Full),
            _ => Err(protocol()),
        }
    }

    pub(super) async fn claim(
        &self,
        route: &str,
        consumer: &str,
        max: usize,
        now_ms: u64,
    ) -> Result<Vec<Claimed>, QueueError> {
        let mut conn = self.manager()?;
        let mut call = CLAIM.key(key(route, "stream"));
        call.key(key(route, "delayed"))
            .arg(GROUP)
            .arg(consumer)
            .arg(max.max(1))
            .arg(now_ms)
            .arg(PROMOTE_MAX);
        let reply: Vec<(String, Vec<u8>, u64)> = self.bounded(call.invoke_async(&mut conn)).await?;
        claimed(route, reply)
    }

    pub(super) async fn reclaim(
        &self,
        route: &str,
        consumer: &str,
        claim_after_ms: u64,
        max: usize,
    ) -> Result<Vec<Claimed>, QueueError> {
        let mut conn = self.manager()?;
        let mut call = RECLAIM.key(key(route, "stream"));
        call.arg(GROUP)
            .arg(consumer)
            .arg(claim_after_ms)
            .arg(max.max(1));
        let reply: Vec<(String, Vec<u8>, u64)> = self.bounded(call.invoke_async(&mut conn)).await?;
        claimed(route, reply)
    }

    pub(super) async fn ack(&self, c: &Claimed) -> Result<(), QueueError> {
        let (stream_id, size) = lease(c)?;
        let route = &c.entry.route;
        let mut conn = self.manager()?;
        let mut call = ACK.key(key(route, "stream"));
        call.key(key(route, "ids"))
            .key(usage_key())
            .arg(GROUP)
            .arg(stream_id)
            .arg(&c.entry.id)
            .arg(size);
        let _: i64 = self.bounded(call.invoke_async(&mut conn)).await?;
        Ok(())
    }

    pub(super) async fn reschedule(
        &self,
        c: &Claimed,
        next_attempt_at: u64,
        failure: &Failure,
    ) -> Result<(), QueueError> {
        let (stream_id, size) = lease(c)?;
        let mut e = c.entry.clone();
        e.next_attempt_at = next_attempt_at;
        e.last_status = failure.status;
        e.last_error.clone_from(&failure.error);
        let route = &c.entry.route;
        let mut conn = self.manager()?;
        let mut call = RESCHEDULE.key(key(route, "stream"));
        call.key(key(route, "delayed"))
            .key(usage_key())
            .arg(GROUP)
            .arg(stream_id)
            .arg(e.encode())
            .arg(next_attempt_at)
            .arg(size);
        let _: i64 = self.bounded(call.invoke_async(&mut conn)).await?;
        Ok(())
    }

    pub(super) async fn dead_letter(
        &self,
        c: &Claimed,
        failure: &Failure,
    ) -> Result<(), QueueError> {
        let (stream_id, size) = lease(c)?;
        let mut e = c.entry.clone();
        e.last_status = failure.status;
        e.last_error.clone_from(&failure.error);
        let route = &c.entry.route;
        let mut conn = self.manager()?;
        let mut call = DEAD_LETTER.key(key(route, "stream"));
        call.key(key(route, "dead"))
            .key(key(route, "ids"))
            .key(usage_key())
            .arg(GROUP)
            .arg(stream_id)
            .arg(e.encode())
            .arg(&c.entry.id)
            .arg(size);
        let _: i64 = self.bounded(call.invoke_async(&mut conn)).await?;
        Ok(())
    }

    pub(super) async fn stats(&self, route: &str, now_ms: u64) -> Result<RouteStats, QueueError> {
        let mut conn = self.manager()?;
        // Waiting = the stream (due or pending) + delayed; the oldest is the smallest
        // queued_at among the stream's first entry and the delayed ones (bounded look).
        let (stream_len, delayed, dead, first, delayed_some): (u64, u64, u64, Value, Vec<Vec<u8>>) =
            self.bounded(
                redis::pipe()
                    .cmd("XLEN")
                    .arg(key(route, "stream"))
                    .cmd("ZCARD")
                    .arg(key(route, "delayed"))
                    .cmd("XLEN")
                    .arg(key(route, "dead"))
                    .cmd("XRANGE")
                    .arg(key(route, "stream"))
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .cmd("ZRANGE")
                    .arg(key(route, "delayed"))
                    .arg(0)
                    .arg(255)
                    .query_async(&mut conn),
            )
            .await?;
        let mut blobs = stream_blobs(first)?
            .into_iter()
            .map(|(_, b)| b)
            .collect::<Vec<_>>();
        blobs.extend(delayed_some);
        let oldest = blobs
            .iter()
            .filter_map(|b| Entry::decode(b).ok())
            .map(|e| e.queued_at)
            .min();
        Ok(RouteStats {
            depth: stream_len + delayed,
            dead,
            oldest_ms: oldest.map_or(0, |q| now_ms.saturating_sub(q)),
        })
    }

    pub(super) async fn dead(
        &self,
        route: &str,
        limit: usize,
    ) -> Result<Vec<DeadInfo>, QueueError> {
        let mut out = Vec::new();
        for (_, blob) in self.dead_entries(route, limit).await? {
            out.push(DeadInfo::of(&decode(&blob)?));
        }
        Ok(out)
    }

    /// Up to `limit` (stream id, blob) pairs of `route`'s dead letters, oldest first.
    async fn dead_entries(
        &self,
        route: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, QueueError> {
        let mut conn = self.manager()?;
        let reply: Value = self
            .bounded(
                redis::cmd("XRANGE")
                    .arg(key(route, "dead"))
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit.max(1))
                    .query_async(&mut conn),
            )
            .await?;
        stream_blobs(reply)
    }

    pub(super) async fn retry_dead(
        &self,
        route: &str,
        id: Option<&str>,
        now_ms: u64,
    ) -> Result<u64, QueueError> {
        let mut done = 0;
        // Dead letters are few (each one was an operator's problem); the list is read whole.
        for (sid, blob) in self.dead_entries(route, usize::MAX >> 1).await? {
            let mut e = decode(&blob)?;
            if id.is_some_and(|id| id != e.id) {
                continue;
            }
            e.next_attempt_at = now_ms;
            let mut conn = self.manager()?;
            let mut call = RETRY.key(key(route, "dead"));
            call.key(key(route, "stream"))
                .key(key(route, "ids"))
                .key(usage_key())
                .arg(sid)
                .arg(&e.id)
                .arg(e.encode())
                .arg(blob.len());
            if self.bounded(call.invoke_async::<i64>(&mut conn)).await? == 1 {
                done += 1;
            }
        }
        Ok(done)
    }

    pub(super) async fn purge_dead(&self, route: &str) -> Result<u64, QueueError> {
        let mut done = 0;
        for (sid, blob) in self.dead_entries(route, usize::MAX >> 1).await? {
            let mut conn = self.manager()?;
            let mut call = PURGE_ONE.key(key(route, "dead"));
            call.key(usage_key()).arg(sid).arg(blob.len());
            if self.bounded(call.invoke_async::<i64>(&mut conn)).await? == 1 {
                done += 1;
            }
        }
        Ok(done)
    }

    fn manager(&self) -> Result<ConnectionManager, QueueError> {
        if let Some(m) = self.inner.manager.get() {
            return Ok(m.clone());
        }
        let m = crate::replay::redis::connection_manager(
            &self.inner.client,
            self.inner.command_timeout,
        )
        .map_err(unavailable)?;
        Ok(self.inner.manager.get_or_init(|| m).clone())
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, QueueError> {
        match tokio::time::timeout(self.inner.command_timeout, fut).await {
            Err(_) => Err(QueueError::Unavailable("timed out".into())),
            Ok(Err(e)) => Err(unavailable(e)),
            Ok(Ok(v)) => Ok(v),
        }
    }
}

fn claimed(route: &str, reply: Vec<(String, Vec<u8>, u64)>) -> Result<Vec<Claimed>, QueueError> {
    let mut out = Vec::with_capacity(reply.len());
    for (stream_id, blob, deliveries) in reply {
        let mut entry = decode(&blob)?;
        if entry.route != route {
            return Err(protocol());
        }
        let deliveries = u32::try_from(deliveries).unwrap_or(u32::MAX);
        entry.attempts = entry.attempts.saturating_add(deliveries.max(1));
        out.push(Claimed {
            entry,
            lease: Lease::Redis {
                stream_id,
                size: blob.len() as u64,
            },
            head: None,
        });
    }
    Ok(out)
}

/// (stream id, field `e`) of each entry of an XRANGE reply.
fn stream_blobs(reply: Value) -> Result<Vec<(String, Vec<u8>)>, QueueError> {
    // (stream id, [(field, value)])
    type Row = (String, Vec<(String, Vec<u8>)>);
    let rows: Vec<Row> = redis::from_redis_value(reply).map_err(|_| protocol())?;
    rows.into_iter()
        .map(|(sid, fields)| {
            fields
                .into_iter()
                .find(|(f, _)| f == "e")
                .map(|(_, v)| (sid, v))
                .ok_or_else(protocol)
        })
        .collect()
}

fn lease(c: &Claimed) -> Result<(&str, u64), QueueError> {
    match &c.lease {
        Lease::Redis { stream_id, size } => Ok((stream_id, *size)),
        Lease::Disk(_) => Err(QueueError::Unavailable(
            "entry was claimed from another store".into(),
        )),
    }
}

fn decode(blob: &[u8]) -> Result<Entry, QueueError> {
    Entry::decode(blob).map_err(|why| QueueError::Unavailable(format!("bad entry in Redis: {why}")))
}

fn protocol() -> QueueError {
    QueueError::Unavailable("unexpected reply from Redis".into())
}

fn unavailable(e: redis::RedisError) -> QueueError {
    QueueError::Unavailable(crate::replay::redis::error_text(&e))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::conformance::{self, entry, T0};
    use super::super::Spool;
    use super::*;
    use crate::replay::testing::RedisServer;

    const TIMEOUT: Duration = Duration::from_millis(500);

    fn spool(url: &str, limits: Limits) -> Spool {
        Spool::Redis(RedisSpool::new(url, TIMEOUT, limits).unwrap())
    }

    #[tokio::test]
    async fn redis_spool_semantics() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let s = spool(&server.url(), Limits::default());
        assert_eq!(s.kind(), "redis");
        conformance::check_semantics(&s).await;
    }

    #[tokio::test]
    async fn redis_spool_caps() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let limits = Limits {
            max_bytes: 1 << 20,
            max_entries: 4,
        };
        conformance::check_full(&spool(&server.url(), limits)).await;
        let small = spool(
            &server.url(),
            Limits {
                max_bytes: 1 << 20,
                max_entries: 100,
            },
        );
        // The byte cap counts every route (`usage` is shared).
        let tiny = spool(
            &server.url(),
            Limits {
                max_bytes: 1,
                max_entries: 100,
            },
        );
        assert!(matches!(
            tiny.enqueue(entry("other", "x", b"x")).await,
            Err(QueueError::Full)
        ));
        small.enqueue(entry("other", "x", b"x")).await.unwrap();
    }

    /// Two replicas on one Redis: A claims and "dies" (never acknowledges); B takes A's
    /// entries over once they were idle for claim_after, with the attempt counted.
    #[tokio::test]
    async fn a_dead_consumers_entries_are_reclaimed_after_claim_after() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let a = spool(&server.url(), Limits::default());
        let b = spool(&server.url(), Limits::default());
        for id in ["m1", "m2", "m3"] {
            a.enqueue(entry("r", id, id.as_bytes())).await.unwrap();
        }
        // Before A's claim: Redis counts the idle time from the delivery, which is later.
        let claimed_at = Instant::now();
        let took = a.claim("r", "replica-a", 2, T0).await.unwrap();
        assert_eq!(took.len(), 2);
        assert_eq!(took[0].entry.attempts, 1);
        // B sees only what A did not take.
        let own = b.claim("r", "replica-b", 10, T0).await.unwrap();
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].entry.id, "m3");
        b.ack(&own[0]).await.unwrap();

        let claim_after = 300;
        assert!(b
            .reclaim("r", "replica-b", claim_after, 10)
            .await
            .unwrap()
            .is_empty());
        let started = Instant::now();
        let taken = loop {
            let r = b.reclaim("r", "replica-b", claim_after, 10).await.unwrap();
            if !r.is_empty() {
                break r;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never reclaimed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(claimed_at.elapsed() >= Duration::from_millis(claim_after - 20));
        let mut got: Vec<_> = taken
            .iter()
            .map(|c| (c.entry.id.as_str(), c.entry.attempts, c.entry.body.clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("m1", 2, bytes::Bytes::from_static(b"m1")),
                ("m2", 2, bytes::Bytes::from_static(b"m2"))
            ]
        );
        // Taken over: not reclaimed again right away, and A's claim is gone from its view.
        assert!(b
            .reclaim("r", "replica-b", claim_after, 10)
            .await
            .unwrap()
            .is_empty());
        for c in &taken {
            b.ack(c).await.unwrap();
        }
        let s = b.stats(&["r"], T0).await.unwrap();
        assert_eq!((s["r"].depth, s["r"].dead), (0, 0));
        // A reschedule carries the count across later claims too.
        b.enqueue(entry("r", "m4", b"m4")).await.unwrap();
        let c = b.claim("r", "replica-b", 1, T0).await.unwrap();
        b.reschedule(&c[0], T0, &Failure::default()).await.unwrap();
        let c = b.claim("r", "replica-b", 1, T0).await.unwrap();
        assert_eq!(c[0].entry.attempts, 2);
    }

    #[tokio::test]
    async fn keys_are_prefixed_per_route_with_a_consumer_group() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let s = spool(&server.url(), Limits::default());
        s.enqueue(entry("orders", "m1", b"x")).await.unwrap();
        let c = s.claim("orders", "pod-1", 1, T0).await.unwrap();
        s.dead_letter(&c[0], &Failure::default()).await.unwrap();
        let mut conn = Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.sort();
        assert_eq!(
            keys,
            [
                "hookseal:queue:orders:dead",
                "hookseal:queue:orders:stream",
                "hookseal:queue:usage"
            ]
        );
        let groups: Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg("hookseal:queue:orders:stream")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(format!("{groups:?}").contains("hookseal"), "{groups:?}");
    }

    #[tokio::test]
    async fn redis_down_is_unavailable_quickly() {
        let port = RedisServer::free_port();
        let s = spool(&format!("redis://127.0.0.1:{port}/0"), Limits::default());
        let started = Instant::now();
        let e = s.enqueue(entry("r", "m1", b"x")).await.unwrap_err();
        assert!(matches!(e, QueueError::Unavailable(_)), "{e:?}");
        assert!(started.elapsed() < TIMEOUT + Duration::from_millis(500));
        assert!(s.claim("r", "c", 1, T0).await.is_err());
    }

    #[test]
    fn urls() {
        for bad in ["", "http://127.0.0.1:6379", "redis://"] {
            let e = RedisSpool::new(bad, TIMEOUT, Limits::default()).unwrap_err();
            assert!(matches!(e, QueueError::InvalidUrl(_)), "{bad}: {e:?}");
        }
        let s = RedisSpool::new("redis://:pw@127.0.0.1:1/3", TIMEOUT, Limits::default()).unwrap();
        assert!(!format!("{s:?}").contains("pw"));
    }
}
