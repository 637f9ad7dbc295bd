//! An upstream answer's framing, with no I/O: `Head` parses the response head
//! with `httparse`; `BodyDecoder` undoes chunked, length-delimited and
//! close-delimited framing over a buffer that fills from the socket, so the
//! fuzz target and the tests drive it with any split of the bytes.

use super::UpstreamError;
use bytes::{Buf, BytesMut};

/// The most a chunk-size line or trailer line may take.
const MAX_LINE_BYTES: usize = 4 * 1024;

/// What the response head says about the body and the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    pub keep_alive: bool,
    /// `Content-Type` is `application/json`: a whole answer, not a stream.
    pub json: bool,
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
        let (mut chunked, mut length, mut json) = (false, None, false);
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
            } else if header.name.eq_ignore_ascii_case("content-type") {
                json = value.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
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
        Ok(Some((Head { status, framing, keep_alive, json }, len)))
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

    /// The connection closed: the end of a close-delimited body, a cut
    /// answer for any other framing.
    pub fn closed(&mut self) -> Result<(), UpstreamError> {
        if self.state == State::UntilClose {
            self.state = State::Done;
            return Ok(());
        }
        Err(UpstreamError::Incomplete)
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
        assert_eq!(head, Head { status: 200, framing: Framing::Chunked, keep_alive: true, json: false });
        let head = parse("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 12\r\nConnection: close\r\n\r\n");
        assert_eq!(head, Head { status: 500, framing: Framing::Length(12), keep_alive: false, json: false });
        let head = parse("HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\n");
        assert_eq!(head, Head { status: 200, framing: Framing::Close, keep_alive: false, json: false });
        let head = parse("HTTP/1.1 200 OK\r\nContent-Type: Application/JSON; charset=utf-8\r\ncontent-length: 2\r\n\r\n");
        assert!(head.json, "a whole JSON answer is told apart from a stream");
        assert_eq!(Head::parse(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        assert!(Head::parse(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(Head::parse(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n").is_err());
        assert!(Head::parse(b"garbage\r\n\r\n").is_err());
    }
}
