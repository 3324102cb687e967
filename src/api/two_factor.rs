//! Two-factor authentication (API.md §3, TOTP): enrollment, enabling (which also completes a
//! `requires2FASetup` login), disabling, status, backup codes, and the second login step.

use crate::api::auth::{entry, finish_login_session, tokens_json};
use crate::api::{Ctx, guard, invites};
use crate::app::AppState;
use crate::change::Change;
use crate::crypto;
use crate::db::Tx;
use crate::db::orgs::Org;
use crate::db::two_factor::{self as tf, Partial};
use crate::db::users::{self, Membership, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events;
use crate::http::{cookies, input, respond};
use crate::ratelimit::{Attempt, Budget};
use crate::totp;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;
use std::cell::RefCell;

/// Wrong codes a partial token survives; the next one burns it.
const MAX_WRONG_CODES: i64 = 5;

fn seal_key(state: &AppState) -> [u8; 32] {
    crypto::derive_key(state.secret(), "totp-secret")
}

/// The account-wide budget of wrong codes (API.md §10): every place a code is checked draws
/// on it, so partial tokens, `/2fa/disable` and `/2fa/backup-codes` together allow
/// `second_factor_max_failures` guesses per `second_factor_window`.
pub fn failure_key(user_id: &str) -> String {
    format!("2fa:{user_id}")
}

/// Begins a code check against the user's budget of wrong codes: 429 while it is spent, or
/// while as many checks are in flight as wrong codes are left (concurrent guesses cannot
/// exceed it). [`CodeAttempt::wrong`] counts a wrong code; otherwise it frees itself.
fn check_budget<'a>(state: &'a AppState, ctx: &Ctx, user_id: &str) -> ApiResult<CodeAttempt<'a>> {
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
struct CodeAttempt<'a>(RefCell<Option<Attempt<'a>>>);

impl CodeAttempt<'_> {
    /// The code was wrong: it counts against the budget.
    fn wrong(&self, now: i64) {
        if let Some(a) = self.0.borrow_mut().take() {
            a.failed(now);
        }
    }
}

fn invalid_code() -> ApiError {
    ApiError::of(ErrorCode::InvalidCode)
}

/// Who is enrolling: a signed-in user, or the partial token of a `requires2FASetup` login.
enum Enroller {
    Signed(Box<guard::UserCtx>),
    Partial {
        partial: Box<Partial>,
        org: Box<Org>,
        user: Box<User>,
        membership: Option<Box<Membership>>,
    },
}

impl Enroller {
    fn user(&self) -> &User {
        match self {
            Enroller::Signed(u) => &u.user,
            Enroller::Partial { user, .. } => user,
        }
    }
    fn org(&self) -> &Org {
        match self {
            Enroller::Signed(u) => &u.org,
            Enroller::Partial { org, .. } => org,
        }
    }
}

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
    let user = user.filter(|u| u.status == "active").ok_or_else(bad)?;
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
        (Some(inv), _) => invites::join_after_login(tx, ctx, req, inv, org, user),
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

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodeRequest {
    code: Option<String>,
    partial_token: Option<String>,
}

fn new_backup_codes(tx: &Tx, user_id: &str, now: i64) -> crate::db::Result<Vec<String>> {
    let codes = totp::new_backup_codes();
    let hashes: Vec<String> = codes.iter().map(|c| totp::backup_code_hash(c)).collect();
    tf::replace_backup_codes(tx, user_id, &hashes, now)?;
    Ok(codes)
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
        org.map(|o| o.id.as_str()),
        "user",
        Some(&user.id),
        action,
        Some("user"),
        Some(&user.id),
    )
}

/// Checks a TOTP code (replay-guarded) or an unused backup code inside `tx`.
fn check_code(tx: &Tx, state: &AppState, user_id: &str, code: &str, now: i64) -> ApiResult<bool> {
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

pub fn disable(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let body: CodeRequest = input::json(req, state.config.server.max_body_bytes)?;
    let code = body.code.unwrap_or_default();
    disable_with_code(state, ctx, req, &me.user, Some(&me.org), &code)?;
    Ok(respond::ok(
        json!({ "message": "Two-factor authentication disabled" }),
    ))
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
    user_id: &str,
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
