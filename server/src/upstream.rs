//! The LLM node's HTTP/1.1 client, written for the one exchange it makes: a
//! POST with a JSON body whose answer is a streamed body (SSE, chunked or
//! not). It is read by whoever polls the `Response`, with no task of its own:
//! a relayed stream's upstream socket is read inside the poll that writes its
//! Dify events, so an event costs one read and one write and no hand-off
//! between tasks (hyper's client runs each connection on its own task and
//! hands every chunk over through a channel: a task wake-up per chunk).
//!
//! `Head` parses with `httparse`; `BodyDecoder` (no I/O) undoes chunked,
//! length-delimited and close-delimited framing. Connections are kept alive
//! in a `Pool` and checked before reuse; a reused connection that fails
//! before any byte of the answer is retried once on a fresh one.

use bytes::{Buf, BytesMut};
use std::io;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most a response head may take.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most a chunk-size line or trailer line may take.
const MAX_LINE_BYTES: usize = 4 * 1024;
/// Read buffer reserved per read: a stream's resident cost.
const READ_CHUNK: usize = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("invalid response: {0}")]
    Protocol(String),
    #[error("connection closed before the response body ended")]
    Incomplete,
}

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
                Err(Exchange::Stale) => {}
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
        let tcp = self.connect().await?;
        match exchange(tcp, &request).await {
            Ok((tcp, buf, head)) => Ok(Response::new(self, tcp, buf, head)),
            Err(Exchange::Stale) => Err(UpstreamError::Incomplete),
            Err(Exchange::Failed(e)) => Err(e),
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

enum Exchange {
    /// Nothing came back on a connection that had been idle: it was closed.
    Stale,
    Failed(UpstreamError),
}

async fn exchange(mut tcp: TcpStream, request: &[u8]) -> Result<(TcpStream, BytesMut, Head), Exchange> {
    if tcp.write_all(request).await.is_err() {
        return Err(Exchange::Stale);
    }
    let mut buf = BytesMut::new();
    loop {
        buf.reserve(READ_CHUNK);
        match tcp.read_buf(&mut buf).await {
            Ok(0) if buf.is_empty() => return Err(Exchange::Stale),
            Ok(0) => return Err(Exchange::Failed(UpstreamError::Protocol("connection closed inside the response head".into()))),
            Ok(_) => {}
            Err(_) if buf.is_empty() => return Err(Exchange::Stale),
            Err(e) => return Err(Exchange::Failed(e.into())),
        }
        match Head::parse(&buf).map_err(Exchange::Failed)? {
            Some((head, len)) if head.status < 200 => buf.advance(len),
            Some((head, len)) => {
                buf.advance(len);
                return Ok((tcp, buf, head));
            }
            None if buf.len() > MAX_HEAD_BYTES => {
                return Err(Exchange::Failed(UpstreamError::Protocol(format!("response head over {MAX_HEAD_BYTES} bytes"))));
            }
            None => {}
        }
    }
}

/// What the response head says about the body and the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    pub keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Chunked,
    Length(u64),
    /// Until the server closes the connection.
    Close,
}

impl Head {
    /// The head and its length, `None` until it is complete.
    pub fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, UpstreamError> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(UpstreamError::Protocol(e.to_string())),
        };
        let status = response.code.unwrap_or(0);
        let mut keep_alive = response.version == Some(1);
        let (mut chunked, mut length) = (false, None);
        for header in response.headers.iter() {
            let value = std::str::from_utf8(header.value).unwrap_or("").trim();
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            } else if header.name.eq_ignore_ascii_case("content-length") {
                let n = value.parse::<u64>().map_err(|_| UpstreamError::Protocol(format!("content-length {value:?}")))?;
                if length.is_some_and(|m| m != n) {
                    return Err(UpstreamError::Protocol("conflicting content-length headers".into()));
                }
                length = Some(n);
            } else if header.name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        keep_alive = true;
                    }
                }
            }
        }
        let framing = if status == 204 || status == 304 {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            keep_alive = false;
            Framing::Close
        };
        Ok(Some((Head { status, framing, keep_alive }, len)))
    }
}

/// Undoes a body's framing over a buffer that fills from the socket.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A chunk-size line is next.
    Size,
    /// This many bytes of chunk data are next.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines, up to an empty line.
    Trailers,
    /// This many bytes of a length-delimited body remain.
    Remaining(u64),
    /// Everything until the connection closes.
    UntilClose,
    Done,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Chunked => State::Size,
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Remaining(n),
            Framing::Close => State::UntilClose,
        };
        Self { state }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes what it can of `buf`, handing each piece of body data to
    /// `data`; the rest waits for more bytes. Stops early when `data` fails.
    pub fn decode<E: From<UpstreamError>>(&mut self, buf: &mut BytesMut, mut data: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        loop {
            match self.state {
                State::Done => return Ok(()),
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(());
                    }
                    let decoded = data(buf);
                    buf.clear();
                    return decoded;
                }
                State::Remaining(n) | State::Data(n) => {
                    if buf.is_empty() {
                        return Ok(());
                    }
                    let take = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    let left = n - take as u64;
                    self.state = match (self.state, left) {
                        (State::Remaining(_), 0) => State::Done,
                        (State::Remaining(_), left) => State::Remaining(left),
                        (_, 0) => State::DataEnd,
                        (_, left) => State::Data(left),
                    };
                    let decoded = data(&buf[..take]);
                    buf.advance(take);
                    decoded?;
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        if buf.first().is_some_and(|&b| b != b'\r') {
                            return Err(protocol("no CRLF after chunk data").into());
                        }
                        return Ok(());
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(protocol("no CRLF after chunk data").into());
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Size => {
                    let Some((len, consumed)) = line_end(buf)? else { return Ok(()) };
                    let line = &buf[..len];
                    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
                    let digits = std::str::from_utf8(digits).unwrap_or("").trim_matches([' ', '\t']);
                    let size = (!digits.is_empty() && digits.len() <= 16)
                        .then(|| u64::from_str_radix(digits, 16).ok())
                        .flatten()
                        .ok_or_else(|| protocol(&format!("chunk size {:?}", String::from_utf8_lossy(line))))?;
                    buf.advance(consumed);
                    self.state = if size == 0 { State::Trailers } else { State::Data(size) };
                }
                State::Trailers => {
                    let Some((len, consumed)) = line_end(buf)? else { return Ok(()) };
                    buf.advance(consumed);
                    if len == 0 {
                        self.state = State::Done;
                    }
                }
            }
        }
    }
}

