//! The HTTP routes of Dify's workflow API and their handlers.
//!
//! A run request is authenticated, read under the body limit, decoded and
//! checked before anything else happens; a blocking run then executes inside
//! the handler, a streaming run inside its response body, which polls it on
//! the connection's task and takes its frames from a bounded outbox (so a
//! stalled reader stalls its run, not memory). Dropping the body (the client
//! left) closes the outbox, which cancels the run and its upstream request.

mod body;
pub mod conn;
pub mod cors;
pub mod error;
pub mod request;
pub mod response;
pub mod serve;

use crate::metrics::{self, ModeLabel};
use crate::pyjson;
use crate::state::{AppState, ServedApp};
use crate::store::RunRecord;
use crate::workflow::engine::{self, Run, Sink};
use crate::workflow::events;
use crate::workflow::persist::store_run;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use body::{EventOutbox, OutboxSink, RunBody};
use bytes::Bytes;
use error::{ApiError, MSG_BAD_SCHEME, MSG_BAD_TOKEN, MSG_NO_AUTH};
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use request::ResponseMode;
use response::{BLOCKING_TYPE, STREAMING_TYPE, json_response, response};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// The run route; `serve::ConnService` serves it without the router.
const RUN_PATH: &str = "/v1/workflows/run";

/// The router of the whole API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(
            RUN_PATH,
            post(|State(state): State<AppState>, request: Request| run_workflow(state, request))
                .options(preflight_post)
                .fallback(method_not_allowed),
        )
        .route("/v1/workflows/run/{run_id}", get(get_run).options(preflight_get).fallback(method_not_allowed))
        .route("/v1/workflows/tasks/{task_id}/stop", post(stop_task).options(preflight_post).fallback(method_not_allowed))
        .route("/v1/parameters", get(parameters).options(preflight_get).fallback(method_not_allowed))
        .route("/v1/info", get(info).options(preflight_get).fallback(method_not_allowed))
        .route("/health", get(health).options(health_options).fallback(health_not_allowed))
        .route("/_flowbench/stats", get(stats))
        .route("/metrics", get(metrics))
        .fallback(route_not_found)
        .with_state(state)
}

/// The headers are checked before the run's future is made, so it holds
/// the body and not the whole `Request`, which each nested async fn would
/// store again: axum allocates every request's future, and a small one is
/// cheaper to allocate (docs/performance.md, "Figures from code comments").
fn run_workflow(state: AppState, request: Request) -> impl Future<Output = Response> + Send + 'static {
    // A client's W3C trace id, logged with the run's id at debug level; read
    // only when that level is on, so the hot path pays one check.
    let trace = tracing::enabled!(tracing::Level::DEBUG).then(|| trace_id(request.headers())).flatten();
    let accepted = match authenticate(&state, request.headers()) {
        Ok(app) => match json_body(request, &state) {
            Ok(body) => Ok((app, body)),
            Err(e) => Err((Some(app), e)),
        },
        Err(e) => Err((None, linger(request, &state, e))),
    };
    async move {
        match accepted {
            Ok((app, body)) => start_run(state, app, body, trace).await,
            Err((app, e)) => {
                let response = e.into_response();
                match app {
                    _ if !state.shared.limits.metrics => {}
                    Some(app) => app.metrics.request(ModeLabel::Unknown, response.status()),
                    None => metrics::unauthenticated_request(response.status()),
                }
                response
            }
        }
    }
}

/// The trace id of a well-formed `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
fn trace_id(headers: &http::HeaderMap) -> Option<Box<str>> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.split('-');
    let (_version, trace, _parent, _flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit())).then(|| trace.into())
}

/// Runs a request whose app is known, and counts its answer.
async fn start_run(state: AppState, app: Arc<ServedApp>, body: Body, trace: Option<Box<str>>) -> Response {
    let mut mode = ModeLabel::Unknown;
    let recording = state.shared.limits.metrics;
    let response = accept_run(state, &app, body, trace, &mut mode).await.unwrap_or_else(IntoResponse::into_response);
    if recording {
        app.metrics.request(mode, response.status());
    }
    response
}

