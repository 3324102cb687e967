//! Health, readiness and the well-known documents (JWKS, OpenID configuration).

use crate::api::Ctx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::respond;
use crate::state::AppState;
use rouille::{Request, Response};
use serde_json::json;

pub fn healthz(_: &AppState, _: &Ctx, _: &Request) -> ApiResult<Response> {
    Ok(respond::ok(json!({ "status": "ok" })))
}

/// Ready when the database takes a write and both background threads — maintenance and the
/// outbox worker — are alive (running, with a heartbeat within the last minute).
pub fn readyz(state: &AppState, ctx: &Ctx, _: &Request) -> ApiResult<Response> {
    if let Err(e) = state.db.ready() {
        return Err(ApiError::of(ErrorCode::NotReady)
            .with_message("Database is not writable")
            .with_detail(e.to_string()));
    }
    if let Some(problem) = crate::maintenance::background_problem(state) {
        return Err(ApiError::of(ErrorCode::NotReady).with_message(problem));
    }
    let (pending, oldest) = state.db.read(crate::db::outbox::backlog)?;
    let outbox = json!({
        "pending": pending,
        "oldestPendingAgeMs": oldest.map_or(0, |t| (ctx.now - t).max(0)),
    });
    Ok(respond::ok(
        json!({ "status": "ready", "database": "ok", "worker": "ok", "outbox": outbox }),
    ))
}

/// `{"keys":[…]}` — a bare JWKS document (not the envelope), as JWT libraries expect.
pub fn jwks(state: &AppState, ctx: &Ctx, _: &Request) -> ApiResult<Response> {
    let doc = state
        .keys
        .jwks(&state.db, ctx.now)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Response::from_data("application/json", doc.to_string())
        .with_additional_header("Cache-Control", "public, max-age=60"))
}

pub fn openid_configuration(state: &AppState, _: &Ctx, _: &Request) -> ApiResult<Response> {
    Ok(discovery(state, true))
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414): the same metadata.
pub fn oauth_metadata(state: &AppState, _: &Ctx, _: &Request) -> ApiResult<Response> {
    Ok(discovery(state, false))
}

/// The provider metadata (OIDC Discovery 1.0 §3, RFC 8414 §2): the real endpoints.
fn discovery(state: &AppState, oidc: bool) -> Response {
    let base = state.config.server.public_url.trim_end_matches('/');
    let mut algs = vec!["RS256"];
    let primary = state.config.tokens.algorithm.as_str();
    if primary != "RS256" {
        algs.push(primary);
    }
    let mut doc = json!({
        "issuer": state.config.server.public_url,
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "userinfo_endpoint": format!("{base}/oauth2/userinfo"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "end_session_endpoint": format!("{base}/oauth2/logout"),
        "device_authorization_endpoint": format!("{base}/oauth2/device_authorization"),
        "scopes_supported": crate::oauth::SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            crate::oauth::GRANT_CODE,
            crate::oauth::GRANT_REFRESH,
            crate::oauth::GRANT_DEVICE,
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "sid",
            "azp", "name", "given_name", "family_name", "picture", "updated_at", "email",
            "email_verified", "org_id", "org_slug", "org_role"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "ui_locales_supported": ["en", "de"],
        "access_token_signing_alg_values_supported": algs,
    });
    if !oidc {
        doc.as_object_mut().map(|m| m.remove("userinfo_endpoint"));
    }
    Response::from_data("application/json", doc.to_string())
        .with_additional_header("Cache-Control", "public, max-age=300")
}

/// `GET /metrics`: the Prometheus text exposition.
pub fn metrics(state: &AppState, ctx: &Ctx, _: &Request) -> ApiResult<Response> {
    let now = ctx.now;
    let (active_sessions, pending, oldest, succeeded, failed) = state.db.read(|c| {
        let active = crate::db::sessions::count_live(c, now)?;
        let (pending, oldest) = crate::db::outbox::backlog(c)?;
        let succeeded = crate::db::outbox::count_with_status(c, "succeeded")?;
        let failed = crate::db::outbox::count_with_status(c, "failed")?;
        Ok::<_, ApiError>((active, pending, oldest, succeeded, failed))
    })?;
    let (hash_running, hash_waiting) = state.hasher.depth();
    let text = state.metrics.render(&crate::metrics::Gauges {
        active_sessions,
        hash_running,
        hash_waiting,
        outbox_pending: pending,
        outbox_oldest_age_secs: oldest
            .map(|t| (now - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0),
        outbox_succeeded: succeeded,
        outbox_failed: failed,
    });
    Ok(Response::from_data(
        "text/plain; version=0.0.4; charset=utf-8",
        text,
    ))
}
