//! `POST /oauth2/token` (RFC 6749 §3.2, RFC 7636, RFC 8628 §3.4): the authorization code,
//! refresh token and device code grants. Every answer is `no-store`; errors are RFC 6749's.

use super::{
    GRANT_CODE, GRANT_DEVICE, GRANT_REFRESH, Grant, OauthError, OauthResult, authenticate_client,
    form, has_scope, no_store, pkce_ok, start_session, token_answer,
};
use crate::api::{Ctx, guard};
use crate::crypto;
use crate::db::oauth::{self, Client};
use crate::db::{orgs, sessions, users};
use crate::error::ApiResult;
use crate::session::{self, Refreshed};
use crate::state::AppState;
use crate::status::{OrgStatus, UserStatus};
use rouille::{Request, Response};
use std::collections::HashMap;

pub fn token(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let mut resp = match grant(state, ctx, req) {
        Ok(r) => r,
        Err(e) => e.into_response()?,
    };
    super::endpoints::cors(state, req, &mut resp);
    Ok(resp)
}

fn grant(state: &AppState, ctx: &Ctx, req: &Request) -> OauthResult<Response> {
    let form = form(state, req)?;
    let client = authenticate_client(state, req, &form)?;
    let p = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    match p("grant_type") {
        GRANT_CODE => code_grant(state, ctx, req, &client, &form),
        GRANT_REFRESH => refresh_grant(state, ctx, &client, p("refresh_token")),
        GRANT_DEVICE => device_grant(state, ctx, req, &client, p("device_code")),
        "" => Err(OauthError::invalid_request("grant_type is required")),
        _ => Err(OauthError::new(
            400,
            "unsupported_grant_type",
            "Supported: authorization_code, refresh_token, device_code",
        )),
    }
}

/// The user, org and membership a grant is for, all still in good standing.
fn standing(
    state: &AppState,
    user_id: &crate::ids::UserId,
    org_id: &crate::ids::OrgId,
) -> OauthResult<(users::User, orgs::Org, users::Membership)> {
    let found = state.db.read(|c| {
        let u = users::find_by_id(c, user_id)?;
        let o = orgs::find_by_id(c, org_id)?;
        let m = users::find_membership(c, org_id, user_id)?;
        Ok::<_, crate::db::Error>((u, o, m))
    })?;
    match found {
        (Some(u), Some(o), Some(m))
            if u.status == UserStatus::Active
                && o.status == OrgStatus::Active
                && guard::is_active(&m) =>
        {
            Ok((u, o, m))
        }
        _ => Err(OauthError::invalid_grant(
            "The account or its membership is no longer active",
        )),
    }
}

