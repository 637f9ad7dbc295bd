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
    // The blocking map holds a `Content-Length` already, where it goes (last
    // but `Date`), so that this answer's own replaces it in place: a copied
    // map has no room to grow into.
    static BLOCKING: LazyLock<HeaderMap> = LazyLock::new(|| {
        let mut headers = dify_headers(StatusCode::OK, BLOCKING_TYPE);
        headers.insert(header::CONTENT_LENGTH, content_length(0));
        headers
    });
    static STREAMING: LazyLock<HeaderMap> = LazyLock::new(|| dify_headers(StatusCode::OK, STREAMING_TYPE));
    let headers = match (status, content_type) {
        (StatusCode::OK, BLOCKING_TYPE) => {
            let mut headers = BLOCKING.clone();
            match http_body::Body::size_hint(&body).exact() {
                Some(n) => headers.insert(header::CONTENT_LENGTH, content_length(n)),
                None => headers.remove(header::CONTENT_LENGTH),
            };
            headers
        }
        (StatusCode::OK, STREAMING_TYPE) => STREAMING.clone(),
        _ => dify_headers(status, content_type),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `Content-Length: n`; below 4 KiB (most answers) a copy of a value made
/// once, which allocates nothing, where a new one allocates twice.
pub(crate) fn content_length(n: u64) -> HeaderValue {
    const SMALL: u64 = 4096;
    // Static text (leaked once, 4,096 short strings): a copy of the value
    // is then a copy of a pointer, with no reference count to touch.
    static VALUES: LazyLock<Vec<HeaderValue>> =
        LazyLock::new(|| (0..SMALL).map(|n| HeaderValue::from_static(String::leak(n.to_string()))).collect());
    match usize::try_from(n).ok().and_then(|n| VALUES.get(n)) {
        Some(value) => value.clone(),
        None => HeaderValue::from(n),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_made_once_are_the_ones_made_anew() {
        for n in (0..5000).chain([u64::from(u32::MAX), u64::MAX]) {
            assert_eq!(content_length(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn a_blocking_answer_carries_its_own_length_in_the_placeholder_s_place() {
        let answer = response(StatusCode::OK, Body::from("x".repeat(5000)), BLOCKING_TYPE);
        let names: Vec<&str> = answer.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names.last(), Some(&"content-length"));
        assert_eq!(answer.headers()[header::CONTENT_LENGTH], "5000");
        let body = Body::from_stream(futures_util::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from_static(b"x"))]));
        let unknown = response(StatusCode::OK, body, BLOCKING_TYPE);
        assert!(!unknown.headers().contains_key(header::CONTENT_LENGTH));
    }
}
