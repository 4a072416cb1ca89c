//! A client connection's socket, plaintext or TLS, with no buffer that
//! outlives a read or a write: an idle session holds only the socket, the
//! TLS state (keys and the key schedule) and nothing else.
//!
//! - Reads wait for readability and then read into one scratch buffer per
//!   worker thread ([`SCRATCH`]); the decrypted bytes go straight into the
//!   sans-IO core. Only the start of a TLS record whose end has not arrived
//!   yet is copied out and kept with the connection (usually nothing).
//! - Writes encrypt into a buffer that exists only until the socket has
//!   taken its bytes.
//! - TLS is rustls's unbuffered API ([`UnbufferedServerConnection`]): the
//!   caller owns every buffer. rustls's buffered connection keeps a 4 KiB
//!   read buffer for its whole life, and tokio-rustls needs a read buffer
//!   per connection on top of it.
//!
//! The unbuffered API has no `export_keying_material` in rustls 0.23, so the
//! TLS 1.3 exporter secret is taken from the [`KeyLog`] hook while the
//! handshake runs on this thread ([`ExporterCapture`]), and the
//! `tls-exporter` channel binding (RFC 9266) is derived from it as RFC 8446
//! §7.5 says, with the negotiated suite's own HKDF. TLS 1.2 connections
//! offer only `tls-server-end-point`.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use rustls::crypto::tls13::OkmBlock;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError,
    UnbufferedStatus,
};
use rustls::{KeyLog, ProtocolVersion, SupportedCipherSuite, Tls13CipherSuite};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use xmpp_sansio::sasl::{ChannelBinding, ChannelBindingType, TlsInfo, TlsVersion};
use xmpp_sansio::server::ServerConnection;
use xmpp_sansio::stream::Input;

use crate::BoxError;

/// How much one read takes from the socket.
const READ_SIZE: usize = 16 * 1024;
/// Plaintext per `encrypt` call: one full TLS record.
const MAX_FRAGMENT: usize = 16 * 1024;
/// A TLS handshake that needs more than this before it completes is refused
/// (rustls itself refuses handshake messages over 64 KiB).
const MAX_HANDSHAKE_BUFFER: usize = 96 * 1024;

thread_local! {
    /// Every read lands here: one buffer per worker thread, not per
    /// connection.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The exporter secret of the handshake running on this thread, see
    /// [`ExporterCapture`].
    static EXPORTER_SECRET: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// rustls's key-log hook, used for one secret: the TLS 1.3 exporter master
/// secret, which [`Socket::start_tls`] needs for `tls-exporter` and the
/// unbuffered API does not expose. rustls calls it synchronously inside
/// `process_tls_records`, so the secret belongs to the connection whose
/// handshake step is running on this thread; it is taken right after that
/// call. Nothing is logged anywhere.
#[derive(Debug)]
pub struct ExporterCapture;

impl KeyLog for ExporterCapture {
    fn will_log(&self, label: &str) -> bool {
        label == "EXPORTER_SECRET"
    }

    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if label == "EXPORTER_SECRET" {
            EXPORTER_SECRET.with_borrow_mut(|s| *s = Some(secret.to_vec()));
        }
    }
}

/// What a read brought.
pub enum Read {
    /// Nothing after all (a spurious readiness).
    Nothing,
    /// Bytes, handed to the core.
    Data,
    /// The peer closed the connection (TCP FIN or TLS close_notify), or
    /// reading failed (the error); the core was told.
    Eof(Option<io::Error>),
}

/// The socket of one client connection.
pub struct Socket {
    tcp: TcpStream,
    tls: Option<Box<UnbufferedServerConnection>>,
    /// The start of a TLS record whose end has not arrived (usually empty).
    partial: Vec<u8>,
    /// Bytes for the peer that the socket has not taken yet (empty, without
    /// an allocation, whenever everything was written).
    out: Vec<u8>,
    /// How much of `out` was written.
    sent: usize,
}

impl Socket {
    pub fn new(tcp: TcpStream) -> Socket {
        Socket {
            tcp,
            tls: None,
            partial: Vec::new(),
            out: Vec::new(),
            sent: 0,
        }
    }

