//! Signing in, shared by the JSON API and the hosted pages: the password check with its
//! lockouts and budgets, the decision whether a second factor or an invitation is still due,
//! and login completion (the session, its audit entry and `user.login`, the token answer).

use crate::api::{Ctx, guard, views};
use crate::change::Change;
use crate::crypto;
use crate::db::audit::Entry;
use crate::db::orgs::{Org, SignupMode};
use crate::db::two_factor;
use crate::db::users::{self, Membership, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events;
use crate::http::{cookies, input, respond};
use crate::password;
use crate::ratelimit::{Attempt, Budget, client_key};
use crate::session::{self, Issued, Origin};
use crate::state::AppState;
use crate::status::{MemberStatus, UserStatus};
use crate::validate;
use rouille::{Request, Response};
use serde_json::json;

pub(crate) fn limit_ip(state: &AppState, ctx: &Ctx, action: &str) -> ApiResult<()> {
    let key = format!("{action}:ip:{}", client_key(&ctx.ip));
    state
        .limiter
        .hit(
            &key,
            state.config.security.login_ip_per_minute,
            60_000,
            ctx.now,
        )
        .map_err(ApiError::rate_limited)
}

/// The token answer's body: `{accessToken, refreshToken, expiresIn, tokenType, user, membership}`.
pub fn tokens_json(
    state: &AppState,
    issued: &Issued,
    user: &User,
    membership: &Membership,
) -> serde_json::Value {
    views::value(TokensView::of(state, issued, user, membership))
}

/// The tokens answer, written straight into the body by [`tokens_response`]; its fields in
/// the sorted order of a `Value`'s keys, so [`tokens_json`] writes the same bytes.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct TokensView<'a> {
    access_token: &'a str,
    expires_in: u64,
    membership: views::MembershipView<'a>,
    refresh_token: &'a str,
    token_type: &'static str,
    user: views::UserView<'a>,
}

impl<'a> TokensView<'a> {
    fn of(
        state: &AppState,
        issued: &'a Issued,
        user: &'a User,
        membership: &'a Membership,
    ) -> Self {
        Self::expiring(
            state.config.tokens.access_ttl.as_secs(),
            issued,
            user,
            membership,
        )
    }

    fn expiring(
        expires_in: u64,
        issued: &'a Issued,
        user: &'a User,
        membership: &'a Membership,
    ) -> Self {
        TokensView {
            access_token: &issued.access_token,
            expires_in,
            membership: views::MembershipView::of(membership),
            refresh_token: &issued.refresh_token,
            token_type: "Bearer",
            user: views::UserView::of(user),
        }
    }
}

/// The token answer of login, signup, refresh, switch-org: body and cookies.
pub fn tokens_response(
    state: &AppState,
    status: u16,
    issued: &Issued,
    user: &User,
    membership: &Membership,
) -> Response {
    let body = TokensView::of(state, issued, user, membership);
    let mut resp = respond::with_status(status, body);
    cookies::set_session(
        &mut resp,
        &state.config,
        &issued.access_token,
        &issued.refresh_token,
    );
    resp
}

pub fn origin<'a>(ip: &'a str, ua: &'a Option<String>) -> Origin<'a> {
    Origin {
        ip,
        user_agent: ua.as_deref(),
    }
}

fn signup_allowed(org: &Org, email: &str) -> ApiResult<()> {
    let s = &org.settings;
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let ok = match s.signup_mode {
        SignupMode::Open => true,
        SignupMode::InviteOnly => false,
        SignupMode::Domain => s.allowed_domains.iter().any(|d| d == domain),
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::of(ErrorCode::EmailNotAllowed))
    }
}

/// What a sign-up made: the account, its membership, and a session unless the org's
/// `domain` mode wants the address proven first or the org requires 2FA (then the caller
/// answers `requires2FASetup`).
pub struct SignedUp {
    pub user: User,
    pub membership: Membership,
    pub issued: Option<Issued>,
}

