//! TLS termination with rustls: TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, optional client
//! certificates (`[listen].tls.client_ca`), and a server config that is swapped whole when the
//! certificate files change.
//!
//! [`load`] reads and checks the PEM files (chain, key, optional client CA) the way the rest of
//! the config is checked: a key that does not match the certificate, an expired or not yet valid
//! certificate, or a file without the expected PEM sections is a config error. The config loader
//! calls it, so `hookseal check` reports these and a reload refuses them. [`TlsAcceptor`] holds
//! the [`ServerTls`] in force; each handshake takes the current one, so a swap is seen by the next
//! connection while open connections keep theirs.

use std::fmt;
use std::io::{IoSlice, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{InconsistentKeys, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::swap::Swap;

/// The crypto provider compiled in (README "TLS": why ring by default).
#[cfg(not(feature = "aws-lc-rs"))]
pub const PROVIDER_NAME: &str = "ring";
/// The crypto provider compiled in (README "TLS": why ring by default).
#[cfg(feature = "aws-lc-rs")]
pub const PROVIDER_NAME: &str = "aws-lc-rs";

/// The rustls crypto provider used by the listener and, installed as the process default by
/// `main`, by `rediss://` connections.
pub fn provider() -> CryptoProvider {
    #[cfg(not(feature = "aws-lc-rs"))]
    return rustls::crypto::ring::default_provider();
    #[cfg(feature = "aws-lc-rs")]
    return rustls::crypto::aws_lc_rs::default_provider();
}

/// Largest PEM file read (a chain of a few certificates is a few KiB).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// ALPN protocols offered, in server preference order.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The files of `[listen].tls` (paths, resolved against the config file's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// Which `[listen].tls` key a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsKey {
    Cert,
    Key,
    ClientCa,
}

impl TlsKey {
    /// The config key under `[listen].tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsKey::Cert => "cert",
            TlsKey::Key => "key",
            TlsKey::ClientCa => "client_ca",
        }
    }
}

/// One problem with the TLS files. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProblem {
    pub key: TlsKey,
    pub message: String,
}

/// A checked TLS setup, ready to serve.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    /// The end-entity certificate's `notAfter`.
    pub not_after: SystemTime,
    /// The earliest `notAfter` of the client CA file, when one is configured.
    pub client_ca_not_after: Option<SystemTime>,
    /// Whether client certificates are required.
    pub client_auth: bool,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("not_after", &fmt_time(self.not_after))
            .field(
                "client_ca_not_after",
                &self.client_ca_not_after.map(fmt_time),
            )
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The rustls server config (tests and tools build acceptors from it).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }
}

/// Reads and checks the files of `[listen].tls` at time `now`.
///
/// # Errors
/// Every problem found, each tied to the key (`cert`, `key`, `client_ca`) it is about.
pub fn load(files: &TlsFiles, now: SystemTime) -> Result<ServerTls, Vec<TlsProblem>> {
    let mut problems = Vec::new();
    let mut problem = |key: TlsKey, message: String| problems.push(TlsProblem { key, message });

    let chain = match read_pem(&files.cert).and_then(|b| certificates(&b)) {
        Ok(c) => Some(c),
        Err(e) => {
            problem(TlsKey::Cert, format!("{}: {e}", files.cert.display()));
            None
        }
    };
    let mut not_after = UNIX_EPOCH;
    if let Some(leaf) = chain.as_ref().and_then(|c| c.first()) {
        match validity(leaf) {
            Some((from, until)) => {
                not_after = until;
                if now >= until {
                    problem(
                        TlsKey::Cert,
                        format!(
                            "{}: certificate expired at {}",
                            files.cert.display(),
                            fmt_time(until)
                        ),
                    );
                } else if now < from {
                    problem(
                        TlsKey::Cert,
                        format!(
                            "{}: certificate is not valid before {}",
                            files.cert.display(),
                            fmt_time(from)
                        ),
                    );
                }
            }
            None => problem(
                TlsKey::Cert,
                format!(
                    "{}: the first certificate is not valid X.509 DER",
                    files.cert.display()
                ),
            ),
        }
    }

    let key = match read_pem(&files.key).and_then(|b| private_key(&b)) {
        Ok(k) => Some(k),
        Err(e) => {
            problem(TlsKey::Key, format!("{}: {e}", files.key.display()));
            None
        }
    };

    let provider = Arc::new(provider());
    let mut certified = None;
    if let (Some(chain), Some(key)) = (chain, key) {
        match provider.key_provider.load_private_key(key) {
            Err(e) => problem(
                TlsKey::Key,
                format!("{}: unusable private key: {e}", files.key.display()),
            ),
            Ok(signing) => {
                let ck = CertifiedKey::new(chain, signing);
                match ck.keys_match() {
                    Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
                        certified = Some(ck);
                    }
                    Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => problem(
                        TlsKey::Key,
                        format!(
                            "{}: private key does not match the certificate in {}",
                            files.key.display(),
                            files.cert.display()
                        ),
                    ),
                    Err(e) => problem(
                        TlsKey::Cert,
                        format!("{}: unusable certificate: {e}", files.cert.display()),
                    ),
                }
            }
        }
    }

    let mut client_ca_not_after = None;
    let verifier = match &files.client_ca {
        None => Some(WebPkiClientVerifier::no_client_auth()),
        Some(path) => match client_verifier(path, &provider) {
            Ok((v, until)) => {
                client_ca_not_after = Some(until);
                Some(v)
            }
            Err(e) => {
                problem(TlsKey::ClientCa, format!("{}: {e}", path.display()));
                None
            }
        },
    };

    let (Some(certified), Some(verifier)) = (certified, verifier) else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| {
            vec![TlsProblem {
                key: TlsKey::Cert,
                message: format!("TLS setup: {e}"),
            }]
        })?;
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(ServerTls {
        config: Arc::new(config),
        not_after,
        client_ca_not_after,
        client_auth: files.client_ca.is_some(),
    })
}

