//! The load driver's HTTP client: one HTTP/1.1 keep-alive connection per
//! worker, straight on hyper's connection API (no pool, no per-request
//! allocation beyond the request itself): a reqwest-based client, with its
//! pool and per-request machinery, sent far fewer requests a second against
//! the same server (docs/performance.md), so the driver uses hyper.
//! `https://` targets go through rustls (no system library), with the
//! Mozilla roots, a `--ca-cert` of the user's, or no check (`--insecure`).

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
    /// The URL's path, and the same without a last `/v1` (Dify's API root).
    prefix: String,
    dify_root: String,
    /// Sent with every request (`--header`).
    headers: http::HeaderMap,
    tls: Option<Tls>,
}

/// What the target speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Dify's workflow API, `POST /v1/workflows/run`.
    #[default]
    Dify,
    /// An OpenAI-compatible chat completion stream, `POST {base}/chat/completions`:
    /// the direct path to the mock LLM, the yardstick for what the relay adds.
    OpenAi,
}

/// How a target is reached beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// Extra headers for every request, e.g. a gateway's.
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    /// `https://`: accept any certificate (self-signed test clusters).
    pub insecure: bool,
    /// `https://`: trust this PEM file's certificates instead of the Mozilla roots.
    pub ca_cert: Option<std::path::PathBuf>,
}

