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

/// hyper answers a request it cannot parse by itself, before any handler:
/// a status line and `content-length: 0`. This gives those answers a short
/// body in Dify's error shape that says what was wrong. They are told apart
/// by hyper's reason phrases in mixed case, which the API's own answers
/// (werkzeug's upper case) never use, and by their empty length.
pub struct ParseErrorBodies<T> {
    inner: T,
    /// The answer written in place of hyper's, and how much of it is out.
    pending: Option<(Vec<u8>, usize)>,
}

/// hyper's automatic answers, and what each means here.
const PARSE_ERRORS: [(&[u8], &str, &str); 3] = [
    (b"HTTP/1.1 400 Bad Request\r\n", "400 BAD REQUEST", "The request is not valid HTTP/1.1: its request line or a header is malformed."),
    (b"HTTP/1.1 414 URI Too Long\r\n", "414 REQUEST URI TOO LARGE", "The request line is too long."),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        "431 REQUEST HEADER FIELDS TOO LARGE",
        "The request's headers are too large: more than 100 of them, or more than 400 KiB.",
    ),
];

impl<T> ParseErrorBodies<T> {
    pub fn new(inner: T) -> Self {
        Self { inner, pending: None }
    }

    /// The answer to write instead of `head`, if `head` is one of hyper's.
    fn replacement(head: &[u8]) -> Option<Vec<u8>> {
        let (_, status, message) = PARSE_ERRORS.iter().find(|(line, _, _)| head.starts_with(line))?;
        let end = memchr::memmem::find(head, b"\r\n\r\n")?;
        let lower = head[..end].to_ascii_lowercase();
        if memchr::memmem::find(&lower, b"\r\ncontent-length: 0").is_none() || memchr::memmem::find(&lower, b"content-type").is_some() {
            return None;
        }
        let code: u16 = status[..3].parse().expect("a status");
        let code_name = if code == 400 { "bad_request" } else { "request_too_large" };
        let body = format!("{{\"code\":\"{code_name}\",\"message\":\"{message}\",\"status\":{code}}}\n");
        Some(
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }
}

impl<T: AsyncWrite + Unpin> ParseErrorBodies<T> {
    /// Writes what is left of the replacement answer.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = self.pending.as_mut() {
            if *written == answer.len() {
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ParseErrorBodies<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ParseErrorBodies<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none()
            && let Some(answer) = Self::replacement(buf)
        {
            this.pending = Some((answer, 0));
            // hyper's head counts as written; the replacement goes out now
            // or on the flush that follows.
            let _ = this.drive(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        ready!(this.drive(cx))?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none()
            && let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(answer) = Self::replacement(first)
        {
            this.pending = Some((answer, 0));
            let _ = this.drive(cx)?;
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        ready!(this.drive(cx))?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drive(cx))?;
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

    #[tokio::test]
    async fn hypers_own_answers_get_a_body_and_the_apis_stay_as_they_are() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let (writer, mut reader) = tokio::io::duplex(4096);
        let mut io = ParseErrorBodies::new(writer);
        io.write_all(hyper_400).await.unwrap();
        io.shutdown().await.unwrap();
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 400 BAD REQUEST\r\ncontent-type: application/json\r\n"), "{out}");
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!((json["code"].as_str(), json["status"].as_u64()), (Some("bad_request"), Some(400)));
        // The API's own answers: werkzeug's upper-case reasons, a content type.
        let ours = b"HTTP/1.1 400 BAD REQUEST\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert!(ParseErrorBodies::<()>::replacement(ours).is_none());
        let with_type = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n\r\n";
        assert!(ParseErrorBodies::<()>::replacement(with_type).is_none());
    }
}
