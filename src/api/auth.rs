//! End-user authentication (API.md §3): signup, login, logout, refresh, availability and
//! switching orgs. Account self-service (me, password, sessions, orgs, audit) is in
//! `account.rs`.

use crate::api::{Ctx, audit, guard, views};
use crate::app::AppState;
use crate::crypto;
use crate::db::audit::Entry;
use crate::db::orgs::{self, Org, SignupMode};
use crate::db::users::{self, Membership, User};
use crate::db::{self, is_unique_violation};
use crate::db::{sessions, two_factor};
use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::http::{cookies, input, respond};
use crate::password;
use crate::session::{self, Issued, Origin, Refreshed};
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;

fn limit_ip(state: &AppState, ctx: &Ctx, action: &str) -> ApiResult<()> {
    let key = format!("{action}:ip:{}", ctx.ip);
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
    json!({
        "accessToken": issued.access_token,
        "refreshToken": issued.refresh_token,
        "expiresIn": state.config.tokens.access_ttl.as_secs(),
        "tokenType": "Bearer",
        "user": views::user(user),
        "membership": views::membership(membership),
    })
}

/// The token answer of login, signup, refresh, switch-org: body and cookies.
pub fn tokens_response(
    state: &AppState,
    status: u16,
    issued: &Issued,
    user: &User,
    membership: &Membership,
) -> Response {
    let mut resp = respond::with_status(status, tokens_json(state, issued, user, membership));
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupRequest {
    email: String,
    password: String,
    name: Option<String>,
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
        Err(ApiError::new(
            403,
            "email_not_allowed",
            "This organization does not accept sign-ups from this email address",
        ))
    }
}

