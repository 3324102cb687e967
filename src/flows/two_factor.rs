//! TOTP two-factor authentication, shared by the JSON API and the hosted pages: enrolment,
//! enabling and disabling with a code, backup codes, and the sign-in code check — every code
//! check under one per-account budget.

use crate::api::{Ctx, guard};
use crate::crypto;
use crate::db::Tx;
use crate::db::orgs::Org;
use crate::db::two_factor::{self as tf, Partial};
use crate::db::users::{Membership, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events;
use crate::ids::UserId;
use crate::ratelimit::{Attempt, Budget};
use crate::state::AppState;
use crate::totp;
use rouille::Request;
use serde_json::json;
use std::cell::RefCell;

/// Wrong codes a partial token survives; the next one burns it.
pub(crate) const MAX_WRONG_CODES: i64 = 5;

fn seal_key(state: &AppState) -> [u8; 32] {
    crypto::derive_key(state.secret(), "totp-secret")
}

/// The account-wide budget of wrong codes (API.md §10): every place a code is checked draws
/// on it, so partial tokens, `/2fa/disable` and `/2fa/backup-codes` together allow
/// `second_factor_max_failures` guesses per `second_factor_window`.
pub fn failure_key(user_id: &UserId) -> String {
    format!("2fa:{user_id}")
}

/// Begins a code check against the user's budget of wrong codes: 429 while it is spent, or
/// while as many checks are in flight as wrong codes are left (concurrent guesses cannot
/// exceed it). [`CodeAttempt::wrong`] counts a wrong code; otherwise it frees itself.
pub(crate) fn check_budget<'a>(
    state: &'a AppState,
    ctx: &Ctx,
    user_id: &UserId,
) -> ApiResult<CodeAttempt<'a>> {
    let sec = &state.config.security;
    let window = sec.second_factor_window.as_millis() as i64;
    let budget = Budget {
        key: failure_key(user_id),
        max: sec.second_factor_max_failures,
        window_ms: window,
        lockout_ms: window,
    };
    state
        .limiter
        .attempt(vec![budget], ctx.now)
        .map(|a| CodeAttempt(RefCell::new(Some(a))))
        .map_err(ApiError::rate_limited)
}

/// A code check in flight (see [`check_budget`]).
pub(crate) struct CodeAttempt<'a>(RefCell<Option<Attempt<'a>>>);

impl CodeAttempt<'_> {
    /// The code was wrong: it counts against the budget.
    pub(crate) fn wrong(&self, now: i64) {
        if let Some(a) = self.0.borrow_mut().take() {
            a.failed(now);
        }
    }
}

pub(crate) fn invalid_code() -> ApiError {
    ApiError::of(ErrorCode::InvalidCode)
}

/// Who is enrolling: a signed-in user, or the partial token of a `requires2FASetup` login.
pub(crate) enum Enroller {
    Signed(Box<guard::UserCtx>),
    Partial {
        partial: Box<Partial>,
        org: Box<Org>,
        user: Box<User>,
        membership: Option<Box<Membership>>,
    },
}

impl Enroller {
    pub(crate) fn user(&self) -> &User {
        match self {
            Enroller::Signed(u) => &u.user,
            Enroller::Partial { user, .. } => user,
        }
    }
    pub(crate) fn org(&self) -> &Org {
        match self {
            Enroller::Signed(u) => &u.org,
            Enroller::Partial { org, .. } => org,
        }
    }
}

/// A pending TOTP secret, as an authenticator app reads it.
pub struct Enrolment {
    pub secret: String,
    pub otpauth_url: String,
    pub qr_svg: String,
}

/// Stores a new pending TOTP secret for `user` (API and hosted pages); 409 when 2FA is on.
/// `issuer` names the account in the authenticator app.
pub fn begin_enrolment(
    state: &AppState,
    ctx: &Ctx,
    user: &User,
    issuer: &str,
) -> ApiResult<Enrolment> {
    let secret = crypto::random_bytes(totp::SECRET_BYTES);
    let sealed = crypto::seal(&seal_key(state), &secret, user.id.as_bytes());
    state.db.write(|tx| {
        if tf::totp(tx, &user.id)?.is_some_and(|t| t.enabled_at.is_some()) {
            return Err(ApiError::already_exists(
                "Two-factor authentication is already enabled",
            ));
        }
        tf::put_pending(tx, &user.id, &sealed, ctx.now)?;
        Ok(())
    })?;
    let url = totp::otpauth_url(issuer, &user.email, &secret);
    Ok(Enrolment {
        secret: totp::base32(&secret),
        qr_svg: totp::qr_svg(&url),
        otpauth_url: url,
    })
}

fn new_backup_codes(tx: &Tx, user_id: &UserId, now: i64) -> crate::db::Result<Vec<String>> {
    let codes = totp::new_backup_codes();
    let hashes: Vec<String> = codes.iter().map(|c| totp::backup_code_hash(c)).collect();
    tf::replace_backup_codes(tx, user_id, &hashes, now)?;
    Ok(codes)
}

