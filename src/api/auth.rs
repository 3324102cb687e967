//! End-user authentication (API.md §3): signup, login, logout, refresh, availability and
//! switching orgs. Account self-service (me, password, sessions, orgs, audit) is in
//! `account.rs`.

use crate::api::{Ctx, guard, views};
use crate::db::audit::Entry;
use crate::db::orgs::{self, SignupMode};
use crate::db::sessions;
use crate::db::users::{self};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::{cookies, input, respond};
use crate::ids::{OrgId, SessionId};
use crate::session::login::{
    active_membership, email_verification_required, entry, finish_login, limit_ip,
    partial_response, password_login, second_factor_due, sign_up, tokens_response,
};
use crate::session::{self, Refreshed};
use crate::state::AppState;
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupRequest {
    email: String,
    password: String,
    name: Option<String>,
}

pub fn signup(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let org = guard::org(state, req)?;
    let body: SignupRequest = input::json(req, state.config.server.max_body_bytes)?;
    let done = sign_up(
        state,
        ctx,
        req,
        &org,
        &body.email,
        &body.password,
        body.name.as_deref(),
    )?;
    match done.issued {
        Some(issued) => Ok(tokens_response(
            state,
            201,
            &issued,
            &done.user,
            &done.membership,
        )),
        None if org.settings.require_2fa && org.settings.signup_mode != SignupMode::Domain => {
            let step = second_factor_due(&done.user, &org, &["pwd"])
                .unwrap_or(("setup_2fa", "requires2FASetup"));
            let mut resp =
                partial_response(state, ctx, req, &done.user, &org, &["pwd"], step, None, &[])?;
            resp.status_code = 201;
            Ok(resp)
        }
        None => Ok(respond::created(json!({
            "requiresEmailVerification": true,
            "user": views::user(&done.user),
            "membership": views::membership(&done.membership),
        }))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

pub fn login(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let org = guard::org(state, req)?;
    let body: LoginRequest = input::json(req, state.config.server.max_body_bytes)?;
    password_login(state, ctx, req, &org, &body.email, &body.password)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: Option<String>,
}

/// A refresh token from the body, else the cookie (then the CSRF rule applies).
fn refresh_token_of(
    state: &AppState,
    req: &Request,
    body: Option<String>,
) -> ApiResult<Option<String>> {
    if let Some(t) = body.filter(|t| !t.is_empty()) {
        return Ok(Some(t));
    }
    match input::cookie(req, cookies::REFRESH).filter(|t| !t.is_empty()) {
        Some(t) => {
            if !cookies::csrf_ok(&state.config, req) {
                return Err(ApiError::of(ErrorCode::CsrfFailed));
            }
            Ok(Some(t.to_string()))
        }
        None => Ok(None),
    }
}

pub fn refresh(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: RefreshRequest = input::json_or_default(req, state.config.server.max_body_bytes)?;
    let Some(token) = refresh_token_of(state, req, body.refresh_token)? else {
        return Err(ApiError::of(ErrorCode::InvalidRefreshToken)
            .with_message("A refresh token is required")
            .clearing_cookies());
    };
    if token.len() > 512 {
        return Err(ApiError::of(ErrorCode::InvalidRefreshToken)
            .with_message("Invalid refresh token")
            .clearing_cookies());
    }
    // The org of `X-Org-Slug` is looked up inside the job.
    let org_slug = match req.header("X-Org-Slug") {
        Some(_) => Some(guard::org_slug(req)?.to_string()),
        None => None,
    };
    // A token of no shape this server issues is refused without the write connection (after
    // the org of `X-Org-Slug`, as for any token).
    if !crate::db::sessions::may_be_refresh_token(&token) {
        if org_slug.is_some() {
            guard::org(state, req)?;
        }
        return Err(ApiError::of(ErrorCode::InvalidRefreshToken).clearing_cookies());
    }
    // The common case, a current token, is read and rotated on the write connection in a
    // group commit with concurrent refreshes; a token rotated before (grace window or
    // reuse) is decided in a change of its own, under the write lock.
    let job = session::RefreshJob::new(state, token, org_slug, ctx.now);
    let outcome = match state.refreshes.submit(&state.db, job)? {
        session::RefreshAnswer::Rotated(rotated) => Ok(Refreshed::Ok(rotated)),
        session::RefreshAnswer::Refused(e) => return Err(clear_on_401(e)),
        session::RefreshAnswer::NotCurrent(prepared) => state.change(ctx, req, |tx| {
            let prepared = *prepared;
            let out = session::refresh(tx, state, prepared, ctx.now)?;
            if let Refreshed::Reused { session } = &out {
                let data =
                    json!({ "session": { "id": session.id }, "user": { "id": session.user_id } });
                tx.emit_in(
                    &session.org_id,
                    "security.refresh_token_reused",
                    data.clone(),
                )?;
                let mut revoked = data;
                revoked["reason"] = json!("refresh_token_reused");
                tx.emit_in(&session.org_id, "session.revoked", revoked)?;
                tx.audit(
                    Entry::new(
                        Some(&session.org_id),
                        "system",
                        None,
                        "session.refresh_token_reused",
                        Some("session"),
                        Some(&session.id),
                    )
                    .with_metadata(json!({ "userId": session.user_id })),
                )?;
            }
            Ok(out)
        }),
    };
    match outcome.map_err(clear_on_401)? {
        Refreshed::Ok(r) => {
            let issued = r.issue(state, ctx.now)?;
            Ok(tokens_response(state, 200, &issued, &r.user, &r.membership))
        }
        Refreshed::Reused { .. } => {
            Err(ApiError::of(ErrorCode::RefreshTokenReused).clearing_cookies())
        }
    }
}

/// A refresh refused for its token (401) also ends the client's cookie session.
fn clear_on_401(e: ApiError) -> ApiError {
    if e.status() == 401 {
        e.clearing_cookies()
    } else {
        e
    }
}

pub fn logout(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: RefreshRequest = input::json_or_default(req, state.config.server.max_body_bytes)?;
    let cookie_auth = input::cookie(req, cookies::ACCESS).is_some()
        || input::cookie(req, cookies::REFRESH).is_some();
    if cookie_auth && input::bearer(req).is_none() && !cookies::csrf_ok(&state.config, req) {
        return Err(ApiError::of(ErrorCode::CsrfFailed));
    }
    // The session from the access token (even an expired one is fine to end), else from the
    // refresh token.
    let mut target: Option<(OrgId, SessionId)> = None;
    if let Some((token, _)) = guard::access_token(req) {
        let s = &state.config;
        // An expired (but genuine) token can still end its session.
        if let Ok(c) = state.keys.verify_ignoring_expiry(
            &state.db,
            token,
            &s.server.public_url,
            &s.tokens.audience,
            ctx.now,
        ) {
            target = Some((c.org_id, c.sid));
        }
    }
    if target.is_none() {
        let refresh = body
            .refresh_token
            .or_else(|| input::cookie(req, cookies::REFRESH).map(str::to_string));
        if let Some(t) = refresh.filter(|t| t.len() <= 512)
            && let Some(row) = state.db.read(|c| sessions::find_refresh(c, &t))?
        {
            target = Some((row.org_id, row.session_id));
        }
    }
    if let Some((org_id, sid)) = target {
        state.change(ctx, req, |tx| {
            if let Some(s) = sessions::find(tx, &org_id, &sid)?
                && sessions::revoke(tx, &s.id, "logout", ctx.now)?
            {
                tx.emit_in(
                    &org_id,
                    "user.logout",
                    json!({ "user": { "id": s.user_id }, "session": { "id": s.id } }),
                )?;
                tx.audit(Entry::new(
                    Some(&org_id),
                    "user",
                    Some(&s.user_id),
                    "user.logout",
                    Some("session"),
                    Some(&s.id),
                ))?;
            }
            Ok(())
        })?;
    }
    let mut resp = respond::ok(json!({ "message": "Logged out" }));
    cookies::clear_all(&mut resp, &state.config);
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AvailableRequest {
    email: String,
}

pub fn is_available(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    guard::org(state, req)?;
    let body: AvailableRequest = input::json(req, state.config.server.max_body_bytes)?;
    limit_ip(state, ctx, "available")?;
    let email = validate::email(&body.email)?;
    let taken = state
        .db
        .read(|c| users::find_by_email(c, &email))?
        .is_some();
    Ok(respond::ok(
        json!({ "available": !taken, "field": "email" }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwitchOrgRequest {
    org_slug: String,
    refresh_token: Option<String>,
}

/// A login into another org of the same account, proven by the current session's refresh
/// token (cookie or body), never by an access token alone (resource servers see those). The
/// target org's whole policy applies, exactly as a password login there: membership active,
/// the `domain` rule, and its 2FA requirement (`requires2FASetup`, or `requires2FA` when the
/// user has 2FA but this session never passed it). The current session stays.
pub fn switch_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: SwitchOrgRequest = input::json(req, state.config.server.max_body_bytes)?;
    let Some(token) = refresh_token_of(state, req, body.refresh_token)? else {
        return Err(ApiError::unauthenticated(
            "Switching organizations needs the session's refresh token (the refresh_token \
             cookie or body refreshToken); an access token alone is not enough",
        ));
    };
    let (current, user, from) = state
        .db
        .read(|c| session::current_by_refresh(c, &token, ctx.now))?;
    if let Some(slug) = req.header("X-Org-Slug").map(str::trim)
        && !slug.is_empty()
        && slug != from.slug
    {
        return Err(ApiError::of(ErrorCode::OrgMismatch)
            .with_message("The refresh token belongs to another organization than X-Org-Slug"));
    }
    let target = state
        .db
        .read(|c| orgs::find_by_slug(c, body.org_slug.trim()))?
        .ok_or_else(ApiError::org_not_found)?;
    let membership = active_membership(state, &target, &user)?;
    if target.settings.signup_mode == SignupMode::Domain && !user.email_verified {
        return Err(email_verification_required());
    }
    state.change(ctx, req, |tx| {
        // The target org's trail names no other org (nor its session).
        Ok(tx.audit(entry(&target, &user, "user.switch_org"))?)
    })?;
    let amr: Vec<&str> = current.auth_methods.iter().map(String::as_str).collect();
    finish_login(state, ctx, req, &user, &target, &membership, &amr, &[])
}
