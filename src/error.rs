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

/// The catalogue of error codes: each variant is one `(HTTP status, wire code, default
/// message)` triple, so a code and its status can never disagree. Every code of API.md §1 is
/// here, plus the project's own (`method_not_allowed`, `not_ready`). Add a variant (and its
/// row in each `match`) to add an error; build it with [`ApiError::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // 400
    InvalidRequest,
    InvalidEmail,
    WeakPassword,
    InvalidToken,
    // 401
    Unauthenticated,
    InvalidCredentials,
    InvalidCode,
    TokenExpired,
    RefreshTokenReused,
    InvalidApiKey,
    /// A refresh token that is missing, unknown or no longer usable: `invalid_token`, but
    /// 401 (the client must sign in again), unlike the 400 of an email or partial token.
    InvalidRefreshToken,
    // 403
    Forbidden,
    NotAMember,
    MembershipInactive,
    CsrfFailed,
    OrgMismatch,
    EmailNotAllowed,
    // 404
    NotFound,
    OrgNotFound,
    // 405
    MethodNotAllowed,
    // 409
    AlreadyExists,
    AlreadyMember,
    InvitationPending,
    // 413, 415
    PayloadTooLarge,
    UnsupportedMediaType,
    // 422
    TwoFactorSetupRequired,
    EmailVerificationRequired,
    // 429
    RateLimited,
    // 500
    InternalError,
    // 503
    Overloaded,
    NotReady,
}

impl ErrorCode {
    /// Every variant, in catalogue order (for tests and docs; add new variants here too).
    pub const ALL: [ErrorCode; 31] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidEmail,
        ErrorCode::WeakPassword,
        ErrorCode::InvalidToken,
        ErrorCode::Unauthenticated,
        ErrorCode::InvalidCredentials,
        ErrorCode::InvalidCode,
        ErrorCode::TokenExpired,
        ErrorCode::RefreshTokenReused,
        ErrorCode::InvalidApiKey,
        ErrorCode::InvalidRefreshToken,
        ErrorCode::Forbidden,
        ErrorCode::NotAMember,
        ErrorCode::MembershipInactive,
        ErrorCode::CsrfFailed,
        ErrorCode::OrgMismatch,
        ErrorCode::EmailNotAllowed,
        ErrorCode::NotFound,
        ErrorCode::OrgNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::AlreadyExists,
        ErrorCode::AlreadyMember,
        ErrorCode::InvitationPending,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::TwoFactorSetupRequired,
        ErrorCode::EmailVerificationRequired,
        ErrorCode::RateLimited,
        ErrorCode::InternalError,
        ErrorCode::Overloaded,
        ErrorCode::NotReady,
    ];

    /// The HTTP status this code is always answered with.
    pub const fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidRequest | InvalidEmail | WeakPassword | InvalidToken => 400,
            Unauthenticated | InvalidCredentials | InvalidCode | TokenExpired
            | RefreshTokenReused | InvalidApiKey | InvalidRefreshToken => 401,
            Forbidden | NotAMember | MembershipInactive | CsrfFailed | OrgMismatch
            | EmailNotAllowed => 403,
            NotFound | OrgNotFound => 404,
            MethodNotAllowed => 405,
            AlreadyExists | AlreadyMember | InvitationPending => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            TwoFactorSetupRequired | EmailVerificationRequired => 422,
            RateLimited => 429,
            InternalError => 500,
            Overloaded | NotReady => 503,
        }
    }

    /// The stable `code` of the error envelope (API.md §1).
    pub const fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            InvalidEmail => "invalid_email",
            WeakPassword => "weak_password",
            InvalidToken | InvalidRefreshToken => "invalid_token",
            Unauthenticated => "unauthenticated",
            InvalidCredentials => "invalid_credentials",
            InvalidCode => "invalid_code",
            TokenExpired => "token_expired",
            RefreshTokenReused => "refresh_token_reused",
            InvalidApiKey => "invalid_api_key",
            Forbidden => "forbidden",
            NotAMember => "not_a_member",
            MembershipInactive => "membership_inactive",
            CsrfFailed => "csrf_failed",
            OrgMismatch => "org_mismatch",
            EmailNotAllowed => "email_not_allowed",
            NotFound => "not_found",
            OrgNotFound => "org_not_found",
            MethodNotAllowed => "method_not_allowed",
            AlreadyExists => "already_exists",
            AlreadyMember => "already_member",
            InvitationPending => "invitation_pending",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            TwoFactorSetupRequired => "two_factor_setup_required",
            EmailVerificationRequired => "email_verification_required",
            RateLimited => "rate_limited",
            InternalError => "internal_error",
            Overloaded => "overloaded",
            NotReady => "not_ready",
        }
    }

    /// The message [`ApiError::of`] uses unless the call site gives its own.
    pub const fn default_message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "Invalid request",
            InvalidEmail => "email: is not a valid email address",
            WeakPassword => "password: is too weak",
            InvalidToken => "Invalid, expired or already used token",
            Unauthenticated => "Authentication required",
            InvalidCredentials => "Invalid email or password",
            InvalidCode => "Invalid verification code",
            TokenExpired => "Access token expired",
            RefreshTokenReused => {
                "This refresh token was already used; the session has been revoked"
            }
            InvalidApiKey => "A valid API key is required (X-API-Key: pk_live_…)",
            InvalidRefreshToken => "Invalid or expired refresh token",
            Forbidden => "Forbidden",
            NotAMember => "Not a member of this organization",
            MembershipInactive => "Membership in this organization is deactivated",
            CsrfFailed => "CSRF check failed",
            OrgMismatch => "The credential belongs to another organization",
            EmailNotAllowed => "This organization does not accept sign-ups from this email address",
            NotFound => "Not found",
            OrgNotFound => "Organization not found",
            MethodNotAllowed => "Method not allowed",
            AlreadyExists => "Already exists",
            AlreadyMember => "This user is already a member of the organization",
            InvitationPending => "An invitation to this email is already pending",
            PayloadTooLarge => "Request body too large",
            UnsupportedMediaType => "Request body must be application/json",
            TwoFactorSetupRequired => "This organization requires two-factor authentication",
            EmailVerificationRequired => "Verify your email address first: we sent you a link",
            RateLimited => "Too many requests; try again later",
            InternalError => "Internal server error",
            Overloaded => "Server is busy; try again shortly",
            NotReady => "Not ready",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `e.code == "invalid_token"` compares the wire code.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[derive(Debug)]