async fn accept_run(
    state: AppState,
    app: &Arc<ServedApp>,
    body: Body,
    trace: Option<Box<str>>,
    mode: &mut ModeLabel,
) -> Result<Response, ApiError> {
    let shared = &state.shared;
    // Nothing to time, and no handle to hold, when nothing is recorded.
    let accepted = shared.limits.metrics.then(Instant::now);
    let body = read_body_in_time(body, &state).await?;
    let payload = request::decode_run(&body, &app.workflow)?;
    drop(body);
    *mode = match payload.response_mode {
        ResponseMode::Blocking => ModeLabel::Blocking,
        ResponseMode::Streaming => ModeLabel::Streaming,
    };
    let permit = match &app.run_cap {
        Some(cap) => match cap.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                shared.stats.runs_rejected_busy.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::too_many_requests());
            }
        },
        None => None,
    };
    let run_id = shared.store.new_run_id(app.app_uuid);
    if let Some(trace) = trace {
        tracing::debug!(trace_id = %trace, workflow_run_id = %run_id, "run started");
    }
    let mut run = Run::with_id(app.runnable.clone(), payload.user, payload.inputs, run_id);
    run.keep_nodes = state.shared.store.keeps_nodes();
    busy_for(shared.limits.inject_busy_per_request);
    let live = LiveRun::new(&state, permit, accepted.map(|at| (app.clone(), *mode, at)));
    match payload.response_mode {
        ResponseMode::Blocking => Ok(run_blocking(&state, run, live).await),
        ResponseMode::Streaming => {
            let measured = accepted.map(|at| body::StreamMeasured { app: app.clone(), accepted: Some(at.into()) });
            Ok(run_streaming(state, run, live, measured))
        }
    }
}

async fn run_blocking(state: &AppState, run: Run, live: LiveRun) -> Response {
    // Boxed, so the handler's own future stays small (see `run_workflow`).
    let outcome = Box::pin(engine::execute(&state.shared.provider, &run, &mut engine::NoEvents, &state.shared.shutdown)).await;
    let body = events::BlockingResponse::new(run.ids(), &run.app.workflow_id, &outcome.totals, &outcome.outputs, outcome.error.as_deref())
        .to_python_json();
    // Answered once the record holds (at once, in memory); a record the
    // store could not keep is not answered as a success.
    let stored = store_run(&*state.shared.store, &run, Some(&outcome)).wait().await;
    drop(live);
    if !stored {
        return ApiError::store_unavailable().into_response();
    }
    response(StatusCode::OK, Body::from(body), BLOCKING_TYPE)
}

fn run_streaming(state: AppState, run: Run, live: LiveRun, measured: Option<body::StreamMeasured>) -> Response {
    let shared = &state.shared;
    let outbox = Arc::new(Mutex::new(EventOutbox::default()));
    let stop = shared.shutdown.child_token();
    shared.tasks.register(run.task_id(), &run.app.app_id, &run.user_id, stop.clone());
    store_run(&*shared.store, &run, None);
    let mut sink = OutboxSink {
        outbox: outbox.clone(),
        max_events: shared.limits.stream_buffer_events,
        busy_per_event: shared.limits.inject_busy_per_event,
        terminal: None,
    };
    // Counted by the tracker until it ends, wherever it is polled.
    let tracked = shared.tracker.token();
    let task_state = state.clone();
    let execution = async move {
        let shared = &task_state.shared;
        let outcome = engine::execute(&shared.provider, &run, &mut sink, &stop).await;
        shared.tasks.remove(run.task_id());
        if outcome.error.as_deref() == Some(engine::CLIENT_DISCONNECTED) {
            shared.stats.runs_client_gone.fetch_add(1, Ordering::Relaxed);
        }
        let stored = store_run(&*shared.store, &run, Some(&outcome)).wait().await;
        // The terminal event goes once the record holds; without a record,
        // none goes, and the client sees a stream that ended unfinished.
        if let Some(frame) = sink.terminal.take().filter(|_| stored) {
            let _ = sink.send(frame).await;
        }
        drop(live);
        drop(tracked);
    };
    let body = RunBody::new(Box::pin(execution), outbox, (shared.limits.ping_interval, shared.limits.stream_tail), measured);
    response(StatusCode::OK, Body::new(body), STREAMING_TYPE)
}

