//! The auth cookies of API.md §2 and the CSRF rule for cookie-authenticated requests.

use crate::config::Config;
use crate::crypto;
use crate::http::input;
use rouille::{Request, Response};

pub const ACCESS: &str = "access_token";
pub const REFRESH: &str = "refresh_token";
pub const PARTIAL: &str = "partial_token";
pub const CSRF: &str = "csrf_token";

/// Path of the refresh and partial cookies: only the auth endpoints ever see them.
pub const AUTH_PATH: &str = "/api/v1/auth";

fn cookie(
    config: &Config,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    http_only: bool,
) -> String {
    let mut c = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Lax");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if config.cookies.secure {
        c.push_str("; Secure");
    }
    if let Some(d) = &config.cookies.domain {
        c.push_str(&format!("; Domain={d}"));
    }
    c
}

fn push(resp: &mut Response, value: String) {
    resp.headers.push(("Set-Cookie".into(), value.into()));
}

/// Sets the access, refresh and (readable) CSRF cookies after a login or refresh.
pub fn set_session(resp: &mut Response, config: &Config, access: &str, refresh: &str) {
    let access_age = config.tokens.access_ttl.as_secs() as i64;
    let refresh_age = config.tokens.refresh_ttl.as_secs() as i64;
    push(resp, cookie(config, ACCESS, access, "/", access_age, true));
    push(
        resp,
        cookie(config, REFRESH, refresh, AUTH_PATH, refresh_age, true),
    );
    push(
        resp,
        cookie(
            config,
            CSRF,
            &crypto::random_token(24),
            "/",
            refresh_age,
            false,
        ),
    );
    clear_partial(resp, config);
}

/// Sets the partial-token cookie of the 2FA step.
pub fn set_partial(resp: &mut Response, config: &Config, token: &str) {
    let age = config.tokens.partial_ttl.as_secs() as i64;
    push(resp, cookie(config, PARTIAL, token, AUTH_PATH, age, true));
}

pub fn clear_partial(resp: &mut Response, config: &Config) {
    push(resp, cookie(config, PARTIAL, "", AUTH_PATH, 0, true));
}

/// Clears every auth cookie (logout, failed refresh).
pub fn clear_all(resp: &mut Response, config: &Config) {
    push(resp, cookie(config, ACCESS, "", "/", 0, true));
    push(resp, cookie(config, REFRESH, "", AUTH_PATH, 0, true));
    push(resp, cookie(config, CSRF, "", "/", 0, false));
    clear_partial(resp, config);
}

fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| {
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        )
    })
}

/// True when `method` changes state.
pub fn is_unsafe(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH" | "DELETE")
}

/// The CSRF rule: a state-changing request authenticated by cookie must come from an allowed
/// origin (`Origin`, else `Referer`), or carry `X-CSRF-Token` equal to the `csrf_token` cookie.
pub fn csrf_ok(config: &Config, req: &Request) -> bool {
    if !is_unsafe(req.method()) {
        return true;
    }
    let allowed = &config.security.allowed_origins;
    let claimed = match req.header("Origin") {
        Some(o) if o != "null" => origin_of(o),
        Some(_) => None,
        None => req.header("Referer").and_then(origin_of),
    };
    if claimed.is_some_and(|o| allowed.contains(&o)) {
        return true;
    }
    match (req.header("X-CSRF-Token"), input::cookie(req, CSRF)) {
        (Some(h), Some(c)) if !c.is_empty() => crypto::ct_eq(h.as_bytes(), c.as_bytes()),
        _ => false,
    }
}
