//! The listening socket, and a cap on how long a client may stop reading.
//!
//! A stream's run waits when its outbox is full, and is polled only by its
//! body, so a stalled reader cannot make the server buffer without bound:
//! per stream at most `stream_buffer_events` events in the outbox plus
//! hyper's write buffer (and the upstream's bytes wait in the kernel). But
//! hyper stops polling the body while the socket is not writable, so the
//! body cannot notice the stall; the socket can. [`StallGuard`] fails a
//! write that has been blocked for `stalled_client_timeout`, hyper closes the
//! connection, the body drops, and the run ends as a client that left (its
//! upstream request cancelled). Each such close is counted.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

/// Connections the kernel may queue before `accept`: tokio's `bind` asks for
/// 1,024, and thousands of streams opening at once overflow that (the
/// client's SYN is dropped and retried after 1 s, 3 s, 7 s…). The kernel caps
/// it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 8192;

/// Raises this process's open-file limit as far as it goes: the hard limit
/// too when the process may (root, CAP_SYS_RESOURCE), else the soft limit
/// to the hard one. A relayed stream holds two sockets in the server (three
/// in the in-process stack, with the mock's end), so thousands of streams
/// need more descriptors than a default soft limit gives. Returns the
/// soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    const WANTED: u64 = 1 << 20;
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    if hard < WANTED && rlimit::Resource::NOFILE.set(WANTED, WANTED).is_ok() {
        return WANTED;
    }
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(soft)
}

/// A listening socket on `addr` with [`LISTEN_BACKLOG`].
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    listen_with(addr, false)
}

/// With `reuse_port`, several server processes may listen on one address
/// (`SO_REUSEPORT`) and the kernel spreads new connections over them, as
/// behind Dify's gunicorn workers. Each process keeps its own run records.
pub fn listen_with(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(reuse_port)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// An IO whose writes fail once they have been blocked for `limit`.
pub struct StallGuard<T> {
    inner: T,
    limit: Duration,
    /// Armed when a write first blocks; cleared by any progress.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    closed: Arc<AtomicU64>,
}

impl<T> StallGuard<T> {
    pub fn new(inner: T, limit: Duration, closed: Arc<AtomicU64>) -> Self {
        Self { inner, limit, deadline: None, closed }
    }

    /// The write returned `Pending`: arm the deadline, or fail once it passed.
    fn blocked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let limit = self.limit;
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(deadline.as_mut().poll(cx));
        self.deadline = None;
        self.closed.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, format!("the client read nothing for {limit:?}"))))
    }

    fn progressed<R>(&mut self, result: Poll<R>) -> Poll<R> {
        if result.is_ready() {
            self.deadline = None;
        }
        result
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.blocked(cx),
            ready => this.progressed(ready),
        }
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.blocked(cx),
            ready => this.progressed(ready),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_blocked_past_the_limit_fails_and_is_counted() {
        // A pipe whose reader never reads: writes block once 64 bytes are buffered.
        let (writer, _reader) = tokio::io::duplex(64);
        let closed = Arc::new(AtomicU64::new(0));
        let mut guarded = StallGuard::new(writer, Duration::from_secs(5), closed.clone());
        guarded.write_all(&[0; 64]).await.unwrap();
        let started = tokio::time::Instant::now();
        let err = guarded.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(closed.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_resets_the_deadline() {
        let (writer, mut reader) = tokio::io::duplex(64);
        let closed = Arc::new(AtomicU64::new(0));
        let mut guarded = StallGuard::new(writer, Duration::from_secs(5), closed.clone());
        // A slow reader: 64 bytes every 4 s. Each wait is under the limit.
        let drain = tokio::spawn(async move {
            let mut buf = [0; 64];
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                tokio::io::AsyncReadExt::read_exact(&mut reader, &mut buf).await.unwrap();
            }
        });
        guarded.write_all(&[0; 256]).await.unwrap();
        drain.await.unwrap();
        assert_eq!(closed.load(Ordering::Relaxed), 0);
    }
}