/// The body of `GET /v1/workflows/run/{id}` for `record`, a run of `app`.
fn render_record(app: &ServedApp, run_id: &str, record: &RunRecord) -> Bytes {
    let sys = events::SysVars {
        user_id: record.user_id(),
        app_id: &app.app_id,
        workflow_id: &app.workflow_id,
        workflow_run_id: run_id,
        timestamp: record.totals.created_at,
    };
    let user = record.inputs();
    let inputs = pyjson::to_python_json(&events::InputsView { user: &user, sys, with_timestamp: true });
    let inputs = String::from_utf8(inputs).expect("JSON is UTF-8");
    let outputs = record.outputs();
    let view = events::RunRecordView::new(run_id, &app.workflow_id, &record.totals, &inputs, &outputs, record.error());
    Bytes::from(pyjson::to_flask_json(&view))
}

/// A path segment that is not UTF-8 names no run and no task: Dify answers
/// as for any unknown id, never axum's plain-text 400.
fn path_id(id: Result<Path<String>, PathRejection>) -> String {
    id.map(|Path(id)| id).unwrap_or_default()
}

async fn get_run(
    State(state): State<AppState>,
    run_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let app = authenticate(&state, &headers)?;
    // Any spelling PostgreSQL reads as the id finds the run; the answer
    // names it in the canonical form, as Dify's does (read back from there).
    let run_id = crate::store::parse_run_id(&path_id(run_id)).ok_or_else(ApiError::run_not_found)?.to_string();
    let record = state.shared.store.get(app.app_uuid, &run_id).await.map_err(|e| {
        tracing::error!("{e}");
        ApiError::store_unavailable()
    })?;
    let record = record.ok_or_else(ApiError::run_not_found)?;
    Ok(json_response(render_record(&app, &run_id, &record)))
}

async fn stop_task(
    State(state): State<AppState>,
    task_id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let app = match authenticate(&state, request.headers()) {
        Ok(app) => app,
        Err(e) => return Err(linger(request, &state, e)),
    };
    let task_id = path_id(task_id);
    let body = read_body_in_time(json_body(request, &state)?, &state).await?;
    let user = request::decode_stop(&body)?;
    // Like Dify, the answer is the same whether or not a run was stopped.
    if !state.shared.tasks.stop(&task_id, &app.app_id, &user) {
        // Maybe another replica runs it.
        state.shared.store.forward_stop(&task_id, &app.app_id, &user);
    }
    Ok(json_response(Bytes::from_static(b"{\"result\":\"success\"}\n")))
}

async fn parameters(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let app = authenticate(&state, &headers)?;
    Ok(json_response(app.parameters_body.clone()))
}

async fn info(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let app = authenticate(&state, &headers)?;
    Ok(json_response(app.info_body.clone()))
}

/// Flask's `Allow` for a route (its order is a Python set's, random per
/// process in Dify; sorted here).
const ALLOW_GET: &str = "GET, HEAD, OPTIONS";
const ALLOW_POST: &str = "OPTIONS, POST";

async fn preflight_post(headers: HeaderMap) -> Response {
    cors::preflight(&headers, ALLOW_POST)
}

async fn preflight_get(headers: HeaderMap) -> Response {
    cors::preflight(&headers, ALLOW_GET)
}

/// Dify's liveness answer, for its wrapper scripts and for probes: the
/// server answers it once its apps are loaded, which is before it listens.
async fn health() -> Response {
    static BODY: std::sync::LazyLock<Bytes> = std::sync::LazyLock::new(|| {
        Bytes::from(format!("{{\"pid\": {}, \"status\": \"ok\", \"version\": \"1.13.2\"}}", std::process::id()))
    });
    response::flask_response(StatusCode::OK, Body::from(BODY.clone()), "application/json", None)
}

async fn health_options() -> Response {
    response::flask_response(StatusCode::OK, Body::empty(), "text/html; charset=utf-8", Some(ALLOW_GET))
}

async fn health_not_allowed(State(state): State<AppState>, request: Request) -> Response {
    const PAGE: &str = "<!doctype html>\n<html lang=en>\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n<p>The method is not allowed for the requested URL.</p>\n";
    let _ = linger(request, &state, ApiError::method_not_allowed());
    let mut response =
        response::flask_response(StatusCode::METHOD_NOT_ALLOWED, Body::from(PAGE), "text/html; charset=utf-8", Some(ALLOW_GET));
    if let Some(reason) = error::upper_case_reason(StatusCode::METHOD_NOT_ALLOWED) {
        response.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(reason));
    }
    response
}

