//! TLS termination (placeholder until the TLS work lands: plain HTTP only).

use tokio::net::TcpStream;

/// Accepts TLS connections with the current certificate.
#[derive(Debug, Clone)]
pub struct TlsAcceptor {
    _private: (),
}

impl TlsAcceptor {
    /// Performs the handshake.
    ///
    /// # Errors
    /// Always, until TLS is implemented.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<TcpStream> {
        let _ = tcp;
        Err(std::io::Error::other("TLS is not implemented yet"))
    }
}
