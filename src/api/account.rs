//! Account self-service for a signed-in user (API.md §3): profile, password, sessions, the
//! user's orgs and own audit trail.

use crate::api::{Ctx, guard, views};
use crate::db::sessions;
use crate::db::users;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events;
use crate::flows::account::change_password_for;
use crate::flows::account::{revoke_own_session, self_entry};
use crate::http::input::{self, nullable};
use crate::http::respond;
use crate::state::AppState;
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;

pub fn me(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    Ok(respond::ok(MeView {
        membership: views::MembershipView::of(&me.membership),
        org: views::OrgView::of(&me.org),
        user: views::UserView::of(&me.user),
    }))
}

/// `GET /auth/me`'s answer, written straight into the body (keys in sorted order).
#[derive(serde::Serialize)]
struct MeView<'a> {
    membership: views::MembershipView<'a>,
    org: views::OrgView<'a>,
    user: views::UserView<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateMeRequest {
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    avatar_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    phone_number: Option<Option<String>>,
}

/// E.164: '+' then 2..15 digits, the first not 0.
fn e164(s: &str) -> ApiResult<()> {
    let digits = s.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "phoneNumber",
            "must be an E.164 number like +14155550123",
        ))
    }
}

pub fn update_me(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let body: UpdateMeRequest = input::json(req, state.config.server.max_body_bytes)?;
    let mut user = me.user;
    let text = |field: &str, v: Option<String>| v.map(|s| validate::name(field, &s)).transpose();
    if let Some(v) = body.name {
        user.name = text("name", v)?;
    }
    if let Some(v) = body.first_name {
        user.first_name = text("firstName", v)?;
    }
    if let Some(v) = body.last_name {
        user.last_name = text("lastName", v)?;
    }
    if let Some(v) = body.avatar_url {
        if let Some(u) = &v {
            validate::http_url("avatarUrl", u)?;
        }
        user.avatar_url = v;
    }
    if let Some(v) = body.phone_number {
        if let Some(p) = &v {
            e164(p)?;
        }
        user.phone_number = v;
    }
    user.updated_at = ctx.now;
    state.change(ctx, req, |tx| {
        users::update_profile(tx, &user)?;
        tx.emit(
            Some(&me.org),
            "user.updated",
            json!({ "user": views::user(&user) }),
        )?;
        tx.audit(self_entry(Some(&me.org.id), &user.id, "user.updated"))?;
        Ok(())
    })?;
    Ok(respond::ok(json!({ "user": views::user(&user) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
}

pub fn change_password(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let body: ChangePasswordRequest = input::json(req, state.config.server.max_body_bytes)?;
    let revoked = change_password_for(
        state,
        ctx,
        req,
        &me.user,
        Some(&me.org),
        Some(&me.session.id),
        &body.current_password,
        &body.new_password,
    )?;
    Ok(respond::ok(json!({
        "message": "Password changed",
        "sessionsRevoked": revoked,
    })))
}

pub fn list_sessions(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let rows = state
        .db
        .read(|c| sessions::list_live_for_user(c, &me.user.id, ctx.now))?;
    let list: Vec<_> = rows
        .iter()
        .map(|(s, slug)| views::session(s, slug, s.id == me.session.id))
        .collect();
    Ok(respond::ok(json!({ "sessions": list })))
}

pub fn revoke_session(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let id = crate::ids::SessionId::from_wire(ctx.param("id"));
    state.change(ctx, req, |tx| {
        revoke_own_session(tx, ctx, req, &me.user, &id)
    })?;
    Ok(respond::ok(json!({ "message": "Session revoked" })))
}

pub fn revoke_other_sessions(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let revoked = state.change(ctx, req, |tx| {
        let ids = sessions::revoke_all_for_user(
            tx,
            &me.user.id,
            Some(&me.session.id),
            "revoked_by_user",
            ctx.now,
        )?;
        let who = events::who(&me.user.id, &me.user.email);
        tx.sessions_revoked(&ids, who, "revoked_by_user")?;
        for (id, org_id) in &ids {
            let mut e = self_entry(Some(org_id), &me.user.id, "session.revoked");
            e.target_type = Some("session");
            e.target_id = Some(id);
            tx.audit(e)?;
        }
        Ok(ids.len())
    })?;
    Ok(respond::ok(
        json!({ "message": "Other sessions revoked", "revoked": revoked }),
    ))
}

pub fn list_orgs(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let rows = state.db.read(|c| users::memberships_of(c, &me.user.id))?;
    let list: Vec<_> = rows
        .iter()
        .map(|(m, o)| json!({ "org": views::org(o), "membership": views::membership(m) }))
        .collect();
    Ok(respond::ok(json!({ "orgs": list })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::views::fixtures;
    use crate::db::users::User;

    #[test]
    fn the_me_view_writes_what_the_json_value_wrote() {
        let user = User::new("ada@example.com".into(), 1_764_000_000_000);
        let mut org = fixtures::org();
        org.app_url = Some("https://app.acme.example".into());
        org.created_at = 1;
        org.updated_at = 2;
        let mut membership = fixtures::membership(&org.id, &user.id);
        membership.role = "owner".into();
        membership.metadata = json!({"b": [1], "a": null});
        membership.joined_at = 3;
        let view = MeView {
            membership: views::MembershipView::of(&membership),
            org: views::OrgView::of(&org),
            user: views::UserView::of(&user),
        };
        let before = json!({
            "user": views::user(&user),
            "membership": views::membership(&membership),
            "org": views::org(&org),
        });
        assert_eq!(serde_json::to_string(&view).unwrap(), before.to_string());
    }
}