pub fn signup(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let org = guard::org(state, req)?;
    let body: SignupRequest = input::json(req, state.config.server.max_body_bytes)?;
    limit_ip(state, ctx, "signup")?;
    let email = validate::email(&body.email)?;
    let name = body
        .name
        .as_deref()
        .map(|n| validate::name("name", n))
        .transpose()?;
    signup_allowed(&org, &email)?;
    password::check_policy(
        &state.config.password,
        org.settings.password_min_length,
        "password",
        &body.password,
    )?;
    if state
        .db
        .read(|c| users::find_by_email(c, &email))?
        .is_some()
    {
        return Err(ApiError::already_exists(
            "An account with this email already exists",
        ));
    }
    let hash = state.hasher.hash(&body.password)?;
    let user = User {
        password_hash: Some(hash),
        name,
        ..User::new(email, ctx.now)
    };
    let membership = Membership {
        id: db::new_id("mem", ctx.now),
        org_id: org.id.clone(),
        user_id: user.id.clone(),
        role: "member".into(),
        status: "active".into(),
        metadata: json!({}),
        joined_at: ctx.now,
    };
    let ip = ctx.ip.to_string();
    let ua = input::user_agent(req);
    let issued = state.db.write(|tx| {
        users::insert(tx, &user).map_err(|e| {
            if is_unique_violation(&e) {
                ApiError::already_exists("An account with this email already exists")
            } else {
                e.into()
            }
        })?;
        users::insert_membership(tx, &membership)?;
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
        audit(tx, ctx, req, entry(&org, &user, "user.signup"))?;
        events::emit(
            tx,
            Some(&org),
            "user.created",
            json!({ "user": views::user(&user) }),
            ctx.now,
        )?;
        Ok::<_, ApiError>(issued)
    })?;
    Ok(tokens_response(state, 201, &issued, &user, &membership))
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

fn invalid_credentials() -> ApiError {
    ApiError::new(401, "invalid_credentials", "Invalid email or password")
}

pub fn login(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let org = guard::org(state, req)?;
    let body: LoginRequest = input::json(req, state.config.server.max_body_bytes)?;
    password_login(state, ctx, req, &org, &body.email, &body.password)
}

/// Email + password login into `org`, shared by `/auth/login` and `/public/authenticate`:
/// the per-IP limit (`ctx.ip`), account lockout, the password check, membership, then
/// [`finish_login`] (tokens, or the 2FA step).
pub fn password_login(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    org: &Org,
    email: &str,
    password: &str,
) -> ApiResult<Response> {
    limit_ip(state, ctx, "login")?;
    // Malformed emails and unknown accounts take the same path as a wrong password.
    let email = validate::email(email).unwrap_or_else(|_| email.trim().to_ascii_lowercase());
    let account = format!("login:{email}");
    state
        .limiter
        .locked(&account, ctx.now)
        .map_err(ApiError::rate_limited)?;
    if password.len() > 4 * state.config.password.max_length {
        return Err(invalid_credentials());
    }
    let user = state.db.read(|c| users::find_by_email(c, &email))?;
    let phc = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let (ok, rehash) = state.hasher.verify(phc, password)?;
    let user = match (ok, user) {
        (true, Some(u)) if u.status == "active" => u,
        (_, user) => {
            let sec = &state.config.security;
            let locked = state.limiter.fail(
                &account,
                sec.login_max_failures,
                sec.login_failure_window.as_millis() as i64,
                sec.lockout.as_millis() as i64,
                ctx.now,
            );
            if let Some(u) = &user {
                state.db.write(|tx| {
                    let mut e = entry(org, u, "user.login_failed");
                    e.actor_type = "anonymous";
                    e.actor_id = None;
                    audit(tx, ctx, req, e)?;
                    if locked {
                        events::emit(
                            tx,
                            Some(org),
                            "security.account_locked",
                            json!({ "user": events::who(&u.id, &u.email),
                                    "lockedUntil": crate::clock::rfc3339(ctx.now + sec.lockout.as_millis() as i64) }),
                            ctx.now,
                        )?;
                        audit(
                            tx,
                            ctx,
                            req,
                            Entry {
                                actor_type: "system",
                                actor_id: None,
                                ..entry(org, u, "user.locked")
                            },
                        )?;
                    }
                    Ok::<_, ApiError>(())
                })?;
            }
            state.metrics.login(false);
            return Err(invalid_credentials());
        }
    };
    state.metrics.login(true);
    state.limiter.clear(&account);
    let membership = state
        .db
        .read(|c| users::find_membership(c, &org.id, &user.id))?
        .ok_or_else(|| ApiError::new(403, "not_a_member", "Not a member of this organization"))?;
    if membership.status != "active" {
        return Err(ApiError::new(
            403,
            "membership_inactive",
            "Membership in this organization is deactivated",
        ));
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
    let ip = ctx.ip.to_string();
    let ua = ctx.user_agent(req);
    let purpose = if user.two_factor_enabled {
        Some(("verify_2fa", "requires2FA"))
    } else if org.settings.require_2fa {
        Some(("setup_2fa", "requires2FASetup"))
    } else {
        None
    };
    if let Some((purpose, flag)) = purpose {
        let token = crypto::random_token(32);
        let expires = ctx.now + state.config.tokens.partial_ttl.as_millis() as i64;
        state.db.write(|tx| {
            two_factor::insert_partial(
                tx,
                &crypto::token_hash(&token),
                &org.id,
                &user.id,
                purpose,
                amr,
                &ip,
                ua.as_deref(),
                ctx.now,
                expires,
            )?;
            let mut e = entry(org, user, "user.login_partial");
            e.metadata = json!({ "next": purpose });
            audit(tx, ctx, req, e)?;
            Ok::<_, ApiError>(())
        })?;
        let mut data = json!({ flag: true, "partialToken": token });
        for (k, v) in extra {
            data[*k] = v.clone();
        }
        let mut resp = respond::ok(data);
        cookies::set_partial(&mut resp, &state.config, &token);
        return Ok(resp);
    }
    let issued = state
        .db
        .write(|tx| finish_login_session(tx, state, ctx, req, user, org, membership, amr))?;
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

/// Starts the session of a completed login (all factors done) and audits it.
#[allow(clippy::too_many_arguments)]
pub fn finish_login_session(
    tx: &rusqlite::Connection,
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
    audit(tx, ctx, req, e)?;
    events::emit(
        tx,
        Some(org),
        "user.login",
        json!({ "user": events::who(&user.id, &user.email), "session": { "id": issued.session_id }, "amr": amr }),
        ctx.now,
    )?;
    Ok(issued)
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
                return Err(ApiError::new(403, "csrf_failed", "CSRF check failed"));
            }
            Ok(Some(t.to_string()))
        }
        None => Ok(None),
    }
}

fn with_cleared_cookies(state: &AppState, err: ApiError) -> Response {
    let mut resp = respond::error_response(&err);
    cookies::clear_all(&mut resp, &state.config);
    resp
}