/// Sign-up into `org` (API and hosted page): the per-IP limit, the org's `signupMode`, the
/// password policy, one hash, then the account, membership and (unless `domain`) a session.
pub fn sign_up(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    org: &Org,
    email: &str,
    password_text: &str,
    name: Option<&str>,
) -> ApiResult<SignedUp> {
    let org = org.clone();
    limit_ip(state, ctx, "signup")?;
    let email = validate::email(email)?;
    let name = name.map(|n| validate::name("name", n)).transpose()?;
    signup_allowed(&org, &email)?;
    password::check_policy(
        &state.config.password,
        org.settings.password_min_length,
        "password",
        password_text,
    )?;
    // An early answer before the hash; not what decides a race. Two sign-ups for one address
    // both pass it, and the UNIQUE email of `users` refuses the second insert (a Conflict,
    // mapped below). A second backend needs that constraint, not a lock.
    if state
        .db
        .read(|c| users::find_by_email(c, &email))?
        .is_some()
    {
        return Err(ApiError::already_exists(
            "An account with this email already exists",
        ));
    }
    let hash = state.hasher.hash(password_text)?;
    let user = User {
        password_hash: Some(hash),
        name,
        ..User::new(email, ctx.now)
    };
    let membership = Membership {
        id: crate::ids::new_id("mem", ctx.now),
        org_id: org.id.clone(),
        user_id: user.id.clone(),
        role: "member".into(),
        status: MemberStatus::Active,
        metadata: json!({}),
        joined_at: ctx.now,
    };
    let ip = ctx.ip.to_string();
    let ua = input::user_agent(req);
    // In a `domain` org the address is the credential: no session until it is proven.
    let prove_first = org.settings.signup_mode == SignupMode::Domain;
    // An org that requires 2FA gets no session before the new account enrols (as at login).
    let enrol_first = !prove_first && org.settings.require_2fa;
    let issued = state.change(ctx, req, |tx| {
        users::insert(tx, &user).map_err(|e| {
            if e.is_conflict() {
                ApiError::already_exists("An account with this email already exists")
            } else {
                e.into()
            }
        })?;
        users::insert_membership(tx, &membership)?;
        if prove_first || enrol_first {
            if prove_first {
                crate::flows::email::queue_verification(tx, state, &org, &user, ctx.now)?;
            }
            let mut e = entry(&org, &user, "user.signup");
            e.metadata = json!({ "requiresEmailVerification": prove_first, "requires2FASetup": enrol_first });
            tx.audit(e)?;
            tx.emit(Some(&org), "user.created", json!({ "user": views::user(&user) }))?;
            return Ok(None);
        }
        let issued = session::start(
            tx,
            state,
            &user,
            &org,
            &membership,
            &["pwd"],
            &origin(&ip, &ua),
            ctx.now,
        )?;
        tx.audit(entry(&org, &user, "user.signup"))?;
        tx.emit(Some(&org), "user.created", json!({ "user": views::user(&user) }))?;
        Ok(Some(issued))
    })?;
    Ok(SignedUp {
        user,
        membership,
        issued,
    })
}

/// An audit entry where the user acts on themselves in `org`.
pub fn entry<'a>(org: &'a Org, user: &'a User, action: &'a str) -> Entry<'a> {
    Entry::new(
        Some(&org.id),
        "user",
        Some(&user.id),
        action,
        Some("user"),
        Some(&user.id),
    )
}

pub fn invalid_credentials() -> ApiError {
    ApiError::of(ErrorCode::InvalidCredentials)
}

/// The login counters of API.md §10, keyed by the email as typed (normalised), so they
/// never reveal whether an account exists: `login:<email>|ip:<ip>` refuses that account to
/// that client IP after `login_max_failures`; `login:<email>` locks the whole account after
/// `account_max_failures` from all IPs.
fn login_keys(email: &str, ip: &std::net::IpAddr) -> (String, String) {
    let account = format!("login:{email}");
    let pair = format!("{account}|ip:{}", client_key(ip));
    (account, pair)
}

