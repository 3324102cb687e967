//! Reading the audit trail: the caller's own (`/auth/audit`), an org's (`/org/audit`, org
//! admins) and the deployment's (`/admin/audit`, operator). One paginated reader for all three.

use crate::api::{Ctx, guard, views};
use crate::cursor;
use crate::db::audit::{self, Filter};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::input::{self, query_int};
use crate::http::respond;
use crate::state::AppState;
use rouille::{Request, Response};
use serde_json::json;

/// One page of entries matching `filter`: `{entries, nextCursor}`, newest first.
pub fn page(state: &AppState, req: &Request, filter: &Filter<'_>) -> ApiResult<Response> {
    page_as(state, req, filter, None)
}

/// [`page`], as seen by `viewer` when given: entries another actor wrote (an org admin, an
/// API key, an anonymous caller) lose their IP address and user agent.
fn page_as(
    state: &AppState,
    req: &Request,
    filter: &Filter<'_>,
    viewer: Option<&str>,
) -> ApiResult<Response> {
    let limit = query_int(req, "limit", 20, 1, 100)?;
    let after = cursor::from_query(&state.cursor_key, req)?;
    let mut rows = state.db.read(|c| {
        audit::list(
            c,
            filter,
            after.as_ref().map(|(a, i)| (*a, i.as_str())),
            limit + 1,
        )
    })?;
    let next = cursor::next_page(&state.cursor_key, &mut rows, limit, |e| {
        (e.created_at, &e.id)
    });
    let list: Vec<_> = rows
        .iter()
        .map(|e| {
            let mut v = views::audit_entry(e);
            if let Some(me) = viewer
                && !(e.actor_type == "user" && e.actor_id.as_deref() == Some(me))
            {
                v["ipAddress"] = serde_json::Value::Null;
                v["userAgent"] = serde_json::Value::Null;
            }
            v
        })
        .collect();
    Ok(respond::ok(json!({ "entries": list, "nextCursor": next })))
}

/// A short free-text filter value from the query string (≤ 100 characters).
fn short(req: &Request, name: &str) -> ApiResult<Option<String>> {
    match input::query(req, name).filter(|v| !v.is_empty()) {
        Some(v) if v.len() > 100 => Err(ApiError::field(
            ErrorCode::InvalidRequest,
            name,
            "at most 100 characters",
        )),
        other => Ok(other),
    }
}

pub fn mine(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    page_as(
        state,
        req,
        &Filter {
            user_id: Some(&me.user.id),
            ..Filter::default()
        },
        Some(&me.user.id),
    )
}

pub fn org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let action = short(req, "action")?;
    let actor = short(req, "actorId")?;
    page(
        state,
        req,
        &Filter {
            org_id: Some(&me.org.id),
            action: action.as_deref(),
            actor_id: actor.as_deref(),
            user_id: None,
        },
    )
}

pub fn admin(state: &AppState, _ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    guard::admin(state, req)?;
    let action = short(req, "action")?;
    let org_id = short(req, "orgId")?.map(crate::ids::OrgId::from_wire);
    let user_id = short(req, "userId")?;
    page(
        state,
        req,
        &Filter {
            org_id: org_id.as_ref(),
            action: action.as_deref(),
            actor_id: None,
            user_id: user_id.as_deref(),
        },
    )
}