fn protocol(what: &str) -> UpstreamError {
    UpstreamError::Protocol(what.to_owned())
}

/// The first line's length without its CRLF (or LF) and with it, `None`
/// until it is complete.
fn line_end(buf: &[u8]) -> Result<Option<(usize, usize)>, UpstreamError> {
    match memchr::memchr(b'\n', buf) {
        // Too long is too long whether or not its end has come: a split
        // must not change the verdict.
        Some(end) if end > MAX_LINE_BYTES => Err(protocol("chunk-size or trailer line too long")),
        Some(end) => {
            let len = if end > 0 && buf[end - 1] == b'\r' { end - 1 } else { end };
            Ok(Some((len, end + 1)))
        }
        None if buf.len() > MAX_LINE_BYTES => Err(protocol("chunk-size or trailer line too long")),
        None => Ok(None),
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
            0 if self.body.state == State::UntilClose => {
                self.body.state = State::Done;
                self.tcp = None;
                Ok(false)
            }
            0 => {
                self.tcp = None;
                Err(UpstreamError::Incomplete)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(framing: Framing, wire: &[u8], split: usize) -> Result<(Vec<u8>, bool), UpstreamError> {
        let mut decoder = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in [&wire[..split], &wire[split..]] {
            buf.extend_from_slice(part);
            decoder.decode(&mut buf, |d| {
                out.extend_from_slice(d);
                Ok::<(), UpstreamError>(())
            })?;
        }
        Ok((out, decoder.is_done()))
    }

    #[test]
    fn chunked_bodies_decode_the_same_at_every_split_point() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n1\r\n!\r\n0\r\nx-trailer: y\r\n\r\n";
        for split in 0..=wire.len() {
            let (out, done) = decode_all(Framing::Chunked, wire, split).unwrap();
            assert_eq!(out, b"hello, world!", "split {split}");
            assert!(done, "split {split}");
        }
    }

    #[test]
    fn a_chunked_body_without_its_last_chunk_is_not_done() {
        let wire = b"5\r\nhello\r\n";
        let (out, done) = decode_all(Framing::Chunked, wire, 3).unwrap();
        assert_eq!(out, b"hello");
        assert!(!done);
    }

    #[test]
    fn bad_chunk_framing_is_an_error() {
        for wire in [&b"zz\r\nhello\r\n"[..], b"5\r\nhelloXX", b"\r\n", b"12345678901234567\r\n"] {
            assert!(decode_all(Framing::Chunked, wire, wire.len()).is_err(), "{:?}", String::from_utf8_lossy(wire));
        }
        let long = vec![b'1'; MAX_LINE_BYTES + 1];
        assert!(decode_all(Framing::Chunked, &long, long.len()).is_err());
        // A trailer line too long is refused whether or not it arrived whole.
        let mut trailer = b"0\r\nx-long: ".to_vec();
        trailer.resize(MAX_LINE_BYTES + 16, b'a');
        trailer.extend_from_slice(b"\r\n\r\n");
        for split in [trailer.len(), MAX_LINE_BYTES + 8] {
            assert!(decode_all(Framing::Chunked, &trailer, split).is_err(), "split {split}");
        }
    }

    #[test]
    fn length_delimited_bodies_stop_at_their_length() {
        let wire = b"hello, world";
        for split in 0..=wire.len() {
            let mut decoder = BodyDecoder::new(Framing::Length(5));
            let mut buf = BytesMut::from(&wire[..split]);
            let mut out = Vec::new();
            let mut sink = |d: &[u8]| {
                out.extend_from_slice(d);
                Ok::<(), UpstreamError>(())
            };
            decoder.decode(&mut buf, &mut sink).unwrap();
            buf.extend_from_slice(&wire[split..]);
            decoder.decode(&mut buf, &mut sink).unwrap();
            assert_eq!(out, b"hello");
            assert!(decoder.is_done());
            assert_eq!(&buf[..], b", world", "what follows the body stays");
        }
    }

    #[test]
    fn heads_tell_framing_and_keep_alive() {
        let parse = |s: &str| Head::parse(s.as_bytes()).unwrap().unwrap().0;
        let head = parse("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(head, Head { status: 200, framing: Framing::Chunked, keep_alive: true });
        let head = parse("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 12\r\nConnection: close\r\n\r\n");
        assert_eq!(head, Head { status: 500, framing: Framing::Length(12), keep_alive: false });
        let head = parse("HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\n");
        assert_eq!(head, Head { status: 200, framing: Framing::Close, keep_alive: false });
        assert_eq!(Head::parse(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        assert!(Head::parse(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(Head::parse(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n").is_err());
        assert!(Head::parse(b"garbage\r\n\r\n").is_err());
    }
}