/// The verifier of client certificates, and the earliest `notAfter` of the CA file.
fn client_verifier(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<
    (
        Arc<dyn rustls::server::danger::ClientCertVerifier>,
        SystemTime,
    ),
    String,
> {
    let certs = read_pem(path).and_then(|b| certificates(&b))?;
    let until = earliest_not_after(&certs)
        .ok_or_else(|| "a certificate is not valid X.509 DER".to_owned())?;
    let mut roots = RootCertStore::empty();
    for (i, c) in certs.into_iter().enumerate() {
        roots
            .add(c)
            .map_err(|e| format!("certificate #{} is not a usable CA: {e}", i + 1))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map(|v| (v, until))
        .map_err(|e| format!("cannot build the client verifier: {e}"))
}

/// Reads at most [`MAX_PEM_BYTES`] of a PEM file.
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut buf = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() as u64 > MAX_PEM_BYTES {
        return Err(format!("larger than {MAX_PEM_BYTES} bytes"));
    }
    Ok(buf)
}

fn certificates(pem_bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a valid PEM file ({})", pem_error(&e)))?;
    if certs.is_empty() {
        return Err("no PEM CERTIFICATE found".into());
    }
    Ok(certs)
}

fn private_key(pem_bytes: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem_bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            "no PEM private key found (PKCS#8 \"PRIVATE KEY\", PKCS#1 \"RSA PRIVATE KEY\" or \
             SEC1 \"EC PRIVATE KEY\"; encrypted keys are not supported)"
                .to_owned()
        }
        e => format!("not a valid PEM file ({})", pem_error(&e)),
    })
}

/// A PEM error without any of the file's content (the base64 decoder's message can quote it).
fn pem_error(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "malformed BEGIN line",
        pem::Error::Base64Decode(_) => "bad base64",
        pem::Error::Io(_) => "read error",
        pem::Error::NoItemsFound => "no sections",
        pem::Error::SectionTooLarge => "section too large",
        _ => "malformed",
    }
}

// === certificate validity ===

/// `(notBefore, notAfter)` of a DER certificate, parsed with `x509-parser`.
pub fn validity(cert: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let v = cert.validity();
    Some((
        from_unix(v.not_before.timestamp()),
        from_unix(v.not_after.timestamp()),
    ))
}

