//! CORS as Dify's service API sends it (flask-cors on its blueprint, with
//! its defaults): preflights answered without authentication, and an
//! `Origin` echoed with `Vary: Origin` on every answer of a known route.

use super::response::{X_ENV, X_VERSION};
use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, header};

/// The headers a browser may send to the service API (Dify's
/// `SERVICE_API_HEADERS`), matched without regard to case.
const ALLOWED_HEADERS: [&str; 4] = ["content-type", "x-app-code", "x-app-passport", "authorization"];
/// flask-cors's methods option, sorted and joined as it sends them.
const METHODS: &str = "DELETE, GET, OPTIONS, PATCH, POST, PUT";
const EXPOSED: &str = "X-Env, X-Trace-Id, X-Version";

/// The answer to `OPTIONS` on a route whose methods are `allow` (Flask's
/// automatic answer: 200, an empty HTML body), with flask-cors's preflight
/// headers when the request asks for a method (flask-cors tests it as a
/// substring of its methods string, and so does this).
pub fn preflight(request: &HeaderMap, allow: &'static str) -> Response {
    let origin = origin(request);
    let mut headers = HeaderMap::with_capacity(10);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.cloned().unwrap_or(HeaderValue::from_static("*")));
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
    let method = request.get(header::ACCESS_CONTROL_REQUEST_METHOD).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_uppercase();
    if !method.is_empty() && METHODS.contains(&method) {
        let asked = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut allowed: Vec<&str> =
            asked.split(',').map(str::trim).filter(|h| ALLOWED_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(h))).collect();
        allowed.sort_unstable();
        if let Ok(value) = HeaderValue::from_str(&allowed.join(", "))
            && !allowed.is_empty()
        {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
    }
    finish(&mut headers, origin.is_some());
    let mut response = Response::new(Body::empty());
    *response.headers_mut() = headers;
    response
}

/// An answer with Dify's CORS pair, given to a request that sent `Origin`:
/// the origin echoed instead of `*`, and `Vary: Origin, Cookie` before
/// Dify's own headers (flask-cors runs before them).
pub fn echo_origin(origin: HeaderValue, response: &mut Response) {
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        return;
    }
    let old = std::mem::take(headers);
    let mut rebuilt = HeaderMap::with_capacity(old.len() + 1);
    let mut origin = Some(origin);
    for (name, value) in &old {
        if name == header::ACCESS_CONTROL_ALLOW_ORIGIN {
            rebuilt.insert(name, origin.take().unwrap_or_else(|| value.clone()));
        } else if name != header::VARY && name != X_VERSION && name != X_ENV {
            rebuilt.append(name, value.clone());
        }
    }
    finish(&mut rebuilt, true);
    *headers = rebuilt;
}

/// A request's `Origin`, if it sent a non-empty one.
pub fn origin(request: &HeaderMap) -> Option<&HeaderValue> {
    request.get(header::ORIGIN).filter(|v| !v.is_empty())
}

/// Dify's closing headers: with an echoed origin, `Vary: Origin, Cookie`
/// comes first; without, `Vary: Cookie` comes last.
fn finish(headers: &mut HeaderMap, with_origin: bool) {
    if with_origin {
        headers.insert(header::VARY, HeaderValue::from_static("Origin, Cookie"));
    }
    headers.insert(X_VERSION, HeaderValue::from_static("1.13.2"));
    headers.insert(X_ENV, HeaderValue::from_static("PRODUCTION"));
    if !with_origin {
        headers.insert(header::VARY, HeaderValue::from_static("Cookie"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn names(response: &Response) -> Vec<String> {
        response.headers().iter().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap())).collect()
    }

    #[test]
    fn a_preflight_with_an_origin_is_answered_as_flask_cors_does() {
        let mut request = HeaderMap::new();
        request.insert(header::ORIGIN, HeaderValue::from_static("https://x.example"));
        request.insert(header::ACCESS_CONTROL_REQUEST_METHOD, HeaderValue::from_static("POST"));
        request.insert(header::ACCESS_CONTROL_REQUEST_HEADERS, HeaderValue::from_static("content-type, Authorization, x-foo"));
        let response = preflight(&request, "OPTIONS, POST");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            names(&response),
            [
                "content-type: text/html; charset=utf-8",
                "allow: OPTIONS, POST",
                "access-control-allow-origin: https://x.example",
                "access-control-expose-headers: X-Env, X-Trace-Id, X-Version",
                "access-control-allow-headers: Authorization, content-type",
                "access-control-allow-methods: DELETE, GET, OPTIONS, PATCH, POST, PUT",
                "vary: Origin, Cookie",
                "x-version: 1.13.2",
                "x-env: PRODUCTION",
            ]
        );
    }

    #[test]
    fn a_preflight_without_an_origin_or_method_gets_less() {
        let mut request = HeaderMap::new();
        request.insert(header::ACCESS_CONTROL_REQUEST_METHOD, HeaderValue::from_static("HEAD"));
        let response = preflight(&request, "GET, HEAD, OPTIONS");
        assert_eq!(
            names(&response),
            [
                "content-type: text/html; charset=utf-8",
                "allow: GET, HEAD, OPTIONS",
                "access-control-allow-origin: *",
                "access-control-expose-headers: X-Env, X-Trace-Id, X-Version",
                "x-version: 1.13.2",
                "x-env: PRODUCTION",
                "vary: Cookie",
            ]
        );
    }

    #[test]
    fn an_origin_is_echoed_in_place_of_the_wildcard() {
        let mut response = super::super::response::response(StatusCode::UNAUTHORIZED, Body::empty(), "application/json");
        echo_origin(HeaderValue::from_static("https://x.example"), &mut response);
        assert_eq!(
            names(&response),
            [
                "content-type: application/json",
                "www-authenticate: Bearer realm=\"api\"",
                "access-control-allow-origin: https://x.example",
                "access-control-expose-headers: X-Env, X-Trace-Id, X-Version",
                "vary: Origin, Cookie",
                "x-version: 1.13.2",
                "x-env: PRODUCTION",
            ]
        );
        // An answer without the CORS pair (Dify's 405) stays as it is.
        let mut response = super::super::response::response(StatusCode::METHOD_NOT_ALLOWED, Body::empty(), "application/json");
        let before = names(&response);
        echo_origin(HeaderValue::from_static("https://x.example"), &mut response);
        assert_eq!(names(&response), before);
    }
}
