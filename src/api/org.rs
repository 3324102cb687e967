//! Org self-administration (API.md §5): the org itself and its members. Any active member
//! may read; changes need org_admin or owner; only an owner touches ownership or deletes the
//! org; the last active owner can be neither demoted, removed nor deactivated.

use crate::api::guard::{self, UserCtx};
use crate::api::{Ctx, links, views};
use crate::change::Change;
use crate::cursor;
use crate::db::Tx;
use crate::db::audit::Entry;
use crate::db::members::{self, ListFilter};
use crate::db::orgs;
use crate::db::sessions;
use crate::db::users::{self, Membership, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::flows::org_settings::SettingsPatch;
use crate::http::input::{self, nullable, query_int};
use crate::http::respond;
use crate::ids::{OrgId, UserId};
use crate::role::Role;
use crate::state::AppState;
use crate::status::MemberStatus;
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// The largest `metadata` object a membership may carry, serialized.
const MAX_METADATA_BYTES: usize = 8 * 1024;

fn who(u: &User) -> Value {
    json!({ "id": u.id, "email": u.email })
}

/// An audit entry where the acting user touches `target_type`/`target_id` in the org.
fn act<'a>(me: &'a UserCtx, action: &'a str, target: (&'a str, &'a str)) -> Entry<'a> {
    Entry::new(
        Some(&me.org.id),
        "user",
        Some(&me.user.id),
        action,
        Some(target.0),
        Some(target.1),
    )
}

pub fn get_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    Ok(respond::ok(json!({ "org": views::org(&me.org) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateOrgRequest {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    app_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    logo_url: Option<Option<String>>,
    settings: Option<SettingsPatch>,
}

pub fn update_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let body: UpdateOrgRequest = input::json(req, state.config.server.max_body_bytes)?;
    let mut org = me.org.clone();
    if let Some(n) = &body.name {
        org.name = validate::name("name", n)?;
    }
    if let Some(v) = body.app_url {
        if let Some(u) = &v {
            validate::http_url("appUrl", u)?;
            if !links::host_allowed(state, u) {
                return Err(ApiError::field(
                    ErrorCode::InvalidRequest,
                    "appUrl",
                    "this host is not on the deployment's allowed app hosts \
                     (security.allowed_app_hosts); ask the operator to add it",
                ));
            }
        }
        org.app_url = v;
        org.app_url_by_operator = false;
    }
    if let Some(v) = body.logo_url {
        if let Some(u) = &v {
            validate::http_url("logoUrl", u)?;
        }
        org.logo_url = v;
    }
    if let Some(p) = body.settings {
        p.apply(state, &mut org.settings)?;
    }
    org.updated_at = ctx.now;
    state.change(ctx, req, |tx| {
        orgs::update(tx, &org)?;
        tx.emit(
            Some(&org),
            "org.updated",
            json!({ "org": views::org(&org), "updatedBy": who(&me.user) }),
        )?;
        tx.audit(act(&me, "org.updated", ("org", &org.id)))?;
        Ok(())
    })?;
    Ok(respond::ok(json!({ "org": views::org(&org) })))
}

pub fn delete_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    if me.membership.role() != Role::Owner {
        return Err(ApiError::forbidden(
            "Only an owner may delete the organization",
        ));
    }
    state.change(ctx, req, |tx| {
        tx.emit(
            Some(&me.org),
            "org.deleted",
            json!({ "org": { "id": me.org.id, "slug": me.org.slug, "name": me.org.name },
                    "deletedBy": who(&me.user) }),
        )?;
        orgs::soft_delete(tx, &me.org.id, ctx.now)?;
        tx.audit(act(&me, "org.deleted", ("org", &me.org.id)))?;
        Ok(())
    })?;
    Ok(respond::ok(json!({ "message": "Organization deleted" })))
}

pub fn list_members(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let limit = query_int(req, "limit", 20, 1, 100)?;
    let status = input::query(req, "status").filter(|s| !s.is_empty());
    let status = status.as_deref().map(MemberStatus::parse);
    if status == Some(None) {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "status",
            "must be active or deactivated",
        ));
    }
    let role = input::query(req, "role").filter(|s| !s.is_empty());
    if let Some(r) = &role {
        validate::org_role("role", r)?;
    }
    let q = input::query(req, "q").filter(|s| !s.trim().is_empty());
    if q.as_ref().is_some_and(|q| q.len() > 200) {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "q",
            "at most 200 characters",
        ));
    }
    let after = cursor::from_query(&state.cursor_key, req)?;
    let filter = ListFilter {
        status: status.flatten(),
        role: role.as_deref(),
        q: q.as_deref().map(str::trim),
    };
    let mut rows = state.db.read(|c| {
        members::list(
            c,
            &me.org.id,
            &filter,
            after.as_ref().map(|(a, i)| (*a, i.as_str())),
            limit + 1,
        )
    })?;
    let next = cursor::next_page(&state.cursor_key, &mut rows, limit, |(m, _)| {
        (m.joined_at, &m.id)
    });
    let list: Vec<_> = rows.iter().map(|(m, u)| views::member(m, u)).collect();
    Ok(respond::ok(json!({ "members": list, "nextCursor": next })))
}

