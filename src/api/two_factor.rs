//! Two-factor authentication (API.md §3, TOTP): enrollment, enabling (which also completes a
//! `requires2FASetup` login), disabling, status, backup codes, and the second login step.

use crate::api::{Ctx, guard};
use crate::change::Change;
use crate::crypto;
use crate::db::orgs::Org;
use crate::db::two_factor::{self as tf, Partial};
use crate::db::users::{self, Membership, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::flows::invite;
use crate::flows::two_factor::{
    Enroller, MAX_WRONG_CODES, begin_enrolment, check_budget, check_code, disable_with_code,
    enable_with_code, invalid_code, regenerate_backup_codes,
};
use crate::http::{cookies, input, respond};
use crate::session::login::{entry, finish_login_session, tokens_json};
use crate::state::AppState;
use crate::status::UserStatus;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;

fn partial_of<'a>(req: &'a Request, body: &'a Option<String>) -> Option<&'a str> {
    body.as_deref()
        .filter(|t| !t.is_empty())
        .or_else(|| input::cookie(req, cookies::PARTIAL).filter(|t| !t.is_empty()))
}

/// Loads a usable partial token of `purpose` for the org of `X-Org-Slug`.
fn load_partial(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    token: &str,
    purpose: &str,
) -> ApiResult<(Partial, Org, User, Option<Membership>)> {
    let org = guard::org(state, req)?;
    let bad = || ApiError::invalid_token("Invalid, expired or used partial token");
    if token.len() > 512 {
        return Err(bad());
    }
    let (partial, user, membership) = state.db.read(|c| {
        let p = tf::find_partial(c, &crypto::token_hash(token))?;
        let user = match &p {
            Some(p) => users::find_by_id(c, &p.user_id)?,
            None => None,
        };
        let m = match &p {
            Some(p) => users::find_membership(c, &p.org_id, &p.user_id)?,
            None => None,
        };
        Ok::<_, ApiError>((p, user, m))
    })?;
    let partial = partial
        .filter(|p| p.is_usable(ctx.now) && p.purpose == purpose)
        .ok_or_else(bad)?;
    if partial.org_id != org.id {
        return Err(ApiError::of(ErrorCode::OrgMismatch)
            .with_message("The partial token belongs to another organization"));
    }
    let user = user
        .filter(|u| u.status == UserStatus::Active)
        .ok_or_else(bad)?;
    // A login that accepts an invitation has no membership yet: it is made at the end.
    let membership = match membership {
        Some(m) if guard::is_active(&m) && partial.invitation_id.is_none() => Some(m),
        None if partial.invitation_id.is_some() => None,
        _ => return Err(bad()),
    };
    Ok((partial, org, user, membership))
}

/// The membership a completed second factor signs into, inside `tx`: the loaded one, or the
/// one made now by the invitation the partial token carries.
fn membership_at_end(
    tx: &Change,
    ctx: &Ctx,
    req: &Request,
    partial: &Partial,
    org: &Org,
    user: &User,
    loaded: Option<&Membership>,
) -> ApiResult<Membership> {
    match (&partial.invitation_id, loaded) {
        (Some(inv), _) => invite::join_after_login(tx, ctx, req, inv, org, user),
        (None, Some(m)) => Ok(m.clone()),
        (None, None) => Err(ApiError::invalid_token(
            "Invalid, expired or used partial token",
        )),
    }
}

fn enroller(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    body_partial: &Option<String>,
) -> ApiResult<Enroller> {
    if guard::access_token(req).is_some() {
        return Ok(Enroller::Signed(Box::new(guard::user(state, ctx, req)?)));
    }
    match partial_of(req, body_partial) {
        Some(t) => {
            let (partial, org, user, membership) = load_partial(state, ctx, req, t, "setup_2fa")?;
            Ok(Enroller::Partial {
                partial: Box::new(partial),
                org: Box::new(org),
                user: Box::new(user),
                membership: membership.map(Box::new),
            })
        }
        None => Err(ApiError::unauthenticated("Authentication required")),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupRequest {
    partial_token: Option<String>,
}

pub fn setup(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: SetupRequest = input::json_or_default(req, state.config.server.max_body_bytes)?;
    let who = enroller(state, ctx, req, &body.partial_token)?;
    let e = begin_enrolment(state, ctx, who.user(), &who.org().name)?;
    Ok(respond::ok(json!({
        "secret": e.secret,
        "otpauthUrl": e.otpauth_url,
        "qrSvg": e.qr_svg,
    })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodeRequest {
    code: Option<String>,
    partial_token: Option<String>,
}

pub fn enable(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: CodeRequest = input::json(req, state.config.server.max_body_bytes)?;
    let who = enroller(state, ctx, req, &body.partial_token)?;
    let code = body.code.unwrap_or_default();
    let user = who.user().clone();
    let org = who.org().clone();
    let codes = enable_with_code(state, ctx, req, &user, Some(&org), &code)?;
    match who {
        Enroller::Signed(_) => Ok(respond::ok(json!({ "backupCodes": codes }))),
        Enroller::Partial {
            partial,
            membership,
            ..
        } => {
            // Enrollment completes the login that required it.
            let mut user = user;
            user.two_factor_enabled = true;
            let mut amr: Vec<&str> = partial.auth_methods.iter().map(String::as_str).collect();
            amr.push("otp");
            let (issued, membership) = state.change(ctx, req, |tx| {
                tf::use_partial(tx, &partial.token_hash, ctx.now)?;
                let m =
                    membership_at_end(tx, ctx, req, &partial, &org, &user, membership.as_deref())?;
                let issued = finish_login_session(tx, state, ctx, req, &user, &org, &m, &amr)?;
                Ok((issued, m))
            })?;
            let mut data = tokens_json(state, &issued, &user, &membership);
            data["backupCodes"] = json!(codes);
            let mut resp = respond::ok(data);
            cookies::set_session(
                &mut resp,
                &state.config,
                &issued.access_token,
                &issued.refresh_token,
            );
            Ok(resp)
        }
    }
}

pub fn disable(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let body: CodeRequest = input::json(req, state.config.server.max_body_bytes)?;
    let code = body.code.unwrap_or_default();
    disable_with_code(state, ctx, req, &me.user, Some(&me.org), &code)?;
    Ok(respond::ok(
        json!({ "message": "Two-factor authentication disabled" }),
    ))
}

pub fn status(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let remaining = state
        .db
        .read(|c| tf::backup_codes_remaining(c, &me.user.id))?;
    let enabled = me.user.two_factor_enabled;
    Ok(respond::ok(json!({
        "enabled": enabled,
        "method": if enabled { "totp" } else { "" },
        "backupCodesRemaining": if enabled { remaining } else { 0 },
    })))
}

pub fn backup_codes(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let body: CodeRequest = input::json(req, state.config.server.max_body_bytes)?;
    let code = body.code.unwrap_or_default();
    let codes = regenerate_backup_codes(state, ctx, req, &me.user, Some(&me.org), &code)?;
    Ok(respond::ok(json!({ "backupCodes": codes })))
}

enum Step {
    Done(Box<(crate::session::Issued, Membership)>),
    Wrong,
    Burned,
}

pub fn verify(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: CodeRequest = input::json(req, state.config.server.max_body_bytes)?;
    let token = partial_of(req, &body.partial_token)
        .ok_or_else(|| ApiError::invalid_token("A partial token is required"))?
        .to_string();
    let code = body
        .code
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ApiError::field(ErrorCode::InvalidToken, "code", "is required"))?;
    let (partial, org, mut user, membership) = load_partial(state, ctx, req, &token, "verify_2fa")?;
    let attempt = check_budget(state, ctx, &user.id)?;
    let outcome = state.change(ctx, req, |tx| {
        // Re-read inside the write lock: concurrent attempts serialize here.
        let p = tf::find_partial(tx, &partial.token_hash)?
            .filter(|p| p.is_usable(ctx.now))
            .ok_or_else(|| ApiError::invalid_token("Invalid, expired or used partial token"))?;
        if !check_code(tx, state, &user.id, code.trim(), ctx.now)? {
            let n = tf::fail_partial(tx, &p.token_hash)?;
            let mut e = entry(&org, &user, "user.2fa_failed");
            e.actor_type = "anonymous";
            e.actor_id = None;
            tx.audit(e)?;
            if n >= MAX_WRONG_CODES {
                tf::use_partial(tx, &p.token_hash, ctx.now)?;
                return Ok(Step::Burned);
            }
            return Ok(Step::Wrong);
        }
        tf::use_partial(tx, &p.token_hash, ctx.now)?;
        let mut amr: Vec<&str> = p.auth_methods.iter().map(String::as_str).collect();
        amr.push("otp");
        let m = membership_at_end(tx, ctx, req, &p, &org, &user, membership.as_ref())?;
        let issued = finish_login_session(tx, state, ctx, req, &user, &org, &m, &amr)?;
        Ok(Step::Done(Box::new((issued, m))))
    })?;
    if matches!(outcome, Step::Wrong | Step::Burned) {
        attempt.wrong(ctx.now);
    }
    match outcome {
        Step::Wrong => Err(invalid_code()),
        Step::Burned => {
            Err(ApiError::rate_limited(1).with_detail("partial token burned after 5 wrong codes"))
        }
        Step::Done(done) => {
            let (issued, membership) = *done;
            user.two_factor_enabled = true;
            let mut resp = respond::ok(tokens_json(state, &issued, &user, &membership));
            cookies::set_session(
                &mut resp,
                &state.config,
                &issued.access_token,
                &issued.refresh_token,
            );
            Ok(resp)
        }
    }
}
