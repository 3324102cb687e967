//! The server-to-server API (`/public/*`, API.md §6): an org's backend, holding one of the
//! org's API keys, verifies users' tokens (including whether the session is still live, which
//! offline JWKS verification cannot tell), manages the org's users and signs them in.
//! Every answer carries the key's `X-RateLimit-*` headers; see [`run`].

use crate::api::{Ctx, guard, views};
use crate::clock::{Rfc3339, rfc3339};
use crate::crypto;
use crate::cursor;
use crate::db::api_keys::{self as keys_db, ApiKey};
use crate::db::audit::Entry;
use crate::db::orgs::{self, Org};
use crate::db::sessions::{self, Session};
use crate::db::users::{self, Membership, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::flows::invite;
use crate::flows::public_invite;
use crate::http::input::{self, query_int};
use crate::http::respond;
use crate::ids::{SessionId, UserId};
use crate::org_keys::{self, KEY_PREFIX};
use crate::password;
use crate::ratelimit::Quota;
use crate::session::login;
use crate::state::AppState;
use crate::status::{MemberStatus, UserStatus};
use crate::tokens::{AccessClaims, TokenError};
use crate::validate;
use rouille::{Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::IpAddr;

/// An authenticated backend: a live API key and its (live) org.
pub struct KeyCtx {
    pub key: ApiKey,
    pub org: Org,
}

fn invalid_key() -> ApiError {
    ApiError::of(ErrorCode::InvalidApiKey)
}

/// `X-API-Key: pk_live_<64 hex>` naming an unrevoked, unexpired key of a live org.
fn api_key(state: &AppState, req: &Request, now: i64) -> ApiResult<KeyCtx> {
    let raw = req.header("X-API-Key").map(str::trim).unwrap_or("");
    let well_formed = raw
        .strip_prefix(KEY_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(invalid_key());
    }
    let hash = crypto::token_hash(raw);
    // One read transaction for the key and its org (each statement alone would be one).
    let found = state.db.read_snapshot(|c| {
        let Some(key) = keys_db::find_live_by_hash(c, &hash)? else {
            return Ok::<_, ApiError>(None);
        };
        Ok(orgs::find_by_id(c, &key.org_id)?.map(|org| (key, org)))
    })?;
    match found {
        Some((key, org))
            if crypto::ct_eq(key.key_hash.as_bytes(), hash.as_bytes()) && key.is_active(now) =>
        {
            Ok(KeyCtx { key, org })
        }
        _ => Err(invalid_key()),
    }
}

fn with_rate_headers(resp: &mut Response, q: &Quota) {
    respond::set_header(resp, "X-RateLimit-Limit", q.limit.to_string());
    respond::set_header(resp, "X-RateLimit-Remaining", q.remaining.to_string());
    respond::set_header(resp, "X-RateLimit-Reset", (q.reset_at / 1000).to_string());
}

/// The frame of every `/public/*` handler: authenticates the key, counts the request against
/// its per-minute quota (requests without a valid key count against the caller's IP), refuses
/// an `X-Org-Slug` naming another org and a key without `scope`, then runs `f`. Every answer,
/// success or error, carries `X-RateLimit-Limit/Remaining/Reset`.
fn run(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    scope: &str,
    f: impl FnOnce(&KeyCtx) -> ApiResult<Response>,
) -> ApiResult<Response> {
    let auth = api_key(state, req, ctx.now);
    let bucket = match &auth {
        Ok(k) => format!("public:key:{}", k.key.id),
        Err(_) => format!("public:ip:{}", crate::ratelimit::client_key(&ctx.ip)),
    };
    let quota = state.limiter.quota(
        &bucket,
        state.config.security.public_api_per_minute,
        60_000,
        ctx.now,
    );
    let result = (|| {
        if let Some(retry) = quota.exceeded {
            return Err(ApiError::rate_limited(retry));
        }
        let k = auth?;
        org_keys::note_use(state, &k.key, ctx.now);
        if let Some(slug) = req.header("X-Org-Slug").map(str::trim)
            && !slug.is_empty()
            && slug != k.org.slug
        {
            return Err(ApiError::of(ErrorCode::OrgMismatch)
                .with_message("X-Org-Slug names another organization than the API key's"));
        }
        if !k.key.scopes.iter().any(|s| s == scope) {
            return Err(ApiError::forbidden(format!(
                "This API key lacks the '{scope}' scope"
            )));
        }
        f(&k)
    })();
    match result {
        Ok(mut resp) => {
            with_rate_headers(&mut resp, &quota);
            Ok(resp)
        }
        Err(e) => Err(e
            .with_header("X-RateLimit-Limit", quota.limit.to_string())
            .with_header("X-RateLimit-Remaining", quota.remaining.to_string())
            .with_header("X-RateLimit-Reset", (quota.reset_at / 1000).to_string())),
    }
}

/// An audit entry with the API key as actor.
fn key_entry<'a>(k: &'a KeyCtx, action: &'a str, target: (&'a str, &'a str)) -> Entry<'a> {
    Entry::new(
        Some(&k.org.id),
        "api_key",
        Some(&k.key.id),
        action,
        Some(target.0),
        Some(target.1),
    )
}

/// `owner` may only be granted by a key whose creator is still an active owner of the org,
/// so an `org_admin` cannot mint owners through a key (only owners grant `owner`, §5).
fn check_role_grant(state: &AppState, k: &KeyCtx, role: &str) -> ApiResult<()> {
    validate::org_role("role", role)?;
    if role != crate::role::Role::Owner.as_str() {
        return Ok(());
    }
    let creator = match &k.key.created_by {
        Some(uid) => state
            .db
            .read(|c| users::find_membership(c, &k.org.id, uid))?,
        None => None,
    };
    if creator.is_some_and(|m| m.is_active_owner()) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "Only an API key created by an owner may grant the owner role",
        ))
    }
}

