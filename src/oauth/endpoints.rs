//! The provider's other back-channel endpoints: `/oauth2/userinfo` (OIDC Core §5.3),
//! `/oauth2/revoke` (RFC 7009), `/oauth2/introspect` (RFC 7662), `/oauth2/device_authorization`
//! (RFC 8628 §3.1), and CORS for browser-based clients.

use super::{
    DEVICE_INTERVAL_MS, DEVICE_TTL_MS, OauthError, OauthResult, authenticate_client, form,
    grant_scope, json_no_store, new_user_code, user_claims,
};
use crate::api::{Ctx, guard};
use crate::crypto;
use crate::db::oauth::{self, Client};
use crate::db::{orgs, sessions, users};
use crate::error::ApiResult;
use crate::ids::SessionId;
use crate::state::AppState;
use crate::status::UserStatus;
use rouille::{Request, Response};
use serde_json::json;

/// A session's access-token-derived facts, when its token verifies and it is still live.
struct Bearer {
    claims: crate::tokens::AccessClaims,
    user: users::User,
    membership: users::Membership,
    scope: String,
}

fn bearer_of(state: &AppState, ctx: &Ctx, token: &str) -> OauthResult<Bearer> {
    let claims = state
        .keys
        .verify(
            &state.db,
            token,
            &state.config.server.public_url,
            &state.config.tokens.audience,
            ctx.now,
        )
        .map_err(|_| OauthError::invalid_token("The access token is invalid or expired"))?;
    let found = state.db.read(|c| {
        let s = sessions::with_user(c, &claims.org_id, &claims.sid)?;
        let o = oauth::session(c, &claims.sid)?;
        Ok::<_, crate::db::Error>((s, o))
    })?;
    let (Some((session, user, Some(membership))), facts) = found else {
        return Err(OauthError::invalid_token("The session has ended"));
    };
    if !session.is_live(ctx.now)
        || session.user_id != claims.sub
        || user.status != UserStatus::Active
        || !guard::is_active(&membership)
    {
        return Err(OauthError::invalid_token("The session has ended"));
    }
    // A token of the JSON API (no client) reads what a full OIDC grant would.
    let scope = match facts {
        Some(f) => f.scope,
        None => "openid profile email".to_string(),
    };
    Ok(Bearer {
        claims,
        user,
        membership,
        scope,
    })
}

/// `GET|POST /oauth2/userinfo` with `Authorization: Bearer` (or, POST, `access_token` in the
/// form body): the claims the grant's scope allows.
pub fn userinfo(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let out = (|| -> OauthResult<Response> {
        let header = crate::http::input::bearer(req).map(str::to_string);
        let token = match header {
            Some(t) => t,
            None if req.method() == "POST"
                && req
                    .header("Content-Type")
                    .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) =>
            {
                form(state, req)?
                    .remove("access_token")
                    .ok_or_else(|| OauthError::invalid_token("An access token is required"))?
            }
            None => return Err(OauthError::invalid_token("An access token is required")),
        };
        let b = bearer_of(state, ctx, &token)?;
        if !super::has_scope(&b.scope, "openid") {
            return Err(OauthError::new(
                403,
                "insufficient_scope",
                "The grant does not include openid",
            ));
        }
        let org = state
            .db
            .read(|c| orgs::find_by_id(c, &b.claims.org_id))?
            .ok_or_else(|| OauthError::invalid_token("The session has ended"))?;
        Ok(json_no_store(&user_claims(
            &b.user,
            &org,
            &b.membership,
            &b.scope,
        )))
    })();
    let mut resp = match out {
        Ok(r) => r,
        Err(e) => e.into_response()?,
    };
    cors(state, req, &mut resp);
    Ok(resp)
}

