//! `/user_management/users…` (WorkOS User Management): users CRUD with `external_id` and
//! `metadata`, a user's sessions, email verification, password resets and magic auth.

use super::{WError, WResult, body, list, no_content, ok, run, ts, user_obj};
use crate::api::Ctx;
use crate::crypto;
use crate::db::users::{self, User};
use crate::db::workos::{self as store, WCode};
use crate::db::{Tx, sessions};
use crate::error::ApiResult;
use crate::ids::UserId;
use crate::state::AppState;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// How long WorkOS's one-time codes and reset tokens live.
const CODE_TTL_MS: i64 = 10 * 60_000;
const RESET_TTL_MS: i64 = 30 * 60_000;

fn find(conn: &Tx, id: &str) -> WResult<User> {
    users::find_by_id(conn, &UserId::from_wire(id))?.ok_or_else(|| WError::not_found("User", id))
}

fn metadata_of(v: &Option<Value>) -> WResult<Option<Value>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            if m.len() > 50
                || m.values().any(|v| !v.is_string())
                || v.as_ref().map(|v| v.to_string().len()).unwrap_or(0) > 8192
            {
                return Err(WError::invalid("metadata", "at most 50 string values"));
            }
            Ok(v.clone())
        }
        Some(_) => Err(WError::invalid("metadata", "must be an object of strings")),
    }
}

fn external_id_of(v: &Option<String>) -> WResult<Option<String>> {
    match v {
        Some(e) if e.is_empty() || e.len() > 128 => {
            Err(WError::invalid("external_id", "1 to 128 characters"))
        }
        v => Ok(v.clone()),
    }
}

pub fn list_users(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let email = crate::http::input::query(req, "email").filter(|e| !e.is_empty());
        let org = crate::http::input::query(req, "organization_id").filter(|e| !e.is_empty());
        let org = org.map(crate::ids::OrgId::from_wire);
        state.db.read(|c| {
            list(
                req,
                |page| Ok(store::list_users(c, email.as_deref(), org.as_ref(), page)?),
                |u: &User| u.id.to_string(),
                |u| user_obj(c, u),
            )
        })
    })
}

#[derive(Deserialize)]
pub struct CreateUser {
    email: String,
    password: Option<String>,
    password_hash: Option<String>,
    password_hash_type: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    name: Option<String>,
    email_verified: Option<bool>,
    external_id: Option<String>,
    metadata: Option<Value>,
}

pub fn create_user(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |env| {
        let b: CreateUser = body(state, req)?;
        let email = crate::validate::email(&b.email)?;
        let mut u = User::new(email, ctx.now);
        u.first_name = b.first_name.clone().filter(|s| !s.is_empty());
        u.last_name = b.last_name.clone().filter(|s| !s.is_empty());
        u.name = b.name.clone().or_else(|| {
            let n = [u.first_name.as_deref(), u.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!n.is_empty()).then_some(n)
        });
        u.email_verified = b.email_verified.unwrap_or(false);
        u.password_hash = match (&b.password, &b.password_hash, &b.password_hash_type) {
            (Some(p), None, None) => {
                crate::password::check_policy(&state.config.password, None, "password", p)?;
                Some(state.hasher.hash(p)?)
            }
            (None, Some(h), Some(t)) => Some(imported_hash(h, t)?),
            (None, None, None) => None,
            _ => {
                return Err(WError::invalid(
                    "password",
                    "send password, or password_hash with password_hash_type",
                ));
            }
        };
        let external_id = external_id_of(&b.external_id)?;
        let metadata = metadata_of(&b.metadata)?.unwrap_or_else(|| json!({}));
        let view = state.change(ctx, req, |tx| {
            users::insert(tx, &u).map_err(|e| {
                if e.is_conflict() {
                    crate::error::ApiError::already_exists("A user with this email already exists")
                } else {
                    e.into()
                }
            })?;
            store::set_user_extras(tx, &u.id, external_id.as_deref(), &metadata).map_err(|e| {
                if e.is_conflict() {
                    crate::error::ApiError::already_exists("A user with this external_id exists")
                } else {
                    e.into()
                }
            })?;
            tx.audit(crate::db::audit::Entry::new(
                None,
                "api_key",
                Some(&env.client.id),
                "user.created",
                Some("user"),
                Some(&u.id),
            ))?;
            Ok(())
        });
        view?;
        Ok(ok(&state.db.read(|c| user_obj(c, &u))?))
    })
}