fn code_grant(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    client: &Client,
    form: &HashMap<String, String>,
) -> OauthResult<Response> {
    let p = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let code = p("code");
    if code.is_empty() || code.len() > 256 {
        return Err(OauthError::invalid_request("code is required"));
    }
    let hash = crypto::token_hash(code);
    let bad = || OauthError::invalid_grant("The code is invalid, expired or already used");
    let c = state
        .db
        .read(|c| oauth::find_code(c, &hash))?
        .ok_or_else(bad)?;
    if c.client_id != client.id {
        // A code of another client: never theirs (and not spent by this attempt).
        return Err(bad());
    }
    if c.used_at.is_some() {
        // Replayed: whatever the first use produced is revoked (RFC 6749 §4.1.2).
        state.change(ctx, req, |tx| {
            if let Some(sid) = &c.session_id
                && sessions::revoke(tx, sid, "code_reused", ctx.now)?
            {
                let who = crate::events::who(&c.user_id, "");
                tx.sessions_revoked(&[(sid.clone(), c.org_id.clone())], who, "code_reused")?;
            }
            Ok(())
        })?;
        return Err(bad());
    }
    if ctx.now >= c.expires_at {
        return Err(bad());
    }
    if p("redirect_uri") != c.redirect_uri {
        return Err(OauthError::invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    match &c.code_challenge {
        Some(ch) => {
            if !pkce_ok(p("code_verifier"), ch) {
                return Err(OauthError::invalid_grant("PKCE verification failed"));
            }
        }
        None if client.is_public() => {
            return Err(OauthError::invalid_grant("PKCE verification failed"));
        }
        None => {
            if !p("code_verifier").is_empty() {
                return Err(OauthError::invalid_grant("PKCE verification failed"));
            }
        }
    }
    let (user, org, membership) = standing(state, &c.user_id, &c.org_id)?;
    let g = Grant {
        client,
        user: &user,
        org: &org,
        membership: &membership,
        scope: &c.scope,
        auth_time: c.auth_time,
        amr: &c.amr,
        nonce: c.nonce.as_deref(),
        browser_session_id: c.browser_session_id.as_deref(),
    };
    let issued = state.change(ctx, req, |tx| {
        if !oauth::spend_code(tx, &hash, ctx.now)? {
            return Err(
                crate::error::ApiError::of(crate::error::ErrorCode::InvalidToken)
                    .with_message("The code is invalid, expired or already used"),
            );
        }
        let issued = start_session(tx, state, ctx, req, &g)?;
        oauth::set_code_session(tx, &hash, &issued.session_id)?;
        Ok(issued)
    })?;
    token_answer(state, &g, &issued, ctx.now)
}

fn refresh_grant(
    state: &AppState,
    ctx: &Ctx,
    client: &Client,
    token: &str,
) -> OauthResult<Response> {
    let bad = || OauthError::invalid_grant("The refresh token is invalid, expired or revoked");
    if token.is_empty() || token.len() > 512 {
        return Err(OauthError::invalid_request("refresh_token is required"));
    }
    let or_bad = |e: crate::error::ApiError| {
        if e.status() >= 500 {
            OauthError::Internal(e)
        } else {
            bad()
        }
    };
    let prepared = state
        .db
        .read(|c| session::prepare_refresh(c, token, ctx.now))
        .map_err(or_bad)?;
    // The refresh token must be one this client was given.
    let sid = prepared.session_id().clone();
    let facts = state
        .db
        .read(|c| oauth::session(c, &sid))?
        .filter(|s| s.client_id == client.id)
        .ok_or_else(bad)?;
    if !has_scope(&facts.scope, "offline_access") {
        return Err(bad());
    }
    let refreshed = session::refresh_now(state, prepared, ctx.now).map_err(or_bad)?;
    let rotated = match refreshed {
        Refreshed::Ok(r) => r,
        Refreshed::Reused { .. } => {
            return Err(OauthError::invalid_grant(
                "The refresh token was already used; the session is revoked",
            ));
        }
    };
    let issued = rotated.issue(state, ctx.now)?;
    let amr = rotated.session.auth_methods.clone();
    let g = Grant {
        client,
        user: &rotated.user,
        org: &rotated.org,
        membership: &rotated.membership,
        scope: &facts.scope,
        auth_time: facts.auth_time,
        amr: &amr,
        nonce: None,
        browser_session_id: None,
    };
    token_answer(state, &g, &issued, ctx.now)
}

fn device_grant(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    client: &Client,
    device_code: &str,
) -> OauthResult<Response> {
    if device_code.is_empty() || device_code.len() > 256 {
        return Err(OauthError::invalid_request("device_code is required"));
    }
    let hash = crypto::token_hash(device_code);
    let d = state
        .db
        .read(|c| oauth::device_by_device_code(c, &hash))?
        .filter(|d| d.client_id == client.id)
        .ok_or_else(|| OauthError::invalid_grant("Unknown device code"))?;
    if ctx.now >= d.expires_at {
        return Err(OauthError::new(
            400,
            "expired_token",
            "The device code expired",
        ));
    }
    // Polled before the interval passed: slow down, and the interval grows by 5 s (§3.5).
    // Polling too fast matters while the person has not decided yet (then the tokens, or
    // the refusal, are answered at once).
    if d.state == "pending"
        && let Some(last) = d.last_polled_at
        && ctx.now - last < d.interval_ms
    {
        let interval = d.interval_ms + 5_000;
        state
            .db
            .write(|tx| oauth::device_polled(tx, &hash, ctx.now, interval))?;
        let mut r = OauthError::new(
            400,
            "slow_down",
            "Polling too fast; wait longer between polls",
        )
        .into_response()?;
        no_store(&mut r);
        return Ok(r);
    }
    state
        .db
        .write(|tx| oauth::device_polled(tx, &hash, ctx.now, d.interval_ms))?;
    match d.state.as_str() {
        "pending" => Err(OauthError::new(
            400,
            "authorization_pending",
            "The user has not approved the request yet",
        )),
        "denied" => Err(OauthError::new(
            400,
            "access_denied",
            "The user denied the request",
        )),
        "used" => Err(OauthError::invalid_grant(
            "The device code was already used",
        )),
        _ => {
            let (Some(uid), Some(oid)) = (&d.user_id, &d.org_id) else {
                return Err(OauthError::invalid_grant("Unknown device code"));
            };
            let (user, org, membership) = standing(state, uid, oid)?;
            let auth_time = d.auth_time.unwrap_or(ctx.now);
            let g = Grant {
                client,
                user: &user,
                org: &org,
                membership: &membership,
                scope: &d.scope,
                auth_time,
                amr: &d.amr,
                nonce: None,
                browser_session_id: None,
            };
            let issued = state.change(ctx, req, |tx| {
                if !oauth::spend_device(tx, &hash)? {
                    return Err(
                        crate::error::ApiError::of(crate::error::ErrorCode::InvalidToken)
                            .with_message("The device code was already used"),
                    );
                }
                start_session(tx, state, ctx, req, &g)
            })?;
            token_answer(state, &g, &issued, ctx.now)
        }
    }
}
