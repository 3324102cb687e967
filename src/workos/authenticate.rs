//! `POST /user_management/authenticate` with every grant the WorkOS SDKs send, WorkOS's
//! auth-flow 403s (`organization_selection_required`, `mfa_challenge`, `mfa_enrollment`,
//! `email_verification_required`) with their `pending_authentication_token`, the session
//! endpoints, auth factors and challenges, the device flow, the browser routes
//! (`/user_management/authorize`, `/user_management/sessions/logout`) onto Latchkey's hosted
//! pages, and `/sso/jwks/{client_id}`.
//!
//! A sign-in here is the same sign-in as everywhere: `session::login::check_password` (its
//! lockouts and budgets), the org's policy, the TOTP budget; the session is an org session
//! made for the client (so `/api/v1` refuses its tokens), and its access token is RS256 with
//! `sid`, `org_id`, `role` and `auth_time`, as the SDKs' sealed-session helpers verify it.

use super::{Env, WError, WResult, body, ok, run, run_as, user_obj};
use crate::api::Ctx;
use crate::crypto;
use crate::db::oauth::{self, Client};
use crate::db::orgs::{Org, SignupMode};
use crate::db::users::{self, Membership, User};
use crate::db::workos::{self as store, Pending};
use crate::error::ApiResult;
use crate::ids::{OrgId, SessionId, UserId};
use crate::oauth::Grant;
use crate::state::AppState;
use crate::status::{OrgStatus, UserStatus};
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

const PENDING_TTL_MS: i64 = 10 * 60_000;
const SCOPE: &str = "openid profile email offline_access";
/// Wrong codes a pending sign-in tolerates before it is spent.
const PENDING_MAX_FAILURES: i64 = 5;

#[derive(Deserialize, Default)]
pub struct AuthBody {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    email: Option<String>,
    password: Option<String>,
    code: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    organization_id: Option<String>,
    pending_authentication_token: Option<String>,
    device_code: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
}

fn grant_error(error: &'static str, description: &str) -> WError {
    let mut e = WError::new(400, error, description);
    e.extra = json!({ "error": error, "error_description": description });
    e
}

/// The client of an authenticate request: `client_id` + `client_secret` (the API key), or the
/// Bearer key; `client_id` alone for a public client's PKCE and device grants.
fn auth_client(state: &AppState, req: &Request, b: &AuthBody) -> WResult<Client> {
    let bad = || grant_error("invalid_client", "Client authentication failed");
    let secret = b
        .client_secret
        .clone()
        .or_else(|| crate::http::input::bearer(req).map(str::to_string));
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
        let c = super::client_by_secret(state, &s)?.ok_or_else(bad)?;
        if b.client_id.as_deref().is_some_and(|id| id != c.id) {
            return Err(bad());
        }
        return Ok(c);
    }
    let id = b
        .client_id
        .as_deref()
        .filter(|i| !i.is_empty() && i.len() <= 128)
        .ok_or_else(bad)?;
    let c = state
        .db
        .read(|c| oauth::find_client(c, id))?
        .ok_or_else(bad)?;
    if !c.is_public() || c.profile != "workos" {
        return Err(bad());
    }
    Ok(c)
}

pub fn authenticate(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    if !state.config.workos.enabled {
        return run(state, ctx, req, |_| unreachable!("disabled"));
    }
    // The client authenticates in the body; run the idempotency wrapper as that client.
    let b: AuthBody = match super::body(state, req) {
        Ok(b) => b,
        Err(e) => return run_err(e),
    };
    let client = match auth_client(state, req, &b) {
        Ok(c) => c,
        Err(e) => return run_err(e),
    };
    // The end user's address and agent, when the app forwards them.
    let ip = b
        .ip_address
        .as_deref()
        .and_then(|i| i.parse().ok())
        .unwrap_or(ctx.ip);
    let ctx2;
    let ctx = if b.ip_address.is_some() || b.user_agent.is_some() {
        ctx2 = ctx.on_behalf_of(ip, b.user_agent.clone());
        &ctx2
    } else {
        ctx
    };
    run_as(state, ctx, req, Env { client }, |env| {
        grant(state, ctx, req, env, &b)
    })
}

fn run_err(e: WError) -> ApiResult<Response> {
    let mut body = json!({ "code": e.code, "message": e.message });
    if let (Some(m), Some(x)) = (body.as_object_mut(), e.extra.as_object()) {
        m.extend(x.clone());
    }
    Ok(Response::json(&body).with_status_code(e.status))
}

