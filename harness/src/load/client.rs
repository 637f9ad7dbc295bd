//! The load driver's HTTP client: one HTTP/1.1 keep-alive connection per
//! worker, straight on hyper's connection API (no pool, no per-request
//! allocation beyond the request itself): a reqwest-based client, with its
//! pool and per-request machinery, sent far fewer requests a second against
//! the same server (docs/performance.md), so the driver uses hyper.

use bytes::Bytes;
use http::{HeaderValue, Request, Uri, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// e.g. `http://127.0.0.1:5001` (no trailing slash).
    pub base_url: String,
    pub addr: SocketAddr,
    pub host: HeaderValue,
    /// `POST /v1/workflows/run`'s origin-form URI, built once.
    run_uri: Uri,
    /// `POST {prefix}/chat/completions`: the target as an OpenAI base URL
    /// (`http://host:port/v1`), for the direct scenario.
    chat_uri: Uri,
}

impl Target {
    /// Parses `http://host:port[/prefix]` and resolves the host.
    pub async fn resolve(url: &str) -> anyhow::Result<Self> {
        let base_url = url.trim_end_matches('/').to_owned();
        let uri: Uri = base_url.parse().map_err(|e| anyhow::anyhow!("target URL {url:?} is not a URL: {e}"))?;
        anyhow::ensure!(uri.scheme_str() == Some("http"), "target URL {url:?} must start with http:// (TLS is not supported)");
        let authority = uri.authority().ok_or_else(|| anyhow::anyhow!("target URL {url:?} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .map_err(|e| anyhow::anyhow!("resolving {}: {e}", authority.host()))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{} resolves to no address", authority.host()))?;
        let prefix = uri.path().trim_end_matches('/');
        let run_uri = format!("{prefix}/v1/workflows/run").parse()?;
        let chat_uri = format!("{prefix}/chat/completions").parse()?;
        Ok(Self { base_url, addr, host: HeaderValue::from_str(authority.as_str())?, run_uri, chat_uri })
    }

    /// A workflow-run request: the driver's hot path, so nothing is parsed here.
    pub fn run_request(&self, api_key: &HeaderValue, body: Bytes) -> Request<Full<Bytes>> {
        self.post(&self.run_uri, api_key, body)
    }

    /// A chat-completion request to an OpenAI-compatible target (the direct path).
    pub fn chat_request(&self, api_key: &HeaderValue, body: Bytes) -> Request<Full<Bytes>> {
        self.post(&self.chat_uri, api_key, body)
    }

    fn post(&self, uri: &Uri, api_key: &HeaderValue, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert(header::HOST, self.host.clone());
        headers.insert(header::AUTHORIZATION, api_key.clone());
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }

    /// A GET with a bearer key.
    pub fn get(&self, path: &str, api_key: &HeaderValue) -> Request<Full<Bytes>> {
        let mut request = Request::get(format!("{}{path}", self.path_prefix())).body(Full::new(Bytes::new())).expect("valid request");
        request.headers_mut().insert(header::HOST, self.host.clone());
        request.headers_mut().insert(header::AUTHORIZATION, api_key.clone());
        request
    }

    fn path_prefix(&self) -> &str {
        // `http://host:port/prefix` → `/prefix`; requests carry origin-form paths.
        let after_scheme = &self.base_url["http://".len()..];
        after_scheme.find('/').map_or("", |i| &after_scheme[i..])
    }
}

/// A bearer header value for an API key.
pub fn bearer(api_key: &str) -> anyhow::Result<HeaderValue> {
    Ok(HeaderValue::from_str(&format!("Bearer {api_key}"))?)
}

/// One keep-alive connection, reopened when it breaks.
pub struct Conn {
    sender: Option<http1::SendRequest<Full<Bytes>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("HTTP handshake with {addr}: {source}")]
    Handshake { addr: SocketAddr, source: hyper::Error },
}

impl Default for Conn {
    fn default() -> Self {
        Self::new()
    }
}

impl Conn {
    pub fn new() -> Self {
        Self { sender: None, task: None }
    }

