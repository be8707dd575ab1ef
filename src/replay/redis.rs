//! The Redis replay store: `SET key NX PX` semantics shared by every replica.
//!
//! Each call is one round trip: a small Lua script run with EVALSHA (the `redis` crate's
//! `Script` loads it and retries once if the server answers NOSCRIPT, e.g. after a restart).
//! Values are `"i"` (in flight) and `"d"` (done) under `hookseal:replay:<hex digest>`.
//!
//! The connection is a `redis::aio::ConnectionManager`: a multiplexed connection that is
//! opened lazily on first use and reopened automatically after an I/O error, so the proxy starts
//! while Redis is down and recovers without being restarted. Every command is bounded by
//! `tokio::time::timeout(command_timeout)`, so a dead or hung Redis never stalls a request.

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, Script};

use super::{Begin, Key, StoreError};

/// Prefix of every key this store writes.
pub const KEY_PREFIX: &str = "hookseal:replay:";

/// Returns 0 (fresh: now marked in flight), 1 (done) or 2 (in flight).
static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], 'i', 'NX', 'PX', ARGV[1]) then return 0 end
if redis.call('GET', KEYS[1]) == 'd' then return 1 end
return 2
",
    )
});

/// ARGV[1] = '1' (delivered) marks done for ARGV[2] ms unless already done; '0' removes an
/// in-flight mark and leaves a done one alone.
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if v ~= 'd' then redis.call('SET', KEYS[1], 'd', 'PX', ARGV[2]) end
elseif v == 'i' then
  redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// A replay store in Redis, shared by every replica. Cheap to clone: clones share the
/// connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// Created on first use, inside the runtime (the manager spawns a task when built).
    manager: OnceLock<ConnectionManager>,
    command_timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the client: its connection info holds the password.
        f.debug_struct("RedisStore")
            .field("command_timeout", &self.inner.command_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `url` (`redis://[:password@]host[:port][/db]` or `rediss://…` for TLS).
    /// Nothing is connected here: the first command connects.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidUrl`] if `url` does not parse, and
    /// [`StoreError::NoCryptoProvider`] for `rediss://` when no process-wide rustls
    /// `CryptoProvider` has been installed yet (the TLS handshake would otherwise panic).
    pub fn new(url: &str, command_timeout: Duration) -> Result<RedisStore, StoreError> {
        let client = Client::open(url).map_err(|_| {
            StoreError::InvalidUrl("expected redis://[:password@]host[:port][/db] or rediss://")
        })?;
        if matches!(
            client.get_connection_info().addr(),
            ConnectionAddr::TcpTls { .. }
        ) && rustls::crypto::CryptoProvider::get_default().is_none()
        {
            return Err(StoreError::NoCryptoProvider);
        }
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                manager: OnceLock::new(),
                command_timeout,
            }),
        })
    }

    /// See [`super::ReplayStore::begin`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Timeout`] past the command timeout, [`StoreError::Unavailable`] when Redis
    /// cannot be reached or refuses the command, [`StoreError::Protocol`] on an odd reply.
    pub async fn begin(&self, key: &Key, inflight_ttl: Duration) -> Result<Begin, StoreError> {
        let mut conn = self.manager()?;
        let mut call = BEGIN.key(redis_key(key));
        call.arg(ttl_ms(inflight_ttl));
        let reply: i64 = self.bounded(call.invoke_async(&mut conn)).await?;
        match reply {
            0 => Ok(Begin::Fresh),
            1 => Ok(Begin::Duplicate),
            2 => Ok(Begin::InFlight),
            _ => Err(StoreError::Protocol),
        }
    }

    /// See [`super::ReplayStore::finish`].
    ///
    /// # Errors
    ///
    /// As for [`RedisStore::begin`].
    pub async fn finish(
        &self,
        key: &Key,
        delivered: bool,
        done_ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.manager()?;
        let mut call = FINISH.key(redis_key(key));
        call.arg(if delivered { "1" } else { "0" })
            .arg(ttl_ms(done_ttl));
        let _: i64 = self.bounded(call.invoke_async(&mut conn)).await?;
        Ok(())
    }

    fn manager(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(m) = self.inner.manager.get() {
            return Ok(m.clone());
        }
        let m = connection_manager(&self.inner.client, self.inner.command_timeout)
            .map_err(unavailable)?;
        // Two first calls may race: one manager wins, the other is dropped unused.
        Ok(self.inner.manager.get_or_init(|| m).clone())
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.inner.command_timeout, fut).await {
            Err(_) => Err(StoreError::Timeout),
            Ok(Err(e)) if e.is_timeout() => Err(StoreError::Timeout),
            Ok(Err(e)) => Err(unavailable(e)),
            Ok(Ok(v)) => Ok(v),
        }
    }
}

