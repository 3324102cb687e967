//! The email flows of API.md §3: forgot/reset password, email verification (POST and the
//! GET link), magic links. Requests that name an email always answer 200 whether or not an
//! account exists; the mail itself goes through the outbox in the same transaction.

use crate::api::auth::{entry, finish_login};
use crate::api::{Ctx, guard, links, views};
use crate::app::AppState;
use crate::change::Change;
use crate::crypto;
use crate::db::Tx;
use crate::db::email_tokens::{self, EmailToken};
use crate::db::orgs::{self, Org};
use crate::db::users::{self, User};
use crate::db::{sessions, two_factor};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events::{self, Email, html_escape};
use crate::http::{input, respond};
use crate::password;
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;

const MINUTE: i64 = 60_000;
const RESET_TTL: i64 = 30 * MINUTE;
const VERIFY_TTL: i64 = 24 * 60 * MINUTE;
const MAGIC_TTL: i64 = 15 * MINUTE;

/// The per-email and per-IP hourly limits shared by the three sending endpoints.
fn limit(state: &AppState, ctx: &Ctx, action: &str, email: &str) -> ApiResult<()> {
    let sec = &state.config.security;
    let hour = 60 * MINUTE;
    state
        .limiter
        .hit(
            &format!("{action}:ip:{}", crate::ratelimit::client_key(&ctx.ip)),
            sec.email_ip_per_hour,
            hour,
            ctx.now,
        )
        .map_err(ApiError::rate_limited)?;
    state
        .limiter
        .hit(
            &format!("{action}:email:{email}"),
            sec.email_per_hour,
            hour,
            ctx.now,
        )
        .map_err(ApiError::rate_limited)
}

/// The email of `kind` for `to`, from the `email.txt` / `email.html` templates in the
/// request's language, branded with the org.
fn mail(state: &AppState, to: &str, org: &Org, kind: &str, url: &str) -> Email {
    let lang = crate::ui::templates::request_lang();
    let vars = json!({ "logo_url": org.logo_url });
    match state.ui.email(kind, lang, &org.name, url, vars) {
        Ok(m) => Email::rendered(to, m),
        // An override that fails at render time (it compiled at load): the plain message.
        Err(_) => Email {
            to: to.to_string(),
            subject: format!("{kind} — {}", org.name),
            text: format!("{url}\n"),
            html: format!(
                "<p><a href=\"{}\">{}</a></p>",
                html_escape(url),
                html_escape(url)
            ),
        },
    }
}

/// Issues a token of `purpose` for the user and queues its email, inside `tx`.
#[allow(clippy::too_many_arguments)]
fn send_token(
    tx: &Change,
    org: &Org,
    user: &User,
    purpose: &str,
    ttl: i64,
    url_of: impl Fn(&str) -> String,
    compose: impl Fn(&str) -> Email,
    now: i64,
) -> crate::db::Result<()> {
    let token = crypto::random_token(32);
    email_tokens::insert(
        tx,
        &crypto::token_hash(&token),
        purpose,
        &user.id,
        Some(&org.id),
        &user.email,
        now,
        now + ttl,
    )?;
    let url = url_of(&token);
    tx.email(Some(&org.id), &compose(&url))?;
    Ok(())
}

/// The user behind an email who belongs to the org (any membership status for reset and
/// verification; magic links need an active one), if any.
fn member_by_email(
    conn: &Tx,
    org: &Org,
    email: &str,
    active_only: bool,
) -> ApiResult<Option<User>> {
    let Some(user) = users::find_by_email(conn, email)?.filter(|u| u.status == "active") else {
        return Ok(None);
    };
    let m = users::find_membership(conn, &org.id, &user.id)?;
    Ok(m.filter(|m| !active_only || guard::is_active(m))
        .map(|_| user))
}

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

/// The org an account-wide email flow runs in: the one named, else (a hosted page that names
/// none) the first org the account is an active member of.
fn org_for(conn: &Tx, named: Option<&Org>, email: &str) -> ApiResult<Option<Org>> {
    if let Some(o) = named {
        return Ok(Some(o.clone()));
    }
    let Some(user) = users::find_by_email(conn, email)? else {
        return Ok(None);
    };
    for (m, org) in users::memberships_of(conn, &user.id)? {
        if guard::is_active(&m) {
            return Ok(Some(org));
        }
    }
    Ok(None)
}

