//! Org API keys (API.md §5): create (the `pk_live_` key shown once), list, revoke — for an
//! org's `org_admin`s and owners — and `KeyUsage`, which keeps `lastUsedAt` in memory and
//! writes it to SQLite in batches rather than on every `/public/*` request.

use crate::api::{Ctx, guard};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::crypto;
use crate::db::api_keys::{self, ApiKey};
use crate::db::audit::Entry;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::{input, respond};
use crate::state::AppState;
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

pub use crate::org_keys::{KEY_PREFIX, SCOPES};

/// The wire shape of a key (never the key itself).
pub fn view(state: &AppState, k: &ApiKey, now: i64) -> Value {
    let last_used = match (k.last_used_at, state.key_usage.pending(&k.id)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    json!({
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "scopes": k.scopes,
        "isActive": k.is_active(now),
        "createdAt": rfc3339(k.created_at),
        "expiresAt": k.expires_at.map(rfc3339),
        "lastUsedAt": last_used.map(rfc3339),
        "revokedAt": k.revoked_at.map(rfc3339),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    name: String,
    expires_at: Option<String>,
    scopes: Option<Vec<String>>,
}

fn scopes(requested: Option<Vec<String>>) -> ApiResult<Vec<String>> {
    let Some(requested) = requested else {
        return Ok(SCOPES.iter().map(|s| s.to_string()).collect());
    };
    if requested.is_empty() {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "scopes",
            "must name at least one scope (omit it for all)",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for s in requested {
        if !SCOPES.contains(&s.as_str()) {
            return Err(ApiError::field(
                ErrorCode::InvalidRequest,
                "scopes",
                format!(
                    "unknown scope '{}'; known: {}",
                    s.chars().take(64).collect::<String>(),
                    SCOPES.join(", ")
                ),
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    // Stored in the order of SCOPES, whatever order they were asked in.
    out.sort_by_key(|s| SCOPES.iter().position(|k| k == s));
    Ok(out)
}

fn key_entry<'a>(me: &'a guard::UserCtx, action: &'a str, key_id: &'a str) -> Entry<'a> {
    Entry::new(
        Some(&me.org.id),
        "user",
        Some(&me.user.id),
        action,
        Some("api_key"),
        Some(key_id),
    )
}

pub fn create(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let body: CreateApiKeyRequest = input::json(req, state.config.server.max_body_bytes)?;
    let name = validate::name("name", &body.name)?;
    let expires_at = match body.expires_at.as_deref() {
        None => None,
        Some(s) => {
            let at = parse_rfc3339(s.trim()).ok_or_else(|| {
                ApiError::field(
                    ErrorCode::InvalidRequest,
                    "expiresAt",
                    "must be an RFC 3339 time like 2026-11-23T10:30:00Z",
                )
            })?;
            if at <= ctx.now {
                return Err(ApiError::field(
                    ErrorCode::InvalidRequest,
                    "expiresAt",
                    "must be in the future",
                ));
            }
            Some(at)
        }
    };
    let scopes = scopes(body.scopes)?;
    let secret = format!("{KEY_PREFIX}{}", crypto::random_hex(32));
    let key = ApiKey {
        id: crate::ids::new_id("key", ctx.now),
        org_id: me.org.id.clone(),
        name,
        key_hash: crypto::token_hash(&secret),
        prefix: secret[..10].to_string(),
        scopes,
        created_by: Some(me.user.id.clone()),
        created_at: ctx.now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    state.change(ctx, req, |tx| {
        api_keys::insert(tx, &key)?;
        tx.emit(
            Some(&me.org),
            "api_key.created",
            json!({
                "apiKey": { "id": key.id, "name": key.name, "prefix": key.prefix },
                "createdBy": { "id": me.user.id, "email": me.user.email },
            }),
        )?;
        let mut e = key_entry(&me, "api_key.created", &key.id);
        e.metadata = json!({ "name": key.name, "prefix": key.prefix, "scopes": key.scopes });
        tx.audit(e)?;
        Ok(())
    })?;
    Ok(respond::created(json!({
        "key": secret,
        "apiKey": view(state, &key, ctx.now),
    })))
}

pub fn list(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let rows = state.db.read(|c| api_keys::list(c, &me.org.id))?;
    let list: Vec<Value> = rows.iter().map(|k| view(state, k, ctx.now)).collect();
    Ok(respond::ok(json!({ "apiKeys": list })))
}

/// Revokes a key: the next request with it fails. Revoking a revoked key again is a 200
/// that changes nothing (no second event).
pub fn revoke(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let id = ctx.param("id").to_string();
    let key = state.change(ctx, req, |tx| {
        let key = api_keys::find(tx, &me.org.id, &id)?
            .ok_or_else(|| ApiError::not_found("API key not found"))?;
        if api_keys::revoke(tx, &me.org.id, &key.id, ctx.now)? {
            tx.emit(
                Some(&me.org),
                "api_key.revoked",
                json!({
                    "apiKey": { "id": key.id, "name": key.name, "prefix": key.prefix },
                    "revokedBy": { "id": me.user.id, "email": me.user.email },
                }),
            )?;
            let mut e = key_entry(&me, "api_key.revoked", &key.id);
            e.metadata = json!({ "name": key.name, "prefix": key.prefix });
            tx.audit(e)?;
        }
        Ok(api_keys::find(tx, &me.org.id, &key.id)?.unwrap_or(key))
    })?;
    Ok(respond::ok(json!({
        "message": "API key revoked",
        "apiKey": view(state, &key, ctx.now),
    })))
}