async fn stats(State(state): State<AppState>) -> Response {
    json_response(Bytes::from(serde_json::to_vec(&state.stats()).expect("serialize")))
}

/// The Prometheus exposition (`crate::metrics`), `state`'s counters read now.
async fn metrics(State(state): State<AppState>) -> Response {
    // Two scrapes at once would both add the same counters' growth.
    static SCRAPE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let body = {
        let _one_at_a_time = SCRAPE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (m, s, shared) = (&*metrics::METRICS, state.stats(), &state.shared);
        metrics::set(&m.live_runs, s.live_runs);
        metrics::set(&m.open_streams, shared.tracker.len() as u64);
        metrics::set(&m.connections_open, s.connections_open);
        metrics::set(&m.connections_waiting, shared.stats.connections_waiting.load(Ordering::Relaxed));
        metrics::set(&m.store_uncommitted, shared.store.uncommitted() as u64);
        metrics::set(&m.store_bytes, s.stored_bytes);
        metrics::follow(&m.runs_started, s.runs_started);
        metrics::follow(&m.runs_client_gone, s.runs_client_gone);
        metrics::follow(&m.runs_rejected_busy, s.runs_rejected_busy);
        metrics::follow(&m.swept_head_timeout, s.connections_head_timeout);
        metrics::follow(&m.swept_evicted, s.connections_evicted);
        metrics::follow(&m.stalled_closed, s.connections_stalled_closed);
        metrics::follow(&m.body_timeout, s.requests_body_timeout);
        metrics::encode()
    };
    response(StatusCode::OK, Body::from(body), metrics::CONTENT_TYPE)
}

async fn method_not_allowed(State(state): State<AppState>, request: Request) -> ApiError {
    linger(request, &state, ApiError::method_not_allowed())
}

async fn route_not_found(State(state): State<AppState>, request: Request) -> ApiError {
    linger(request, &state, ApiError::route_not_found())
}

/// Dify's three 401s: no or empty bearer, another scheme, an unknown key.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Arc<ServedApp>, ApiError> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let token = match value.strip_prefix("Bearer ") {
        // `Bearer <token>` with nothing to trim, as clients send it: the
        // token as the general path would find it, without its searches.
        Some(token)
            if token.chars().next().is_some_and(|c| !c.is_whitespace())
                && token.chars().next_back().is_some_and(|c| !c.is_whitespace()) =>
        {
            token
        }
        _ => {
            let value = value.trim();
            let (scheme, token) = value.split_once(' ').map_or((value, ""), |(s, t)| (s, t.trim()));
            if value.is_empty() || (scheme.eq_ignore_ascii_case("bearer") && token.is_empty()) {
                return Err(ApiError::unauthorized(MSG_NO_AUTH));
            }
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(ApiError::unauthorized(MSG_BAD_SCHEME));
            }
            token
        }
    };
    state.shared.apps.get(token).cloned().ok_or_else(|| ApiError::unauthorized(MSG_BAD_TOKEN))
}

/// The body of a JSON request: 415 unless `Content-Type` is JSON, 413 if it
/// declares more than the body limit.
fn json_body(request: Request, state: &AppState) -> Result<Body, ApiError> {
    let headers = request.headers();
    let mime = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !is_json_type(mime) {
        return Err(linger(request, state, ApiError::unsupported_media_type()));
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.shared.limits.max_body_bytes as u64) {
        return Err(linger(request, state, ApiError::payload_too_large()));
    }
    Ok(request.into_body())
}

/// Answers `request` with `error` before reading its body, and reads the
/// body on after the answer (see [`discard`]) unless the client waits for
/// `100 Continue` before it sends one.
fn linger(request: Request, state: &AppState, error: ApiError) -> ApiError {
    let expects_continue = request.headers().get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !expects_continue {
        discard(request.into_body(), state);
    }
    error
}

