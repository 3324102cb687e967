//! What handlers call to announce a change: `emit` an event (webhooks) or queue an `email`.
//! Both write into the caller's transaction, so a change and its notifications commit together
//! (or not at all). Delivery is the outbox worker's job.

use crate::db::orgs::Org;
use crate::db::{self, Tx};
use crate::outbox::MailKey;
use serde_json::{Value, json};
use std::cell::Cell;

thread_local! {
    /// Set when this thread queued outbox rows; the request pipeline then wakes the worker.
    static QUEUED: Cell<bool> = const { Cell::new(false) };
    /// The key [`email`] seals with, while the request pipeline runs a handler
    /// ([`with_mail_key`]): handlers do not carry the deployment secret.
    static MAIL_KEY: Cell<Option<MailKey>> = const { Cell::new(None) };
}

/// Runs `f` with `key` as the key [`email`] seals with on this thread (restored afterwards,
/// even if `f` panics).
pub fn with_mail_key<T>(key: &MailKey, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<MailKey>);
    impl Drop for Restore {
        fn drop(&mut self) {
            MAIL_KEY.with(|k| k.set(self.0));
        }
    }
    let _restore = Restore(MAIL_KEY.with(|k| k.replace(Some(*key))));
    f()
}

/// True (once) if the current thread queued outbox rows since the last call.
pub fn take_queued() -> bool {
    QUEUED.with(|q| q.replace(false))
}

/// Records `event` with its AuthWorx-shaped body and queues a delivery to every subscribed
/// webhook endpoint of the org (the outbox); returns the event id (`evt_…`).
pub fn emit(tx: &Tx, org: Option<&Org>, event: &str, data: Value, now: i64) -> db::Result<String> {
    let id = crate::outbox::emit(
        tx,
        org.map(|o| (o.id.as_str(), o.slug.as_str())),
        event,
        data,
        now,
    )?;
    QUEUED.with(|q| q.set(true));
    Ok(id)
}

/// An email to send (plain text + HTML), queued in the caller's transaction.
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Email {
    /// An email to `to` from a rendered template (see `ui::templates::Ui::email`).
    pub fn rendered(to: &str, m: crate::ui::templates::RenderedEmail) -> Email {
        Email {
            to: to.to_string(),
            subject: m.subject,
            text: m.text,
            html: m.html,
        }
    }
}

/// Queues `mail` in the outbox, sealed (no token it carries is readable in the database);
/// returns its id. Runs inside [`with_mail_key`] (the request pipeline); elsewhere it fails
/// rather than store the message in the clear.
pub fn email(tx: &Tx, org_id: Option<&str>, mail: &Email, now: i64) -> db::Result<String> {
    let key = MAIL_KEY.with(Cell::get).ok_or_else(|| {
        db::Error::Invalid(
            "no outbox mail key in scope: queue emails inside events::with_mail_key".into(),
        )
    })?;
    let id = crate::outbox::enqueue_email(
        tx,
        &key,
        org_id,
        &mail.to,
        &mail.subject,
        &mail.text,
        &mail.html,
        now,
    )?;
    QUEUED.with(|q| q.set(true));
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
pub fn emit_in(tx: &Tx, org_id: &str, event: &str, data: Value, now: i64) -> db::Result<()> {
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
    tx: &Tx,
    revoked: &[(String, String)],
    user: Value,
    reason: &str,
    now: i64,
) -> db::Result<()> {
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