/// The earliest `notAfter` of `certs` (`None` when there is none, or one does not parse).
fn earliest_not_after(certs: &[CertificateDer<'_>]) -> Option<SystemTime> {
    certs
        .iter()
        .map(|c| validity(c).map(|(_, until)| until))
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .min()
}

fn from_unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// `2026-01-31T12:00:00Z` (RFC 3339, whole seconds, UTC).
pub fn fmt_time(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{secs}"))
}

// === the acceptor ===

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// What a plain-HTTP client that reached the TLS port is told before the connection closes.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: 37\r\n\r\n{\"error\":\"tls_required\",\"route\":null}";

/// Accepts TLS connections with the [`ServerTls`] in force; clones share it, so
/// [`TlsAcceptor::swap`] reaches every clone.
#[derive(Debug, Clone)]
pub struct TlsAcceptor {
    current: Arc<Swap<ServerTls>>,
}

impl TlsAcceptor {
    /// An acceptor serving `tls`.
    pub fn new(tls: ServerTls) -> TlsAcceptor {
        TlsAcceptor {
            current: Arc::new(Swap::new(tls)),
        }
    }

    /// New handshakes use `tls` from now on; open connections keep what they negotiated.
    pub fn swap(&self, tls: ServerTls) {
        self.current.store(tls);
    }

    /// The setup in force.
    pub fn current(&self) -> ServerTls {
        ServerTls::clone(&self.current.load())
    }

    /// Performs the handshake (the caller bounds it with `limits.header_timeout`). A client
    /// that speaks plain HTTP gets a 400 `tls_required` and an error here.
    ///
    /// # Errors
    /// The handshake failed, or the client did not speak TLS.
    pub async fn accept(&self, mut tcp: TcpStream) -> std::io::Result<TlsConn> {
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if first[0] != TLS_HANDSHAKE {
            if first[0].is_ascii_uppercase() {
                // Looks like an HTTP method: say so in HTTP before closing.
                let _ = tcp.write_all(PLAIN_HTTP_ANSWER).await;
                let _ = tcp.shutdown().await;
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "plain HTTP on the TLS port",
                ));
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a TLS handshake",
            ));
        }
        let config = self.current().server_config();
        let inner = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
        Ok(TlsConn {
            inner,
            waiting: false,
        })
    }
}

