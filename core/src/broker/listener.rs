//! The client port: accepts TCP connections, counts each against `max_connections` and sets
//! `TCP_NODELAY`, and, with TLS on, tells TLS from plaintext by the first byte (0x16 opens a
//! TLS `ClientHello`; plaintext HTTP/2 opens with `PRI *`), as Apache's proxy serves both on one
//! port. Finished connections reach tonic through a channel.
//!
//! ```text
//! accept loop ──(off)────────────────────────────────────────► channel ──► tonic
//!      └──(optional / required) spawn per connection:
//!           peek 1 byte ── 0x16 ──► rustls handshake ── TLS ──► channel
//!                       └─ other ──► plaintext (optional) ─────► channel
//!                                    closed + warning (required)
//! ```
//!
//! The peek and the handshake run in a task of their own, within [`HANDSHAKE_TIMEOUT`]: a
//! client that connects and says nothing never holds up the accepts of others.

use std::io;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{Slot, lock};
use crate::tls::server::ServerTls;

/// How long a new connection may take to send its first byte and finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake message (the `ClientHello`).
const TLS_HANDSHAKE: u8 = 0x16;

/// A bound client port and whether it speaks TLS. A plain [`TcpListener`] converts into a
/// plaintext-only one (`--tls off`).
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    tls: Option<Tls>,
}

#[derive(Debug)]
struct Tls {
    config: Arc<rustls::ServerConfig>,
    required: bool,
}

impl From<TcpListener> for Listener {
    fn from(tcp: TcpListener) -> Listener {
        Listener { tcp, tls: None }
    }
}

impl Listener {
    /// Serves TLS with `tls` and, unless `required`, plaintext as well, on `tcp`.
    pub fn with_tls(tcp: TcpListener, tls: &ServerTls, required: bool) -> Listener {
        Listener { tcp, tls: Some(Tls { config: Arc::clone(tls.config()), required }) }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp.local_addr()
    }

    /// Starts accepting; the connections come out of the returned stream. Accepting stops
    /// (and the port is released) when the stream is dropped.
    pub(crate) fn incoming(self, counter: Arc<AtomicUsize>, max: usize) -> Incoming {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(self, tx, counter, max));
        Incoming { rx, task }
    }
}

/// The connections tonic serves.
pub(crate) struct Incoming {
    rx: mpsc::Receiver<Connection>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // Also ends the handshakes in flight: they belong to the loop's `JoinSet`.
        self.task.abort();
    }
}

impl tokio_stream::Stream for Incoming {
    type Item = Result<Connection, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// Logs at most once a second, counting what it did not log.
#[derive(Debug, Default)]
struct Throttle(Mutex<(Option<Instant>, u64)>);

impl Throttle {
    /// `Some(events since the last log, this one included)` when a log line is due now.
    fn due(&self) -> Option<u64> {
        let mut s = lock(&self.0);
        s.1 += 1;
        if s.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            s.0 = Some(Instant::now());
            Some(std::mem::take(&mut s.1))
        } else {
            None
        }
    }
}

async fn accept_loop(
    listener: Listener,
    tx: mpsc::Sender<Connection>,
    counter: Arc<AtomicUsize>,
    max: usize,
) {
    let Listener { tcp, tls } = listener;
    let tls = tls.map(Arc::new);
    let full = Throttle::default();
    let failed = Throttle::default();
    let logs = Arc::new(Logs::default());
    let mut handshakes = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = tcp.accept() => r,
            () = tx.closed() => return,
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, mostly: a pause lets connections close.
                if let Some(n) = failed.due() {
                    tracing::warn!(error = %e, failures = n, "accepting a connection failed");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Beyond `max_connections`, a connection is closed as soon as it is accepted (each
        // costs buffers and HTTP/2 state); the log says so at most once a second.
        let Ok(slot) = Slot::take(&counter, max) else {
            if let Some(refused) = full.due() {
                tracing::warn!(
                    %peer,
                    refused,
                    max_connections = max,
                    "connection refused: max_connections reached ([broker] max_connections)"
                );
            }
            continue;
        };
        // Nagle's algorithm would hold a response's last small write for the client's delayed
        // ACK (40 ms): the server builder's own `tcp_nodelay` only covers listeners it binds.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        match &tls {
            None => {
                if tx.send(Connection::Plain { io: stream, _slot: slot }).await.is_err() {
                    return;
                }
            }
            Some(tls) => {
                let (tls, tx, logs) = (Arc::clone(tls), tx.clone(), Arc::clone(&logs));
                handshakes.spawn(async move {
                    let conn =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, sniff(stream, slot, &tls, &logs));
                    match conn.await {
                        Ok(Some(conn)) => {
                            let _ = tx.send(conn).await;
                        }
                        Ok(None) => {}
                        Err(_) => tracing::debug!(
                            %peer,
                            "connection closed: no TLS handshake or HTTP/2 preface within {:?}",
                            HANDSHAKE_TIMEOUT
                        ),
                    }
                });
            }
        }
    }
}

/// The rate-limited log lines of the handshake tasks.
#[derive(Debug, Default)]
struct Logs {
    plaintext_refused: Throttle,
    handshake_failed: Throttle,
}

/// Reads the first byte without consuming it, then hands over a TLS or plaintext connection,
/// or `None` when it is closed (said nothing, refused plaintext, failed handshake).
async fn sniff(stream: TcpStream, slot: Slot, tls: &Tls, logs: &Logs) -> Option<Connection> {
    let peer = stream.peer_addr().ok();
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) | Err(_) => return None,
        Ok(_) => {}
    }
    if first[0] == TLS_HANDSHAKE {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&tls.config));
        return match acceptor.accept(stream).await {
            Ok(io) => Some(Connection::Tls { io: Box::new(io), _slot: slot }),
            Err(e) => {
                if let Some(failures) = logs.handshake_failed.due() {
                    tracing::info!(?peer, error = %e, failures, "TLS handshake failed");
                }
                None
            }
        };
    }
    if tls.required {
        if let Some(refused) = logs.plaintext_refused.due() {
            tracing::warn!(
                ?peer,
                refused,
                "plaintext connection closed: this server requires TLS (--tls required)"
            );
        }
        return None;
    }
    Some(Connection::Plain { io: stream, _slot: slot })
}

/// An accepted connection, plaintext or TLS, counted against `max_connections` until it
/// closes.
#[derive(Debug)]
pub(crate) enum Connection {
    /// Plaintext HTTP/2.
    Plain { io: TcpStream, _slot: Slot },
    /// HTTP/2 over TLS (boxed: the TLS state is 1 KiB).
    Tls { io: Box<tokio_rustls::server::TlsStream<TcpStream>>, _slot: Slot },
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain { io, .. } => Pin::new(io).poll_read(cx, buf),
            Connection::Tls { io, .. } => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain { io, .. } => Pin::new(io).poll_write(cx, buf),
            Connection::Tls { io, .. } => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain { io, .. } => Pin::new(io).poll_write_vectored(cx, bufs),
            Connection::Tls { io, .. } => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain { io, .. } => io.is_write_vectored(),
            Connection::Tls { io, .. } => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain { io, .. } => Pin::new(io).poll_flush(cx),
            Connection::Tls { io, .. } => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain { io, .. } => Pin::new(io).poll_shutdown(cx),
            Connection::Tls { io, .. } => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match self {
            Connection::Plain { io, .. } => io.connect_info(),
            Connection::Tls { io, .. } => io.get_ref().0.connect_info(),
        }
    }
}
