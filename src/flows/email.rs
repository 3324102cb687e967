//! The email flows, shared by the JSON API and the hosted pages: password reset, email
//! verification and magic links — their single-use tokens (stored as hashes), their emails
//! (always the same answer, whether or not an account exists) and spending them.

use crate::api::{Ctx, guard};
use crate::change::Change;
use crate::crypto;
use crate::db::Tx;
use crate::db::email_tokens::{self, EmailToken};
use crate::db::orgs::{self, Org};
use crate::db::users::{self, User};
use crate::db::{sessions, two_factor};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events::{self, Email, html_escape};
use crate::password;
use crate::session::login;
use crate::session::login::entry;
use crate::state::AppState;
use crate::status::UserStatus;
use rouille::Request;
use serde_json::json;

const MINUTE: i64 = 60_000;

const RESET_TTL: i64 = 30 * MINUTE;

const VERIFY_TTL: i64 = 24 * 60 * MINUTE;

const MAGIC_TTL: i64 = 15 * MINUTE;

/// The per-email and per-IP hourly limits shared by the three sending endpoints.
pub(crate) fn limit(state: &AppState, ctx: &Ctx, action: &str, email: &str) -> ApiResult<()> {
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
pub(crate) fn member_by_email(
    conn: &Tx,
    org: &Org,
    email: &str,
    active_only: bool,
) -> ApiResult<Option<User>> {
    let Some(user) = users::find_by_email(conn, email)?.filter(|u| u.status == UserStatus::Active)
    else {
        return Ok(None);
    };
    let m = users::find_membership(conn, &org.id, &user.id)?;
    Ok(m.filter(|m| !active_only || guard::is_active(m))
        .map(|_| user))
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
        .filter(|u| u.status == UserStatus::Active && u.email == t.email)
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
    login::clear_login_locks(state, &user.email);
    Ok((org, user))
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
    login::clear_login_locks(state, &user.email);
    Ok((org, user, membership))
}
