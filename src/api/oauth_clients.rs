//! OAuth clients (API.md §13): the operator's `/admin/oauth-clients` (any client; an
//! `orgSlug` makes it org-owned) and org admins' `/org/oauth-clients` (their org's own
//! clients only: another org's client is a 404). The secret is in the 201 answer only.

use crate::api::Ctx;
use crate::api::guard::{self, UserCtx};
use crate::db::audit::Entry;
use crate::db::oauth::{self, Client};
use crate::db::orgs::{self, Org};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::flows::oauth_clients::{self as flow, CreateClient, Registrar, UpdateClient};
use crate::http::{input, respond};
use crate::state::AppState;
use rouille::{Request, Response};
use serde_json::json;

fn not_found() -> ApiError {
    ApiError::not_found("OAuth client not found")
}

fn created(client: &Client, org: Option<&Org>, secret: Option<String>) -> Response {
    respond::created(json!({ "client": flow::view(client, org), "clientSecret": secret }))
}

fn admin_entry<'a>(
    admin: &'a guard::AdminCtx,
    org: Option<&'a Org>,
    action: &'a str,
    id: &'a str,
) -> Entry<'a> {
    Entry::new(
        org.map(|o| &o.id),
        "admin_key",
        Some(&admin.key_id),
        action,
        Some("oauth_client"),
        Some(id),
    )
}

fn org_entry<'a>(me: &'a UserCtx, action: &'a str, id: &'a str) -> Entry<'a> {
    Entry::new(
        Some(&me.org.id),
        "user",
        Some(&me.user.id),
        action,
        Some("oauth_client"),
        Some(id),
    )
}

/// Ends the sessions a client holds, then deletes it (its codes and consents go with it).
fn delete_client(tx: &crate::change::Change, c: &Client) -> ApiResult<()> {
    for (sid, org_id, user_id) in oauth::client_sessions(tx, &c.id)? {
        crate::db::sessions::revoke(tx, &sid, "client_deleted", tx.now())?;
        tx.sessions_revoked(&[(sid, org_id)], json!({ "id": user_id }), "client_deleted")?;
    }
    oauth::delete_client(tx, &c.id)?;
    Ok(())
}

// ---- Operator -------------------------------------------------------------------------------

pub fn admin_create(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let body: CreateClient = input::json(req, state.config.server.max_body_bytes)?;
    let org = match &body.org_slug {
        Some(slug) => Some(
            state
                .db
                .read(|c| orgs::find_by_slug(c, slug))?
                .ok_or_else(ApiError::org_not_found)?,
        ),
        None => None,
    };
    let (client, secret) = flow::new_client(
        &state.config,
        &body,
        org.as_ref(),
        Registrar::Operator,
        ctx.now,
    )?;
    state.change(ctx, req, |tx| {
        flow::insert(tx, &client)?;
        tx.audit(admin_entry(
            &admin,
            org.as_ref(),
            "oauth_client.created",
            &client.id,
        ))?;
        Ok(())
    })?;
    Ok(created(&client, org.as_ref(), secret))
}

fn org_of(state: &AppState, c: &Client) -> ApiResult<Option<Org>> {
    match &c.org_id {
        Some(id) => Ok(state.db.read(|conn| orgs::find_by_id(conn, id))?),
        None => Ok(None),
    }
}

pub fn admin_list(state: &AppState, _ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    guard::admin(state, req)?;
    let (clients, orgs) = state.db.read(|c| {
        let clients = oauth::list_clients(c, None)?;
        let mut orgs = Vec::new();
        for cl in &clients {
            orgs.push(match &cl.org_id {
                Some(id) => orgs::find_by_id(c, id)?,
                None => None,
            });
        }
        Ok::<_, ApiError>((clients, orgs))
    })?;
    let list: Vec<_> = clients
        .iter()
        .zip(orgs.iter())
        .map(|(c, o)| flow::view(c, o.as_ref()))
        .collect();
    Ok(respond::ok(json!({ "clients": list })))
}