/// Which session a token (refresh or access) belongs to, if it is one of `client`'s.
fn session_of(
    state: &AppState,
    ctx: &Ctx,
    client: &Client,
    token: &str,
    hint: &str,
) -> OauthResult<Option<(SessionId, crate::ids::OrgId)>> {
    if token.is_empty() || token.len() > 4096 {
        return Ok(None);
    }
    let by_refresh = |state: &AppState| -> OauthResult<Option<(SessionId, crate::ids::OrgId)>> {
        Ok(state
            .db
            .read(|c| sessions::find_refresh(c, token))?
            .map(|r| (r.session_id, r.org_id)))
    };
    let by_access = |state: &AppState| -> Option<(SessionId, crate::ids::OrgId)> {
        state
            .keys
            .verify_ignoring_expiry(
                &state.db,
                token,
                &state.config.server.public_url,
                &state.config.tokens.audience,
                ctx.now,
            )
            .ok()
            .map(|c| (c.sid, c.org_id))
    };
    let found = if hint == "access_token" {
        match by_access(state) {
            Some(s) => Some(s),
            None => by_refresh(state)?,
        }
    } else {
        match by_refresh(state)? {
            Some(s) => Some(s),
            None => by_access(state),
        }
    };
    let Some((sid, org)) = found else {
        return Ok(None);
    };
    let owned = state
        .db
        .read(|c| oauth::session(c, &sid))?
        .is_some_and(|s| s.client_id == client.id);
    Ok(owned.then_some((sid, org)))
}

/// `POST /oauth2/revoke` (RFC 7009): a refresh or access token of the calling client ends
/// its session. 200 whatever the token was (an unknown or foreign token changes nothing).
pub fn revoke(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let out = (|| -> OauthResult<Response> {
        let f = form(state, req)?;
        let client = authenticate_client(state, req, &f)?;
        let token = f.get("token").map(String::as_str).unwrap_or("");
        if token.is_empty() {
            return Err(OauthError::invalid_request("token is required"));
        }
        let hint = f.get("token_type_hint").map(String::as_str).unwrap_or("");
        if let Some((sid, org)) = session_of(state, ctx, &client, token, hint)? {
            state.change(ctx, req, |tx| {
                let Some(s) = sessions::find(tx, &org, &sid)? else {
                    return Ok(());
                };
                if sessions::revoke(tx, &sid, "revoked_by_client", ctx.now)? {
                    tx.sessions_revoked(
                        &[(sid.clone(), org.clone())],
                        json!({ "id": s.user_id }),
                        "revoked_by_client",
                    )?;
                }
                Ok(())
            })?;
        }
        Ok(json_no_store(&json!({})))
    })();
    let mut resp = match out {
        Ok(r) => r,
        Err(e) => e.into_response()?,
    };
    cors(state, req, &mut resp);
    Ok(resp)
}

/// `POST /oauth2/introspect` (RFC 7662): whether a token of the calling client is active,
/// and what it carries. A token of another client reads as inactive.
pub fn introspect(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let out = (|| -> OauthResult<Response> {
        let f = form(state, req)?;
        let client = authenticate_client(state, req, &f)?;
        let token = f.get("token").map(String::as_str).unwrap_or("");
        if token.is_empty() {
            return Err(OauthError::invalid_request("token is required"));
        }
        let hint = f.get("token_type_hint").map(String::as_str).unwrap_or("");
        let inactive = || json_no_store(&json!({ "active": false }));
        let Some((sid, org_id)) = session_of(state, ctx, &client, token, hint)? else {
            return Ok(inactive());
        };
        let found = state.db.read(|c| {
            let s = sessions::with_user(c, &org_id, &sid)?;
            let o = oauth::session(c, &sid)?;
            let org = orgs::find_by_id(c, &org_id)?;
            Ok::<_, crate::db::Error>((s, o, org))
        })?;
        let (Some((session, user, Some(m))), Some(facts), Some(org)) = found else {
            return Ok(inactive());
        };
        if !session.is_live(ctx.now) || user.status != UserStatus::Active || !guard::is_active(&m) {
            return Ok(inactive());
        }
        // An access token is active only until its own expiry; a refresh token while the
        // session lives (and it is the current one or within its grace window).
        let access = state
            .keys
            .verify(
                &state.db,
                token,
                &state.config.server.public_url,
                &state.config.tokens.audience,
                ctx.now,
            )
            .ok();
        let (token_type, exp, iat) = match &access {
            Some(c) => ("access_token", c.exp, c.iat),
            None => {
                let current = state
                    .db
                    .read(|c| sessions::find_refresh(c, token))?
                    .is_some_and(|r| {
                        r.rotated_at.is_none_or(|at| {
                            ctx.now - at <= state.config.tokens.refresh_grace.as_millis() as i64
                        })
                    });
                if !current {
                    return Ok(inactive());
                }
                (
                    "refresh_token",
                    session
                        .idle_expires_at
                        .min(session.expires_at)
                        .div_euclid(1000),
                    session.created_at.div_euclid(1000),
                )
            }
        };
        if access.is_none() && token.split('.').count() == 3 {
            // A JWT that no longer verifies (expired): inactive.
            return Ok(inactive());
        }
        Ok(json_no_store(&json!({
            "active": true,
            "scope": facts.scope,
            "client_id": client.id,
            "username": user.email,
            "token_type": token_type,
            "exp": exp,
            "iat": iat,
            "sub": user.id,
            "aud": if token_type == "access_token" { json!(state.config.tokens.audience) } else { json!(client.id) },
            "iss": state.config.server.public_url,
            "sid": session.id,
            "org_id": org.id,
            "org_slug": org.slug,
            "org_role": m.role,
        })))
    })();
    match out {
        Ok(r) => Ok(r),
        Err(e) => e.into_response(),
    }
}

