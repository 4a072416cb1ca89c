//! Host glue shared by the examples: the client's transport that starts in
//! plaintext and upgrades to TLS (tokio-rustls; the server drives rustls
//! itself, see `server/io.rs`), channel-binding data for SASL, and seeding
//! the core's random source from the operating system.
#![allow(dead_code)]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::ProtocolVersion;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use xmpp_sansio::rng::SeededRng;
use xmpp_sansio::sasl::{ChannelBinding, ChannelBindingType, TlsInfo, TlsVersion};

/// A seeded random source for the core, seeded from the OS.
pub fn os_rng() -> io::Result<SeededRng> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(SeededRng::from_seed(seed))
}

/// An IO object that yields `prefix` before reading from `inner`: bytes the
/// XMPP core received after `<starttls/>`/`<proceed/>` belong to the TLS
/// handshake and must reach the TLS layer first.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix,
            offset: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.offset < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.offset);
            let start = self.offset;
            buf.put_slice(&self.prefix[start..start + n]);
            self.offset += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection that may be upgraded to TLS.
pub enum Transport {
    Plain(TcpStream),
    ClientTls(Box<tokio_rustls::client::TlsStream<Prefixed<TcpStream>>>),
    /// Only while an upgrade is in progress.
    Upgrading,
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::ClientTls(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Upgrading => Poll::Ready(Err(io::Error::other("transport is upgrading"))),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, data),
            Transport::ClientTls(s) => Pin::new(s).poll_write(cx, data),
            Transport::Upgrading => Poll::Ready(Err(io::Error::other("transport is upgrading"))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::ClientTls(s) => Pin::new(s).poll_flush(cx),
            Transport::Upgrading => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::ClientTls(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

/// What SASL needs to know about an established TLS connection: the
/// version and the channel-binding data rustls can compute.
///
/// `tls-exporter` (RFC 9266) is exported for TLS 1.3, and for TLS 1.2 only
/// with the extended master secret (rustls requires it). `end_entity` is the
/// server's certificate, for `tls-server-end-point` (RFC 5929: SHA-256 of
/// the certificate for SHA-1/SHA-256-signed certificates).
pub fn tls_info<D>(conn: &rustls::ConnectionCommon<D>, end_entity: Option<&[u8]>) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => TlsVersion::Tls13,
        _ => TlsVersion::Tls12OrOlder,
    };
    let mut bindings = Vec::new();
    let mut exporter = [0u8; 32];
    if conn
        .export_keying_material(&mut exporter, b"EXPORTER-Channel-Binding", None)
        .is_ok()
    {
        bindings.push(ChannelBinding::new(
            ChannelBindingType::TlsExporter,
            exporter.to_vec(),
        ));
    }
    if let Some(cert) = end_entity {
        let hash = ring_sha256(cert);
        bindings.push(ChannelBinding::new(
            ChannelBindingType::TlsServerEndPoint,
            hash,
        ));
    }
    TlsInfo::encrypted(version, bindings)
}

fn ring_sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

/// Reads PEM certificates from a file.
pub fn load_certs(
    path: &std::path::Path,
) -> io::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?
        .map(|c| c.map_err(|e| io::Error::other(format!("{}: {e}", path.display()))))
        .collect()
}

/// Reads a PEM private key from a file.
pub fn load_key(path: &std::path::Path) -> io::Result<rustls::pki_types::PrivateKeyDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_file(path)
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
}

/// Upgrades a plaintext transport to TLS as a client (after `<proceed/>`, or
/// before the first byte for direct TLS), feeding `buffered` to TLS first.
/// Returns the TLS transport and what SASL needs to know about it.
pub async fn client_tls_upgrade(
    transport: Transport,
    buffered: Vec<u8>,
    connector: &tokio_rustls::TlsConnector,
    domain: &str,
) -> io::Result<(Transport, TlsInfo)> {
    let Transport::Plain(tcp) = transport else {
        return Err(io::Error::other("TLS is already up"));
    };
    let name = rustls::pki_types::ServerName::try_from(domain.to_owned())
        .map_err(|e| io::Error::other(format!("{domain}: {e}")))?;
    let tls = connector
        .connect(name, Prefixed::new(buffered, tcp))
        .await
        .map_err(|e| io::Error::other(format!("TLS handshake failed: {e}")))?;
    let (_, conn) = tls.get_ref();
    let end_entity = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    let info = tls_info(conn, end_entity.as_deref());
    Ok((Transport::ClientTls(Box::new(tls)), info))
}

/// Sleeps until the connection's deadline, or forever when it has none.
pub async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
