//! The hand-written upstream client against raw loopback servers that answer
//! byte by byte, close kept-alive connections, or end bodies early.

use bytes::BytesMut;
use server::upstream::UpstreamError;
use server::upstream::client::{Endpoint, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a raw server answers each request on a connection.
#[derive(Clone, Copy)]
enum UpstreamAnswer {
    /// A chunked body written one byte per write, then stays open.
    ChunkedByteByByte,
    /// A chunked body, then the server closes the connection (no
    /// `Connection: close`: the client finds out when it reuses it).
    ChunkedThenClose,
    /// HTTP/1.0, no length: the body ends when the connection closes.
    CloseDelimited,
    /// A chunked body cut before its last chunk.
    Cut,
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
    6\r\ndata: \r\n8;ext=\"x\"\r\nhello\n\n\n\r\n0\r\n\r\n";

/// A server on 127.0.0.1:0 answering every request with `answer`; counts
/// accepted connections, and those it has closed.
async fn raw_server(answer: UpstreamAnswer) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
    let (accepted, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (count, done) = (accepted.clone(), closed.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let done = done.clone();
            tokio::spawn(async move {
                serve(tcp, answer).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (url, accepted, closed)
}

async fn serve(mut tcp: TcpStream, answer: UpstreamAnswer) {
    tcp.set_nodelay(true).unwrap();
    let mut buf = BytesMut::new();
    loop {
        // One request: the head, then content-length bytes.
        let (head_end, length) = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).unwrap().to_ascii_lowercase();
                let length = head.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap().parse::<usize>().unwrap();
                break (end + 4, length);
            }
            if tcp.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
        };
        while buf.len() < head_end + length {
            tcp.read_buf(&mut buf).await.unwrap();
        }
        let _ = buf.split_to(head_end + length);
        match answer {
            UpstreamAnswer::ChunkedByteByByte => {
                for byte in CHUNKED {
                    tcp.write_all(&[*byte]).await.unwrap();
                    tokio::time::sleep(Duration::from_micros(50)).await;
                }
            }
            UpstreamAnswer::ChunkedThenClose => {
                tcp.write_all(CHUNKED).await.unwrap();
                return;
            }
            UpstreamAnswer::CloseDelimited => {
                tcp.write_all(b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: hello\n\n").await.unwrap();
                return;
            }
            UpstreamAnswer::Cut => {
                tcp.write_all(&CHUNKED[..CHUNKED.len() - 12]).await.unwrap();
                return;
            }
        }
    }
}

fn endpoint(url: &str) -> Endpoint {
    Endpoint::new(&url.parse().unwrap(), &[("content-type", "application/json")], Duration::from_secs(2), 16).unwrap()
}

/// Reads the whole body through the client's own decoder.
async fn body_of(response: &mut Response<'_>) -> Result<Vec<u8>, UpstreamError> {
    let mut body = Vec::new();
    loop {
        response.decode_buffered(|data| {
            body.extend_from_slice(data);
            Ok::<(), UpstreamError>(())
        })?;
        if response.is_done() || !response.read().await? {
            response.decode_buffered(|data| {
                body.extend_from_slice(data);
                Ok::<(), UpstreamError>(())
            })?;
            return Ok(body);
        }
    }
}

#[tokio::test]
async fn a_body_sent_byte_by_byte_decodes_whole_and_the_connection_is_reused() {
    let (url, accepted, _) = raw_server(UpstreamAnswer::ChunkedByteByByte).await;
    let endpoint = endpoint(&url);
    for _ in 0..3 {
        let mut response = endpoint.post(b"{}").await.unwrap();
        assert_eq!(response.head.status, 200);
        assert_eq!(body_of(&mut response).await.unwrap(), b"data: hello\n\n\n");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one kept-alive connection for three requests");
    assert_eq!(endpoint.idle_connections(), 1);
}

#[tokio::test]
async fn a_kept_alive_connection_the_server_closed_is_replaced() {
    let (url, accepted, closed) = raw_server(UpstreamAnswer::ChunkedThenClose).await;
    let endpoint = endpoint(&url);
    for round in 1..=3 {
        let mut response = endpoint.post(b"{}").await.unwrap();
        assert_eq!(body_of(&mut response).await.unwrap(), b"data: hello\n\n\n", "round {round}");
        drop(response);
        // The server has closed this connection before the next request, so
        // the pool's check, not a failed reuse, must find it gone.
        crate::support::eventually("the server closes", Duration::from_secs(5), || closed.load(Ordering::SeqCst) == round).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_close_delimited_body_ends_at_the_close() {
    let (url, _, _) = raw_server(UpstreamAnswer::CloseDelimited).await;
    let endpoint = endpoint(&url);
    let mut response = endpoint.post(b"{}").await.unwrap();
    assert_eq!(body_of(&mut response).await.unwrap(), b"data: hello\n\n");
    assert!(response.is_done());
    drop(response);
    assert_eq!(endpoint.idle_connections(), 0, "a close-delimited connection is not kept");
}

#[tokio::test]
async fn a_body_cut_before_its_last_chunk_is_incomplete() {
    let (url, _, _) = raw_server(UpstreamAnswer::Cut).await;
    let endpoint = endpoint(&url);
    let mut response = endpoint.post(b"{}").await.unwrap();
    let err = body_of(&mut response).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Incomplete), "{err}");
    drop(response);
    assert_eq!(endpoint.idle_connections(), 0);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_naming_the_address() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let endpoint = endpoint(&format!("http://{addr}/v1/chat/completions"));
    let err = endpoint.post(b"{}").await.unwrap_err();
    assert!(matches!(&err, UpstreamError::Connect(text) if text.contains(&addr.to_string())), "{err}");
}
