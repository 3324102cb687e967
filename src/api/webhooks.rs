//! Webhook endpoints of an org (API.md §5, §9): CRUD, secret rotation, a test event, the
//! delivery log and manual retry. `org_admin` or owner only.

use crate::api::Ctx;
use crate::api::guard::{self, UserCtx};
use crate::clock::rfc3339;
use crate::cursor;
use crate::db::Tx;
use crate::db::audit::Entry;
use crate::db::outbox::{self as store, ListFilter};
use crate::db::webhooks::{self, Endpoint};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::input::{self, nullable, query_int};
use crate::http::respond;
use crate::outbox;
use crate::state::AppState;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// Most events one endpoint may list.
const MAX_EVENTS: usize = 64;

fn view(e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "events": e.events,
        "description": e.description,
        "isActive": e.is_active,
        "disabledReason": e.disabled_reason,
        "createdAt": rfc3339(e.created_at),
        "updatedAt": rfc3339(e.updated_at),
    })
}

fn act<'a>(me: &'a UserCtx, action: &'a str, id: &'a str) -> Entry<'a> {
    Entry::new(
        Some(&me.org.id),
        "user",
        Some(&me.user.id),
        action,
        Some("webhook"),
        Some(id),
    )
}

fn check_url(state: &AppState, url: &str) -> ApiResult<()> {
    outbox::check_url(url, state.config.webhooks.allow_http)
        .map_err(|m| ApiError::field(ErrorCode::InvalidRequest, "url", m))
}

fn check_events(events: &[String]) -> ApiResult<Vec<String>> {
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "events",
            format!("must list 1 to {MAX_EVENTS} event names (or \"*\")"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if !outbox::is_subscribable(e) {
            return Err(ApiError::field(
                ErrorCode::InvalidRequest,
                "events",
                format!("unknown event '{}'", e.chars().take(64).collect::<String>()),
            ));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

fn description(d: &str) -> ApiResult<String> {
    let t = d.trim();
    if t.chars().count() > 500 || t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "description",
            "at most 500 characters, no control characters",
        ));
    }
    Ok(t.to_string())
}

