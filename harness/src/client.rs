//! The load driver's HTTP client: one HTTP/1.1 keep-alive connection per
//! worker, straight on hyper's connection API (no pool, no per-request
//! allocation beyond the request itself). Issue 3 reports a reqwest-based
//! client measured at about half the request rate of a hyper-based one
//! against the same server on this kind of machine, so the driver uses hyper.

use bytes::Bytes;
use http::{HeaderValue, Request, Uri, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// e.g. `http://127.0.0.1:5001` (no trailing slash).
    pub base_url: String,
    pub addr: SocketAddr,
    pub host: HeaderValue,
    /// `POST /v1/workflows/run`'s origin-form URI, built once.
    run_uri: Uri,
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
        Ok(Self { base_url, addr, host: HeaderValue::from_str(authority.as_str())?, run_uri })
    }

    /// A workflow-run request: the driver's hot path, so nothing is parsed here.
    pub fn run_request(&self, api_key: &HeaderValue, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.run_uri.clone();
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
            let stream =
                tokio::net::TcpStream::connect(target.addr).await.map_err(|source| ConnError::Connect { addr: target.addr, source })?;
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