pub struct ApiError {
    /// What went wrong; the HTTP status is [`ApiError::status`], read from it.
    pub code: ErrorCode,
    pub message: String,
    pub errors: Vec<FieldError>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// Extra response headers (e.g. `Allow` on 405).
    pub headers: Vec<(String, String)>,
    /// The response also clears the API's session cookies (a refresh or logout that cannot go
    /// on); `app::handle` honours it, where the response is built.
    pub clear_cookies: bool,
    /// Private: logged, never sent.
    pub detail: Option<String>,
}

impl ApiError {
    /// The error of `code` with its default message.
    pub fn of(code: ErrorCode) -> Self {
        ApiError {
            code,
            message: code.default_message().to_string(),
            errors: Vec::new(),
            retry_after: None,
            headers: Vec::new(),
            clear_cookies: false,
            detail: None,
        }
    }

    /// The HTTP status, always the one the catalogue gives its code.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// Replaces the public message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The answer also clears the session cookies (see [`ApiError::clear_cookies`]).
    pub fn clearing_cookies(mut self) -> Self {
        self.clear_cookies = true;
        self
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::InvalidRequest).with_message(message)
    }

    /// 400 naming the offending field (`code` is one of the 400 codes).
    pub fn field(code: ErrorCode, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::of(code).with_message(format!("{field}: {message}"));
        e.errors.push(FieldError {
            field: field.to_string(),
            message,
        });
        e
    }

    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::InvalidToken).with_message(message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::Unauthenticated).with_message(message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::Forbidden).with_message(message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::NotFound).with_message(message)
    }

    pub fn org_not_found() -> Self {
        Self::of(ErrorCode::OrgNotFound)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::AlreadyExists).with_message(message)
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Self::of(ErrorCode::PayloadTooLarge)
            .with_message(format!("Request body exceeds {limit} bytes"))
    }

    pub fn unsupported_media_type() -> Self {
        Self::of(ErrorCode::UnsupportedMediaType)
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::of(ErrorCode::RateLimited);
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    pub fn overloaded() -> Self {
        let mut e = Self::of(ErrorCode::Overloaded);
        e.retry_after = Some(1);
        e
    }

    /// 500 with a private cause: the client sees only `internal_error`.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::of(ErrorCode::InternalError).with_detail(detail)
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::of(code)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status(), self.code, self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// A storage error the handler did not map (a conflict it expects becomes a 409 where it is
/// caught, with `is_conflict`) is a 500; the cause goes to the log only.
impl From<crate::db::Error> for ApiError {
    fn from(e: crate::db::Error) -> Self {
        use crate::db::Error;
        match e {
            Error::Conflict(e) | Error::Sqlite(e) => ApiError::internal(format!("sqlite: {e}")),
            e => ApiError::internal(e.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// API.md §1, verbatim: HTTP status → codes.
    const CONTRACT: &[(u16, &[&str])] = &[
        (
            400,
            &[
                "invalid_request",
                "invalid_email",
                "weak_password",
                "invalid_token",
            ],
        ),
        (
            401,
            &[
                "unauthenticated",
                "invalid_credentials",
                "invalid_code",
                "token_expired",
                "refresh_token_reused",
                "invalid_api_key",
            ],
        ),
        (
            403,
            &[
                "forbidden",
                "not_a_member",
                "membership_inactive",
                "csrf_failed",
                "org_mismatch",
                "email_not_allowed",
            ],
        ),
        (404, &["not_found", "org_not_found"]),
        (
            409,
            &["already_exists", "already_member", "invitation_pending"],
        ),
        (413, &["payload_too_large"]),
        (415, &["unsupported_media_type"]),
        (
            422,
            &["two_factor_setup_required", "email_verification_required"],
        ),
        (429, &["rate_limited"]),
        (500, &["internal_error"]),
        (503, &["overloaded"]),
    ];

    #[test]
    fn every_contract_code_is_in_the_catalogue_with_its_status() {
        for (status, codes) in CONTRACT {
            for code in *codes {
                assert!(
                    ErrorCode::ALL
                        .iter()
                        .any(|c| c.as_str() == *code && c.status() == *status),
                    "{status} {code}"
                );
            }
        }
    }

    #[test]
    fn each_variant_is_one_status_and_code() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert((c.status(), c.as_str())), "{c:?} twice");
            assert!(!c.default_message().is_empty(), "{c:?}");
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c:?}"
            );
        }
        // Only invalid_token is answered with two statuses (400, and 401 for refresh).
        let statuses = |code: &str| ErrorCode::ALL.iter().filter(|c| c.as_str() == code).count();
        for c in ErrorCode::ALL {
            let n = statuses(c.as_str());
            assert!(n == 1 || c.as_str() == "invalid_token", "{c:?}");
        }
    }

    #[test]
    fn an_error_takes_status_code_and_default_message_from_its_variant() {
        let e = ApiError::of(ErrorCode::NotAMember);
        assert_eq!((e.status(), e.code.as_str()), (403, "not_a_member"));
        assert_eq!(e.message, "Not a member of this organization");
        assert!(e.code == "not_a_member" && !e.clear_cookies);
        let e = ApiError::of(ErrorCode::InvalidRefreshToken)
            .with_message("x")
            .clearing_cookies();
        assert_eq!(
            (e.status(), e.code.as_str(), e.message.as_str()),
            (401, "invalid_token", "x")
        );
        assert!(e.clear_cookies);
        assert_eq!(
            serde_json::json!(e.code),
            serde_json::json!("invalid_token")
        );
    }
}
