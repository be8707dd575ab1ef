//! Test support: a throwaway `redis-server` on a free loopback port, killed on drop.
//!
//! Public (but hidden from the docs) so the integration tests can reuse it. Only std is used.
//!
//! When `redis-server` is not on PATH, [`RedisServer::start`] panics if the `CI` environment
//! variable is set (CI must really run the Redis tests) and otherwise prints a loud notice and
//! returns `None`, so a developer without Redis can still run the rest of the suite.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process listening on `127.0.0.1:port`, without persistence.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port. See the module docs for when it returns `None`.
    ///
    /// # Panics
    ///
    /// If the server does not start and answer within 10 s, or `redis-server` is missing and
    /// `CI` is set.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with(&[])
    }

    /// As [`RedisServer::start`], with extra arguments such as `["--requirepass", "pw"]`.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`].
    pub fn start_with(extra: &[&str]) -> Option<RedisServer> {
        if !available() {
            return None;
        }
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.restart();
        Some(server)
    }

    /// Starts a server on a port chosen by the caller (e.g. a store's URL made before).
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`].
    pub fn start_on(port: u16) -> Option<RedisServer> {
        if !available() {
            return None;
        }
        let mut server = RedisServer {
            child: None,
            port,
            extra: Vec::new(),
        };
        server.restart();
        Some(server)
    }

    /// A port on which nothing listens now (bind to :0, read the port, close).
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub fn free_port() -> u16 {
        free_port()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on the same port with the same arguments and waits until it
    /// answers.
    ///
    /// # Panics
    ///
    /// If it does not answer within 10 s.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = Command::new("redis-server")
                .arg("--port")
                .arg(self.port.to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(&self.extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            // A just-killed server's port can take a moment to be bindable again.
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if answers(self.port) {
                    self.child = Some(child);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within 10 s",
                self.port
            );
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "redis-server is not on PATH and CI is set: the Redis replay-store tests must run in CI \
         (apt-get install -y redis-server)"
    );
    eprintln!(
        "\n!!!!!!!! redis-server is not on PATH: SKIPPING this Redis test \
         (apt-get install -y redis-server to run it) !!!!!!!!\n"
    );
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

/// True once something on the port answers PING like Redis (PONG, or NOAUTH when a password
/// is required).
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}