fn grant(state: &AppState, ctx: &Ctx, req: &Request, env: &Env, b: &AuthBody) -> WResult<Response> {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    match b.grant_type.as_deref().unwrap_or("") {
        "password" => {
            let (user, rehash) = crate::session::login::check_password(
                state,
                ctx,
                req,
                None,
                &s(&b.email),
                &s(&b.password),
            )
            .map_err(|e| {
                if e.status() == 401 {
                    WError::new(400, "invalid_credentials", "Invalid credentials")
                        .with(json!({ "error": "invalid_grant", "error_description": "Invalid credentials" }))
                } else {
                    e.into()
                }
            })?;
            if rehash {
                let h = state.hasher.hash(&s(&b.password))?;
                state
                    .db
                    .write(|tx| users::set_password_hash(tx, &user.id, &h, ctx.now))?;
            }
            let org = b.organization_id.as_deref().map(OrgId::from_wire);
            after_first_factor(state, ctx, req, env, user, vec!["pwd".into()], ctx.now, org)
        }
        "authorization_code" => code_grant(state, ctx, req, env, b),
        "refresh_token" => refresh_grant(state, ctx, req, env, b),
        "urn:workos:oauth:grant-type:magic-auth:code" => {
            let email = crate::validate::email(&s(&b.email))
                .map_err(|_| grant_error("invalid_grant", "Invalid code"))?;
            let user = state
                .db
                .read(|c| users::find_by_email(c, &email))?
                .filter(|u| u.status == UserStatus::Active)
                .ok_or_else(|| grant_error("invalid_grant", "Invalid code"))?;
            spend_code(state, ctx, req, "magic_auth", &user.id, &s(&b.code))?;
            state
                .db
                .write(|tx| users::set_email_verified(tx, &user.id, ctx.now))?;
            let user = reload(state, &user.id)?;
            after_first_factor(
                state,
                ctx,
                req,
                env,
                user,
                vec!["magic_link".into()],
                ctx.now,
                None,
            )
        }
        "urn:workos:oauth:grant-type:email-verification:code" => {
            let (token, p, user) = pending_of(state, env, b)?;
            spend_code(state, ctx, req, "email_verification", &user.id, &s(&b.code))?;
            state.db.write(|tx| {
                store::spend_pending(tx, &token, ctx.now)?;
                users::set_email_verified(tx, &user.id, ctx.now)
            })?;
            let user = reload(state, &user.id)?;
            after_first_factor(
                state,
                ctx,
                req,
                env,
                user,
                p.auth_methods,
                ctx.now,
                p.org_id,
            )
        }
        "urn:workos:oauth:grant-type:mfa-totp" => {
            let (token, p, user) = pending_of(state, env, b)?;
            let code = s(&b.code);
            let ok = if user.two_factor_enabled {
                crate::flows::two_factor::check_sign_in_code(state, ctx, &user.id, &code)?
            } else {
                // The enrolment of `mfa_enrollment`: the first code turns the factor on.
                let org = match &p.org_id {
                    Some(id) => state.db.read(|c| crate::db::orgs::find_by_id(c, id))?,
                    None => None,
                };
                crate::flows::two_factor::enable_with_code(
                    state,
                    ctx,
                    req,
                    &user,
                    org.as_ref(),
                    &code,
                )
                .map(|_| true)
                .or_else(|e| {
                    if e.status() == 401 || e.status() == 400 {
                        Ok(false)
                    } else {
                        Err(e)
                    }
                })?
            };
            if !ok {
                let failures = state.db.write(|tx| store::fail_pending(tx, &token))?;
                if failures >= PENDING_MAX_FAILURES {
                    state
                        .db
                        .write(|tx| store::spend_pending(tx, &token, ctx.now))?;
                }
                return Err(WError::new(400, "invalid_one_time_code", "The code is not right")
                    .with(json!({ "error": "invalid_grant", "error_description": "The code is not right" })));
            }
            if !state
                .db
                .write(|tx| store::spend_pending(tx, &token, ctx.now))?
            {
                return Err(grant_error(
                    "invalid_grant",
                    "The pending authentication token was used",
                ));
            }
            let user = reload(state, &user.id)?;
            let mut amr = p.auth_methods.clone();
            amr.push("otp".into());
            after_first_factor(state, ctx, req, env, user, amr, ctx.now, p.org_id)
        }
        "urn:workos:oauth:grant-type:organization-selection" => {
            let (token, p, user) = pending_of(state, env, b)?;
            let org = b
                .organization_id
                .as_deref()
                .filter(|o| !o.is_empty())
                .map(OrgId::from_wire)
                .ok_or_else(|| WError::invalid("organization_id", "is required"))?;
            if !state
                .db
                .write(|tx| store::spend_pending(tx, &token, ctx.now))?
            {
                return Err(grant_error(
                    "invalid_grant",
                    "The pending authentication token was used",
                ));
            }
            after_first_factor(
                state,
                ctx,
                req,
                env,
                user,
                p.auth_methods,
                ctx.now,
                Some(org),
            )
        }
        "urn:ietf:params:oauth:grant-type:device_code" => device_grant(state, ctx, req, env, b),
        "" => Err(WError::invalid("grant_type", "is required")),
        _ => Err(grant_error(
            "unsupported_grant_type",
            "This grant type is not supported",
        )),
    }
}

fn reload(state: &AppState, id: &UserId) -> WResult<User> {
    state
        .db
        .read(|c| users::find_by_id(c, id))?
        .ok_or_else(|| grant_error("invalid_grant", "The account is gone"))
}

