//! `flowbench bare`: the yardstick for the server's Start→End cost, a bare
//! axum handler on the same listener setup (backlog, TCP_NODELAY) that
//! answers `POST /v1/workflows/run` with the least a blocking Dify answer
//! needs (`data.status`), and `GET /v1/parameters` so the driver's
//! preflight passes. `flowbench ab --a SERVER --b BARE --scenario empty`
//! then gives the server's QPS as a share of it, both measured at once.
//! The criterion `calibration` bench uses the same router.

use axum::Router;
use axum::routing::{get, post};
use std::net::SocketAddr;

/// The bare handler's JSON answer to a blocking run.
pub const RUN_ANSWER: &str = r#"{"data":{"status":"succeeded"}}"#;

pub fn router() -> Router {
    Router::new()
        .route(
            "/v1/workflows/run",
            post(|body: bytes::Bytes| async move {
                std::hint::black_box(body);
                ([(http::header::CONTENT_TYPE, "application/json")], RUN_ANSWER)
            }),
        )
        .route("/v1/parameters", get(|| async { ([(http::header::CONTENT_TYPE, "application/json")], "{}") }))
}

/// Serves [`router`] on `addr`; returns the bound address and the server task.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = crate::listen(addr).map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    Ok((bound, tokio::spawn(async move { axum::serve(listener, router()).await })))
}
