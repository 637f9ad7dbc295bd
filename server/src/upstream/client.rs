//! The LLM node's HTTP/1.1 client, written for the one exchange it makes: a
//! POST with a JSON body whose answer is a streamed body (SSE, chunked or
//! not). It is read by whoever polls the `Response`, with no task of its own:
//! a relayed stream's upstream socket is read inside the poll that writes its
//! Dify events, so an event costs one read and one write and no hand-off
//! between tasks (hyper's client runs each connection on its own task and
//! hands every chunk over through a channel: a task wake-up per chunk).
//!
//! The head and body framing are `super::decoder`'s. Connections are kept alive
//! in a `Pool` and checked before reuse; a reused connection that fails
//! before any byte of the answer is retried once on a fresh one.

use super::UpstreamError;
use super::decoder::{BodyDecoder, Head};
use bytes::{Buf, BytesMut};
use std::io;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most a response head may take.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Read buffer reserved per read: a stream's resident cost.
const READ_CHUNK: usize = 4 * 1024;

/// Where requests go: `host:port` and the path, with the fixed part of the
/// request head rendered once.
#[derive(Debug)]
pub struct Endpoint {
    authority: String,
    /// `POST <path> HTTP/1.1` and the fixed headers, up to `Content-Length: `.
    head_prefix: Vec<u8>,
    connect_timeout: Duration,
    pool: Pool,
}

impl Endpoint {
    /// `extra_headers` are `(name, value)` pairs sent with every request.
    pub fn new(uri: &http::Uri, extra_headers: &[(&str, &str)], connect_timeout: Duration, max_idle: usize) -> Result<Self, String> {
        let host = uri.host().ok_or_else(|| format!("{uri} has no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let authority = format!("{host}:{port}");
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut head = format!("POST {path} HTTP/1.1\r\nhost: {}\r\n", uri.authority().map_or(host, |a| a.as_str()));
        for (name, value) in extra_headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("content-length: ");
        Ok(Self { authority, head_prefix: head.into_bytes(), connect_timeout, pool: Pool::new(max_idle) })
    }

    /// Sends `body` and reads the answer's head. The body is read through
    /// the returned `Response`.
    pub async fn post(&self, body: &[u8]) -> Result<Response<'_>, UpstreamError> {
        let mut request = Vec::with_capacity(self.head_prefix.len() + 24 + body.len());
        request.extend_from_slice(&self.head_prefix);
        request.extend_from_slice(body.len().to_string().as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(body);
        if let Some(tcp) = self.pool.take() {
            match exchange(tcp, &request).await {
                Ok((tcp, buf, head)) => return Ok(Response::new(self, tcp, buf, head)),
                // The server closed a kept-alive connection before answering: once more, fresh.
                Err(ExchangeState::Stale) => {}
                Err(ExchangeState::Failed(e)) => return Err(e),
            }
        }
        let tcp = self.connect().await?;
        match exchange(tcp, &request).await {
            Ok((tcp, buf, head)) => Ok(Response::new(self, tcp, buf, head)),
            Err(ExchangeState::Stale) => Err(UpstreamError::Incomplete),
            Err(ExchangeState::Failed(e)) => Err(e),
        }
    }

    async fn connect(&self) -> Result<TcpStream, UpstreamError> {
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.authority)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(UpstreamError::Connect(format!("connecting to {}: {e}", self.authority))),
            Err(_) => {
                return Err(UpstreamError::Connect(format!(
                    "connecting to {}: timed out after {:?}",
                    self.authority, self.connect_timeout
                )));
            }
        };
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// Idle kept-alive connections.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

enum ExchangeState {
    /// Nothing came back on a connection that had been idle: it was closed.
    Stale,
    Failed(UpstreamError),
}

async fn exchange(mut tcp: TcpStream, request: &[u8]) -> Result<(TcpStream, BytesMut, Head), ExchangeState> {
    if tcp.write_all(request).await.is_err() {
        return Err(ExchangeState::Stale);
    }
    let mut buf = BytesMut::new();
    // Whether anything came back: a connection that answers nothing was stale.
    let mut answered = false;
    loop {
        buf.reserve(READ_CHUNK);
        match tcp.read_buf(&mut buf).await {
            Ok(0) if !answered && buf.is_empty() => return Err(ExchangeState::Stale),
            Ok(0) => return Err(ExchangeState::Failed(UpstreamError::Protocol("connection closed inside the response head".into()))),
            Ok(_) => answered = true,
            Err(_) if !answered && buf.is_empty() => return Err(ExchangeState::Stale),
            Err(e) => return Err(ExchangeState::Failed(e.into())),
        }
        // Every head the buffer holds: interim 1xx answers (`100 Continue`)
        // are skipped, and the final head may have come in the same read.
        loop {
            match Head::parse(&buf).map_err(ExchangeState::Failed)? {
                Some((head, len)) if head.status < 200 => buf.advance(len),
                Some((head, len)) => {
                    buf.advance(len);
                    return Ok((tcp, buf, head));
                }
                None if buf.len() > MAX_HEAD_BYTES => {
                    return Err(ExchangeState::Failed(UpstreamError::Protocol(format!("response head over {MAX_HEAD_BYTES} bytes"))));
                }
                None => break,
            }
        }
    }
}

/// An answer being read. Dropped once its body ended on a kept-alive
/// connection, the connection goes back to the pool; otherwise it closes.
#[derive(Debug)]
pub struct Response<'e> {
    endpoint: &'e Endpoint,
    tcp: Option<TcpStream>,
    buf: BytesMut,
    pub head: Head,
    body: BodyDecoder,
}

impl<'e> Response<'e> {
    fn new(endpoint: &'e Endpoint, tcp: TcpStream, buf: BytesMut, head: Head) -> Self {
        let body = BodyDecoder::new(head.framing);
        Self { endpoint, tcp: Some(tcp), buf, head, body }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.body.is_done()
    }

    /// Decodes what is buffered, handing body data to `data`.
    pub fn decode_buffered<E: From<UpstreamError>>(&mut self, data: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.body.decode(&mut self.buf, data)
    }

    /// Reads once more from the socket (waits for data). `Ok(false)` when
    /// the body has ended, by its framing or, for a close-delimited body, by
    /// the close; a close before the framing's end is `Incomplete`.
    pub async fn read(&mut self) -> Result<bool, UpstreamError> {
        if self.body.is_done() {
            return Ok(false);
        }
        let Some(tcp) = self.tcp.as_mut() else { return Ok(false) };
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        match tcp.read_buf(&mut self.buf).await? {
            0 => {
                self.tcp = None;
                self.body.closed().map(|()| false)
            }
            _ => Ok(true),
        }
    }
}

impl Drop for Response<'_> {
    fn drop(&mut self) {
        if let Some(tcp) = self.tcp.take()
            && self.head.keep_alive
            && self.body.is_done()
            && self.buf.is_empty()
        {
            self.endpoint.pool.put(tcp);
        }
    }
}

/// Kept-alive connections, newest last.
#[derive(Debug)]
struct Pool {
    idle: Mutex<Vec<TcpStream>>,
    max_idle: usize,
}

impl Pool {
    fn new(max_idle: usize) -> Self {
        Self { idle: Mutex::new(Vec::new()), max_idle }
    }

    /// The newest idle connection that is still open and has sent nothing.
    fn take(&self) -> Option<TcpStream> {
        loop {
            let tcp = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            let mut probe = [0u8; 1];
            match tcp.try_read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(tcp),
                // Closed (0), unexpected bytes, or an error: not reusable.
                _ => {}
            }
        }
    }

    fn put(&self, tcp: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(tcp);
        }
    }
}
