//! Account self-service for a signed-in user (API.md §3): profile, password, sessions, the
//! user's orgs and own audit trail.

use crate::api::{Ctx, auth, guard, views};
use crate::app::AppState;
use crate::change::Change;
use crate::db::audit::Entry;
use crate::db::orgs::Org;
use crate::db::sessions;
use crate::db::users;
use crate::db::users::User;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events;
use crate::http::input::{self, nullable};
use crate::http::respond;
use crate::password;
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;

pub fn me(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    Ok(respond::ok(json!({
        "user": views::user(&me.user),
        "membership": views::membership(&me.membership),
        "org": views::org(&me.org),
    })))
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

fn self_entry<'a>(org_id: Option<&'a str>, user_id: &'a str, action: &'a str) -> Entry<'a> {
    Entry::new(
        org_id,
        "user",
        Some(user_id),
        action,
        Some("user"),
        Some(user_id),
    )
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

/// Changes the password of `user` (API and hosted pages): every session but `keep` (and the
/// browser session it came from) is revoked. A wrong current password is a failed login
/// (API.md §10): the same counters and locks, so a stolen session cannot guess it. `org` is
/// where it is audited (none: deployment-wide, from the account page). Returns how many
/// sessions were revoked.
#[allow(clippy::too_many_arguments)]
pub fn change_password_for(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    user: &User,
    org: Option<&Org>,
    keep: Option<&str>,
    current: &str,
    new: &str,
) -> ApiResult<usize> {
    let attempt = auth::begin_password_attempt(state, ctx, &user.email)?;
    let ok = current.len() <= 4 * state.config.password.max_length
        && state
            .hasher
            .verify(user.password_hash.as_deref(), current)?
            .0;
    if !ok {
        let locked = attempt.failed(ctx.now);
        auth::record_login_failure(state, ctx, req, org, user, locked)?;
        state.metrics.login(false);
        return Err(
            ApiError::of(ErrorCode::InvalidCredentials).with_message("Current password is wrong")
        );
    }
    drop(attempt);
    password::check_policy(
        &state.config.password,
        org.and_then(|o| o.settings.password_min_length),
        "newPassword",
        new,
    )?;
    if new == current {
        return Err(ApiError::field(
            ErrorCode::WeakPassword,
            "newPassword",
            "must differ from the current password",
        ));
    }
    let hash = state.hasher.hash(new)?;
    let revoked = state.change(ctx, req, |tx| {
        users::set_password_hash(tx, &user.id, &hash, ctx.now)?;
        crate::db::two_factor::burn_partials(tx, &user.id, ctx.now)?;
        let revoked =
            sessions::revoke_all_for_user(tx, &user.id, keep, "password_changed", ctx.now)?;
        let who = events::who(&user.id, &user.email);
        tx.sessions_revoked(&revoked, who.clone(), "password_changed")?;
        tx.emit(org, "user.password_changed", json!({ "user": who }))?;
        let mut e = self_entry(
            org.map(|o| o.id.as_str()),
            &user.id,
            "user.password_changed",
        );
        e.metadata = json!({ "sessionsRevoked": revoked.len() });
        tx.audit(e)?;
        Ok(revoked)
    })?;
    Ok(revoked.len())
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
    let id = ctx.param("id").to_string();
    state.change(ctx, req, |tx| {
        revoke_own_session(tx, ctx, req, &me.user, &id)
    })?;
    Ok(respond::ok(json!({ "message": "Session revoked" })))
}

/// Ends browser session `bs_id` of `user` and every org session made from it, inside `tx`,
/// telling each org as the API would: a sign-out (`reason` "logout") is a `user.logout` with
/// its audit entry in that org, anything else a `session.revoked`.
pub fn end_browser_session(
    tx: &Change,
    ctx: &Ctx,
    _req: &Request,
    user: &User,
    bs_id: &str,
    reason: &str,
) -> ApiResult<()> {
    let ended = crate::db::browser_sessions::revoke(tx, bs_id, reason, ctx.now)?;
    if reason != "logout" {
        let who = events::who(&user.id, &user.email);
        tx.sessions_revoked(&ended, who, reason)?;
        return Ok(());
    }
    for (sid, org_id) in &ended {
        tx.emit_in(
            org_id,
            "user.logout",
            json!({ "user": { "id": user.id }, "session": { "id": sid } }),
        )?;
        let mut e = self_entry(Some(org_id), &user.id, "user.logout");
        e.target_type = Some("session");
        e.target_id = Some(sid);
        tx.audit(e)?;
    }
    Ok(())
}

/// Revokes one of `user`'s own live sessions inside `tx` (API and account page): 404 for any
/// other id. A session a hosted page made takes its browser session (and the other org
/// sessions that browser made) with it. Audited in the revoked session's own org, so another
/// org's ids never appear in the caller's org.
pub fn revoke_own_session(
    tx: &Change,
    ctx: &Ctx,
    req: &Request,
    user: &User,
    id: &str,
) -> ApiResult<()> {
    let s = sessions::find_for_user(tx, &user.id, id)?
        .filter(|s| s.is_live(ctx.now))
        .ok_or_else(|| ApiError::not_found("Session not found"))?;
    sessions::revoke(tx, &s.id, "revoked_by_user", ctx.now)?;
    let revoked = [(s.id.clone(), s.org_id.clone())];
    let who = events::who(&user.id, &user.email);
    tx.sessions_revoked(&revoked, who, "revoked_by_user")?;
    if let Some(bs) = crate::db::browser_sessions::of_session(tx, &s.id)? {
        end_browser_session(tx, ctx, req, user, &bs, "revoked_by_user")?;
    }
    let mut e = self_entry(Some(&s.org_id), &user.id, "session.revoked");
    e.target_type = Some("session");
    e.target_id = Some(&s.id);
    tx.audit(e)?;
    Ok(())
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
