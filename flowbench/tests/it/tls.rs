//! `https://` targets: the driver through rustls to a TLS server made in
//! the test (a certificate from rcgen, in front of the embedded stack), with
//! the certificate trusted by `--ca-cert`, or by nothing (`--insecure`), or
//! not at all (the Mozilla roots do not know it: refused, naming TLS).

use flowbench::load::client::{Target, TargetOptions, preflight};
use flowbench::load::driver::{self, Live, Mode, RunSpec};
use flowbench::load::schedule::LoadModel;
use flowbench::{InProcessStack, StackOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A TLS server on 127.0.0.1:0 for `localhost` that passes each connection
/// on to `backend`; returns its port and its certificate as PEM.
async fn tls_proxy(backend: std::net::SocketAddr) -> (u16, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = certified.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, pem)
}

fn spec(api_key: &str) -> RunSpec {
    crate::driver::spec(api_key, Mode::Streaming, LoadModel::Closed { users: 2, spawn_rate: 100.0 }, Duration::from_secs(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_targets_are_driven_through_rustls() {
    let script = mock::Script { inter_token_delay: Duration::from_millis(1), ..mock::Script::default() };
    let stack = InProcessStack::start(StackOptions { script, ..StackOptions::default() }).await.unwrap();
    let backend = stack.info.server_url.trim_start_matches("http://").parse().unwrap();
    let (port, pem) = tls_proxy(backend).await;
    let dir = std::env::temp_dir().join(format!("flowbench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let key = stack.api_key("llm");
    // A base URL ending in /v1, as Dify's docs write it.
    let url = format!("https://localhost:{port}/v1");
    for options in [
        TargetOptions { ca_cert: Some(ca.clone()), ..TargetOptions::default() },
        TargetOptions { insecure: true, ..TargetOptions::default() },
    ] {
        let target = Target::resolve_with(&url, &options).await.unwrap();
        preflight(&target, flowbench::load::client::Protocol::Dify, "llm", &flowbench::load::client::bearer(key).unwrap()).await.unwrap();
        let result = driver::run(spec(key), target, Arc::new(Live::default()), CancellationToken::new()).await;
        let r = &result.recorder;
        assert!(r.n_ok > 0, "{options:?}: no run succeeded");
        assert_eq!(r.n_errors(), 0, "{options:?}: {:?}", r.errors);
    }
    // `flowbench ab` reaches https:// sides the same way.
    let ab = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowbench"))
        .args(["ab", "--a", &url, "--b", &url, "--scenario", "llm", "--api-key", key, "--slices", "1", "--slice", "500ms", "--users", "2"])
        .arg("--ca-cert")
        .arg(&ca)
        .output()
        .await
        .unwrap();
    assert!(ab.status.success(), "{}\n{}", String::from_utf8_lossy(&ab.stdout), String::from_utf8_lossy(&ab.stderr));
    // Without the certificate, the Mozilla roots refuse it, and say TLS.
    let target = Target::resolve_with(&url, &TargetOptions::default()).await.unwrap();
    let refused = preflight(&target, flowbench::load::client::Protocol::Dify, "llm", &flowbench::load::client::bearer(key).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("TLS handshake"), "{refused}");
    std::fs::remove_dir_all(&dir).unwrap();
    stack.shutdown().await.unwrap();
}