/// `hookseal:replay:` + 32 hex characters.
pub fn redis_key(key: &Key) -> String {
    let mut s = String::with_capacity(KEY_PREFIX.len() + 2 * super::KEY_LEN);
    s.push_str(KEY_PREFIX);
    s.push_str(&key.to_hex());
    s
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A lazy connection manager for `client` whose connects and commands are bounded by
/// `command_timeout`. Shared with the queue's Redis store.
pub(crate) fn connection_manager(
    client: &redis::Client,
    command_timeout: Duration,
) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(command_timeout))
        .set_response_timeout(Some(command_timeout))
        // One quick retry inside a connect attempt, no more: a failed attempt makes the next
        // request start a fresh one (recovery after Redis returns takes well under a second),
        // and more retries with backoff would outlast the command timeout, so a refused
        // connection or a bad certificate would only ever be reported as "timed out" instead
        // of its cause.
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(100))
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(error_text(&e))
}

/// A Redis error as log text, cut to 160 bytes: it names the failure (refused, reset,
/// WRONGPASS, …), never the password. Shared with the queue's Redis store.
pub(crate) fn error_text(e: &redis::RedisError) -> String {
    let mut msg = e.to_string();
    if msg.len() > 160 {
        let mut cut = 160;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    msg
}

#[cfg(test)]
mod redis_tests {
    use std::time::Instant;

    use super::super::testing::RedisServer;
    use super::super::{conformance, Begin, Key, ReplayStore, StoreError};

    const TIMEOUT: Duration = Duration::from_millis(300);
    const T: Duration = Duration::from_secs(30);

    use super::*;

    fn store(url: &str) -> ReplayStore {
        ReplayStore::redis(url, TIMEOUT).unwrap()
    }

    async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
        Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn redis_store_semantics_match_memory() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let s = store(&server.url());
        assert_eq!(s.kind(), "redis");
        conformance::check_semantics(&s, "redis-route").await;
    }

    #[tokio::test]
    async fn keys_are_prefixed_hex_with_ttl() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let s = store(&server.url());
        let key = Key::new("r", b"msg_1");
        assert_eq!(s.begin(&key, T).await.unwrap(), Begin::Fresh);
        let name = redis_key(&key);
        assert_eq!(name, format!("hookseal:replay:{}", key.to_hex()));
        let mut c = raw(&server.url()).await;
        let (v, pttl): (String, i64) = redis::pipe()
            .get(&name)
            .pttl(&name)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(v, "i");
        assert!(pttl > 29_000 && pttl <= 30_000, "pttl {pttl}");
        s.finish(&key, true, Duration::from_secs(600))
            .await
            .unwrap();
        let (v, pttl): (String, i64) = redis::pipe()
            .get(&name)
            .pttl(&name)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(v, "d");
        assert!(pttl > 599_000 && pttl <= 600_000, "pttl {pttl}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_begins_across_two_instances_yield_one_fresh() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let a = store(&server.url());
        let b = store(&server.url());
        let key = Key::new("r", b"contended");
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { s.begin(&key, T).await.unwrap() })
            })
            .collect();
        let mut fresh = 0;
        for t in tasks {
            match t.await.unwrap() {
                Begin::Fresh => fresh += 1,
                Begin::InFlight => {}
                Begin::Duplicate => panic!("nothing was delivered"),
            }
        }
        assert_eq!(fresh, 1);
    }

    /// Kill Redis mid-run: calls fail within the timeout; restart it: the same instance works.
    #[tokio::test]
    async fn survives_redis_restart_without_hanging() {
        let Some(mut server) = RedisServer::start() else {
            return;
        };
        let s = store(&server.url());
        assert_eq!(
            s.begin(&Key::new("r", b"1"), T).await.unwrap(),
            Begin::Fresh
        );

        server.kill();
        for i in 0..5u8 {
            let started = Instant::now();
            let r = s.begin(&Key::new("r", &[b'x', i]), T).await;
            let took = started.elapsed();
            assert!(
                matches!(r, Err(StoreError::Timeout | StoreError::Unavailable(_))),
                "{r:?}"
            );
            assert!(took < TIMEOUT + Duration::from_millis(200), "took {took:?}");
        }

        server.restart();
        // The state is gone (no persistence); what matters is that the same store reconnects.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match s.begin(&Key::new("r", b"after"), T).await {
                Ok(b) => {
                    assert_eq!(b, Begin::Fresh);
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "no recovery: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            s.begin(&Key::new("r", b"after"), T).await.unwrap(),
            Begin::InFlight
        );
    }

    /// The proxy may start before Redis: building the store needs no server.
    #[tokio::test]
    async fn starts_while_redis_is_down() {
        let port = RedisServer::free_port();
        let s = store(&format!("redis://127.0.0.1:{port}/0"));
        let started = Instant::now();
        assert!(s.begin(&Key::new("r", b"1"), T).await.is_err());
        assert!(started.elapsed() < TIMEOUT + Duration::from_millis(200));

        let Some(_server) = RedisServer::start_on(port) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.begin(&Key::new("r", b"1"), T).await.is_err() {
            assert!(Instant::now() < deadline, "no recovery after Redis came up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            s.begin(&Key::new("r", b"1"), T).await.unwrap(),
            Begin::InFlight
        );
    }

    #[tokio::test]
    async fn password_in_url() {
        let Some(server) = RedisServer::start_with(&["--requirepass", "s3cr%t"]) else {
            return;
        };
        let port = server.port();
        // The password is percent-encoded in the URL.
        let good = store(&format!("redis://:s3cr%25t@127.0.0.1:{port}/0"));
        assert_eq!(
            good.begin(&Key::new("r", b"1"), T).await.unwrap(),
            Begin::Fresh
        );

        let bad = store(&format!("redis://:wrong@127.0.0.1:{port}/0"));
        let e = bad.begin(&Key::new("r", b"2"), T).await.unwrap_err();
        assert!(!e.to_string().contains("wrong"), "{e}");
        let none = store(&format!("redis://127.0.0.1:{port}/0"));
        assert!(none.begin(&Key::new("r", b"3"), T).await.is_err());
    }

    #[test]
    fn urls() {
        for bad in [
            "",
            "http://127.0.0.1:6379",
            "redis://",
            "redis://h:notaport/0",
        ] {
            let e = ReplayStore::redis(bad, TIMEOUT).unwrap_err();
            assert!(matches!(e, StoreError::InvalidUrl(_)), "{bad}: {e:?}");
        }
        let e = ReplayStore::redis("redis://:hunter2@h:6379/x", TIMEOUT).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));

        // Building a store never connects, and needs no runtime.
        let s = ReplayStore::redis("redis://:pw@127.0.0.1:1/3", TIMEOUT).unwrap();
        assert!(!format!("{s:?}").contains("pw"));
        ReplayStore::redis("redis://user:pw@redis.example:6380", TIMEOUT).unwrap();

        // rediss:// needs a rustls provider; main installs ring, as this test does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let s = ReplayStore::redis("rediss://:pw@redis.example:6380/0", TIMEOUT).unwrap();
        assert_eq!(s.kind(), "redis");
    }
}