/// Spends the live code of `kind` for the user (`invalid_grant` otherwise), on the budget of
/// wrong codes every code check shares.
fn spend_code(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    kind: &str,
    user: &UserId,
    code: &str,
) -> WResult<()> {
    let attempt = crate::flows::two_factor::check_budget(state, ctx, user)?;
    let hash = crypto::token_hash(code.trim());
    let spent = state.change(ctx, req, |tx| {
        let Some(c) = store::live_code(tx, kind, user, &hash, ctx.now)? else {
            return Ok(false);
        };
        store::spend_code(tx, &c.id, ctx.now)?;
        Ok(true)
    })?;
    if !spent {
        attempt.wrong(ctx.now);
        return Err(grant_error(
            "invalid_grant",
            "The code is invalid or expired",
        ));
    }
    Ok(())
}

/// The pending sign-in a grant continues: its token's hash, the row, and its (active) user.
fn pending_of(state: &AppState, env: &Env, b: &AuthBody) -> WResult<(String, Pending, User)> {
    let t = b.pending_authentication_token.as_deref().unwrap_or("");
    let bad = || {
        grant_error(
            "invalid_grant",
            "The pending authentication token is invalid or expired",
        )
    };
    if t.is_empty() || t.len() > 256 {
        return Err(bad());
    }
    let hash = crypto::token_hash(t);
    let now = state.now();
    let p = state
        .db
        .read(|c| store::find_pending(c, &hash))?
        .filter(|p| p.client_id == env.client.id && p.used_at.is_none() && now < p.expires_at)
        .ok_or_else(bad)?;
    let user = reload(state, &p.user_id)?;
    if user.status != UserStatus::Active {
        return Err(bad());
    }
    Ok((hash, p, user))
}

fn new_pending(
    state: &AppState,
    ctx: &Ctx,
    env: &Env,
    user: &User,
    org: Option<&OrgId>,
    amr: &[String],
) -> WResult<String> {
    let token = crypto::random_token(32);
    state.db.write(|tx| {
        store::insert_pending(
            tx,
            &crypto::token_hash(&token),
            &env.client.id,
            &user.id,
            org,
            amr,
            ctx.now,
            ctx.now + PENDING_TTL_MS,
        )
    })?;
    Ok(token)
}

/// The authentication factor id of a user's TOTP (one per account).
pub fn factor_id(user: &UserId) -> String {
    format!("auth_factor_{}", user.as_str().trim_start_matches("usr_"))
}

/// After the first factor: the org (named, the only one, or chosen), its policy, the second
/// factor, then the tokens — or the 403 of the step that is due.
#[allow(clippy::too_many_arguments)]
fn after_first_factor(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    env: &Env,
    user: User,
    amr: Vec<String>,
    auth_time: i64,
    org: Option<OrgId>,
) -> WResult<Response> {
    let memberships: Vec<(Membership, Org)> = state
        .db
        .read(|c| users::memberships_of(c, &user.id))?
        .into_iter()
        .filter(|(m, o)| crate::api::guard::is_active(m) && o.status == OrgStatus::Active)
        .filter(|(_, o)| env.client.org_id.as_ref().is_none_or(|id| *id == o.id))
        .collect();
    let user_view = state.db.read(|c| user_obj(c, &user))?;
    let chosen = match &org {
        Some(id) => Some(
            memberships
                .iter()
                .find(|(_, o)| o.id == *id)
                .cloned()
                .ok_or_else(|| {
                    WError::new(
                        403,
                        "organization_membership_required",
                        "The user is not an active member of this organization",
                    )
                })?,
        ),
        None => match memberships.len() {
            0 => {
                // WorkOS signs in a user who belongs to no organization yet: a session with
                // none (its tokens carry no org; no org-scoped check passes it).
                let has_otp = amr.iter().any(|m| m == "otp");
                if user.two_factor_enabled && !has_otp {
                    let token = new_pending(state, ctx, env, &user, None, &amr)?;
                    return Err(WError::new(403, "mfa_challenge", "The user must complete an MFA challenge")
                        .with(json!({ "pending_authentication_token": token, "user": user_view,
                                      "authentication_factors": [{ "id": factor_id(&user.id), "type": "totp" }] })));
                }
                return issue_orgless(state, ctx, req, env, &user, &amr, auth_time);
            }
            1 => Some(memberships[0].clone()),
            _ => None,
        },
    };
    let Some((membership, org)) = chosen else {
        let token = new_pending(state, ctx, env, &user, None, &amr)?;
        let orgs: Vec<Value> = memberships
            .iter()
            .map(|(_, o)| json!({ "id": o.id, "name": o.name }))
            .collect();
        return Err(WError::new(403, "organization_selection_required", "The user must choose an organization")
            .with(json!({ "pending_authentication_token": token, "user": user_view, "organizations": orgs })));
    };
    if org.settings.signup_mode == SignupMode::Domain && !user.email_verified {
        let token = new_pending(state, ctx, env, &user, Some(&org.id), &amr)?;
        let code = super::users::six_digits();
        let c = super::users::new_code(
            state,
            ctx,
            req,
            "email_verification",
            &user,
            &code,
            PENDING_TTL_MS,
        )?;
        return Err(WError::new(
            403,
            "email_verification_required",
            "Email ownership must be verified before authentication",
        )
        .with(
            json!({ "pending_authentication_token": token, "email_verification_id": c.id,
                          "email": user.email, "user": user_view }),
        ));
    }
    let has_otp = amr.iter().any(|m| m == "otp");
    if user.two_factor_enabled && !has_otp {
        let token = new_pending(state, ctx, env, &user, Some(&org.id), &amr)?;
        return Err(WError::new(403, "mfa_challenge", "The user must complete an MFA challenge")
            .with(json!({ "pending_authentication_token": token, "user": user_view,
                          "authentication_factors": [{ "id": factor_id(&user.id), "type": "totp" }] })));
    }
    if org.settings.require_2fa && !user.two_factor_enabled {
        let token = new_pending(state, ctx, env, &user, Some(&org.id), &amr)?;
        return Err(
            WError::new(403, "mfa_enrollment", "The user must enroll in MFA")
                .with(json!({ "pending_authentication_token": token, "user": user_view })),
        );
    }
    let method = if amr.iter().any(|m| m == "magic_link") {
        "MagicAuth"
    } else {
        "Password"
    };
    issue(
        state,
        ctx,
        req,
        env,
        &user,
        &org,
        &membership,
        &amr,
        auth_time,
        method,
    )
}

