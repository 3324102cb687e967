//! `ApiError`: what a handler can fail with. Each carries a fixed HTTP status and a stable
//! `code` from the contract (API.md §1), a public message, and a private detail that is
//! logged with the request id but never sent to the client.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub errors: Vec<FieldError>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// Extra response headers (e.g. `Allow` on 405).
    pub headers: Vec<(String, String)>,
    /// Private: logged, never sent.
    pub detail: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
            retry_after: None,
            headers: Vec::new(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", message)
    }

    /// 400 naming the offending field.
    pub fn field(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::new(400, code, format!("{field}: {message}"));
        e.errors.push(FieldError {
            field: field.to_string(),
            message,
        });
        e
    }

    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_token", message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(401, "unauthenticated", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    pub fn org_not_found() -> Self {
        Self::new(404, "org_not_found", "Organization not found")
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(409, "already_exists", message)
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            413,
            "payload_too_large",
            format!("Request body exceeds {limit} bytes"),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "unsupported_media_type",
            "Request body must be application/json",
        )
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(429, "rate_limited", "Too many requests; try again later");
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    pub fn overloaded() -> Self {
        let mut e = Self::new(503, "overloaded", "Server is busy; try again shortly");
        e.retry_after = Some(1);
        e
    }

    /// 500 with a private cause: the client sees only `internal_error`.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, "internal_error", "Internal server error").with_detail(detail)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::internal(format!("sqlite: {e}"))
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::internal(e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