/// An established TLS connection, as hyper reads and writes it: tokio-rustls's stream, with
/// reads that return `Pending` at once while nothing can have changed.
///
/// hyper polls its connection's reader several times per request (each wake-up of the
/// connection task polls it), and most polls find nothing to read. On a plain socket such a
/// poll is a readiness check; through tokio-rustls it walks rustls's read path (buffer
/// checks, the I/O adapter) down to that check (BENCHMARKS.md §15). When the last read of the
/// inner stream returned `Pending` — rustls had no plaintext and the socket would block; every
/// complete record read so far has been processed, and no error is held back — and rustls
/// still wants bytes, only socket readiness can change the answer: while the socket is not
/// readable, the inner stream would return `Pending` with the same waker registered, so this
/// returns it without the walk. Writes pass through unchanged.
#[derive(Debug)]
pub struct TlsConn {
    inner: TlsStream<TcpStream>,
    /// The last `poll_read` of `inner` returned `Pending`.
    waiting: bool,
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.waiting {
            let (tcp, session) = this.inner.get_ref();
            // `Ready` (readable, closed or failed) goes to the inner stream, which reads.
            if session.wants_read() && tcp.poll_read_ready(cx).is_pending() {
                return Poll::Pending;
            }
        }
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.waiting = r.is_pending();
        r
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u8, d: u8) -> SystemTime {
        let month = time::Month::try_from(m).unwrap();
        let date = time::Date::from_calendar_date(y, month, d).unwrap();
        from_unix(date.midnight().assume_utc().unix_timestamp())
    }

    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        fn new() -> Pki {
            Pki {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        }

        /// A self-signed certificate for `localhost` valid between the two dates, and its key.
        fn pair(
            &self,
            name: &str,
            from: (i32, u8, u8),
            until: (i32, u8, u8),
        ) -> (std::path::PathBuf, std::path::PathBuf) {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
            params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
            let cert = params.self_signed(&key).unwrap();
            (
                self.write(&format!("{name}.crt"), &cert.pem()),
                self.write(&format!("{name}.key"), &key.serialize_pem()),
            )
        }
    }

    fn files(cert: &Path, key: &Path) -> TlsFiles {
        TlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            client_ca: None,
        }
    }

    #[test]
    fn a_matching_valid_pair_loads_with_its_expiry() {
        let pki = Pki::new();
        let (cert, key) = pki.pair("a", (2020, 1, 1), (2040, 6, 30));
        let tls = load(&files(&cert, &key), at(2026, 1, 1)).unwrap();
        assert_eq!(fmt_time(tls.not_after), "2040-06-30T00:00:00Z");
        assert!(!tls.client_auth);
        let alpn = &tls.server_config().alpn_protocols;
        assert_eq!(alpn, &vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn expired_and_not_yet_valid_certificates_are_refused() {
        let pki = Pki::new();
        let (cert, key) = pki.pair("a", (2020, 1, 1), (2021, 1, 1));
        let e = load(&files(&cert, &key), at(2026, 1, 1)).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].key, TlsKey::Cert);
        assert!(
            e[0].message.contains("expired at 2021-01-01T00:00:00Z"),
            "{e:?}"
        );
        let e = load(&files(&cert, &key), at(2019, 1, 1)).unwrap_err();
        assert!(
            e[0].message.contains("not valid before 2020-01-01"),
            "{e:?}"
        );
    }

    #[test]
    fn a_key_from_another_pair_is_a_key_error() {
        let pki = Pki::new();
        let (cert, _) = pki.pair("a", (2020, 1, 1), (2040, 1, 1));
        let (_, other_key) = pki.pair("b", (2020, 1, 1), (2040, 1, 1));
        let e = load(&files(&cert, &other_key), at(2026, 1, 1)).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].key, TlsKey::Key);
        assert!(e[0].message.contains("does not match"), "{e:?}");
    }

    #[test]
    fn files_without_the_expected_pem_sections_are_reported_without_their_content() {
        let pki = Pki::new();
        let (cert, key) = pki.pair("a", (2020, 1, 1), (2040, 1, 1));
        // The key file given as the certificate and the other way round.
        let e = load(&files(&key, &cert), at(2026, 1, 1)).unwrap_err();
        let keys: Vec<_> = e.iter().map(|p| p.key).collect();
        assert_eq!(keys, vec![TlsKey::Cert, TlsKey::Key], "{e:?}");
        assert!(e[0].message.contains("no PEM CERTIFICATE"), "{e:?}");
        assert!(e[1].message.contains("no PEM private key"), "{e:?}");
        let garbage = pki.write(
            "garbage.key",
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0!!\n-----END PRIVATE KEY-----\n",
        );
        let e = load(&files(&cert, &garbage), at(2026, 1, 1)).unwrap_err();
        assert_eq!(e[0].key, TlsKey::Key);
        assert!(!e[0].message.contains("c2VjcmV0"), "{e:?}");
        let missing = pki.dir.path().join("missing.crt");
        let e = load(&files(&missing, &key), at(2026, 1, 1)).unwrap_err();
        assert!(e[0].message.contains("cannot read"), "{e:?}");
    }

    #[test]
    fn a_client_ca_file_must_hold_a_certificate() {
        let pki = Pki::new();
        let (cert, key) = pki.pair("a", (2020, 1, 1), (2040, 1, 1));
        let mut f = files(&cert, &key);
        f.client_ca = Some(key.clone());
        let e = load(&f, at(2026, 1, 1)).unwrap_err();
        assert_eq!(e[0].key, TlsKey::ClientCa, "{e:?}");
        f.client_ca = Some(cert.clone());
        assert!(load(&f, at(2026, 1, 1)).unwrap().client_auth);
    }

    #[test]
    fn times_format_as_rfc3339_and_garbage_is_not_a_certificate() {
        assert_eq!(fmt_time(at(2024, 2, 29)), "2024-02-29T00:00:00Z");
        assert_eq!(fmt_time(from_unix(-1)), "1969-12-31T23:59:59Z");
        assert_eq!(fmt_time(from_unix(253_402_300_799)), "9999-12-31T23:59:59Z");
        assert!(validity(b"\x30\x03\x02\x01\x00").is_none());
        assert!(validity(b"\x30\x84\xff\xff\xff\xff").is_none());
    }

    #[test]
    fn the_client_ca_expiry_is_the_earliest_of_the_file() {
        let pki = Pki::new();
        let (cert, key) = pki.pair("a", (2020, 1, 1), (2040, 1, 1));
        let (late, _) = pki.pair("late", (2020, 1, 1), (2045, 3, 1));
        let (early, _) = pki.pair("early", (2020, 1, 1), (2031, 7, 15));
        let bundle = pki.write("bundle.crt", &(read(&late) + &read(&early)));
        let mut f = files(&cert, &key);
        f.client_ca = Some(bundle);
        let tls = load(&f, at(2026, 1, 1)).unwrap();
        assert_eq!(tls.client_ca_not_after, Some(at(2031, 7, 15)));
        f.client_ca = None;
        assert_eq!(load(&f, at(2026, 1, 1)).unwrap().client_ca_not_after, None);
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }
}