/// Lingering close: reads and drops what is left of a request body the
/// server has already answered, up to twice the body limit or
/// `linger_timeout`, whichever comes first. A client that writes its whole
/// body before it reads (Python's `http.client`, so `requests`) would
/// otherwise find the connection reset under it (the kernel resets a socket
/// closed with unread bytes) and never read the answer. Past either bound
/// the body is dropped and hyper closes the connection.
fn discard(mut body: Body, state: &AppState) {
    if http_body::Body::is_end_stream(&body) {
        return;
    }
    let (max_bytes, max_time) = (state.shared.limits.max_body_bytes.saturating_mul(2), state.shared.limits.linger_timeout);
    tokio::spawn(async move {
        let mut read = 0usize;
        let drained = async {
            while let Some(Ok(frame)) = body.frame().await {
                read += frame.data_ref().map_or(0, Bytes::len);
                if read > max_bytes {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(max_time, drained).await;
    });
}

/// [`read_body`] within `body_read_timeout`: 408 (and the connection
/// closes) for a body that comes too slowly. A body already read with its
/// head, nearly every one, is taken without arming a timer: a timer per
/// request costs the timer wheel's lock (docs/performance.md).
async fn read_body_in_time(body: Body, state: &AppState) -> Result<Bytes, ApiError> {
    let mut reading = std::pin::pin!(read_body(body, state));
    if let Some(read) = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match reading.as_mut().poll(cx) {
            std::task::Poll::Ready(read) => Some(read),
            std::task::Poll::Pending => None,
        })
    })
    .await
    {
        return read;
    }
    let limit = state.shared.limits.body_read_timeout;
    match tokio::time::timeout(limit, reading).await {
        Ok(read) => read,
        Err(_) => {
            state.shared.stats.requests_body_timeout.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::request_timeout(limit))
        }
    }
}

/// Reads `body` whole: 413 above the body limit. A loop over its frames
/// rather than `Limited::collect`, whose future is several times larger.
async fn read_body(mut body: Body, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.shared.limits.max_body_bytes;
    let (mut first, mut joined, mut total) = (None::<Bytes>, Vec::new(), 0usize);
    while let Some(frame) = body.frame().await {
        // A body the connection could not deliver (cut, bad chunking).
        let Ok(frame) = frame else { return Err(ApiError::bad_request()) };
        let Ok(data) = frame.into_data() else { continue };
        total += data.len();
        if total > limit {
            discard(body, state);
            return Err(ApiError::payload_too_large());
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            earlier => {
                joined.extend_from_slice(earlier.as_deref().unwrap_or_default());
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

/// `application/json` or any `application/*+json`, in any case, with any
/// parameters.
fn is_json_type(mime: &str) -> bool {
    if mime.eq_ignore_ascii_case("application/json") {
        return true;
    }
    let essence = mime.split(';').next().unwrap_or("").trim().as_bytes();
    essence.eq_ignore_ascii_case(b"application/json")
        || (essence.len() >= b"application/+json".len()
            && essence[..12].eq_ignore_ascii_case(b"application/")
            && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

/// Spins for `d` (the gate self-test's injected cost; zero by default).
pub(super) fn busy_for(d: Duration) {
    if d.is_zero() {
        return;
    }
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Counts a run as live from acceptance until its guard drops, holds its
/// slot under the app's concurrency cap, and times the run for `/metrics`.
struct LiveRun {
    state: AppState,
    _permit: Option<OwnedSemaphorePermit>,
    /// With `/metrics` recording: the app, the mode and when it was accepted.
    measured: Option<(Arc<ServedApp>, ModeLabel, Instant)>,
}

impl LiveRun {
    fn new(state: &AppState, permit: Option<OwnedSemaphorePermit>, measured: Option<(Arc<ServedApp>, ModeLabel, Instant)>) -> Self {
        // SeqCst, as the busy pollers' parking needs (busy_poll.rs).
        state.shared.stats.runs_started.fetch_add(1, Ordering::SeqCst);
        if let Some(poll) = &state.shared.busy_poll {
            poll.active();
        }
        Self { state: state.clone(), _permit: permit, measured }
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        if let Some((app, mode, accepted)) = &self.measured {
            app.metrics.duration(*mode, accepted.elapsed().as_secs_f64());
        }
        self.state.shared.stats.runs_finished.fetch_add(1, Ordering::SeqCst);
    }
}