/// Forgot-password, shared by the API and the hosted page: the limits, then (only for an
/// account that is a member of the org) a reset link to Latchkey's own page. The caller always
/// answers the same.
pub fn send_reset(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    org: Option<&Org>,
    email: &str,
) -> ApiResult<()> {
    limit(state, ctx, "forgot", email)?;
    let base = state
        .config
        .email_link_base()
        .trim_end_matches('/')
        .to_string();
    state.change(ctx, req, |tx| {
        let Some(org) = org_for(tx, org, email)? else {
            return Ok(());
        };
        if let Some(user) = member_by_email(tx, &org, email, false)? {
            send_token(
                tx,
                &org,
                &user,
                "password_reset",
                RESET_TTL,
                |t| format!("{base}/reset-password?token={t}"),
                |url| mail(state, &user.email, &org, "reset", url),
                ctx.now,
            )?;
            tx.audit(entry(&org, &user, "user.password_reset_requested"))?;
        }
        Ok(())
    })
}

/// The usable token of `purpose` and its org; 400 `invalid_token` otherwise, 403 when an
/// `X-Org-Slug` names another org.
fn token_of(
    conn: &Tx,
    req: &Request,
    token: &str,
    purpose: &str,
    now: i64,
) -> ApiResult<(EmailToken, Org, User)> {
    let bad = || ApiError::invalid_token("Invalid, expired or already used token");
    if token.is_empty() || token.len() > 512 {
        return Err(bad());
    }
    let t = email_tokens::find_usable(conn, &crypto::token_hash(token), purpose, now)?
        .ok_or_else(bad)?;
    let org = match &t.org_id {
        Some(id) => orgs::find_by_id(conn, id)?.ok_or_else(bad)?,
        None => return Err(bad()),
    };
    if let Some(slug) = req.header("X-Org-Slug")
        && slug.trim() != org.slug
    {
        return Err(ApiError::of(ErrorCode::OrgMismatch)
            .with_message("The token belongs to another organization"));
    }
    let user = users::find_by_id(conn, &t.user_id)?
        .filter(|u| u.status == "active" && u.email == t.email)
        .ok_or_else(bad)?;
    Ok((t, org, user))
}

