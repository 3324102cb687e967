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
    let base = &state.config.server.public_url;
    let doc = json!({
        "issuer": base,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": [state.config.tokens.algorithm.as_str()],
        "token_endpoint": format!("{base}/api/v1/auth/refresh"),
        "subject_types_supported": ["public"],
        "response_types_supported": ["token"],
        "claims_supported": ["iss", "sub", "aud", "iat", "exp", "jti", "sid", "org_id",
            "org_slug", "org_role", "email", "email_verified", "amr"],
    });
    Ok(Response::from_data("application/json", doc.to_string())
        .with_additional_header("Cache-Control", "public, max-age=300"))
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