/// Starts the session and answers `{user, organization_id, access_token, refresh_token, …}`.
#[allow(clippy::too_many_arguments)]
fn issue(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    env: &Env,
    user: &User,
    org: &Org,
    membership: &Membership,
    amr: &[String],
    auth_time: i64,
    method: &str,
) -> WResult<Response> {
    let g = Grant {
        client: &env.client,
        user,
        org,
        membership,
        scope: SCOPE,
        auth_time,
        amr,
        nonce: None,
        browser_session_id: None,
    };
    let issued = state.change(ctx, req, |tx| {
        crate::oauth::start_session(tx, state, ctx, req, &g)
    })?;
    answer(
        state,
        env,
        user,
        Some(org),
        Some(membership),
        &issued.session_id,
        &issued.refresh_token,
        auth_time,
        method,
        ctx.now,
    )
}

/// A session with no org (the user belongs to none yet) and its answer.
fn issue_orgless(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    env: &Env,
    user: &User,
    amr: &[String],
    auth_time: i64,
) -> WResult<Response> {
    let ua = ctx.user_agent(req);
    let ip = ctx.ip.to_string();
    let (sid, refresh) = state.change(ctx, req, |tx| {
        let origin = crate::session::login::origin(&ip, &ua);
        let (sid, refresh) =
            crate::session::start_orgless(tx, state, user, amr, &origin, &env.client.id, ctx.now)?;
        oauth::insert_session(
            tx,
            &sid,
            &oauth::OauthSession {
                client_id: env.client.id.clone(),
                scope: SCOPE.into(),
                auth_time,
                nonce: None,
            },
        )?;
        let mut e = crate::db::audit::Entry::new(
            None,
            "user",
            Some(&user.id),
            "user.login",
            Some("session"),
            Some(&sid),
        );
        e.metadata = json!({ "amr": amr, "client": env.client.id });
        tx.audit(e)?;
        Ok((sid, refresh))
    })?;
    let method = if amr.iter().any(|m| m == "magic_link") {
        "MagicAuth"
    } else {
        "Password"
    };
    answer(
        state, env, user, None, None, &sid, &refresh, auth_time, method, ctx.now,
    )
}

/// The authenticate answer, with a WorkOS-shaped RS256 access token.
#[allow(clippy::too_many_arguments)]
fn answer(
    state: &AppState,
    env: &Env,
    user: &User,
    org: Option<&Org>,
    membership: Option<&Membership>,
    sid: &SessionId,
    refresh_token: &str,
    auth_time: i64,
    method: &str,
    now: i64,
) -> WResult<Response> {
    let access = access_token(state, env, user, org, membership, sid, auth_time, now)?;
    Ok(ok(&json!({
        "user": state.db.read(|c| user_obj(c, user))?,
        "organization_id": org.map(|o| o.id.clone()),
        "access_token": access,
        "refresh_token": refresh_token,
        "authentication_method": method,
        "impersonator": null,
    })))
}

/// An access token as WorkOS issues it: RS256, `sub`, `sid`, `org_id`, `role`, `roles`,
/// `permissions`, `auth_time` (a number), `iat`, `exp`, `iss`, `jti`; no `sub_type`.
#[allow(clippy::too_many_arguments)]
pub fn access_token(
    state: &AppState,
    env: &Env,
    user: &User,
    org: Option<&Org>,
    membership: Option<&Membership>,
    sid: &SessionId,
    auth_time: i64,
    now: i64,
) -> WResult<String> {
    let iat = now.div_euclid(1000);
    let mut claims = json!({
        "iss": state.config.server.public_url,
        "sub": user.id,
        "sid": sid,
        "auth_time": auth_time.div_euclid(1000),
        "iat": iat,
        "exp": iat + state.config.tokens.access_ttl.as_secs() as i64,
        "jti": crate::ids::new_id("jti", now),
        "client_id": env.client.id,
    });
    if let (Some(o), Some(m)) = (org, membership) {
        let role = super::role_slug(&m.role);
        claims["org_id"] = json!(o.id);
        claims["role"] = json!(role);
        claims["roles"] = json!([role]);
        claims["permissions"] = json!([]);
    }
    state
        .keys
        .sign_rs256(&claims)
        .map_err(|e| crate::error::ApiError::internal(format!("signing: {e}")).into())
}

