//! The email flows of API.md §3: forgot/reset password, email verification (POST and the
//! GET link), magic links. Requests that name an email always answer 200 whether or not an
//! account exists; the mail itself goes through the outbox in the same transaction.

use crate::api::{Ctx, guard, links, views};
use crate::crypto;
use crate::db::email_tokens::{self};
use crate::db::orgs::{self};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::flows::email::{
    confirm_email, limit, member_by_email, queue_verification, reset_with_token, send_magic_link,
    send_reset, spend_magic_link,
};
use crate::http::{input, respond};
use crate::session::login::finish_login;
use crate::state::AppState;
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailRequest {
    email: String,
}

const SENT: &str = "If an account exists for that email, a message is on its way";

pub fn forgot_password(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let org = guard::org(state, req)?;
    let body: EmailRequest = input::json(req, state.config.server.max_body_bytes)?;
    let email = validate::email(&body.email)?;
    send_reset(state, ctx, req, Some(&org), &email)?;
    Ok(respond::ok(json!({ "message": SENT })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetRequest {
    token: String,
    new_password: String,
}

pub fn reset_password(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: ResetRequest = input::json(req, state.config.server.max_body_bytes)?;
    reset_with_token(
        state,
        ctx,
        req,
        &body.token,
        &body.new_password,
        "newPassword",
    )?;
    Ok(respond::ok(
        json!({ "message": "Password reset; please sign in again" }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifySendRequest {
    email: Option<String>,
}

pub fn verify_email_send(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: VerifySendRequest = input::json_or_default(req, state.config.server.max_body_bytes)?;
    // Signed in: the caller's own address. Otherwise the address given.
    let (org, target_email) = if guard::access_token(req).is_some() && body.email.is_none() {
        let me = guard::user(state, ctx, req)?;
        if me.user.email_verified {
            return Ok(respond::ok(
                json!({ "message": "Email is already verified" }),
            ));
        }
        (me.org, me.user.email)
    } else {
        let org = guard::org(state, req)?;
        let email = body
            .email
            .ok_or_else(|| ApiError::field(ErrorCode::InvalidRequest, "email", "is required"))?;
        (org, validate::email(&email)?)
    };
    limit(state, ctx, "verify", &target_email)?;
    state.change(ctx, req, |tx| {
        if let Some(user) =
            member_by_email(tx, &org, &target_email, false)?.filter(|u| !u.email_verified)
        {
            queue_verification(tx, state, &org, &user, ctx.now)?;
        }
        Ok(())
    })?;
    Ok(respond::ok(json!({ "message": SENT })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    token: String,
}

pub fn verify_email(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: TokenRequest = input::json(req, state.config.server.max_body_bytes)?;
    let (_, user) = confirm_email(state, ctx, req, &body.token)?;
    Ok(respond::ok(
        json!({ "message": "Email verified", "user": views::user(&user) }),
    ))
}

/// The link in the email: redirects to the org's app (`?status=success|error`) when it has
/// one, else answers like the POST.
pub fn verify_email_link(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let token = input::query(req, "token").unwrap_or_default();
    // Find the org first, so a failure can still be sent back to its app.
    let org = state.db.read(|c| {
        let t = email_tokens::find_usable(c, &crypto::token_hash(&token), "verify_email", ctx.now)?;
        match t.and_then(|t| t.org_id) {
            Some(id) => Ok::<_, ApiError>(orgs::find_by_id(c, &id)?),
            None => Ok(None),
        }
    })?;
    let result = confirm_email(state, ctx, req, &token);
    match org
        .as_ref()
        .and_then(|o| links::trusted_app_url(state, o))
        .map(str::to_string)
    {
        Some(app) => {
            let status = if result.is_ok() { "success" } else { "error" };
            let sep = if app.contains('?') { '&' } else { '?' };
            Ok(Response::redirect_303(format!("{app}{sep}status={status}")))
        }
        None => {
            let (_, user) = result?;
            Ok(respond::ok(
                json!({ "message": "Email verified", "user": views::user(&user) }),
            ))
        }
    }
}

pub fn magic_link(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let org = guard::org(state, req)?;
    let body: EmailRequest = input::json(req, state.config.server.max_body_bytes)?;
    let email = validate::email(&body.email)?;
    send_magic_link(state, ctx, req, Some(&org), &email)?;
    Ok(respond::ok(json!({ "message": SENT })))
}

pub fn magic_link_verify(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: TokenRequest = input::json(req, state.config.server.max_body_bytes)?;
    let (org, user, membership) = spend_magic_link(state, ctx, req, &body.token)?;
    finish_login(state, ctx, req, &user, &org, &membership, &["email"], &[])
}
