//! The operator's view of the outbox (API.md §7): list deliveries and emails, retry one.
//! Email bodies are never shown (they carry single-use tokens), sealed or not: only recipient
//! and subject.

use crate::api::{Ctx, guard};
use crate::clock::rfc3339;
use crate::cursor;
use crate::db::audit::Entry;
use crate::db::outbox::{self as store, Item, ListFilter};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::input::{self, query_int};
use crate::http::respond;
use crate::state::AppState;
use rouille::{Request, Response};
use serde_json::{Value, json};

/// The wire shape of an outbox row (a webhook delivery or an email).
pub fn item_view(i: &Item) -> Value {
    let mut v = json!({
        "id": i.id,
        "kind": i.kind,
        "orgId": i.org_id,
        "status": i.status,
        "attempts": i.attempts,
        "nextAttemptAt": (i.status == "pending").then(|| rfc3339(i.next_attempt_at)),
        "lastStatusCode": i.last_status_code,
        "lastError": i.last_error,
        "createdAt": rfc3339(i.created_at),
        "deliveredAt": i.delivered_at.map(rfc3339),
    });
    if i.kind == store::KIND_WEBHOOK {
        v["eventId"] = json!(i.event_id);
        v["event"] = json!(i.event);
        v["endpointId"] = json!(i.endpoint_id);
    } else if let Some((to, subject)) = crate::outbox::at_rest::summary(&i.payload) {
        // Sealed, redacted or (older rows) plain: only what `summary` keeps readable.
        v["to"] = json!(to);
        v["subject"] = json!(subject);
    }
    v
}

fn one_of(req: &Request, name: &str, allowed: &[&'static str]) -> ApiResult<Option<&'static str>> {
    match input::query(req, name) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => allowed
            .iter()
            .find(|a| **a == s)
            .map(|a| Some(*a))
            .ok_or_else(|| {
                ApiError::field(
                    ErrorCode::InvalidRequest,
                    name,
                    format!("must be one of {}", allowed.join(", ")),
                )
            }),
    }
}

/// `GET /admin/outbox?status=&kind=&limit=&cursor=` — newest first.
pub fn list(state: &AppState, _ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    guard::admin(state, req)?;
    let limit = query_int(req, "limit", 20, 1, 100)?;
    let status = one_of(req, "status", &["pending", "succeeded", "failed"])?;
    let kind = one_of(req, "kind", &[store::KIND_WEBHOOK, store::KIND_EMAIL])?;
    let after = cursor::from_query(&state.cursor_key, req)?;
    let filter = ListFilter {
        status,
        kind,
        ..ListFilter::default()
    };
    let mut rows = state.db.read(|c| {
        store::list(
            c,
            &filter,
            after.as_ref().map(|(at, id)| (*at, id.as_str())),
            limit + 1,
        )
    })?;
    let next = cursor::next_page(&state.cursor_key, &mut rows, limit, |i| {
        (i.created_at, &i.id)
    });
    let items: Vec<Value> = rows.iter().map(item_view).collect();
    Ok(respond::ok(json!({ "items": items, "nextCursor": next })))
}

/// `POST /admin/outbox/{id}/retry` — due now, whatever its state; 202.
pub fn retry(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let id = ctx.param("id");
    let item = state.change(ctx, req, |tx| {
        if !store::retry_now(tx, id, ctx.now)? {
            return Err(ApiError::not_found("No such outbox item"));
        }
        tx.requeued();
        let item = store::get(tx, id)?.ok_or_else(|| ApiError::not_found("No such outbox item"))?;
        tx.audit(Entry {
            org_id: item.org_id.as_ref(),
            actor_type: "admin_key",
            actor_id: Some(&admin.key_id),
            action: "outbox.retried",
            target_type: Some("outbox"),
            target_id: Some(id),
            ip: None,
            user_agent: None,
            metadata: json!({ "kind": item.kind }),
        })?;
        Ok(item)
    })?;
    Ok(respond::accepted(json!({ "item": item_view(&item) })))
}