/// The user and their membership in the key's org, or 404.
fn member_of(state: &AppState, k: &KeyCtx, user_id: &UserId) -> ApiResult<(User, Membership)> {
    let found = state.db.read(|c| {
        let Some(m) = users::find_membership(c, &k.org.id, user_id)? else {
            return Ok::<_, ApiError>(None);
        };
        Ok(users::find_by_id(c, user_id)?.map(|u| (u, m)))
    })?;
    found.ok_or_else(|| ApiError::not_found("No such user in this organization"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRequest {
    token: String,
}

/// What `/public/verify` found: a valid token's session, user and membership, else the
/// reason it is not valid.
struct Checked {
    claims: AccessClaims,
    session: Session,
    user: User,
    membership: Membership,
}

/// `/public/verify`'s answer, written straight into the body: the fields in the sorted order
/// a `serde_json::Value` wrote them in (the token's claims too, `views::ClaimsView`), so the
/// bytes are those of the `json!` it replaced.
#[derive(Serialize)]
#[serde(untagged)]
// Made, written and dropped within one answer, on the stack: boxing the big variant would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Verdict<'a> {
    Valid {
        claims: views::ClaimsView<'a>,
        membership: views::MembershipView<'a>,
        org: views::OrgView<'a>,
        session: SessionBrief<'a>,
        user: views::UserView<'a>,
        valid: bool,
    },
    NotValid {
        reason: &'a str,
        valid: bool,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionBrief<'a> {
    expires_at: Rfc3339,
    id: &'a SessionId,
}

impl<'a> Verdict<'a> {
    fn of(org: &'a Org, checked: &'a Result<Checked, &'static str>) -> Self {
        match checked {
            Ok(c) => Verdict::Valid {
                claims: views::ClaimsView::of(&c.claims),
                membership: views::MembershipView::of(&c.membership),
                org: views::OrgView::of(org),
                session: SessionBrief {
                    expires_at: Rfc3339(c.session.idle_expires_at.min(c.session.expires_at)),
                    id: &c.session.id,
                },
                user: views::UserView::of(&c.user),
                valid: true,
            },
            Err(reason) => Verdict::NotValid {
                reason,
                valid: false,
            },
        }
    }
}

/// What `/public/verify` says about an access token, for the org `org`: `Err` is the reason
/// it is not valid.
fn check_token(
    state: &AppState,
    ctx: &Ctx,
    org: &Org,
    token: &str,
) -> ApiResult<Result<Checked, &'static str>> {
    let token = token.trim();
    if token.is_empty() {
        return Ok(Err("invalid_token"));
    }
    let s = &state.config;
    let claims = match state.keys.verify(
        &state.db,
        token,
        &s.server.public_url,
        &s.tokens.audience,
        ctx.now,
    ) {
        Ok(c) => c,
        Err(TokenError::Expired) => return Ok(Err("token_expired")),
        Err(_) => return Ok(Err("invalid_token")),
    };
    // Before anything else: nothing about another org's sessions or users is told.
    if claims.org_id != org.id {
        return Ok(Err("org_mismatch"));
    }
    let found = state
        .db
        .read(|c| sessions::with_user(c, &org.id, &claims.sid))?
        .filter(|(s, _, _)| s.user_id == claims.sub);
    let Some((session, user, membership)) = found else {
        return Ok(Err("session_revoked"));
    };
    if session.revoked_at.is_some() {
        return Ok(Err("session_revoked"));
    }
    if !session.is_live(ctx.now) {
        return Ok(Err("session_expired"));
    }
    if user.status != UserStatus::Active {
        return Ok(Err("user_inactive"));
    }
    let membership = match guard::active_membership(membership) {
        Ok(m) => m,
        Err(e) => return Ok(Err(e.code.as_str())),
    };
    Ok(Ok(Checked {
        claims,
        session,
        user,
        membership,
    }))
}

pub fn verify(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, "verify", |k| {
        let body: VerifyRequest = input::json(req, state.config.server.max_body_bytes)?;
        let checked = check_token(state, ctx, &k.org, &body.token)?;
        Ok(respond::ok(Verdict::of(&k.org, &checked)))
    })
}

pub fn get_user(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, "users:read", |k| {
        let (user, membership) = member_of(state, k, &UserId::from_wire(ctx.param("id")))?;
        Ok(respond::ok(json!({
            "user": views::user(&user),
            "membership": views::membership(&membership),
        })))
    })
}