/// An imported password hash in the form Latchkey stores (see `password::import`).
fn imported_hash(hash: &str, kind: &str) -> WResult<String> {
    // WorkOS calls the salted SHA-256 form `ssha256`; it is an `ssha` hash here.
    let kind = if kind == "ssha256" { "ssha" } else { kind };
    crate::password::import::validate_import_as(hash, kind, "password_hash", "password_hash_type")
        .map_err(Into::into)
}

pub fn get_user(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        state.db.read(|c| {
            let u = find(c, ctx.param("id"))?;
            Ok(ok(&user_obj(c, &u)?))
        })
    })
}

pub fn get_user_by_external_id(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let eid = ctx.param("externalId");
        state.db.read(|c| {
            let u = store::user_by_external_id(c, eid)?
                .ok_or_else(|| WError::not_found("User", eid))?;
            Ok(ok(&user_obj(c, &u)?))
        })
    })
}

#[derive(Deserialize)]
pub struct UpdateUser {
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email_verified: Option<bool>,
    external_id: Option<String>,
    metadata: Option<Value>,
    password: Option<String>,
    password_hash: Option<String>,
    password_hash_type: Option<String>,
}

pub fn update_user(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let b: UpdateUser = body(state, req)?;
        let mut u = state.db.read(|c| find(c, ctx.param("id")))?;
        if let Some(e) = &b.email {
            u.email = crate::validate::email(e)?;
        }
        if let Some(f) = &b.first_name {
            u.first_name = Some(f.clone()).filter(|s| !s.is_empty());
        }
        if let Some(l) = &b.last_name {
            u.last_name = Some(l.clone()).filter(|s| !s.is_empty());
        }
        if let Some(v) = b.email_verified {
            u.email_verified = v;
        }
        let hash = match (&b.password, &b.password_hash, &b.password_hash_type) {
            (Some(p), _, _) => {
                crate::password::check_policy(&state.config.password, None, "password", p)?;
                Some(state.hasher.hash(p)?)
            }
            (None, Some(h), Some(t)) => Some(imported_hash(h, t)?),
            _ => None,
        };
        let external_id = external_id_of(&b.external_id)?;
        let metadata = metadata_of(&b.metadata)?;
        u.updated_at = ctx.now;
        state.change(ctx, req, |tx| {
            users::update_admin(tx, &u).map_err(|e| {
                if e.is_conflict() {
                    crate::error::ApiError::already_exists("A user with this email already exists")
                } else {
                    e.into()
                }
            })?;
            let (old_eid, old_meta) = store::user_extras(tx, &u.id)?;
            store::set_user_extras(
                tx,
                &u.id,
                external_id.as_deref().or(old_eid.as_deref()),
                metadata.as_ref().unwrap_or(&old_meta),
            )?;
            if let Some(h) = &hash {
                users::set_password_hash(tx, &u.id, h, ctx.now)?;
                // A new password ends every other sign-in, as a reset does.
                let revoked =
                    sessions::revoke_all_for_user(tx, &u.id, None, "password_changed", ctx.now)?;
                let who = crate::events::who(&u.id, &u.email);
                tx.sessions_revoked(&revoked, who, "password_changed")?;
            }
            Ok(())
        })?;
        Ok(ok(&state.db.read(|c| user_obj(c, &u))?))
    })
}

pub fn delete_user(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let u = state.db.read(|c| find(c, ctx.param("id")))?;
        state.change(ctx, req, |tx| {
            let revoked = sessions::revoke_all_for_user(tx, &u.id, None, "user_deleted", ctx.now)?;
            tx.sessions_revoked(
                &revoked,
                crate::events::who(&u.id, &u.email),
                "user_deleted",
            )?;
            users::delete(tx, &u.id)?;
            Ok(())
        })?;
        Ok(no_content())
    })
}