fn code_grant(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    env: &Env,
    b: &AuthBody,
) -> WResult<Response> {
    let bad = || {
        grant_error(
            "invalid_grant",
            "The code is invalid, expired or already used",
        )
    };
    let code = b
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 256)
        .ok_or_else(bad)?;
    let hash = crypto::token_hash(code);
    let c = state
        .db
        .read(|conn| oauth::find_code(conn, &hash))?
        .ok_or_else(bad)?;
    if c.client_id != env.client.id || c.used_at.is_some() || ctx.now >= c.expires_at {
        if c.client_id == env.client.id && c.used_at.is_some() {
            // Replayed: what the first use produced ends.
            state.change(ctx, req, |tx| {
                if let Some(sid) = &c.session_id
                    && crate::db::sessions::revoke(tx, sid, "code_reused", ctx.now)?
                {
                    tx.sessions_revoked(
                        &[(sid.clone(), c.org_id.clone())],
                        json!({ "id": c.user_id }),
                        "code_reused",
                    )?;
                }
                Ok(())
            })?;
        }
        return Err(bad());
    }
    let verifier = b.code_verifier.as_deref().unwrap_or("");
    match &c.code_challenge {
        Some(ch) if !crate::oauth::pkce_ok(verifier, ch) => {
            return Err(grant_error("invalid_grant", "PKCE verification failed"));
        }
        None if env.client.is_public() => {
            return Err(grant_error("invalid_grant", "PKCE verification failed"));
        }
        _ => {}
    }
    let user = reload(state, &c.user_id)?;
    let (org, membership) = state.db.read(|conn| {
        let o = crate::db::orgs::find_by_id(conn, &c.org_id)?;
        let m = users::find_membership(conn, &c.org_id, &c.user_id)?;
        Ok::<_, crate::db::Error>((o, m))
    })?;
    let (Some(org), Some(membership)) = (org, membership.filter(crate::api::guard::is_active))
    else {
        return Err(grant_error(
            "invalid_grant",
            "The membership is no longer active",
        ));
    };
    let g = Grant {
        client: &env.client,
        user: &user,
        org: &org,
        membership: &membership,
        scope: SCOPE,
        auth_time: c.auth_time,
        amr: &c.amr,
        nonce: None,
        browser_session_id: c.browser_session_id.as_deref(),
    };
    let issued = state
        .change(ctx, req, |tx| {
            if !oauth::spend_code(tx, &hash, ctx.now)? {
                return Err(crate::error::ApiError::of(
                    crate::error::ErrorCode::InvalidToken,
                ));
            }
            let i = crate::oauth::start_session(tx, state, ctx, req, &g)?;
            oauth::set_code_session(tx, &hash, &i.session_id)?;
            Ok(i)
        })
        .map_err(|e| if e.status() == 400 { bad() } else { e.into() })?;
    answer(
        state,
        env,
        &user,
        Some(&org),
        Some(&membership),
        &issued.session_id,
        &issued.refresh_token,
        c.auth_time,
        "Password",
        ctx.now,
    )
}

fn refresh_grant(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    env: &Env,
    b: &AuthBody,
) -> WResult<Response> {
    let bad = || {
        grant_error(
            "invalid_grant",
            "The refresh token is invalid, expired or revoked",
        )
    };
    let token = b
        .refresh_token
        .as_deref()
        .filter(|t| !t.is_empty() && t.len() <= 512)
        .ok_or_else(bad)?;
    let or_bad = |e: crate::error::ApiError| {
        if e.status() >= 500 {
            WError::from(e)
        } else {
            bad()
        }
    };
    let prepared = state
        .db
        .read(|c| crate::session::prepare_refresh(c, token, ctx.now))
        .map_err(or_bad)?;
    if prepared.client_id() != Some(env.client.id.as_str()) {
        return Err(bad());
    }
    let facts = state
        .db
        .read(|c| oauth::session(c, prepared.session_id()))?
        .ok_or_else(bad)?;
    let target = b
        .organization_id
        .as_deref()
        .filter(|o| !o.is_empty())
        .map(OrgId::from_wire);
    let refreshed = crate::session::refresh_now(state, prepared, ctx.now).map_err(or_bad)?;
    let rotated = match refreshed {
        crate::session::Refreshed::Ok(r) => r,
        crate::session::Refreshed::Reused { .. } => return Err(bad()),
    };
    let amr = rotated.session.auth_methods.clone();
    match target {
        // Switching orgs: a session in the other org, the old one ends.
        Some(t) if t != rotated.org.id => {
            let old = rotated.session.id.clone();
            state.change(ctx, req, |tx| {
                crate::db::sessions::revoke(tx, &old, "switched_org", ctx.now)?;
                Ok(())
            })?;
            after_first_factor(
                state,
                ctx,
                req,
                env,
                rotated.user.clone(),
                amr,
                facts.auth_time,
                Some(t),
            )
        }
        _ => {
            let orgless = crate::session::is_orgless(&rotated.org.id);
            answer(
                state,
                env,
                &rotated.user,
                (!orgless).then_some(&rotated.org),
                (!orgless).then_some(&rotated.membership),
                &rotated.session.id,
                &rotated.refresh_token,
                facts.auth_time,
                "Password",
                ctx.now,
            )
        }
    }
}