pub fn get_member(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, "users:read", |k| {
        let (_, membership) = member_of(state, k, &UserId::from_wire(ctx.param("userId")))?;
        Ok(respond::ok(
            json!({ "membership": views::membership(&membership) }),
        ))
    })
}

pub fn list_users(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, "users:read", |k| {
        let limit = query_int(req, "limit", 20, 1, 100)?;
        let email = match input::query(req, "email") {
            Some(e) if !e.trim().is_empty() => Some(validate::email(&e)?),
            _ => None,
        };
        let after = cursor::from_query(&state.cursor_key, req)?;
        let mut rows = state.db.read(|c| {
            users::list_members(
                c,
                &k.org.id,
                email.as_deref(),
                after.as_ref().map(|(a, i)| (*a, i.as_str())),
                limit + 1,
            )
        })?;
        let next = cursor::next_page(&state.cursor_key, &mut rows, limit, |(m, _)| {
            (m.joined_at, &m.id)
        });
        let list: Vec<Value> = rows
            .iter()
            .map(|(m, u)| json!({ "user": views::user(u), "membership": views::membership(m) }))
            .collect();
        Ok(respond::ok(json!({ "users": list, "nextCursor": next })))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    email: String,
    password: Option<String>,
    name: Option<String>,
    role: Option<String>,
    is_email_verified: Option<bool>,
}

fn exists_elsewhere() -> ApiError {
    ApiError::already_exists(
        "An account with this email already exists; bring it into the organization with \
         POST /public/invitations",
    )
}

/// Backend-driven signup: a new account seated in the key's org. An email that already has
/// an account is refused (409): seating an existing account in another org without its
/// owner's consent is what invitations are for.
pub fn create_user(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, "users:write", |k| {
        let body: CreateUserRequest = input::json(req, state.config.server.max_body_bytes)?;
        let email = validate::email(&body.email)?;
        let name = body
            .name
            .as_deref()
            .map(|n| validate::name("name", n))
            .transpose()?;
        let role = body.role.unwrap_or_else(|| "member".into());
        check_role_grant(state, k, &role)?;
        if body.is_email_verified == Some(true) {
            // Accounts are deployment-wide: no tenant may vouch for an address.
            return Err(ApiError::field(
                ErrorCode::InvalidRequest,
                "isEmailVerified",
                "an organization cannot mark an email verified; the user proves it by email \
                 (POST /auth/verify-email/send)",
            ));
        }
        if let Some(p) = &body.password {
            password::check_policy(
                &state.config.password,
                k.org.settings.password_min_length,
                "password",
                p,
            )?;
        }
        let existing = state.db.read(|c| {
            let Some(u) = users::find_by_email(c, &email)? else {
                return Ok::<_, ApiError>(None);
            };
            Ok(Some(users::find_membership(c, &k.org.id, &u.id)?.is_some()))
        })?;
        match existing {
            Some(true) => return Err(public_invite::already_member()),
            Some(false) => return Err(exists_elsewhere()),
            None => {}
        }
        let password_hash = match &body.password {
            Some(p) => Some(state.hasher.hash(p)?),
            None => None,
        };
        let user = User {
            email_verified: false,
            password_hash,
            name,
            ..User::new(email, ctx.now)
        };
        let membership = Membership {
            id: crate::ids::new_id("mem", ctx.now),
            org_id: k.org.id.clone(),
            user_id: user.id.clone(),
            role,
            status: MemberStatus::Active,
            metadata: json!({}),
            joined_at: ctx.now,
        };
        state.change(ctx, req, |tx| {
            users::insert(tx, &user).map_err(|e| {
                if e.is_conflict() {
                    exists_elsewhere()
                } else {
                    e.into()
                }
            })?;
            users::insert_membership(tx, &membership)?;
            tx.emit(
                Some(&k.org),
                "user.created",
                json!({ "user": { "id": user.id, "email": user.email, "name": user.name } }),
            )?;
            tx.emit(
                Some(&k.org),
                "member.joined",
                json!({
                    "user": { "id": user.id, "name": user.name, "email": user.email },
                    "membership": {
                        "role": membership.role,
                        "status": membership.status,
                        "joinedAt": rfc3339(membership.joined_at),
                    },
                }),
            )?;
            let mut e = key_entry(k, "user.created", ("user", &user.id));
            e.metadata = json!({ "role": membership.role });
            tx.audit(e)?;
            Ok(())
        })?;
        Ok(respond::created(json!({
            "user": views::user(&user),
            "membership": views::membership(&membership),
        })))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticateRequest {
    email: String,
    password: String,
    ip_address: Option<String>,
    user_agent: Option<String>,
}

/// `/auth/login` for a backend that owns the login form: the same lockout, per-IP limit
/// (keyed by the end user's `ipAddress` when given), membership checks and 2FA step, in the
/// key's org. No cookies: the backend is not the user's browser.
pub fn authenticate(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, "authenticate", |k| {
        let body: AuthenticateRequest = input::json(req, state.config.server.max_body_bytes)?;
        let ip = match body.ip_address.as_deref().map(str::trim) {
            None | Some("") => ctx.ip,
            Some(s) => s.parse::<IpAddr>().map_err(|_| {
                ApiError::field(
                    ErrorCode::InvalidRequest,
                    "ipAddress",
                    "must be an IPv4 or IPv6 address",
                )
            })?,
        };
        let ua = body.user_agent.map(|mut ua| {
            let mut end = ua.len().min(512);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua.truncate(end);
            ua
        });
        let user_ctx = ctx.on_behalf_of(ip, ua);
        // The key's own budget of failed logins, and the org's over all its keys: a backend
        // (or whoever holds a key) cannot spray passwords by naming a new `ipAddress` each
        // time, nor by minting more keys.
        // Checked before and counted after (not held in flight like an account's budget:
        // a busy backend runs many logins at once, nearly all of them right).
        let per_minute = state.config.security.api_key_login_failures_per_minute;
        let budgets = [
            format!("authenticate:key:{}", k.key.id),
            format!("authenticate:org:{}", k.org.id),
        ];
        for b in &budgets {
            state
                .limiter
                .locked(b, ctx.now)
                .map_err(ApiError::rate_limited)?;
        }
        let result =
            login::password_login(state, &user_ctx, req, &k.org, &body.email, &body.password);
        if let Err(e) = &result
            && e.code == "invalid_credentials"
        {
            for b in &budgets {
                state.limiter.fail(b, per_minute, 60_000, 60_000, ctx.now);
            }
        }
        let mut resp = result?;
        resp.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("Set-Cookie"));
        Ok(resp)
    })
}

/// Ends every session the user has in the key's org (their refresh tokens die at once; an
/// access token already issued fails `/public/verify` with `session_revoked`).
pub fn revoke_sessions(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, "sessions:write", |k| {
        let (user, _) = member_of(state, k, &UserId::from_wire(ctx.param("id")))?;
        let reason = "revoked_by_api_key";
        let revoked = state.change(ctx, req, |tx| {
            let ids = sessions::revoke_in_org(tx, &k.org.id, &user.id, reason, ctx.now)?;
            for id in &ids {
                tx.emit(
                    Some(&k.org),
                    "session.revoked",
                    json!({
                        "session": { "id": id },
                        "user": { "id": user.id, "email": user.email },
                        "reason": reason,
                    }),
                )?;
                let mut e = key_entry(k, "session.revoked", ("session", id));
                e.metadata = json!({ "userId": user.id, "reason": reason });
                tx.audit(e)?;
            }
            Ok(ids.len())
        })?;
        Ok(respond::ok(
            json!({ "message": "Sessions revoked", "revoked": revoked }),
        ))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteRequest {
    email: String,
    role: Option<String>,
    send_email: Option<bool>,
}

pub fn invite(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, "invitations:write", |k| {
        let body: InviteRequest = input::json(req, state.config.server.max_body_bytes)?;
        let email = validate::email(&body.email)?;
        let role = body.role.unwrap_or_else(|| "member".into());
        check_role_grant(state, k, &role)?;
        let by = public_invite::Inviter {
            id: &k.key.id,
            email: None,
            kind: "api_key",
        };
        let delivery = invite::Delivery::from_send_email(body.send_email);
        let answer = state.change(ctx, req, |tx| {
            let out =
                public_invite::create(tx, state, &k.org, &email, &role, &by, delivery, ctx.now)?;
            let mut e = key_entry(
                k,
                "member.invited",
                ("invitation", out["invite"]["id"].as_str().unwrap_or("")),
            );
            e.metadata = json!({ "email": email, "role": role, "sendEmail": delivery == invite::Delivery::Email });
            tx.audit(e)?;
            Ok(out)
        })?;
        Ok(respond::created(answer))
    })
}