/// Begins a password attempt for `email` from `ctx.ip` (a login, or a current password on
/// change-password): 429 while the account is locked, refused to this IP, or as many attempts
/// are in flight as failures are left. Call [`Attempt::failed`] on a wrong password; it
/// answers whether the whole account is now locked.
pub fn begin_password_attempt<'a>(
    state: &'a AppState,
    ctx: &Ctx,
    email: &str,
) -> ApiResult<PasswordAttempt<'a>> {
    let sec = &state.config.security;
    let (account, pair) = login_keys(email, &ctx.ip);
    let ms = |d: std::time::Duration| d.as_millis() as i64;
    let budgets = vec![
        Budget {
            key: pair,
            max: sec.login_max_failures,
            window_ms: ms(sec.login_failure_window),
            lockout_ms: ms(sec.lockout),
        },
        Budget {
            key: account,
            max: sec.account_max_failures,
            window_ms: ms(sec.account_failure_window),
            lockout_ms: ms(sec.lockout),
        },
    ];
    state
        .limiter
        .attempt(budgets, ctx.now)
        .map(PasswordAttempt)
        .map_err(ApiError::rate_limited)
}

/// A password attempt in flight (see [`begin_password_attempt`]).
pub struct PasswordAttempt<'a>(Attempt<'a>);

impl PasswordAttempt<'_> {
    /// The password was wrong; true when this failure locked the whole account.
    pub fn failed(self, now: i64) -> bool {
        self.0.failed(now).get(1).copied().unwrap_or(false)
    }
}

/// After a successful login: the failures from this IP are forgotten (those from elsewhere,
/// which may be an attack, still count towards the account-wide lock).
fn clear_login_pair(state: &AppState, ctx: &Ctx, email: &str) {
    state.limiter.clear(&login_keys(email, &ctx.ip).1);
}

/// Forgets every login failure and lock of the account (a reset, a magic link, an
/// operator's unlock: the owner proved themselves another way).
pub fn clear_login_locks(state: &AppState, email: &str) {
    state.limiter.clear_family(&format!("login:{email}"));
}

/// Records a failed login of an existing account `u` into `org` (audit, and when it locked
/// the account, `user.locked` + `security.account_locked`). Only an org the account belongs
/// to hears of it: a failure naming another org goes to the operator's audit trail alone.
pub fn record_login_failure(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    org: Option<&Org>,
    u: &User,
    locked: bool,
) -> ApiResult<()> {
    let sec = &state.config.security;
    state.change(ctx, req, |tx| {
        let member = match org {
            Some(o) => users::find_membership(tx, &o.id, &u.id)?.is_some(),
            None => false,
        };
        let named = org.map(|o| o.slug.clone());
        let org = org.filter(|_| member);
        let org_id = org.map(|o| &o.id);
        let mut e = Entry::new(
            org_id,
            "anonymous",
            None,
            "user.login_failed",
            Some("user"),
            Some(&u.id),
        );
        if !member {
            e.metadata = json!({ "member": false, "orgSlug": named });
        }
        tx.audit(e)?;
        if locked {
            if let Some(org) = org {
                tx.emit(Some(org), "security.account_locked", json!({ "user": events::who(&u.id, &u.email),
                            "lockedUntil": crate::clock::rfc3339(ctx.now + sec.lockout.as_millis() as i64) }))?;
            }
            let mut e = Entry::new(org_id, "system", None, "user.locked", Some("user"), Some(&u.id));
            e.metadata = json!({ "failures": sec.account_max_failures,
                                 "window": sec.account_failure_window.as_secs() });
            tx.audit(e)?;
        }
        Ok(())
    })
}

