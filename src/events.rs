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

/// `emit` for callers that know only the org's id (the org may be gone: then nothing is sent).
pub fn emit_in(
    tx: &Connection,
    org_id: &str,
    event: &str,
    data: Value,
    now: i64,
) -> rusqlite::Result<()> {
    if let Some(org) = crate::db::orgs::find_by_id(tx, org_id)? {
        emit(tx, Some(&org), event, data, now)?;
    }
    Ok(())
}

/// `{id, email}`: how events name a user.
pub fn who(id: &str, email: &str) -> Value {
    json!({ "id": id, "email": email })
}

/// Announces revoked sessions (`session.revoked`), each in its own org.
pub fn sessions_revoked(
    tx: &Connection,
    revoked: &[(String, String)],
    user: Value,
    reason: &str,
    now: i64,
) -> rusqlite::Result<()> {
    for (sid, org_id) in revoked {
        emit_in(
            tx,
            org_id,
            "session.revoked",
            json!({ "session": { "id": sid }, "user": user, "reason": reason }),
            now,
        )?;
    }
    Ok(())
}