    /// Sends `request` on this connection, connecting first if needed.
    pub async fn send(&mut self, target: &Target, request: Request<Full<Bytes>>) -> Result<hyper::Response<Incoming>, SendError> {
        let sender = self.ready(target).await.map_err(SendError::Connect)?;
        match sender.send_request(request).await {
            Ok(response) => Ok(response),
            Err(e) => {
                self.reset();
                Err(SendError::Http(e))
            }
        }
    }

    async fn ready(&mut self, target: &Target) -> Result<&mut http1::SendRequest<Full<Bytes>>, ConnError> {
        let usable = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            self.reset();
            let stream = connect(target.addr).await.map_err(|source| ConnError::Connect { addr: target.addr, source })?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) =
                http1::handshake(TokioIo::new(stream)).await.map_err(|source| ConnError::Handshake { addr: target.addr, source })?;
            self.task = Some(tokio::spawn(async move {
                // The connection's errors surface on its requests.
                let _ = connection.await;
            }));
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just connected"))
    }

    /// Drops the connection (after an error or a timeout mid-response).
    pub fn reset(&mut self) {
        self.sender = None;
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Source addresses handed out when ephemeral ports run short.
static NEXT_SOURCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Connects to `addr`. A loopback target with no ephemeral port left for the
/// usual source address (`EADDRNOTAVAIL`: the ephemeral port range, per
/// destination) is reached from the next address in 127.0.0.0/8 instead: each
/// source address has its own ports.
async fn connect(addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    match tokio::net::TcpStream::connect(addr).await {
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable && addr.ip().is_loopback() && addr.is_ipv4() => {
            let mut last = e;
            // A few tries: another address may be as full as this one.
            for _ in 0..8 {
                let source = spare_source(NEXT_SOURCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(source.into(), 0))?;
                match socket.connect(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => last = e,
                    Err(e) => return Err(e),
                }
            }
            Err(last)
        }
        result => result,
    }
}

/// The `n`th spare source address: 127.0.1.2 to 127.0.255.251, then again;
/// never 127.0.0.x, where the default source address lives.
fn spare_source(n: u32) -> std::net::Ipv4Addr {
    let n = n % (250 * 255);
    std::net::Ipv4Addr::new(127, 0, (1 + n / 250) as u8, (2 + n % 250) as u8)
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reset();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Connect(ConnError),
    #[error("sending the request: {0}")]
    Http(hyper::Error),
}

/// The target could not be driven: nothing was sent (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PreflightError(pub String);

/// Checks the target answers and accepts the key before any load.
pub async fn preflight(target: &Target, scenario: &str, key: &str) -> anyhow::Result<()> {
    let header = bearer(key).map_err(|_| PreflightError(format!("{scenario}: the API key is not a valid header value")))?;
    let mut conn = Conn::new();
    // The direct path is an OpenAI base URL; the rest are Dify servers.
    let path = if scenario == "direct" { "/models" } else { "/v1/parameters" };
    let response = tokio::time::timeout(Duration::from_secs(10), conn.send(target, target.get(path, &header)))
        .await
        .map_err(|_| PreflightError(format!("target {} did not answer within 10 s", target.base_url)))?
        .map_err(|e| PreflightError(format!("target {} is down or refused the connection: {e}", target.base_url)))?;
    match response.status().as_u16() {
        200 => Ok(()),
        401 => Err(PreflightError(format!("{scenario}: target {} rejected the API key (401)", target.base_url)).into()),
        status => Err(PreflightError(format!("{scenario}: GET {path} on {} answered {status}", target.base_url)).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_sources_cover_127_0_0_0_8_outside_127_0_0_x() {
        assert_eq!(spare_source(0), std::net::Ipv4Addr::new(127, 0, 1, 2));
        assert_eq!(spare_source(249), std::net::Ipv4Addr::new(127, 0, 1, 251));
        assert_eq!(spare_source(250), std::net::Ipv4Addr::new(127, 0, 2, 2));
        assert_eq!(spare_source(250 * 255 - 1), std::net::Ipv4Addr::new(127, 0, 255, 251));
        assert_eq!(spare_source(250 * 255), spare_source(0));
    }

    #[tokio::test]
    async fn a_spare_source_address_reaches_a_loopback_target() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(spare_source(7).into(), 0)).unwrap();
        let _stream = socket.connect(listener.local_addr().unwrap()).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), std::net::IpAddr::V4(spare_source(7)));
    }
}