fn admin_find(state: &AppState, ctx: &Ctx) -> ApiResult<Client> {
    let id = ctx.param("id");
    state
        .db
        .read(|c| oauth::find_client(c, id))?
        .ok_or_else(not_found)
}

pub fn admin_get(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    guard::admin(state, req)?;
    let c = admin_find(state, ctx)?;
    let org = org_of(state, &c)?;
    Ok(respond::ok(
        json!({ "client": flow::view(&c, org.as_ref()) }),
    ))
}

pub fn admin_update(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let body: UpdateClient = input::json(req, state.config.server.max_body_bytes)?;
    let mut c = admin_find(state, ctx)?;
    flow::apply(&state.config, &mut c, &body, Registrar::Operator, ctx.now)?;
    let org = org_of(state, &c)?;
    state.change(ctx, req, |tx| {
        oauth::update_client(tx, &c)?;
        tx.audit(admin_entry(
            &admin,
            org.as_ref(),
            "oauth_client.updated",
            &c.id,
        ))?;
        Ok(())
    })?;
    Ok(respond::ok(
        json!({ "client": flow::view(&c, org.as_ref()) }),
    ))
}

pub fn admin_delete(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let c = admin_find(state, ctx)?;
    let org = org_of(state, &c)?;
    state.change(ctx, req, |tx| {
        delete_client(tx, &c)?;
        tx.audit(admin_entry(
            &admin,
            org.as_ref(),
            "oauth_client.deleted",
            &c.id,
        ))?;
        Ok(())
    })?;
    Ok(respond::ok(json!({ "message": "OAuth client deleted" })))
}

// ---- Org admins -----------------------------------------------------------------------------

pub fn org_create(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let body: CreateClient = input::json(req, state.config.server.max_body_bytes)?;
    if body.org_slug.as_ref().is_some_and(|s| *s != me.org.slug) {
        return Err(ApiError::of(ErrorCode::OrgMismatch)
            .with_message("An org admin registers clients of their own organization only"));
    }
    let (client, secret) = flow::new_client(
        &state.config,
        &body,
        Some(&me.org),
        Registrar::OrgAdmin,
        ctx.now,
    )?;
    state.change(ctx, req, |tx| {
        flow::insert(tx, &client)?;
        tx.audit(org_entry(&me, "oauth_client.created", &client.id))?;
        Ok(())
    })?;
    Ok(created(&client, Some(&me.org), secret))
}

pub fn org_list(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let clients = state
        .db
        .read(|c| oauth::list_clients(c, Some(&me.org.id)))?;
    let list: Vec<_> = clients
        .iter()
        .map(|c| flow::view(c, Some(&me.org)))
        .collect();
    Ok(respond::ok(json!({ "clients": list })))
}

fn org_find(state: &AppState, ctx: &Ctx, me: &UserCtx) -> ApiResult<Client> {
    let id = ctx.param("id");
    state
        .db
        .read(|c| oauth::find_client_of(c, Some(&me.org.id), id))?
        .ok_or_else(not_found)
}

pub fn org_get(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let c = org_find(state, ctx, &me)?;
    Ok(respond::ok(
        json!({ "client": flow::view(&c, Some(&me.org)) }),
    ))
}

pub fn org_update(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let body: UpdateClient = input::json(req, state.config.server.max_body_bytes)?;
    let mut c = org_find(state, ctx, &me)?;
    flow::apply(&state.config, &mut c, &body, Registrar::OrgAdmin, ctx.now)?;
    state.change(ctx, req, |tx| {
        oauth::update_client(tx, &c)?;
        tx.audit(org_entry(&me, "oauth_client.updated", &c.id))?;
        Ok(())
    })?;
    Ok(respond::ok(
        json!({ "client": flow::view(&c, Some(&me.org)) }),
    ))
}

pub fn org_delete(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let c = org_find(state, ctx, &me)?;
    state.change(ctx, req, |tx| {
        delete_client(tx, &c)?;
        tx.audit(org_entry(&me, "oauth_client.deleted", &c.id))?;
        Ok(())
    })?;
    Ok(respond::ok(json!({ "message": "OAuth client deleted" })))
}