/// `GET /user_management/users/{id}/sessions`.
pub fn list_sessions(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let u = state.db.read(|c| find(c, ctx.param("id")))?;
        let now = ctx.now;
        state.db.read(|c| {
            list(
                req,
                |page| Ok(store::user_sessions(c, &u.id, page)?),
                |s: &sessions::Session| s.id.to_string(),
                |s| {
                    let status = if s.revoked_at.is_some() {
                        "revoked"
                    } else if s.is_live(now) {
                        "active"
                    } else {
                        "expired"
                    };
                    let ended = s
                        .revoked_at
                        .or_else(|| (!s.is_live(now)).then(|| s.idle_expires_at.min(s.expires_at)));
                    let method = if s.auth_methods.iter().any(|m| m == "magic_link") {
                        "magic_code"
                    } else {
                        "password"
                    };
                    Ok(json!({
                        "object": "session",
                        "id": s.id,
                        "user_id": s.user_id,
                        "organization_id": (!crate::session::is_orgless(&s.org_id)).then_some(&s.org_id),
                        "ip_address": s.ip_address,
                        "user_agent": s.user_agent,
                        "auth_method": method,
                        "status": status,
                        "expires_at": ts(s.expires_at),
                        "ended_at": ended.map(ts),
                        "created_at": ts(s.created_at),
                        "updated_at": ts(s.last_seen_at),
                    }))
                },
            )
        })
    })
}

// ---- Codes with ids: email verification, password reset, magic auth -------------------------

pub(super) fn six_digits() -> String {
    let b = crypto::random_bytes(4);
    let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) % 1_000_000;
    format!("{n:06}")
}

/// Creates a code of `kind` for `user` (the code or token itself is returned once).
pub fn new_code(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    kind: &str,
    user: &User,
    secret: &str,
    ttl: i64,
) -> WResult<WCode> {
    let prefix = match kind {
        "magic_auth" => "magic_auth",
        "email_verification" => "email_verification",
        _ => "password_reset",
    };
    let id = crate::ids::new_id(prefix, ctx.now);
    let c = WCode {
        code_enc: Some(crypto::seal(
            &code_key(state),
            secret.as_bytes(),
            id.as_bytes(),
        )),
        id,
        kind: kind.to_string(),
        user_id: user.id.clone(),
        email: user.email.clone(),
        code_hash: crypto::token_hash(secret),
        created_at: ctx.now,
        expires_at: ctx.now + ttl,
        used_at: None,
    };
    state.change(ctx, req, |tx| {
        store::insert_code(tx, &c)?;
        Ok(())
    })?;
    Ok(c)
}

fn code_key(state: &AppState) -> [u8; 32] {
    crypto::derive_key(state.secret(), "workos-code")
}

/// The code of a stored row, unsealed.
fn code_of(state: &AppState, c: &WCode) -> Option<String> {
    let sealed = c.code_enc.as_deref()?;
    String::from_utf8(crypto::open(&code_key(state), sealed, c.id.as_bytes())?).ok()
}

fn code_obj(c: &WCode, code: Option<&str>) -> Value {
    json!({
        "object": c.kind,
        "id": c.id,
        "user_id": c.user_id,
        "email": c.email,
        "code": code,
        "expires_at": ts(c.expires_at),
        "created_at": ts(c.created_at),
        "updated_at": ts(c.created_at),
    })
}

pub fn send_verification(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let u = state.db.read(|c| find(c, ctx.param("id")))?;
        let code = six_digits();
        new_code(
            state,
            ctx,
            req,
            "email_verification",
            &u,
            &code,
            CODE_TTL_MS,
        )?;
        Ok(ok(&json!({ "user": state.db.read(|c| user_obj(c, &u))? })))
    })
}

#[derive(Deserialize)]
pub struct CodeBody {
    code: String,
}

pub fn confirm_verification(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let b: CodeBody = body(state, req)?;
        let u = state.db.read(|c| find(c, ctx.param("id")))?;
        let hash = crypto::token_hash(b.code.trim());
        let done = state.change(ctx, req, |tx| {
            let Some(c) = store::live_code(tx, "email_verification", &u.id, &hash, ctx.now)? else {
                return Ok(false);
            };
            store::spend_code(tx, &c.id, ctx.now)?;
            users::set_email_verified(tx, &u.id, ctx.now)?;
            Ok(true)
        })?;
        if !done {
            return Err(WError::new(
                400,
                "invalid_code",
                "The code is invalid or expired",
            ));
        }
        let u = state.db.read(|c| find(c, ctx.param("id")))?;
        Ok(ok(&json!({ "user": state.db.read(|c| user_obj(c, &u))? })))
    })
}

