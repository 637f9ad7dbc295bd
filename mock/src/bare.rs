//! `flowbench bare`: the yardsticks for the server's costs, a bare axum
//! handler on the same listener setup (backlog, TCP_NODELAY).
//!
//! - A blocking `POST /v1/workflows/run` gets the least a blocking Dify
//!   answer needs (`data.status`): the Start→End yardstick.
//! - A streaming one (`"response_mode":"streaming"` anywhere in its body)
//!   gets the bare SSE emitter: the very stream the server sends for the
//!   llm scenario under the gate's mock (`fixtures/mock/gate.toml`: a ping,
//!   40 events, 32 of them `text_chunk`s), with this run's ids written in,
//!   from frames made once. No engine, no upstream: the relay's yardstick.
//! - `GET /v1/parameters` answers so the driver's preflight passes.
//!
//! `flowbench ab --a SERVER --b BARE --scenario empty` (or `llm`) then gives
//! the server's cost as a share of it, both measured at once. The criterion
//! `calibration` bench uses the same router.

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::{BufMut, Bytes, BytesMut};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::LazyLock;

/// The bare handler's JSON answer to a blocking run.
pub const RUN_ANSWER: &str = r#"{"data":{"status":"succeeded"}}"#;

/// The server's stream of one llm-scenario run under the gate's mock, its
/// run id written `{run}` and its task id `{task}`.
pub const LLM_STREAM: &str = include_str!("bare_llm_stream.sse");

/// One SSE frame of [`LLM_STREAM`], cut where the ids go.
enum Piece {
    Text(&'static str),
    Run,
    Task,
}

/// [`LLM_STREAM`]'s frames, each as its pieces.
static FRAMES: LazyLock<Vec<Vec<Piece>>> = LazyLock::new(|| LLM_STREAM.split_inclusive("\n\n").map(pieces).collect());

fn pieces(mut frame: &'static str) -> Vec<Piece> {
    let mut out = Vec::new();
    loop {
        let run = frame.find("{run}").map(|at| (at, Piece::Run, "{run}".len()));
        let task = frame.find("{task}").map(|at| (at, Piece::Task, "{task}".len()));
        let next = match (run, task) {
            (Some(r), Some(t)) => Some(if r.0 < t.0 { r } else { t }),
            (r, t) => r.or(t),
        };
        let Some((at, id, len)) = next else {
            out.push(Piece::Text(frame));
            return out;
        };
        out.push(Piece::Text(&frame[..at]));
        out.push(id);
        frame = &frame[at + len..];
    }
}

/// A fresh run or task id, as the server makes them (UUID v4, hyphenated).
fn random_id() -> [u8; 36] {
    let mut id = [0; 36];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut id);
    id
}

/// One run's frames of [`LLM_STREAM`] with fresh ids.
pub fn llm_stream_frames() -> Vec<Bytes> {
    let (run, task) = (random_id(), random_id());
    FRAMES
        .iter()
        .map(|frame| {
            let mut out = BytesMut::with_capacity(frame.iter().map(|p| if let Piece::Text(t) = p { t.len() } else { 36 }).sum());
            for piece in frame {
                match piece {
                    Piece::Text(text) => out.put_slice(text.as_bytes()),
                    Piece::Run => out.put_slice(&run),
                    Piece::Task => out.put_slice(&task),
                }
            }
            out.freeze()
        })
        .collect()
}

async fn run(body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    if is_streaming(&body) {
        let frames = futures_util::stream::iter(llm_stream_frames().into_iter().map(Ok::<_, Infallible>));
        ([(http::header::CONTENT_TYPE, "text/event-stream; charset=utf-8")], Body::from_stream(frames)).into_response()
    } else {
        ([(http::header::CONTENT_TYPE, "application/json")], RUN_ANSWER).into_response()
    }
}

fn is_streaming(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"streaming\"";
    body.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

pub fn router() -> Router {
    Router::new()
        .route("/v1/workflows/run", post(run))
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