pub fn refresh(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: RefreshRequest = input::json_or_default(req, state.config.server.max_body_bytes)?;
    let Some(token) = refresh_token_of(state, req, body.refresh_token)? else {
        return Ok(with_cleared_cookies(
            state,
            ApiError::new(401, "invalid_token", "A refresh token is required"),
        ));
    };
    if token.len() > 512 {
        return Ok(with_cleared_cookies(
            state,
            ApiError::new(401, "invalid_token", "Invalid refresh token"),
        ));
    }
    let header_org = match req.header("X-Org-Slug") {
        Some(_) => Some(guard::org(state, req)?),
        None => None,
    };
    let prepared = match state
        .db
        .read(|c| session::prepare_refresh(c, &token, ctx.now))
    {
        Ok(p) => p,
        Err(e) if e.status == 401 => return Ok(with_cleared_cookies(state, e)),
        Err(e) => return Err(e),
    };
    if let Some(org) = &header_org
        && prepared.org.id != org.id
    {
        return Err(ApiError::new(
            403,
            "org_mismatch",
            "The refresh token belongs to another organization",
        ));
    }
    let outcome = state.db.write(|tx| {
        let out = session::refresh(tx, state, prepared, ctx.now)?;
        if let Refreshed::Reused { session } = &out {
            let data =
                json!({ "session": { "id": session.id }, "user": { "id": session.user_id } });
            events::emit_in(
                tx,
                &session.org_id,
                "security.refresh_token_reused",
                data.clone(),
                ctx.now,
            )?;
            let mut revoked = data;
            revoked["reason"] = json!("refresh_token_reused");
            events::emit_in(tx, &session.org_id, "session.revoked", revoked, ctx.now)?;
            audit(
                tx,
                ctx,
                req,
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
        Ok::<_, ApiError>(out)
    });
    match outcome {
        Ok(Refreshed::Ok(r)) => {
            let issued = r.issue(state, ctx.now)?;
            Ok(tokens_response(state, 200, &issued, &r.user, &r.membership))
        }
        Ok(Refreshed::Reused { .. }) => Ok(with_cleared_cookies(
            state,
            ApiError::new(
                401,
                "refresh_token_reused",
                "This refresh token was already used; the session has been revoked",
            ),
        )),
        Err(e) if e.status == 401 => Ok(with_cleared_cookies(state, e)),
        Err(e) => Err(e),
    }
}

pub fn logout(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: RefreshRequest = input::json_or_default(req, state.config.server.max_body_bytes)?;
    let cookie_auth = input::cookie(req, cookies::ACCESS).is_some()
        || input::cookie(req, cookies::REFRESH).is_some();
    if cookie_auth && input::bearer(req).is_none() && !cookies::csrf_ok(&state.config, req) {
        return Err(ApiError::new(403, "csrf_failed", "CSRF check failed"));
    }
    // The session from the access token (even an expired one is fine to end), else from the
    // refresh token.
    let mut target: Option<(String, String)> = None;
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
            && let Some(row) = state
                .db
                .read(|c| sessions::find_refresh(c, &crypto::token_hash(&t)))?
        {
            target = Some((row.org_id, row.session_id));
        }
    }
    if let Some((org_id, sid)) = target {
        state.db.write(|tx| {
            if let Some(s) = sessions::find(tx, &org_id, &sid)?
                && sessions::revoke(tx, &s.id, "logout", ctx.now)?
            {
                events::emit_in(
                    tx,
                    &org_id,
                    "user.logout",
                    json!({ "user": { "id": s.user_id }, "session": { "id": s.id } }),
                    ctx.now,
                )?;
                audit(
                    tx,
                    ctx,
                    req,
                    Entry::new(
                        Some(&org_id),
                        "user",
                        Some(&s.user_id),
                        "user.logout",
                        Some("session"),
                        Some(&s.id),
                    ),
                )?;
            }
            Ok::<_, ApiError>(())
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
}

pub fn switch_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let body: SwitchOrgRequest = input::json(req, state.config.server.max_body_bytes)?;
    let target = state
        .db
        .read(|c| orgs::find_by_slug(c, body.org_slug.trim()))?
        .ok_or_else(ApiError::org_not_found)?;
    let membership = state
        .db
        .read(|c| users::find_membership(c, &target.id, &me.user.id))?
        .ok_or_else(|| ApiError::new(403, "not_a_member", "Not a member of that organization"))?;
    if membership.status != "active" {
        return Err(ApiError::new(
            403,
            "membership_inactive",
            "Membership in that organization is deactivated",
        ));
    }
    let ip = ctx.ip.to_string();
    let ua = input::user_agent(req);
    let amr: Vec<&str> = me.session.auth_methods.iter().map(String::as_str).collect();
    let issued = state.db.write(|tx| {
        let issued = session::start(
            tx,
            state,
            &me.user,
            &target,
            &membership,
            &amr,
            &origin(&ip, &ua),
            ctx.now,
        )?;
        let mut e = entry(&target, &me.user, "user.switch_org");
        e.metadata = json!({ "fromOrgId": me.org.id });
        audit(tx, ctx, req, e)?;
        Ok::<_, ApiError>(issued)
    })?;
    Ok(tokens_response(state, 200, &issued, &me.user, &membership))
}