#[derive(Clone)]
struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Target {
    /// Parses `http[s]://host:port[/prefix]` and resolves the host.
    pub async fn resolve(url: &str) -> anyhow::Result<Self> {
        Self::resolve_with(url, &TargetOptions::default()).await
    }

    /// As `resolve`, reached as `options` say. A base URL may end in `/v1`,
    /// as Dify's docs and SDKs write it: the Dify API lives under it either
    /// way.
    pub async fn resolve_with(url: &str, options: &TargetOptions) -> anyhow::Result<Self> {
        // The WHATWG parser: ports past 65535, an IPv6 literal's brackets
        // and userinfo are read as a browser reads them, not by hand.
        let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("target URL {url:?} is not a URL: {e}"))?;
        let https = match parsed.scheme() {
            "http" => false,
            "https" => true,
            _ => anyhow::bail!("target URL {url:?} must start with http:// or https://"),
        };
        options.check_for(https)?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // Dify's API key is the Authorization header: a gateway's own
            // credentials go in --header, never into Host.
            anyhow::bail!("target URL {url:?} holds a user name or password; give a gateway's credentials with --header instead");
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            anyhow::bail!("target URL {url:?} has a query or fragment; give the API's base URL only");
        }
        let host = parsed.host().ok_or_else(|| anyhow::anyhow!("target URL {url:?} has no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
        let addr = match &host {
            url::Host::Ipv4(ip) => std::net::SocketAddr::new((*ip).into(), port),
            url::Host::Ipv6(ip) => std::net::SocketAddr::new((*ip).into(), port),
            url::Host::Domain(name) => tokio::net::lookup_host((*name, port))
                .await
                .map_err(|e| anyhow::anyhow!("resolving {name}: {e}"))?
                .next()
                .ok_or_else(|| anyhow::anyhow!("{name} resolves to no address"))?,
        };
        // `Host` as a browser sends it: the port only when not the scheme's.
        let authority = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let prefix = parsed.path().trim_end_matches('/').to_owned();
        let base_url = format!("{}://{authority}{prefix}", parsed.scheme());
        let dify_root = prefix.strip_suffix("/v1").unwrap_or(&prefix).to_owned();
        let run_uri = format!("{dify_root}/v1/workflows/run").parse()?;
        let chat_uri = format!("{prefix}/chat/completions").parse()?;
        let mut headers = http::HeaderMap::new();
        for (name, value) in &options.headers {
            headers.append(name.clone(), value.clone());
        }
        let server_name = match &host {
            url::Host::Domain(name) => (*name).to_owned(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        let tls = if https { Some(tls(&server_name, options)?) } else { None };
        Ok(Self { base_url, addr, host: HeaderValue::from_str(&authority)?, run_uri, chat_uri, prefix, dify_root, headers, tls })
    }

    /// `POST /v1/workflows/run`'s URI under the target's Dify API root.
    pub fn run_uri(&self) -> &Uri {
        &self.run_uri
    }

    /// A workflow-run request: the driver's hot path, so nothing is parsed here.
    pub fn run_request(&self, api_key: &HeaderValue, body: Bytes) -> Request<Full<Bytes>> {
        self.post(&self.run_uri, api_key, body)
    }

    /// `POST {Dify API root}{path}`: a scenario file's app at its own path
    /// (`/v1/chat-messages`, a gateway's route).
    pub fn dify_uri(&self, path: &http::uri::PathAndQuery) -> Uri {
        // The root is a parsed path and `path` one too: their join parses.
        format!("{}{path}", self.dify_root).parse().unwrap_or_else(|_| self.run_uri.clone())
    }

    /// A request to `uri`, built by `dify_uri`.
    pub fn post_to(&self, uri: &Uri, api_key: &HeaderValue, body: Bytes) -> Request<Full<Bytes>> {
        self.post(uri, api_key, body)
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
        self.extra_headers(headers);
        request
    }

    /// A GET of a Dify API path (`/v1/parameters`, `/_flowbench/stats`) with a bearer key.
    pub fn get(&self, path: &str, api_key: &HeaderValue) -> Request<Full<Bytes>> {
        self.get_at(&self.dify_root, path, api_key)
    }

    /// A GET of a path under the target as an OpenAI base URL (`/models`).
    pub fn openai_get(&self, path: &str, api_key: &HeaderValue) -> Request<Full<Bytes>> {
        self.get_at(&self.prefix, path, api_key)
    }

    fn get_at(&self, prefix: &str, path: &str, api_key: &HeaderValue) -> Request<Full<Bytes>> {
        let mut request = Request::get(format!("{prefix}{path}")).body(Full::new(Bytes::new())).expect("valid request");
        request.headers_mut().insert(header::HOST, self.host.clone());
        request.headers_mut().insert(header::AUTHORIZATION, api_key.clone());
        self.extra_headers(request.headers_mut());
        request
    }

    /// Whether `--header` gives `name` for every request.
    pub fn has_header(&self, name: &http::HeaderName) -> bool {
        self.headers.contains_key(name)
    }

    fn extra_headers(&self, headers: &mut http::HeaderMap) {
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
    }
}

impl TargetOptions {
    /// The options fit a target, `https` or not: the TLS flags need
    /// https://, and a `--ca-cert` file holds at least one PEM certificate.
    /// Checked by the plan before anything starts, and again when a
    /// target is resolved.
    pub fn check_for(&self, https: bool) -> anyhow::Result<()> {
        anyhow::ensure!(https || (!self.insecure && self.ca_cert.is_none()), "--insecure and --ca-cert are for https:// targets");
        match &self.ca_cert {
            Some(path) => ca_certs(path).map(drop),
            None => Ok(()),
        }
    }
}

/// The certificates of a `--ca-cert` PEM file, at least one.
fn ca_certs(path: &std::path::Path) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .with_context(|| format!("--ca-cert {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--ca-cert {}: not a PEM certificate file", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "--ca-cert {}: no certificate in it", path.display());
    Ok(certs)
}

/// The TLS client for `host`: rustls with the Mozilla roots, the user's
/// CA file instead, or no certificate check at all.
fn tls(host: &str, options: &TargetOptions) -> anyhow::Result<Tls> {
    use anyhow::Context;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let config = if options.insecure {
        builder.dangerous().with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider))).with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &options.ca_cert {
            Some(path) => {
                for cert in ca_certs(path)? {
                    roots.add(cert).with_context(|| format!("--ca-cert {}", path.display()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).with_context(|| format!("{host:?} is not a TLS server name"))?;
    Ok(Tls { connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)), name })
}

/// `--insecure`: every certificate is taken; signatures are still checked
/// by the provider, so the handshake itself is real TLS.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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
    #[error("TLS handshake with {addr}: {source}")]
    Tls { addr: SocketAddr, source: std::io::Error },
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
            let addr = target.addr;
            let stream = connect(addr).await.map_err(|source| ConnError::Connect { addr, source })?;
            let _ = stream.set_nodelay(true);
            let handshake = |source| ConnError::Handshake { addr, source };
            // The connection's errors surface on its requests.
            let (sender, task) = match &target.tls {
                None => {
                    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(handshake)?;
                    (sender, tokio::spawn(async move { drop(connection.await) }))
                }
                Some(tls) => {
                    let stream = tls.connector.connect(tls.name.clone(), stream).await.map_err(|source| ConnError::Tls { addr, source })?;
                    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(handshake)?;
                    (sender, tokio::spawn(async move { drop(connection.await) }))
                }
            };
            self.task = Some(task);
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
pub async fn preflight(target: &Target, protocol: Protocol, scenario: &str, header: &HeaderValue) -> anyhow::Result<()> {
    let mut conn = Conn::new();
    // The direct path is an OpenAI base URL; the rest are Dify servers.
    let (path, request) = if protocol == Protocol::OpenAi {
        ("/models", target.openai_get("/models", header))
    } else {
        ("/v1/parameters", target.get("/v1/parameters", header))
    };
    let response = tokio::time::timeout(Duration::from_secs(10), conn.send(target, request))
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

    /// URLs as a browser reads them: a port past 65535 is an error (not
    /// port 80), an IPv6 literal resolves, and userinfo never reaches `Host`.
    #[tokio::test]
    async fn target_urls_are_parsed_as_urls() {
        for (url, says) in [
            ("http://127.0.0.1:70000", "not a URL"),
            ("http://user:secret@127.0.0.1:5001", "user name or password"),
            ("http://127.0.0.1:5001/v1?x=1", "query"),
            ("ftp://127.0.0.1", "http:// or https://"),
        ] {
            let err = format!("{:#}", Target::resolve(url).await.err().unwrap_or_else(|| panic!("{url} resolved")));
            assert!(err.contains(says), "{url}: {err}");
        }
        let v6 = Target::resolve("http://[::1]:5001/v1").await.unwrap();
        assert_eq!(v6.addr, "[::1]:5001".parse().unwrap());
        assert_eq!(v6.host, "[::1]:5001");
        assert_eq!(v6.run_uri().path(), "/v1/workflows/run");
        let default_port = Target::resolve("http://127.0.0.1/").await.unwrap();
        assert_eq!((default_port.addr.port(), default_port.host.to_str().unwrap()), (80, "127.0.0.1"));
        let explicit = Target::resolve("http://127.0.0.1:80").await.unwrap();
        assert_eq!(explicit.host, "127.0.0.1", "the scheme's own port is not written");
    }

    #[tokio::test]
    async fn a_base_url_with_or_without_v1_reaches_the_same_paths_with_the_extra_headers() {
        let key = bearer("app-x").unwrap();
        let options = TargetOptions {
            headers: vec![(http::HeaderName::from_static("x-gateway"), HeaderValue::from_static("k"))],
            ..TargetOptions::default()
        };
        for (url, run, parameters) in [
            ("http://127.0.0.1:1", "/v1/workflows/run", "/v1/parameters"),
            ("http://127.0.0.1:1/v1/", "/v1/workflows/run", "/v1/parameters"),
            ("http://127.0.0.1:1/dify/v1", "/dify/v1/workflows/run", "/dify/v1/parameters"),
            ("http://127.0.0.1:1/dify", "/dify/v1/workflows/run", "/dify/v1/parameters"),
        ] {
            let target = Target::resolve_with(url, &options).await.unwrap();
            let request = target.run_request(&key, Bytes::new());
            assert_eq!(request.uri().path(), run, "{url}");
            assert_eq!(request.headers()["x-gateway"], "k");
            let request = target.get("/v1/parameters", &key);
            assert_eq!(request.uri().path(), parameters, "{url}");
            assert_eq!(request.headers()["x-gateway"], "k");
        }
        // An OpenAI base URL keeps its /v1.
        let target = Target::resolve("http://127.0.0.1:1/v1").await.unwrap();
        assert_eq!(target.openai_get("/models", &key).uri().path(), "/v1/models");
        assert_eq!(target.chat_request(&key, Bytes::new()).uri().path(), "/v1/chat/completions");
        // TLS options on a plain target are a mistake, said so.
        let error =
            Target::resolve_with("http://127.0.0.1:1", &TargetOptions { insecure: true, ..TargetOptions::default() }).await.unwrap_err();
        assert!(error.to_string().contains("https://"), "{error}");
    }

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