fn device_grant(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    env: &Env,
    b: &AuthBody,
) -> WResult<Response> {
    let dc = b
        .device_code
        .as_deref()
        .filter(|d| !d.is_empty() && d.len() <= 256)
        .ok_or_else(|| WError::invalid("device_code", "is required"))?;
    let hash = crypto::token_hash(dc);
    let d = state
        .db
        .read(|c| oauth::device_by_device_code(c, &hash))?
        .filter(|d| d.client_id == env.client.id)
        .ok_or_else(|| grant_error("invalid_grant", "Unknown device code"))?;
    if ctx.now >= d.expires_at {
        return Err(grant_error("expired_token", "The device code expired"));
    }
    // Polling too fast matters while the person has not decided yet.
    if d.state == "pending"
        && let Some(last) = d.last_polled_at
        && ctx.now - last < d.interval_ms
    {
        state
            .db
            .write(|tx| oauth::device_polled(tx, &hash, ctx.now, d.interval_ms + 5_000))?;
        return Err(grant_error("slow_down", "Polling too fast"));
    }
    state
        .db
        .write(|tx| oauth::device_polled(tx, &hash, ctx.now, d.interval_ms))?;
    match d.state.as_str() {
        "pending" => Err(grant_error(
            "authorization_pending",
            "The user has not approved yet",
        )),
        "denied" => Err(grant_error("access_denied", "The user denied the request")),
        "used" => Err(grant_error(
            "invalid_grant",
            "The device code was already used",
        )),
        _ => {
            let (Some(uid), Some(oid)) = (&d.user_id, &d.org_id) else {
                return Err(grant_error("invalid_grant", "Unknown device code"));
            };
            if !state.db.write(|tx| oauth::spend_device(tx, &hash))? {
                return Err(grant_error(
                    "invalid_grant",
                    "The device code was already used",
                ));
            }
            let user = reload(state, uid)?;
            let mut amr = d.amr.clone();
            if user.two_factor_enabled && !amr.iter().any(|m| m == "otp") {
                amr.push("otp".into());
            }
            after_first_factor(
                state,
                ctx,
                req,
                env,
                user,
                amr,
                d.auth_time.unwrap_or(ctx.now),
                Some(oid.clone()),
            )
        }
    }
}

// ---- Sessions, JWKS, device, browser routes -------------------------------------------------

#[derive(Deserialize)]
pub struct SessionBody {
    session_id: String,
}

/// `POST /user_management/sessions/revoke {session_id}`: a session of this client ends.
pub fn revoke_session(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |env| {
        let b: SessionBody = body(state, req)?;
        let sid = SessionId::from_wire(b.session_id.as_str());
        let facts = state.db.read(|c| oauth::session(c, &sid))?;
        if facts.is_none_or(|f| f.client_id != env.client.id) {
            return Err(WError::not_found("Session", &b.session_id));
        }
        state.change(ctx, req, |tx| {
            let s = crate::db::sessions::find_for_any(tx, &sid)?;
            if let Some(s) = s
                && crate::db::sessions::revoke(tx, &sid, "revoked_by_client", ctx.now)?
            {
                tx.sessions_revoked(
                    &[(sid.clone(), s.org_id.clone())],
                    json!({ "id": s.user_id }),
                    "revoked_by_client",
                )?;
            }
            Ok(())
        })?;
        Ok(super::no_content())
    })
}

/// `GET /sso/jwks/{client_id}` (public): the RS256 keys, with `x5c` and `x5t#S256`.
pub fn jwks(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    if !state.config.workos.enabled {
        return run(state, ctx, req, |_| unreachable!("disabled"));
    }
    let id = ctx.param("clientId");
    let known = id.len() <= 128 && state.db.read(|c| oauth::find_client(c, id))?.is_some();
    if !known {
        return run_err(WError::not_found("Client", id));
    }
    let keys = state
        .keys
        .jwks_for(&state.db, ctx.now, true)
        .map_err(|e| crate::error::ApiError::internal(format!("jwks: {e}")))?;
    Ok(Response::json(&keys).with_additional_header("Cache-Control", "public, max-age=300"))
}

#[derive(Deserialize)]
pub struct DeviceBody {
    client_id: Option<String>,
}

/// `POST /user_management/authorize/device {client_id}` (RFC 8628 §3.1, public).
pub fn device_authorization(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    if !state.config.workos.enabled {
        return run(state, ctx, req, |_| unreachable!("disabled"));
    }
    let b: DeviceBody = match body(state, req) {
        Ok(b) => b,
        Err(e) => return run_err(e),
    };
    let id = b.client_id.unwrap_or_default();
    let client = if id.is_empty() || id.len() > 128 {
        None
    } else {
        state.db.read(|c| oauth::find_client(c, &id))?
    };
    let Some(client) = client.filter(|c| c.profile == "workos") else {
        return run_err(grant_error("invalid_client", "Unknown client"));
    };
    let device_code = crypto::random_token(32);
    let user_code = crate::oauth::new_user_code();
    let expires = ctx.now + crate::oauth::DEVICE_TTL_MS;
    state.db.write(|tx| {
        oauth::insert_device_code(
            tx,
            &crypto::token_hash(&device_code),
            &crypto::token_hash(&user_code),
            &client.id,
            SCOPE,
            crate::oauth::DEVICE_INTERVAL_MS,
            ctx.now,
            expires,
        )
    })?;
    let base = state.config.server.public_url.trim_end_matches('/');
    Ok(ok(&json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": format!("{base}/device"),
        "verification_uri_complete": format!("{base}/device?user_code={user_code}"),
        "expires_in": crate::oauth::DEVICE_TTL_MS / 1000,
        "interval": crate::oauth::DEVICE_INTERVAL_MS / 1000,
    })))
}

