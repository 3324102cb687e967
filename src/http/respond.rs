//! The envelope of API.md §1. Success bodies are built by [`ok`]/[`created`]/[`with_status`];
//! error bodies only by [`error_response`] — the one place an `ApiError` becomes a response.

use crate::error::ApiError;
use rouille::Response;
use serde::Serialize;
use serde_json::json;

/// The success envelope, its keys in the order a `serde_json` map (sorted) wrote them.
#[derive(Serialize)]
struct Success<T> {
    data: T,
    status: &'static str,
}

/// `{"status":"success","data":…}` with the given HTTP status. `data` is written straight
/// into the body, not copied into a `serde_json::Value` first (on a refresh that copy was a
/// quarter of the request's allocations).
pub fn with_status<T: Serialize>(status: u16, data: T) -> Response {
    let mut body = Vec::with_capacity(1024);
    let envelope = Success {
        data,
        status: "success",
    };
    match serde_json::to_writer(&mut body, &envelope) {
        Ok(()) => Response::from_data("application/json", body).with_status_code(status),
        // Only a map with keys that are not strings fails, which no answer here holds.
        Err(e) => error_response(&ApiError::internal(format!("serializing an answer: {e}"))),
    }
}

pub fn ok<T: Serialize>(data: T) -> Response {
    with_status(200, data)
}

pub fn created<T: Serialize>(data: T) -> Response {
    with_status(201, data)
}

pub fn accepted<T: Serialize>(data: T) -> Response {
    with_status(202, data)
}

/// `{"status":"error","code":…,"message":…[,"errors":[…]]}` plus `Retry-After` and any extra
/// headers the error carries. The private `detail` is never part of it.
pub fn error_response(err: &ApiError) -> Response {
    let mut body = json!({ "status": "error", "code": err.code, "message": err.message });
    if !err.errors.is_empty() {
        body["errors"] = json!(err.errors);
    }
    let mut resp =
        Response::from_data("application/json", body.to_string()).with_status_code(err.status());
    if let Some(secs) = err.retry_after {
        resp.headers
            .push(("Retry-After".into(), secs.to_string().into()));
    }
    for (k, v) in &err.headers {
        resp.headers.push((k.clone().into(), v.clone().into()));
    }
    resp
}

/// A caller's `X-Request-Id` is echoed when it is sane (1..=128 of `[A-Za-z0-9._:-]`);
/// otherwise a fresh id is made.
pub fn request_id(incoming: Option<&str>, now_ms: i64) -> String {
    match incoming {
        Some(s)
            if !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) =>
        {
            s.to_string()
        }
        _ => crate::ids::new_id("req", now_ms),
    }
}

/// Sets or replaces a response header.
pub fn set_header(resp: &mut Response, name: &str, value: impl Into<String>) {
    resp.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    resp.headers
        .push((name.to_string().into(), value.into().into()));
}