fn find(conn: &Tx, me: &UserCtx, id: &str) -> ApiResult<Endpoint> {
    webhooks::get(conn, &me.org.id, id)?.ok_or_else(|| ApiError::not_found("Webhook not found"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRequest {
    url: String,
    events: Vec<String>,
    description: Option<String>,
}

pub fn create(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let body: CreateRequest = input::json(req, state.config.server.max_body_bytes)?;
    check_url(state, &body.url)?;
    let events = check_events(&body.events)?;
    let desc = body.description.as_deref().map(description).transpose()?;
    let (endpoint, secret) = state.change(ctx, req, |tx| {
        let (id, secret) = outbox::create_endpoint(
            tx,
            state.secret(),
            &me.org.id,
            &body.url,
            &events,
            desc.as_deref(),
            ctx.now,
        )?;
        tx.audit(act(&me, "webhook.created", &id))?;
        Ok((find(tx, &me, &id)?, secret))
    })?;
    Ok(respond::created(
        json!({ "secret": secret, "webhook": view(&endpoint) }),
    ))
}

pub fn list(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let rows = state.db.read(|c| webhooks::list(c, &me.org.id))?;
    let list: Vec<_> = rows.iter().map(view).collect();
    Ok(respond::ok(json!({ "webhooks": list })))
}

pub fn get(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let e = state.db.read(|c| find(c, &me, ctx.param("id")))?;
    Ok(respond::ok(json!({ "webhook": view(&e) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRequest {
    url: Option<String>,
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    is_active: Option<bool>,
}

pub fn update(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let body: UpdateRequest = input::json(req, state.config.server.max_body_bytes)?;
    if let Some(u) = &body.url {
        check_url(state, u)?;
    }
    let events = body.events.as_deref().map(check_events).transpose()?;
    let desc = match body.description {
        Some(Some(d)) => Some(Some(description(&d)?)),
        other => other,
    };
    let id = ctx.param("id").to_string();
    let e = state.change(ctx, req, |tx| {
        let mut e = find(tx, &me, &id)?;
        if let Some(u) = body.url {
            e.url = u;
        }
        if let Some(ev) = events {
            e.events = ev;
        }
        if let Some(d) = desc {
            e.description = d;
        }
        if let Some(a) = body.is_active {
            e.is_active = a;
        }
        webhooks::update(tx, &me.org.id, &e, ctx.now)?;
        tx.audit(act(&me, "webhook.updated", &e.id))?;
        find(tx, &me, &id)
    })?;
    Ok(respond::ok(json!({ "webhook": view(&e) })))
}

pub fn delete(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let id = ctx.param("id").to_string();
    state.change(ctx, req, |tx| {
        let e = find(tx, &me, &id)?;
        webhooks::delete(tx, &me.org.id, &e.id)?;
        tx.audit(act(&me, "webhook.deleted", &e.id))?;
        Ok(())
    })?;
    Ok(respond::ok(json!({ "message": "Webhook deleted" })))
}

pub fn rotate_secret(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let id = ctx.param("id").to_string();
    let secret = outbox::new_webhook_secret();
    state.change(ctx, req, |tx| {
        let e = find(tx, &me, &id)?;
        let sealed = outbox::seal_secret(state.secret(), &e.id, &secret);
        webhooks::set_secret(tx, &me.org.id, &e.id, &sealed, ctx.now)?;
        tx.audit(act(&me, "webhook.secret_rotated", &e.id))?;
        Ok(())
    })?;
    Ok(respond::ok(json!({ "secret": secret })))
}

pub fn test(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let id = ctx.param("id").to_string();
    let (event_id, delivery_id) = state.change(ctx, req, |tx| {
        let e = find(tx, &me, &id)?;
        let out = tx.emit_to(
            &me.org,
            &e.id,
            "webhook.test",
            json!({ "webhook": { "id": e.id, "url": e.url }, "message": "This is a test event from Latchkey." }),
        )?;
        tx.audit(act(&me, "webhook.tested", &e.id))?;
        Ok(out)
    })?;
    Ok(respond::accepted(
        json!({ "eventId": event_id, "deliveryId": delivery_id }),
    ))
}

fn delivery_view(i: &store::Item) -> Value {
    json!({
        "id": i.id,
        "eventId": i.event_id,
        "event": i.event,
        "status": i.status,
        "attempts": i.attempts,
        "nextAttemptAt": (i.status == "pending").then(|| rfc3339(i.next_attempt_at)),
        "lastStatusCode": i.last_status_code,
        "lastError": i.last_error,
        "createdAt": rfc3339(i.created_at),
        "deliveredAt": i.delivered_at.map(rfc3339),
    })
}

pub fn deliveries(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let limit = query_int(req, "limit", 20, 1, 100)?;
    let status = match input::query(req, "status")
        .filter(|s| !s.is_empty())
        .as_deref()
    {
        None => None,
        Some("pending") => Some("pending"),
        Some("succeeded") => Some("succeeded"),
        Some("failed") => Some("failed"),
        Some(_) => {
            return Err(ApiError::field(
                ErrorCode::InvalidRequest,
                "status",
                "must be pending, succeeded or failed",
            ));
        }
    };
    let after = cursor::from_query(&state.cursor_key, req)?;
    let id = ctx.param("id").to_string();
    let mut rows = state.db.read(|c| {
        let e = find(c, &me, &id)?;
        let f = ListFilter {
            status,
            kind: Some(store::KIND_WEBHOOK),
            endpoint_id: Some(&e.id),
            org_id: Some(&me.org.id),
        };
        Ok::<_, ApiError>(store::list(
            c,
            &f,
            after.as_ref().map(|(a, i)| (*a, i.as_str())),
            limit + 1,
        )?)
    })?;
    let next = cursor::next_page(&state.cursor_key, &mut rows, limit, |i| {
        (i.created_at, &i.id)
    });
    let list: Vec<_> = rows.iter().map(delivery_view).collect();
    Ok(respond::ok(
        json!({ "deliveries": list, "nextCursor": next }),
    ))
}

pub fn retry(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let id = ctx.param("id").to_string();
    let delivery = ctx.param("deliveryId").to_string();
    state.change(ctx, req, |tx| {
        let e = find(tx, &me, &id)?;
        let item = store::get(tx, &delivery)?
            .filter(|i| {
                i.org_id.as_deref() == Some(&me.org.id) && i.endpoint_id.as_deref() == Some(&e.id)
            })
            .ok_or_else(|| ApiError::not_found("Delivery not found"))?;
        store::retry_now(tx, &item.id, ctx.now)?;
        tx.audit(act(&me, "webhook.delivery_retried", &e.id))?;
        Ok(())
    })?;
    Ok(respond::accepted(
        json!({ "message": "Retry scheduled", "deliveryId": delivery }),
    ))
}