/// Email + password login into `org`, shared by `/auth/login` and `/public/authenticate`:
/// the per-IP limit (`ctx.ip`), the lockouts, the password check, membership, then
/// [`finish_login`] (tokens, or the 2FA step).
pub fn password_login(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    org: &Org,
    email: &str,
    password: &str,
) -> ApiResult<Response> {
    let (user, rehash) = check_password(state, ctx, req, Some(org), email, password)?;
    let membership = active_membership(state, org, &user)?;
    if org.settings.signup_mode == SignupMode::Domain && !user.email_verified {
        return Err(email_verification_required());
    }
    let new_hash = if rehash {
        Some(state.hasher.hash(password)?)
    } else {
        None
    };
    if let Some(h) = &new_hash {
        state
            .db
            .write(|tx| users::set_password_hash(tx, &user.id, h, ctx.now))?;
    }
    finish_login(state, ctx, req, &user, org, &membership, &["pwd"], &[])
}

/// 422 `email_verification_required`: a `domain` org admits by the address, so it must be
/// proven before a session is made.
pub fn email_verification_required() -> ApiError {
    ApiError::of(ErrorCode::EmailVerificationRequired)
}

/// The user's active membership in `org`, by [`guard::active_membership`]: 403 `not_a_member` /
/// `membership_inactive`.
pub fn active_membership(state: &AppState, org: &Org, user: &User) -> ApiResult<Membership> {
    let found = state
        .db
        .read(|c| users::find_membership(c, &org.id, &user.id))?;
    guard::active_membership(found)
}

/// The first factor: the per-IP limit, the lockouts, then the password of the account behind
/// `email` (the same answer and similar time for an unknown email). A failure is counted and
/// recorded; returns the user and whether the hash wants upgrading.
pub fn check_password(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    org: Option<&Org>,
    email: &str,
    password: &str,
) -> ApiResult<(User, bool)> {
    limit_ip(state, ctx, "login")?;
    // Malformed emails and unknown accounts take the same path as a wrong password.
    let email = validate::email(email).unwrap_or_else(|_| email.trim().to_ascii_lowercase());
    let attempt = begin_password_attempt(state, ctx, &email)?;
    if password.len() > 4 * state.config.password.max_length {
        attempt.failed(ctx.now);
        return Err(invalid_credentials());
    }
    let user = state.db.read(|c| users::find_by_email(c, &email))?;
    let phc = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let (ok, rehash) = state.hasher.verify(phc, password)?;
    match (ok, user) {
        (true, Some(u)) if u.status == UserStatus::Active => {
            state.metrics.login(true);
            clear_login_pair(state, ctx, &email);
            Ok((u, rehash))
        }
        (_, user) => {
            let locked = attempt.failed(ctx.now);
            if let Some(u) = &user {
                record_login_failure(state, ctx, req, org, u, locked)?;
            }
            state.metrics.login(false);
            Err(invalid_credentials())
        }
    }
}

/// The end of every first-factor login (password, magic link, backend authenticate): a
/// partial token when a second factor is due — `requires2FA` when the user has TOTP,
/// `requires2FASetup` when the org demands 2FA and the user has none — else a session.
/// `extra` fields are added to either answer (e.g. `isNewUser` after an invitation).
#[allow(clippy::too_many_arguments)]
pub fn finish_login(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    user: &User,
    org: &Org,
    membership: &Membership,
    amr: &[&str],
    extra: &[(&str, serde_json::Value)],
) -> ApiResult<Response> {
    if let Some(step) = second_factor_due(user, org, amr) {
        return partial_response(state, ctx, req, user, org, amr, step, None, extra);
    }
    let issued = state.change(ctx, req, |tx| {
        finish_login_session(tx, state, ctx, req, user, org, membership, amr)
    })?;
    let mut data = tokens_json(state, &issued, user, membership);
    for (k, v) in extra {
        data[*k] = v.clone();
    }
    let mut resp = respond::ok(data);
    cookies::set_session(
        &mut resp,
        &state.config,
        &issued.access_token,
        &issued.refresh_token,
    );
    Ok(resp)
}