/// `GET /user_management/authorize`: AuthKit's hosted sign-in is Latchkey's own — the request
/// goes on to `/oauth2/authorize` (PKCE when the app sends it; a confidential WorkOS client may
/// go without, as WorkOS allows), and the code comes back to the app's redirect URI.
pub fn authorize(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    if !state.config.workos.enabled {
        return run(state, ctx, req, |_| unreachable!("disabled"));
    }
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let mut has_scope = false;
    for (k, v) in url::form_urlencoded::parse(req.raw_query_string().as_bytes()) {
        match k.as_ref() {
            "client_id"
            | "redirect_uri"
            | "response_type"
            | "state"
            | "code_challenge"
            | "code_challenge_method"
            | "login_hint"
            | "prompt"
            | "max_age" => {
                q.append_pair(&k, &v);
            }
            "organization_id" => {
                q.append_pair("organization", &v);
            }
            "scope" => {
                has_scope = true;
                q.append_pair("scope", &v);
            }
            _ => {}
        }
    }
    if !has_scope {
        q.append_pair("scope", SCOPE);
    }
    Ok(Response::redirect_302(format!(
        "/oauth2/authorize?{}",
        q.finish()
    )))
}

/// `GET /user_management/sessions/logout?session_id=&return_to=`: the session ends and the
/// browser signs out at Latchkey, then returns to `return_to` when it is one of the client's
/// registered post-logout URIs.
pub fn logout(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    if !state.config.workos.enabled {
        return run(state, ctx, req, |_| unreachable!("disabled"));
    }
    let sid = crate::http::input::query(req, "session_id").unwrap_or_default();
    let return_to = crate::http::input::query(req, "return_to").unwrap_or_default();
    let sid = SessionId::from_wire(sid.as_str());
    let found = if sid.is_empty() || sid.len() > 128 {
        None
    } else {
        state.db.read(|c| {
            let f = oauth::session(c, &sid)?;
            let s = crate::db::sessions::find_for_any(c, &sid)?;
            Ok::<_, crate::db::Error>(f.zip(s))
        })?
    };
    let Some((facts, session)) = found else {
        return Ok(Response::redirect_302("/oauth2/logout".to_string()));
    };
    state.change(ctx, req, |tx| {
        if crate::db::sessions::revoke(tx, &sid, "logout", ctx.now)? {
            tx.emit_in(
                &session.org_id,
                "user.logout",
                json!({ "user": { "id": session.user_id }, "session": { "id": sid } }),
            )?;
        }
        Ok(())
    })?;
    // The browser signs out at Latchkey too, when it is that person's.
    let mut clear_cookie = false;
    if let Some(t) = crate::http::input::cookie(req, crate::ui::SESSION_COOKIE)
        .filter(|t| !t.is_empty() && t.len() <= 128)
    {
        let bs = state
            .db
            .read(|c| crate::db::browser_sessions::find_by_token(c, &crypto::token_hash(t)))?;
        if let Some(bs) = bs.filter(|b| b.user_id == session.user_id) {
            let user = state.db.read(|c| users::find_by_id(c, &session.user_id))?;
            if let Some(user) = user {
                state.change(ctx, req, |tx| {
                    crate::flows::account::end_browser_session(
                        tx, ctx, req, &user, &bs.id, "logout",
                    )
                })?;
                clear_cookie = true;
            }
        }
    }
    let client = state.db.read(|c| oauth::find_client(c, &facts.client_id))?;
    let to = client
        .filter(|c| !return_to.is_empty() && c.post_logout_redirect_uris.contains(&return_to))
        .map(|_| return_to.clone())
        .unwrap_or_else(|| "/login".to_string());
    let mut resp = Response::redirect_302(to);
    if clear_cookie {
        let secure = if state.config.cookies.secure {
            "; Secure"
        } else {
            ""
        };
        resp.headers.push((
            "Set-Cookie".into(),
            format!(
                "{}=; Path=/; Max-Age=0; SameSite=Lax; HttpOnly{secure}",
                crate::ui::SESSION_COOKIE
            )
            .into(),
        ));
    }
    Ok(resp)
}

// ---- Auth factors and challenges -------------------------------------------------------------

fn factor_obj(user: &User, created_at: i64) -> Value {
    json!({
        "object": "authentication_factor",
        "id": factor_id(&user.id),
        "type": "totp",
        "user_id": user.id,
        "totp": { "issuer": "Latchkey", "user": user.email },
        "created_at": super::ts(created_at),
        "updated_at": super::ts(created_at),
    })
}

