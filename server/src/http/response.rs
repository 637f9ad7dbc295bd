//! Every response the API sends is made here (`ApiError`'s too), with Dify's
//! headers on it. A leaf: it knows HTTP and nothing of runs or errors.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use std::sync::LazyLock;

pub(crate) fn json_response(body: Bytes) -> Response {
    response(StatusCode::OK, Body::from(body), "application/json")
}

/// Every response the API sends is made here (`ApiError` too), with Dify's
/// headers on it; its 405 alone lacks the CORS pair. The header map is
/// sized for all of them at once: a middleware adding them instead, into a
/// map that grew twice on the way, was a large share of a Start→End
/// request's CPU (docs/performance.md). A run's 200s copy one of two maps
/// made once.
pub(crate) fn response(status: StatusCode, body: Body, content_type: &'static str) -> Response {
    // A run's answer copies its headers, made once: the same two
    // allocations as a new map, without hashing and inserting each name.
    static BLOCKING: LazyLock<HeaderMap> = LazyLock::new(|| dify_headers(StatusCode::OK, BLOCKING_TYPE));
    static STREAMING: LazyLock<HeaderMap> = LazyLock::new(|| dify_headers(StatusCode::OK, STREAMING_TYPE));
    let headers = match (status, content_type) {
        (StatusCode::OK, BLOCKING_TYPE) => BLOCKING.clone(),
        (StatusCode::OK, STREAMING_TYPE) => STREAMING.clone(),
        _ => dify_headers(status, content_type),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

pub(crate) const BLOCKING_TYPE: &str = "application/json; charset=utf-8";
pub(crate) const STREAMING_TYPE: &str = "text/event-stream; charset=utf-8";

/// Dify's headers on an answer of `status`.
fn dify_headers(status: StatusCode, content_type: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(10);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
    }
    if status != StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("X-Env, X-Trace-Id, X-Version"));
    }
    headers.insert(X_VERSION, HeaderValue::from_static("1.13.2"));
    headers.insert(X_ENV, HeaderValue::from_static("PRODUCTION"));
    headers.insert(header::VARY, HeaderValue::from_static("Cookie"));
    headers
}

pub(crate) const X_VERSION: HeaderName = HeaderName::from_static("x-version");
pub(crate) const X_ENV: HeaderName = HeaderName::from_static("x-env");

/// Flask's own answers outside the service API (`/health`, its 405 and
/// `OPTIONS`): Dify's version headers and `Vary: Cookie`, no CORS.
pub(crate) fn flask_response(status: StatusCode, body: Body, content_type: &'static str, allow: Option<&'static str>) -> Response {
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(allow) = allow {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    headers.insert(X_VERSION, HeaderValue::from_static("1.13.2"));
    headers.insert(X_ENV, HeaderValue::from_static("PRODUCTION"));
    headers.insert(header::VARY, HeaderValue::from_static("Cookie"));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