/// The mailbox's owner takes over an account whose address was never verified (a reset or a
/// magic link): whatever second factor its creator enrolled is removed, and it is audited.
fn claim_unverified(
    tx: &Change,
    ctx: &Ctx,
    _req: &Request,
    org: &Org,
    user: &User,
    via: &str,
) -> ApiResult<()> {
    two_factor::disable(tx, &user.id)?;
    two_factor::burn_partials(tx, &user.id, ctx.now)?;
    let mut e = entry(org, user, "user.email_claimed");
    e.metadata = json!({ "via": via, "passwordCleared": via == "magic_link" });
    tx.audit(e)?;
    Ok(())
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

/// Whether a reset, magic-link or verification token is usable now (read only: a hosted
/// page's GET shows its button only for a live token, and spends nothing).
pub fn token_is_usable(state: &AppState, token: &str, purpose: &str, now: i64) -> bool {
    token.len() <= 512
        && state
            .db
            .read(|c| email_tokens::find_usable(c, &crypto::token_hash(token), purpose, now))
            .ok()
            .flatten()
            .is_some()
}

/// The org and user of a usable token of `purpose` (read only, for a hosted page's GET).
pub fn token_owner(
    state: &AppState,
    req: &Request,
    token: &str,
    purpose: &str,
    now: i64,
) -> ApiResult<(Org, User)> {
    let (_, org, user) = state.db.read(|c| token_of(c, req, token, purpose, now))?;
    Ok((org, user))
}

/// Spends a reset token and sets the new password (API and hosted page): every session ends,
/// the email counts as verified, the lockouts are lifted. Returns the org and user.
pub fn reset_with_token(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    token: &str,
    new_password: &str,
    field: &str,
) -> ApiResult<(Org, User)> {
    let (_, org, _) = state
        .db
        .read(|c| token_of(c, req, token, "password_reset", ctx.now))?;
    password::check_policy(
        &state.config.password,
        org.settings.password_min_length,
        field,
        new_password,
    )?;
    let hash = state.hasher.hash(new_password)?;
    let (org, user) = state.change(ctx, req, |tx| {
        let (t, org, user) = token_of(tx, req, token, "password_reset", ctx.now)?;
        if !email_tokens::use_token(tx, &t.token_hash, ctx.now)? {
            return Err(ApiError::invalid_token(
                "Invalid, expired or already used token",
            ));
        }
        email_tokens::burn_all(tx, &user.id, "password_reset", ctx.now)?;
        users::set_password_hash(tx, &user.id, &hash, ctx.now)?;
        two_factor::burn_partials(tx, &user.id, ctx.now)?;
        if !user.email_verified {
            // The address was never proven, so whoever set up the account may not own it;
            // the clicker does. Their second factor goes with their password.
            claim_unverified(tx, ctx, req, &org, &user, "password_reset")?;
        }
        // Following the link proves the address.
        users::set_email_verified(tx, &user.id, ctx.now)?;
        let revoked = sessions::revoke_all_for_user(tx, &user.id, None, "password_reset", ctx.now)?;
        tx.sessions_revoked(
            &revoked,
            events::who(&user.id, &user.email),
            "password_reset",
        )?;
        tx.emit(
            Some(&org),
            "user.password_reset",
            json!({ "user": { "id": user.id, "email": user.email } }),
        )?;
        let mut e = entry(&org, &user, "user.password_reset");
        e.metadata = json!({ "sessionsRevoked": revoked.len() });
        tx.audit(e)?;
        Ok((org, user))
    })?;
    crate::api::auth::clear_login_locks(state, &user.email);
    Ok((org, user))
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

/// Issues a verification token for `user` and queues its email, inside `tx`. The link goes
/// to the deployment's own page (`/verify-email`), never to an org's host.
pub fn queue_verification(
    tx: &Change,
    state: &AppState,
    org: &Org,
    user: &User,
    now: i64,
) -> crate::db::Result<()> {
    let link = format!(
        "{}/verify-email",
        state.config.email_link_base().trim_end_matches('/')
    );
    send_token(
        tx,
        org,
        user,
        "verify_email",
        VERIFY_TTL,
        |t| format!("{link}?token={t}"),
        |url| mail(state, &user.email, org, "verify", url),
        now,
    )
}

/// Marks the email of a verification token verified; returns the org and user.
pub fn confirm_email(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    token: &str,
) -> ApiResult<(Org, User)> {
    state.change(ctx, req, |tx| {
        let (t, org, mut user) = token_of(tx, req, token, "verify_email", ctx.now)?;
        if !email_tokens::use_token(tx, &t.token_hash, ctx.now)? {
            return Err(ApiError::invalid_token(
                "Invalid, expired or already used token",
            ));
        }
        users::set_email_verified(tx, &user.id, ctx.now)?;
        user.email_verified = true;
        tx.emit(
            Some(&org),
            "user.email_verified",
            json!({ "user": { "id": user.id, "email": user.email } }),
        )?;
        tx.audit(entry(&org, &user, "user.email_verified"))?;
        Ok((org, user))
    })
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

/// Magic-link request, shared by the API and the hosted login page: the limits, then (for an
/// active member of the org) a link to Latchkey's `/magic-link` page. Always the same answer.
pub fn send_magic_link(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    org: Option<&Org>,
    email: &str,
) -> ApiResult<()> {
    limit(state, ctx, "magic", email)?;
    let base = state
        .config
        .email_link_base()
        .trim_end_matches('/')
        .to_string();
    state.change(ctx, req, |tx| {
        let Some(org) = org_for(tx, org, email)? else {
            return Ok(());
        };
        if let Some(user) = member_by_email(tx, &org, email, true)? {
            send_token(
                tx,
                &org,
                &user,
                "magic_link",
                MAGIC_TTL,
                |t| format!("{base}/magic-link?token={t}"),
                |url| mail(state, &user.email, &org, "magic_link", url),
                ctx.now,
            )?;
        }
        Ok(())
    })
}

pub fn magic_link_verify(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: TokenRequest = input::json(req, state.config.server.max_body_bytes)?;
    let (org, user, membership) = spend_magic_link(state, ctx, req, &body.token)?;
    finish_login(state, ctx, req, &user, &org, &membership, &["email"], &[])
}

/// Spends a magic-link token (API and hosted page): the org, the user and their active
/// membership. On a never-verified account the clicker takes it over (see the docs).
pub fn spend_magic_link(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    token: &str,
) -> ApiResult<(Org, User, crate::db::users::Membership)> {
    let (org, user, membership) = state.change(ctx, req, |tx| {
        let (t, org, mut user) = token_of(tx, req, token, "magic_link", ctx.now)?;
        let m = guard::active_membership(users::find_membership(tx, &org.id, &user.id)?)?;
        if !email_tokens::use_token(tx, &t.token_hash, ctx.now)? {
            return Err(ApiError::invalid_token(
                "Invalid, expired or already used token",
            ));
        }
        if !user.email_verified {
            // Pre-account takeover: someone may have signed up with this address and kept a
            // password. The clicker owns the mailbox, so the account is theirs: every other
            // session ends, the password and any second factor are cleared.
            let revoked =
                sessions::revoke_all_for_user(tx, &user.id, None, "email_claimed", ctx.now)?;
            tx.sessions_revoked(
                &revoked,
                events::who(&user.id, &user.email),
                "email_claimed",
            )?;
            users::clear_password(tx, &user.id, ctx.now)?;
            claim_unverified(tx, ctx, req, &org, &user, "magic_link")?;
            user.password_hash = None;
            user.two_factor_enabled = false;
            users::set_email_verified(tx, &user.id, ctx.now)?;
            user.email_verified = true;
        }
        Ok((org, user, m))
    })?;
    crate::api::auth::clear_login_locks(state, &user.email);
    Ok((org, user, membership))
}