/// `POST /oauth2/device_authorization` (RFC 8628 §3.1-3.2).
pub fn device_authorization(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let out = (|| -> OauthResult<Response> {
        let f = form(state, req)?;
        let client = authenticate_client(state, req, &f)?;
        let scope = grant_scope(f.get("scope").map(String::as_str).unwrap_or("openid"));
        let device_code = crypto::random_token(32);
        let user_code = new_user_code();
        let expires = ctx.now + DEVICE_TTL_MS;
        state.db.write(|tx| {
            oauth::insert_device_code(
                tx,
                &crypto::token_hash(&device_code),
                &crypto::token_hash(&user_code),
                &client.id,
                &scope,
                DEVICE_INTERVAL_MS,
                ctx.now,
                expires,
            )
        })?;
        let base = state.config.server.public_url.trim_end_matches('/');
        let uri = format!("{base}/device");
        let complete = format!("{uri}?user_code={user_code}");
        Ok(json_no_store(&json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "verification_uri_complete": complete,
            "expires_in": DEVICE_TTL_MS / 1000,
            "interval": DEVICE_INTERVAL_MS / 1000,
        })))
    })();
    match out {
        Ok(r) => Ok(r),
        Err(e) => e.into_response(),
    }
}

/// The registered origin of a browser-based client making this request, if any: the
/// `Origin` header equals the origin of one of the client's redirect URIs.
fn allowed_origin(state: &AppState, req: &Request) -> Option<String> {
    let origin = req.header("Origin")?.trim();
    if origin.is_empty() || origin.len() > 256 || origin == "null" {
        return None;
    }
    let clients = state.db.read(|c| oauth::list_clients(c, None)).ok()?;
    clients
        .iter()
        .any(|c| c.origins().iter().any(|o| o.eq_ignore_ascii_case(origin)))
        .then(|| origin.to_string())
}

/// Adds the CORS headers for a registered client origin (SPAs calling the token endpoint).
pub fn cors(state: &AppState, req: &Request, resp: &mut Response) {
    if let Some(o) = allowed_origin(state, req) {
        let set = |r: &mut Response, k: &str, v: String| crate::http::respond::set_header(r, k, v);
        set(resp, "Access-Control-Allow-Origin", o);
        set(resp, "Vary", "Origin".into());
    }
}

/// `OPTIONS` on the token, userinfo and revocation endpoints: the CORS preflight, answered
/// for registered client origins only.
pub fn preflight(state: &AppState, _ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let mut resp = Response::empty_204();
    if let Some(o) = allowed_origin(state, req) {
        let set = |r: &mut Response, k: &str, v: String| crate::http::respond::set_header(r, k, v);
        set(&mut resp, "Access-Control-Allow-Origin", o);
        set(
            &mut resp,
            "Access-Control-Allow-Methods",
            "GET, POST".into(),
        );
        set(
            &mut resp,
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type".into(),
        );
        set(&mut resp, "Access-Control-Max-Age", "600".into());
        set(&mut resp, "Vary", "Origin".into());
    }
    Ok(resp)
}