/// The second-factor step a login into `org` still owes, as (partial-token purpose, answer
/// flag): `requires2FA` when the user has TOTP this login has not passed, `requires2FASetup`
/// when the org demands 2FA and the user has none.
pub fn second_factor_due(
    user: &User,
    org: &Org,
    amr: &[&str],
) -> Option<(&'static str, &'static str)> {
    // A second factor this login already passed (a switch from a session that did) counts.
    if user.two_factor_enabled && !amr.contains(&"otp") {
        Some(("verify_2fa", "requires2FA"))
    } else if org.settings.require_2fa && !user.two_factor_enabled {
        Some(("setup_2fa", "requires2FASetup"))
    } else {
        None
    }
}

/// Issues the partial token of a second-factor `step` (see [`second_factor_due`]) and answers
/// `{<flag>: true, partialToken}` + the `partial_token` cookie. `invitation_id` is the
/// invitation the completed login will accept.
#[allow(clippy::too_many_arguments)]
pub fn partial_response(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    user: &User,
    org: &Org,
    amr: &[&str],
    (purpose, flag): (&str, &str),
    invitation_id: Option<&str>,
    extra: &[(&str, serde_json::Value)],
) -> ApiResult<Response> {
    let ip = ctx.ip.to_string();
    let ua = ctx.user_agent(req);
    let token = crypto::random_token(32);
    let expires = ctx.now + state.config.tokens.partial_ttl.as_millis() as i64;
    state.change(ctx, req, |tx| {
        two_factor::insert_partial(
            tx,
            &crypto::token_hash(&token),
            &org.id,
            &user.id,
            purpose,
            amr,
            invitation_id,
            &ip,
            ua.as_deref(),
            ctx.now,
            expires,
        )?;
        let mut e = entry(org, user, "user.login_partial");
        e.metadata = json!({ "next": purpose });
        if invitation_id.is_some() {
            e.org_id = None;
            e.metadata["invitationId"] = json!(invitation_id);
            e.metadata["orgId"] = json!(org.id);
        }
        tx.audit(e)?;
        Ok(())
    })?;
    let mut data = json!({ flag: true, "partialToken": token });
    for (k, v) in extra {
        data[*k] = v.clone();
    }
    let mut resp = respond::ok(data);
    cookies::set_partial(&mut resp, &state.config, &token);
    Ok(resp)
}

/// Starts the session of a completed login (all factors done) and audits it.
#[allow(clippy::too_many_arguments)]
pub fn finish_login_session(
    tx: &Change,
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    user: &User,
    org: &Org,
    membership: &Membership,
    amr: &[&str],
) -> ApiResult<Issued> {
    let ip = ctx.ip.to_string();
    let ua = ctx.user_agent(req);
    let issued = session::start(
        tx,
        state,
        user,
        org,
        membership,
        amr,
        &origin(&ip, &ua),
        ctx.now,
    )?;
    let mut e = entry(org, user, "user.login");
    e.metadata = json!({ "amr": amr });
    tx.audit(e)?;
    tx.emit(Some(org), "user.login", json!({ "user": events::who(&user.id, &user.email), "session": { "id": issued.session_id }, "amr": amr }))?;
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokens_view_writes_what_its_value_writes() {
        let user = User::new("ada@example.com".into(), 1_764_000_000_000);
        let org_id = crate::ids::OrgId::from_wire("org_1");
        let mut membership = views::fixtures::membership(&org_id, &user.id);
        membership.metadata = json!({"b": 2, "a": 1});
        membership.joined_at = 5;
        let issued = Issued {
            access_token: "eyJ.a.b".into(),
            refresh_token: "rt_\"x\"".into(),
            session_id: crate::ids::SessionId::from_wire("ses_1"),
        };
        let view = TokensView::expiring(900, &issued, &user, &membership);
        // The body as it was built before, with `json!`.
        let before = json!({
            "accessToken": issued.access_token,
            "refreshToken": issued.refresh_token,
            "expiresIn": 900u64,
            "tokenType": "Bearer",
            "user": views::user(&user),
            "membership": views::membership(&membership),
        });
        assert_eq!(serde_json::to_string(&view).unwrap(), before.to_string());
    }
}