/// The member `userId` of the caller's org, or 404 (never another org's data).
fn target(conn: &Tx, me: &UserCtx, user_id: &crate::ids::UserId) -> ApiResult<(Membership, User)> {
    let m = users::find_membership(conn, &me.org.id, user_id)?
        .ok_or_else(|| ApiError::not_found("Member not found"))?;
    let u =
        users::find_by_id(conn, user_id)?.ok_or_else(|| ApiError::not_found("Member not found"))?;
    Ok((m, u))
}

pub fn get_member(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    let (m, u) = state
        .db
        .read(|c| target(c, &me, &UserId::from_wire(ctx.param("userId"))))?;
    Ok(respond::ok(json!({ "member": views::member(&m, &u) })))
}

fn only_owner_may(me: &UserCtx, what: &str) -> ApiResult<()> {
    if me.membership.role() == Role::Owner {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("Only an owner may {what}")))
    }
}

/// Refuses a change that would leave the org without an active owner.
///
/// Count-then-change is safe only because SQLite admits one writer at a time (`Db::write`
/// takes the write lock up front): two admins demoting the last two owners at once run one
/// after the other, and the second sees one owner. A backend with concurrent writers must lock
/// the org's owner memberships (`SELECT … FOR UPDATE`) or serialize these transactions.
fn keep_an_owner(tx: &Tx, org_id: &OrgId, m: &Membership, what: &str) -> ApiResult<()> {
    // Count-then-change is safe only because SQLite has a single writer (`BEGIN IMMEDIATE`:
    // no other change runs between the count and ours). A second backend must lock the org's
    // owner memberships here (`SELECT … FOR UPDATE`).
    if m.is_active_owner() && members::active_owner_count(tx, org_id)? <= 1 {
        return Err(ApiError::forbidden(format!(
            "The last owner cannot be {what}"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateMemberRequest {
    role: Option<String>,
    metadata: Option<Value>,
}

pub fn update_member(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let body: UpdateMemberRequest = input::json(req, state.config.server.max_body_bytes)?;
    if let Some(r) = &body.role {
        validate::org_role("role", r)?;
    }
    if let Some(meta) = &body.metadata {
        if !meta.is_object() {
            return Err(ApiError::field(
                ErrorCode::InvalidRequest,
                "metadata",
                "must be a JSON object",
            ));
        }
        if meta.to_string().len() > MAX_METADATA_BYTES {
            return Err(ApiError::field(
                ErrorCode::InvalidRequest,
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes"),
            ));
        }
    }
    let user_id = UserId::from_wire(ctx.param("userId"));
    let member = state.change(ctx, req, |tx| {
        let (mut m, u) = target(tx, &me, &user_id)?;
        let previous = m.role.clone();
        if let Some(role) = &body.role
            && *role != m.role
        {
            let to = Role::parse(role).unwrap_or(Role::Member);
            if !me.membership.role().may_set(Some(m.role()), to) {
                only_owner_may(&me, "grant or take away ownership")?;
            }
            if m.role() == Role::Owner {
                keep_an_owner(tx, &me.org.id, &m, "demoted")?;
            }
            m.role = role.clone();
        }
        if let Some(meta) = &body.metadata {
            m.metadata = meta.clone();
        }
        members::update(tx, &me.org.id, &m, ctx.now)?;
        if m.role != previous {
            tx.emit(Some(&me.org), "member.role_changed", json!({ "user": who(&u), "previousRole": previous, "role": m.role, "changedBy": who(&me.user) }))?;
            let mut e = act(&me, "member.role_changed", ("user", &u.id));
            e.metadata = json!({ "from": previous, "to": m.role });
            tx.audit(e)?;
        }
        if body.metadata.is_some() {
            tx.emit(Some(&me.org), "member.updated", json!({ "user": who(&u), "metadata": m.metadata, "updatedBy": who(&me.user) }))?;
            tx.audit(act(&me, "member.updated", ("user", &u.id)))?;
        }
        Ok(views::member(&m, &u))
    })?;
    Ok(respond::ok(json!({ "member": member })))
}

/// Revokes the member's sessions in this org and announces each one.
fn end_sessions(tx: &Change, me: &UserCtx, u: &User, reason: &str, now: i64) -> ApiResult<()> {
    for sid in sessions::revoke_in_org(tx, &me.org.id, &u.id, reason, now)? {
        tx.emit(
            Some(&me.org),
            "session.revoked",
            json!({ "session": { "id": sid }, "user": who(u), "reason": reason }),
        )?;
    }
    Ok(())
}

pub fn remove_member(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let user_id = UserId::from_wire(ctx.param("userId"));
    state.change(ctx, req, |tx| {
        let (m, u) = target(tx, &me, &user_id)?;
        if m.role() == Role::Owner {
            only_owner_may(&me, "remove an owner")?;
            keep_an_owner(tx, &me.org.id, &m, "removed")?;
        }
        members::delete(tx, &me.org.id, &u.id)?;
        end_sessions(tx, &me, &u, "member_removed", ctx.now)?;
        tx.emit(
            Some(&me.org),
            "member.removed",
            json!({ "user": who(&u), "removedBy": who(&me.user) }),
        )?;
        tx.audit(act(&me, "member.removed", ("user", &u.id)))?;
        Ok(())
    })?;
    Ok(respond::ok(json!({ "message": "Member removed" })))
}

fn set_status(state: &AppState, ctx: &Ctx, req: &Request, active: bool) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let user_id = UserId::from_wire(ctx.param("userId"));
    let (status, event) = if active {
        (MemberStatus::Active, "member.reactivated")
    } else {
        (MemberStatus::Deactivated, "member.deactivated")
    };
    let member = state.change(ctx, req, |tx| {
        let (mut m, u) = target(tx, &me, &user_id)?;
        if m.role() == Role::Owner {
            only_owner_may(&me, "deactivate or reactivate an owner")?;
        }
        if !active {
            keep_an_owner(tx, &me.org.id, &m, "deactivated")?;
        }
        if m.status != status {
            m.status = status;
            members::update(tx, &me.org.id, &m, ctx.now)?;
            if !active {
                end_sessions(tx, &me, &u, "member_deactivated", ctx.now)?;
            }
            tx.emit(
                Some(&me.org),
                event,
                json!({ "user": who(&u), "by": who(&me.user) }),
            )?;
            tx.audit(act(&me, event, ("user", &u.id)))?;
        }
        Ok(views::member(&m, &u))
    })?;
    Ok(respond::ok(json!({ "member": member })))
}

pub fn deactivate_member(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    set_status(state, ctx, req, false)
}

pub fn reactivate_member(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    set_status(state, ctx, req, true)
}