/// Turns 2FA on with the first code of the pending secret (API and hosted pages); answers the
/// backup codes. The code draws on the account's budget of wrong codes.
pub fn enable_with_code(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    user: &User,
    org: Option<&Org>,
    code: &str,
) -> ApiResult<Vec<String>> {
    let key = seal_key(state);
    let attempt = check_budget(state, ctx, &user.id)?;
    state.change(ctx, req, |tx| {
        let row = tf::totp(tx, &user.id)?
            .ok_or_else(|| ApiError::invalid_request("Call /auth/2fa/setup first"))?;
        if row.enabled_at.is_some() {
            return Err(ApiError::already_exists(
                "Two-factor authentication is already enabled",
            ));
        }
        let secret = crypto::open(&key, &row.secret_enc, user.id.as_bytes())
            .ok_or_else(|| ApiError::internal("TOTP secret cannot be opened"))?;
        let Some(step) = totp::verify(&secret, code, ctx.now / 1000, None) else {
            attempt.wrong(ctx.now);
            return Err(invalid_code());
        };
        tf::enable(tx, &user.id, step, ctx.now)?;
        let codes = new_backup_codes(tx, &user.id, ctx.now)?;
        tx.audit(user_entry(org, user, "user.2fa_enabled"))?;
        tx.emit(
            org,
            "user.2fa_enabled",
            json!({ "user": events::who(&user.id, &user.email) }),
        )?;
        Ok(codes)
    })
}

/// An audit entry of the user acting on themselves, in `org` or (hosted pages) deployment-wide.
fn user_entry<'a>(
    org: Option<&'a Org>,
    user: &'a User,
    action: &'a str,
) -> crate::db::audit::Entry<'a> {
    crate::db::audit::Entry::new(
        org.map(|o| &o.id),
        "user",
        Some(&user.id),
        action,
        Some("user"),
        Some(&user.id),
    )
}

/// Checks a TOTP code (replay-guarded) or an unused backup code inside `tx`.
pub(crate) fn check_code(
    tx: &Tx,
    state: &AppState,
    user_id: &UserId,
    code: &str,
    now: i64,
) -> ApiResult<bool> {
    let Some(row) = tf::totp(tx, user_id)?.filter(|t| t.enabled_at.is_some()) else {
        return Ok(false);
    };
    let secret = crypto::open(&seal_key(state), &row.secret_enc, user_id.as_bytes())
        .ok_or_else(|| ApiError::internal("TOTP secret cannot be opened"))?;
    if let Some(step) = totp::verify(&secret, code, now / 1000, row.last_used_step) {
        return Ok(tf::use_step(tx, user_id, step)?);
    }
    if code.len() <= 32 {
        return Ok(tf::use_backup_code(
            tx,
            user_id,
            &totp::backup_code_hash(code),
            now,
        )?);
    }
    Ok(false)
}

/// Turns 2FA off with a current code or a backup code (API and hosted pages).
pub fn disable_with_code(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    user: &User,
    org: Option<&Org>,
    code: &str,
) -> ApiResult<()> {
    let attempt = check_budget(state, ctx, &user.id)?;
    let ok = state.change(ctx, req, |tx| {
        if !check_code(tx, state, &user.id, code, ctx.now)? {
            return Ok(false);
        }
        tf::disable(tx, &user.id)?;
        tx.audit(user_entry(org, user, "user.2fa_disabled"))?;
        tx.emit(
            org,
            "user.2fa_disabled",
            json!({ "user": events::who(&user.id, &user.email) }),
        )?;
        Ok(true)
    })?;
    if !ok {
        attempt.wrong(ctx.now);
        return Err(invalid_code());
    }
    Ok(())
}

/// Checks a second-factor code of `user` for a sign-in (hosted pages), against the account's
/// budget of wrong codes: Ok(true) when it is right (and now spent).
pub fn check_sign_in_code(
    state: &AppState,
    ctx: &Ctx,
    user_id: &UserId,
    code: &str,
) -> ApiResult<bool> {
    let attempt = check_budget(state, ctx, user_id)?;
    let ok = state
        .db
        .write(|tx| check_code(tx, state, user_id, code.trim(), ctx.now))?;
    if !ok {
        attempt.wrong(ctx.now);
    }
    Ok(ok)
}

/// A fresh set of backup codes for a current code (API and hosted pages); the old set dies.
pub fn regenerate_backup_codes(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    user: &User,
    org: Option<&Org>,
    code: &str,
) -> ApiResult<Vec<String>> {
    let attempt = check_budget(state, ctx, &user.id)?;
    let codes = state.change(ctx, req, |tx| {
        if !check_code(tx, state, &user.id, code, ctx.now)? {
            return Ok(None);
        }
        let codes = new_backup_codes(tx, &user.id, ctx.now)?;
        tx.audit(user_entry(org, user, "user.2fa_backup_codes_regenerated"))?;
        Ok(Some(codes))
    })?;
    let Some(codes) = codes else {
        attempt.wrong(ctx.now);
        return Err(invalid_code());
    };
    Ok(codes)
}