fn challenge_obj(user: &User, now: i64) -> Value {
    json!({
        "object": "authentication_challenge",
        // The challenge carries its factor (and so its user): `auth_challenge_<factor>.<nonce>`.
        "id": format!("auth_challenge_{}.{}", user.id.as_str().trim_start_matches("usr_"), crypto::random_hex(6)),
        "authentication_factor_id": factor_id(&user.id),
        "expires_at": super::ts(now + PENDING_TTL_MS),
        "created_at": super::ts(now),
        "updated_at": super::ts(now),
    })
}

/// Whether the user has a TOTP factor (enrolled, or pending its first code).
fn has_factor(state: &AppState, user: &User) -> WResult<bool> {
    Ok(state
        .db
        .read(|c| crate::db::two_factor::totp(c, &user.id))?
        .is_some())
}

/// The user a factor id names.
fn user_of_factor(state: &AppState, id: &str) -> WResult<User> {
    let uid = id
        .strip_prefix("auth_factor_")
        .map(|r| UserId::from_wire(format!("usr_{r}")))
        .ok_or_else(|| WError::not_found("AuthenticationFactor", id))?;
    state
        .db
        .read(|c| users::find_by_id(c, &uid))?
        .ok_or_else(|| WError::not_found("AuthenticationFactor", id))
}

#[derive(Deserialize, Default)]
pub struct EnrollBody {
    totp_issuer: Option<String>,
    totp_user: Option<String>,
}

/// `POST /user_management/users/{id}/auth_factors {type: "totp"}`: a pending TOTP secret (it
/// turns on with the first code, through the `mfa-totp` grant).
pub fn enroll_factor(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let b: EnrollBody = body(state, req)?;
        let id = ctx.param("id");
        let user = state
            .db
            .read(|c| users::find_by_id(c, &UserId::from_wire(id)))?
            .ok_or_else(|| WError::not_found("User", id))?;
        let issuer = b.totp_issuer.unwrap_or_else(|| "Latchkey".into());
        let e = crate::flows::two_factor::begin_enrolment(state, ctx, &user, &issuer)?;
        let mut factor = factor_obj(&user, ctx.now);
        factor["totp"] = json!({
            "issuer": issuer,
            "user": b.totp_user.unwrap_or_else(|| user.email.clone()),
            "secret": e.secret,
            "uri": e.otpauth_url,
            "qr_code": format!("data:image/svg+xml;base64,{}", crypto::b64(e.qr_svg.as_bytes())),
        });
        Ok(ok(
            &json!({ "authentication_factor": factor, "authentication_challenge": challenge_obj(&user, ctx.now) }),
        ))
    })
}

pub fn list_factors(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let id = ctx.param("id");
        let user = state
            .db
            .read(|c| users::find_by_id(c, &UserId::from_wire(id)))?
            .ok_or_else(|| WError::not_found("User", id))?;
        let data: Vec<Value> = if has_factor(state, &user)? {
            vec![factor_obj(&user, user.updated_at)]
        } else {
            vec![]
        };
        Ok(ok(
            &json!({ "object": "list", "data": data, "list_metadata": { "before": null, "after": null } }),
        ))
    })
}

pub fn get_factor(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let user = user_of_factor(state, ctx.param("id"))?;
        if !has_factor(state, &user)? {
            return Err(WError::not_found("AuthenticationFactor", ctx.param("id")));
        }
        Ok(ok(&factor_obj(&user, user.updated_at)))
    })
}

pub fn challenge_factor(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let user = user_of_factor(state, ctx.param("id"))?;
        Ok(ok(&challenge_obj(&user, ctx.now)))
    })
}

#[derive(Deserialize)]
pub struct VerifyBody {
    code: String,
}

/// `POST /auth/challenges/{id}/verify {code}`: whether the code is the factor's, on the
/// budget of wrong codes every code check shares.
pub fn verify_challenge(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let b: VerifyBody = body(state, req)?;
        let id = ctx.param("id");
        let user_part = id
            .strip_prefix("auth_challenge_")
            .and_then(|r| r.split_once('.'))
            .map(|(u, _)| u)
            .ok_or_else(|| WError::not_found("AuthenticationChallenge", id))?;
        let user = state
            .db
            .read(|c| users::find_by_id(c, &UserId::from_wire(format!("usr_{user_part}"))))?
            .ok_or_else(|| WError::not_found("AuthenticationChallenge", id))?;
        if !has_factor(state, &user)? {
            return Err(WError::not_found("AuthenticationChallenge", id));
        }
        let valid = if user.two_factor_enabled {
            crate::flows::two_factor::check_sign_in_code(state, ctx, &user.id, &b.code)?
        } else {
            // A pending factor's first right code turns it on.
            match crate::flows::two_factor::enable_with_code(state, ctx, req, &user, None, &b.code)
            {
                Ok(_) => true,
                Err(e) if e.status() < 500 && e.status() != 429 => false,
                Err(e) => return Err(e.into()),
            }
        };
        let mut challenge = challenge_obj(&user, ctx.now);
        challenge["id"] = json!(id);
        Ok(ok(&json!({ "challenge": challenge, "valid": valid })))
    })
}