    /// Waits until the socket may have bytes to read. A future of one
    /// pointer (`TcpStream::readable()` is 168 bytes, in every idle
    /// connection's task); the only waiter is the connection's own task.
    pub fn readable(&self) -> impl Future<Output = io::Result<()>> + '_ {
        std::future::poll_fn(|cx| self.tcp.poll_read_ready(cx))
    }

    /// Reads what the socket has (one read) and hands it to `conn`, through
    /// TLS when it is up. Call it when [`readable`](Self::readable) says so.
    pub fn read(
        &mut self,
        conn: &mut ServerConnection,
        now: std::time::Instant,
    ) -> Result<Read, BoxError> {
        SCRATCH.with_borrow_mut(|buf| {
            let kept = self.partial.len();
            if buf.len() < kept + READ_SIZE {
                buf.resize(kept + READ_SIZE, 0);
            }
            buf[..kept].copy_from_slice(&self.partial);
            let n = match self.tcp.try_read(&mut buf[kept..kept + READ_SIZE]) {
                Ok(0) => {
                    conn.handle_input(now, Input::Eof)?;
                    return Ok(Read::Eof(None));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Read::Nothing),
                Err(e) => {
                    conn.handle_input(now, Input::Eof)?;
                    return Ok(Read::Eof(Some(e)));
                }
            };
            let Some(tls) = &mut self.tls else {
                conn.handle_input(now, Input::Received(&buf[..n]))?;
                return Ok(Read::Data);
            };
            let data = &mut buf[..kept + n];
            let mut start = 0;
            let closed = loop {
                let UnbufferedStatus { mut discard, state } =
                    tls.process_tls_records(&mut data[start..]);
                let mut stop = None;
                match state.map_err(|e| format!("TLS: {e}"))? {
                    ConnectionState::ReadTraffic(mut traffic) => {
                        while let Some(record) = traffic.next_record() {
                            let record = record.map_err(|e| format!("TLS: {e}"))?;
                            discard += record.discard;
                            conn.handle_input(now, Input::Received(record.payload))?;
                        }
                    }
                    ConnectionState::EncodeTlsData(mut encode) => {
                        encode_into(&mut encode, &mut self.out)?;
                    }
                    ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                    ConnectionState::WriteTraffic(_) | ConnectionState::BlockedHandshake => {
                        stop = Some(false);
                    }
                    ConnectionState::PeerClosed | ConnectionState::Closed => stop = Some(true),
                    other => return Err(format!("unexpected TLS state {other:?}").into()),
                }
                start += discard;
                if let Some(closed) = stop {
                    break closed;
                }
            };
            // An incomplete record: keep exactly its bytes (no allocation
            // when there are none).
            self.partial = data[start..].to_vec();
            if closed {
                conn.handle_input(now, Input::Eof)?;
                return Ok(Read::Eof(None));
            }
            Ok(Read::Data)
        })
    }

    /// Queues bytes for the peer, encrypted when TLS is up. They go out with
    /// [`flush`](Self::flush).
    pub fn send(&mut self, data: &[u8]) -> Result<(), BoxError> {
        let Some(tls) = &mut self.tls else {
            self.out.extend_from_slice(data);
            return Ok(());
        };
        for chunk in data.chunks(MAX_FRAGMENT) {
            loop {
                let UnbufferedStatus { discard, state } =
                    tls.process_tls_records(&mut self.partial);
                let mut done = false;
                match state.map_err(|e| format!("TLS: {e}"))? {
                    ConnectionState::WriteTraffic(mut traffic) => {
                        let start = self.out.len();
                        // Room for one record's header, content type and tag.
                        let mut room = chunk.len() + 64;
                        loop {
                            self.out.resize(start + room, 0);
                            match traffic.encrypt(chunk, &mut self.out[start..]) {
                                Ok(n) => {
                                    self.out.truncate(start + n);
                                    break;
                                }
                                Err(EncryptError::InsufficientSize(InsufficientSizeError {
                                    required_size,
                                })) if required_size > room => room = required_size,
                                Err(e) => {
                                    self.out.truncate(start);
                                    return Err(format!("TLS: {e}").into());
                                }
                            }
                        }
                        done = true;
                    }
                    ConnectionState::EncodeTlsData(mut encode) => {
                        encode_into(&mut encode, &mut self.out)?;
                    }
                    ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                    other => return Err(format!("cannot send in TLS state {other:?}").into()),
                }
                if discard > 0 {
                    self.partial.drain(..discard);
                }
                if done {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Writes what the socket takes without waiting. True when nothing is
    /// left (the buffer is then gone).
    pub fn try_flush(&mut self) -> io::Result<bool> {
        while self.sent < self.out.len() {
            match self.tcp.try_write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.out = Vec::new();
        self.sent = 0;
        Ok(true)
    }

    /// Writes everything queued, then lets the buffer go.
    pub async fn flush(&mut self) -> io::Result<()> {
        while self.sent < self.out.len() {
            match self.tcp.try_write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.tcp.writable().await?,
                Err(e) => return Err(e),
            }
        }
        self.out = Vec::new();
        self.sent = 0;
        Ok(())
    }

    /// Sends TLS close_notify (when TLS is up) and shuts the socket down
    /// for writing.
    pub async fn shutdown(&mut self) {
        if let Some(tls) = &mut self.tls {
            let UnbufferedStatus { state, .. } = tls.process_tls_records(&mut self.partial);
            if let Ok(ConnectionState::WriteTraffic(mut traffic)) = state {
                let start = self.out.len();
                self.out.resize(start + 64, 0);
                match traffic.queue_close_notify(&mut self.out[start..]) {
                    Ok(n) => self.out.truncate(start + n),
                    Err(_) => self.out.truncate(start),
                }
            }
        }
        if self.flush().await.is_ok() {
            let _ = self.tcp.shutdown().await;
        }
    }

    /// The TLS handshake as the server, starting with `buffered` (bytes the
    /// core read after `<starttls/>`, or nothing for direct TLS). Returns
    /// what SASL needs to know about it, and the application data that
    /// arrived together with the end of the handshake (for the core, after
    /// `TlsEstablished`).
    pub async fn start_tls(
        &mut self,
        config: &Arc<rustls::ServerConfig>,
        certificate: &[u8],
        buffered: &[u8],
    ) -> Result<(TlsInfo, Vec<u8>), BoxError> {
        if self.tls.is_some() {
            return Err("TLS is already up".into());
        }
        let mut tls = Box::new(UnbufferedServerConnection::new(config.clone())?);
        let mut input = buffered.to_vec();
        let mut early = Vec::new();
        let mut exporter_secret = None;
        loop {
            EXPORTER_SECRET.with_borrow_mut(|s| *s = None);
            let mut start = 0;
            let established = loop {
                let UnbufferedStatus { mut discard, state } =
                    tls.process_tls_records(&mut input[start..]);
                let mut stop = None;
                let mut write_traffic = false;
                match state.map_err(|e| format!("TLS handshake failed: {e}"))? {
                    ConnectionState::EncodeTlsData(mut encode) => {
                        encode_into(&mut encode, &mut self.out)?;
                    }
                    ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                    ConnectionState::BlockedHandshake => stop = Some(false),
                    ConnectionState::WriteTraffic(_) => write_traffic = true,
                    ConnectionState::ReadTraffic(mut traffic) => {
                        while let Some(record) = traffic.next_record() {
                            let record = record.map_err(|e| format!("TLS: {e}"))?;
                            discard += record.discard;
                            early.extend_from_slice(record.payload);
                        }
                    }
                    other => {
                        return Err(format!("TLS handshake failed: unexpected {other:?}").into());
                    }
                }
                if write_traffic {
                    // The server may send before the client's Finished
                    // arrived: the handshake is over only when both can.
                    stop = Some(!tls.is_handshaking());
                }
                start += discard;
                if let Some(established) = stop {
                    break established;
                }
            };
            input.drain(..start);
            if let Some(secret) = EXPORTER_SECRET.with_borrow_mut(Option::take) {
                exporter_secret = Some(secret);
            }
            self.flush().await?;
            if established {
                break;
            }
            // More of the handshake is needed.
            if input.len() > MAX_HANDSHAKE_BUFFER {
                return Err("TLS handshake failed: too much data before it completed".into());
            }
            self.tcp.readable().await?;
            input.reserve(READ_SIZE);
            match self.tcp.try_read_buf(&mut input) {
                Ok(0) => return Err("connection closed during the TLS handshake".into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
        let info = tls_info(&tls, exporter_secret.as_deref(), certificate);
        self.partial = input[..].to_vec();
        self.tls = Some(tls);
        Ok((info, early))
    }
}

/// Appends a handshake record rustls wants sent to `out`.
fn encode_into(
    encode: &mut EncodeTlsData<'_, ServerConnectionData>,
    out: &mut Vec<u8>,
) -> Result<(), BoxError> {
    let start = out.len();
    let mut room = 0;
    loop {
        out.resize(start + room, 0);
        match encode.encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size }))
                if required_size > room =>
            {
                room = required_size;
            }
            Err(e) => {
                out.truncate(start);
                return Err(format!("TLS: {e}").into());
            }
        }
    }
}

/// The version and the channel-binding data of an established connection:
/// `tls-exporter` (RFC 9266) for TLS 1.3, and `tls-server-end-point`
/// (RFC 5929: SHA-256 of our certificate, for SHA-256-signed certificates).
fn tls_info(
    tls: &UnbufferedServerConnection,
    exporter_secret: Option<&[u8]>,
    certificate: &[u8],
) -> TlsInfo {
    let version = match tls.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => TlsVersion::Tls13,
        _ => TlsVersion::Tls12OrOlder,
    };
    let mut bindings = Vec::new();
    if let (Some(secret), Some(SupportedCipherSuite::Tls13(suite))) =
        (exporter_secret, tls.negotiated_cipher_suite())
    {
        let mut exporter = vec![0u8; 32];
        if tls13_export(suite, secret, b"EXPORTER-Channel-Binding", &mut exporter).is_ok() {
            bindings.push(ChannelBinding::new(
                ChannelBindingType::TlsExporter,
                exporter,
            ));
        }
    }
    use sha2::Digest;
    bindings.push(ChannelBinding::new(
        ChannelBindingType::TlsServerEndPoint,
        sha2::Sha256::digest(certificate).to_vec(),
    ));
    TlsInfo::encrypted(version, bindings)
}

/// The TLS 1.3 exporter (RFC 8446 §7.5) with an empty context:
/// `HKDF-Expand-Label(Derive-Secret(secret, label, ""), "exporter", Hash(""), len)`.
fn tls13_export(
    suite: &Tls13CipherSuite,
    exporter_secret: &[u8],
    label: &[u8],
    out: &mut [u8],
) -> Result<(), BoxError> {
    let hkdf = suite.hkdf_provider;
    let empty_hash = suite.common.hash_provider.hash(&[]);
    let secret = hkdf.expander_for_okm(&OkmBlock::new(exporter_secret));
    let mut derived = vec![0u8; empty_hash.as_ref().len()];
    expand_label(&*secret, label, empty_hash.as_ref(), &mut derived)?;
    let derived = hkdf.expander_for_okm(&OkmBlock::new(&derived));
    expand_label(&*derived, b"exporter", empty_hash.as_ref(), out)
}

/// `HKDF-Expand-Label` (RFC 8446 §7.1).
fn expand_label(
    expander: &dyn rustls::crypto::tls13::HkdfExpander,
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<(), BoxError> {
    let length = u16::try_from(out.len())?.to_be_bytes();
    let label_length = [u8::try_from(b"tls13 ".len() + label.len())?];
    let context_length = [u8::try_from(context.len())?];
    expander
        .expand_slice(
            &[
                &length,
                &label_length,
                b"tls13 ",
                label,
                &context_length,
                context,
            ],
            out,
        )
        .map_err(|_| "HKDF output too long".into())
}
