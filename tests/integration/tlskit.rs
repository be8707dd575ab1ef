//! The library's test CA and HTTPS test server (`src/fetch/testkit.rs`), compiled into this
//! binary as well so that the outbound tests (JWKS, SNS certificates) use the same server as
//! the library's unit tests instead of a second copy. That file uses nothing of the library
//! but `super::tls_provider()`, given here.

// Not every helper of the shared file is used by the integration tests.
#[allow(dead_code)]
#[path = "../../src/fetch/testkit.rs"]
pub mod testkit;

fn tls_provider() -> rustls::crypto::CryptoProvider {
    hookseal::tls::provider()
}
