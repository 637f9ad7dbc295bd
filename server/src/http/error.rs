//! The HTTP boundary's one error type: every failure a client can cause maps
//! to Dify's status, upper-case reason phrase and
//! `{"code","message","status"}` body (compact, `\/`-escaped, trailing
//! newline, `Content-Type: application/json`). Server-side causes are logged,
//! never sent.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use std::borrow::Cow;

pub const MSG_NO_AUTH: &str = "Authorization header must be provided and start with 'Bearer'";
pub const MSG_BAD_SCHEME: &str = "Authorization scheme must be 'Bearer'";
pub const MSG_BAD_TOKEN: &str = "Access token is invalid";
pub const MSG_NO_USER: &str = "Arg user must be provided.";
pub const MSG_BAD_REQUEST: &str = "The browser (or proxy) sent a request that this server could not understand.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Cow<'static, str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn invalid_param(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_param", message)
    }

    pub fn bad_request() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", MSG_BAD_REQUEST)
    }

    pub fn unauthorized(message: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Did not attempt to load JSON data because the request Content-Type was not 'application/json'.",
        )
    }

    pub fn payload_too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "request_entity_too_large", "The data value transmitted exceeds the capacity limit.")
    }

    pub fn run_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Workflow run not found.")
    }

    pub fn route_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "The method is not allowed for the requested URL.")
    }

    /// A request the server cannot read (a transfer coding it does not
    /// implement); `message` says what.
    pub fn not_implemented(message: String) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", message)
    }

    /// A request body that did not arrive within `limit`.
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("The request body did not arrive within {}.", humantime::format_duration(limit)),
        )
    }

    /// The run store failed: the run is not recorded, or cannot be read.
    pub fn store_unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "The run store is unavailable; the run is not recorded.")
    }

    pub fn too_many_requests() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "Too many requests. Please try again later.")
    }
}

#[derive(Serialize)]
struct Body_<'a> {
    code: &'a str,
    message: &'a str,
    status: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = crate::pyjson::to_flask_json(&Body_ { code: self.code, message: &self.message, status: self.status.as_u16() });
        let mut response = super::response::response(self.status, Body::from(body), "application/json");
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still come: nothing after it can be read.
            response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        if let Some(reason) = upper_case_reason(self.status) {
            response.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(reason));
        }
        response
    }
}

/// werkzeug's reason phrases, which Dify's clients see on error responses.
pub(super) fn upper_case_reason(status: StatusCode) -> Option<&'static [u8]> {
    Some(match status.as_u16() {
        400 => b"BAD REQUEST",
        401 => b"UNAUTHORIZED",
        404 => b"NOT FOUND",
        405 => b"METHOD NOT ALLOWED",
        413 => b"REQUEST ENTITY TOO LARGE",
        415 => b"UNSUPPORTED MEDIA TYPE",
        429 => b"TOO MANY REQUESTS",
        500 => b"INTERNAL SERVER ERROR",
        408 => b"REQUEST TIMEOUT",
        501 => b"NOT IMPLEMENTED",
        _ => return None,
    })
}
