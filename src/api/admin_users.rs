//! The operator's user management (API.md §7): read, change, delete, unlock, end sessions.

use crate::api::{Ctx, guard, views};
use crate::db::Tx;
use crate::db::audit::Entry;
use crate::db::members;
use crate::db::sessions;
use crate::db::users::{self, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events;
use crate::http::input::{self, nullable};
use crate::http::respond;
use crate::password;
use crate::session::login;
use crate::state::AppState;
use crate::status::UserStatus;
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;

fn find(conn: &Tx, id: &str) -> ApiResult<User> {
    let id = &crate::ids::UserId::from_wire(id);
    users::find_by_id(conn, id)?.ok_or_else(|| ApiError::not_found("User not found"))
}

fn act<'a>(admin: &'a guard::AdminCtx, action: &'a str, user_id: &'a str) -> Entry<'a> {
    Entry::new(
        None,
        "admin_key",
        Some(&admin.key_id),
        action,
        Some("user"),
        Some(user_id),
    )
}

pub fn get(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    guard::admin(state, req)?;
    let (user, orgs) = state.db.read(|c| {
        let u = find(c, ctx.param("id"))?;
        let orgs = users::memberships_of(c, &u.id)?;
        Ok::<_, ApiError>((u, orgs))
    })?;
    let memberships: Vec<_> = orgs
        .iter()
        .map(|(m, o)| json!({ "org": { "id": o.id, "slug": o.slug, "name": o.name }, "membership": views::membership(m) }))
        .collect();
    Ok(respond::ok(
        json!({ "user": views::user(&user), "memberships": memberships }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    email: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    last_name: Option<Option<String>>,
    is_email_verified: Option<bool>,
    role: Option<String>,
    status: Option<String>,
    password: Option<String>,
}

pub fn update(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let body: UpdateUserRequest = input::json(req, state.config.server.max_body_bytes)?;
    if let Some(r) = &body.role
        && r != "user"
        && r != "admin"
    {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "role",
            "must be 'user' or 'admin'",
        ));
    }
    let status = body.status.as_deref().map(UserStatus::parse);
    if status == Some(None) {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "status",
            "must be 'active' or 'disabled'",
        ));
    }
    let email = body.email.as_deref().map(validate::email).transpose()?;
    let hash = match &body.password {
        Some(p) => {
            password::check_policy(&state.config.password, None, "password", p)?;
            Some(state.hasher.hash(p)?)
        }
        None => None,
    };
    let text = |field: &str, v: Option<String>| v.map(|s| validate::name(field, &s)).transpose();
    let id = ctx.param("id").to_string();
    let user = state.change(ctx, req, |tx| {
        let mut u = find(tx, &id)?;
        if let Some(e) = email
            && e != u.email
        {
            u.email = e;
            u.email_verified = false;
        }
        if let Some(v) = body.name {
            u.name = text("name", v)?;
        }
        if let Some(v) = body.first_name {
            u.first_name = text("firstName", v)?;
        }
        if let Some(v) = body.last_name {
            u.last_name = text("lastName", v)?;
        }
        if let Some(v) = body.is_email_verified {
            u.email_verified = v;
        }
        if let Some(r) = &body.role {
            u.role = r.clone();
        }
        let disabling =
            status == Some(Some(UserStatus::Disabled)) && u.status != UserStatus::Disabled;
        if let Some(Some(s)) = status {
            u.status = s;
        }
        u.updated_at = ctx.now;
        users::update_admin(tx, &u).map_err(|e| {
            if e.is_conflict() {
                ApiError::already_exists("A user with this email already exists")
            } else {
                e.into()
            }
        })?;
        if let Some(h) = &hash {
            users::set_password_hash(tx, &u.id, h, ctx.now)?;
        }
        if disabling || hash.is_some() {
            let revoked = sessions::revoke_all_for_user(tx, &u.id, None, "admin", ctx.now)?;
            tx.sessions_revoked(&revoked, events::who(&u.id, &u.email), "admin")?;
        }
        tx.audit(act(&admin, "user.updated", &u.id))?;
        for (_, org) in users::memberships_of(tx, &u.id)? {
            tx.emit(
                Some(&org),
                "user.updated",
                json!({ "user": views::user(&u) }),
            )?;
        }
        Ok(u)
    })?;
    Ok(respond::ok(json!({ "user": views::user(&user) })))
}

pub fn delete(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let id = ctx.param("id").to_string();
    state.change(ctx, req, |tx| {
        let u = find(tx, &id)?;
        let orgs = users::memberships_of(tx, &u.id)?;
        for (m, org) in &orgs {
            // Relies on SQLite's single writer, as `org::keep_an_owner` does.
            if m.is_active_owner() && members::active_owner_count(tx, &org.id)? <= 1 {
                return Err(ApiError::forbidden(format!(
                    "The user is the last owner of '{}'; give the org another owner first",
                    org.slug
                )));
            }
        }
        for (_, org) in &orgs {
            tx.emit(
                Some(org),
                "user.deleted",
                json!({ "user": { "id": u.id, "email": u.email } }),
            )?;
        }
        users::delete(tx, &u.id)?;
        tx.audit(act(&admin, "user.deleted", &u.id))?;
        Ok(())
    })?;
    Ok(respond::ok(json!({ "message": "User deleted" })))
}

pub fn unlock(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let id = ctx.param("id").to_string();
    let user = state.change(ctx, req, |tx| {
        let u = find(tx, &id)?;
        tx.audit(act(&admin, "user.unlocked", &u.id))?;
        Ok(u)
    })?;
    login::clear_login_locks(state, &user.email);
    state
        .limiter
        .clear(&crate::flows::two_factor::failure_key(&user.id));
    Ok(respond::ok(json!({ "message": "Account unlocked" })))
}

pub fn revoke_sessions(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let id = ctx.param("id").to_string();
    let n = state.change(ctx, req, |tx| {
        let u = find(tx, &id)?;
        let ids = sessions::revoke_all_for_user(tx, &u.id, None, "admin", ctx.now)?;
        tx.sessions_revoked(&ids, events::who(&u.id, &u.email), "admin")?;
        let mut e = act(&admin, "user.sessions_revoked", &u.id);
        e.metadata = json!({ "revoked": ids.len() });
        tx.audit(e)?;
        Ok(ids.len())
    })?;
    Ok(respond::ok(json!({ "revoked": n })))
}