pub fn get_email_verification(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    get_code(state, ctx, req, "email_verification", "EmailVerification")
}

pub fn get_magic_auth(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    get_code(state, ctx, req, "magic_auth", "MagicAuth")
}

fn get_code(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    kind: &str,
    what: &str,
) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let id = ctx.param("id");
        let c = state
            .db
            .read(|c| store::code_by_id(c, id))?
            .filter(|c| c.kind == kind)
            .ok_or_else(|| WError::not_found(what, id))?;
        Ok(ok(&code_obj(&c, code_of(state, &c).as_deref())))
    })
}

#[derive(Deserialize)]
pub struct EmailBody {
    email: String,
}

pub fn create_magic_auth(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let b: EmailBody = body(state, req)?;
        let email = crate::validate::email(&b.email)?;
        let u = state
            .db
            .read(|c| users::find_by_email(c, &email))?
            .ok_or_else(|| WError::not_found("User", &email))?;
        let code = six_digits();
        let c = new_code(state, ctx, req, "magic_auth", &u, &code, CODE_TTL_MS)?;
        Ok(ok(&code_obj(&c, Some(&code))))
    })
}

pub fn create_password_reset(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let b: EmailBody = body(state, req)?;
        let email = crate::validate::email(&b.email)?;
        let u = state
            .db
            .read(|c| users::find_by_email(c, &email))?
            .ok_or_else(|| WError::not_found("User", &email))?;
        let token = crypto::random_token(32);
        let c = new_code(state, ctx, req, "password_reset", &u, &token, RESET_TTL_MS)?;
        Ok(ok(&reset_obj(state, &c, &token)))
    })
}

fn reset_obj(state: &AppState, c: &WCode, token: &str) -> Value {
    let base = state
        .config
        .email_link_base()
        .trim_end_matches('/')
        .to_string();
    json!({
        "object": "password_reset",
        "id": c.id,
        "user_id": c.user_id,
        "email": c.email,
        "password_reset_token": token,
        "password_reset_url": format!("{base}/reset-password?workos_token={token}"),
        "expires_at": ts(c.expires_at),
        "created_at": ts(c.created_at),
    })
}

pub fn get_password_reset(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let id = ctx.param("id");
        let c = state
            .db
            .read(|c| store::code_by_id(c, id))?
            .filter(|c| c.kind == "password_reset")
            .ok_or_else(|| WError::not_found("PasswordReset", id))?;
        let token = code_of(state, &c).unwrap_or_default();
        Ok(ok(&reset_obj(state, &c, &token)))
    })
}

#[derive(Deserialize)]
pub struct ConfirmReset {
    token: String,
    new_password: String,
}

pub fn confirm_password_reset(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let b: ConfirmReset = body(state, req)?;
        crate::password::check_policy(
            &state.config.password,
            None,
            "new_password",
            &b.new_password,
        )?;
        let hash = crypto::token_hash(b.token.trim());
        let c = state
            .db
            .read(|c| store::live_code_by_hash(c, "password_reset", &hash, ctx.now))?
            .ok_or_else(|| WError::new(400, "invalid_token", "The token is invalid or expired"))?;
        let new_hash = state.hasher.hash(&b.new_password)?;
        let u = state.change(ctx, req, |tx| {
            if !store::spend_code(tx, &c.id, ctx.now)? {
                return Err(crate::error::ApiError::of(
                    crate::error::ErrorCode::InvalidToken,
                ));
            }
            users::set_password_hash(tx, &c.user_id, &new_hash, ctx.now)?;
            let u = users::find_by_id(tx, &c.user_id)?
                .ok_or_else(|| crate::error::ApiError::not_found("User not found"))?;
            let revoked =
                sessions::revoke_all_for_user(tx, &u.id, None, "password_reset", ctx.now)?;
            tx.sessions_revoked(
                &revoked,
                crate::events::who(&u.id, &u.email),
                "password_reset",
            )?;
            Ok(u)
        })?;
        Ok(ok(&json!({ "user": state.db.read(|c| user_obj(c, &u))? })))
    })
}
