//! What handlers call to announce a change: `emit` an event (webhooks) or queue an `email`.
//! Both write into the caller's transaction, so a change and its notifications commit together
//! (or not at all). Delivery is the outbox worker's job.

use crate::clock::rfc3339;
use crate::db::{self, orgs::Org};
use rusqlite::{Connection, params};
use serde_json::{Value, json};

/// Records `event` with its AuthWorx-shaped body; returns the event id (`evt_…`).
pub fn emit(
    tx: &Connection,
    org: Option<&Org>,
    event: &str,
    data: Value,
    now: i64,
) -> rusqlite::Result<String> {
    let id = db::new_id("evt", now);
    let body = json!({
        "id": id,
        "event": event,
        "orgId": org.map(|o| o.id.as_str()),
        "orgSlug": org.map(|o| o.slug.as_str()),
        "timestamp": rfc3339(now),
        "data": data,
    });
    tx.prepare_cached(
        "INSERT INTO events (id, org_id, event, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id,
        org.map(|o| o.id.as_str()),
        event,
        body.to_string(),
        now
    ])?;
    Ok(id)
}

/// An email to send (plain text + HTML), queued in the caller's transaction.
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Queues `mail`; returns its outbox id.
pub fn email(
    tx: &Connection,
    org_id: Option<&str>,
    mail: &Email,
    now: i64,
) -> rusqlite::Result<String> {
    let id = db::new_id("msg", now);
    let payload =
        json!({ "to": mail.to, "subject": mail.subject, "text": mail.text, "html": mail.html });
    tx.prepare_cached(
        "INSERT INTO outbox (id, kind, org_id, payload, next_attempt_at, created_at)
         VALUES (?1, 'email', ?2, ?3, ?4, ?4)",
    )?
    .execute(params![id, org_id, payload.to_string(), now])?;
    Ok(id)
}

/// Minimal HTML escaping for values put into email bodies.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
