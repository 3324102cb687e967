//! The outbox: every side effect that must survive a crash (webhook deliveries, emails) is
//! written here in the transaction of the change that caused it, and a background worker
//! delivers it — at least once, with retries on the configured schedule.
//!
//! Handlers call [`emit`] / [`enqueue_email`] inside their `db.write` closure and
//! `state.outbox.notify()` after it committed; a rollback sends nothing.

pub mod at_rest;
mod email;
pub mod ssrf;
pub mod webhook;
mod worker;

pub use at_rest::MailKey;
pub use email::Mail;
pub use ssrf::check_url;
pub use webhook::{SECRET_PREFIX, signature_hex, signature_standard};
pub use worker::spawn;

use crate::clock::rfc3339;
use crate::crypto;
use crate::db::{self, Db, outbox as store, webhooks};
use crate::ids::OrgId;
use serde_json::Value;
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The event catalogue (API.md §9). [`emit`] refuses other names in debug builds; the
/// webhook CRUD refuses them with 400.
pub const EVENTS: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deleted",
    "user.login",
    "user.logout",
    "user.password_changed",
    "user.password_reset",
    "user.email_verified",
    "user.2fa_enabled",
    "user.2fa_disabled",
    "session.revoked",
    "member.invited",
    "member.joined",
    "member.updated",
    "member.role_changed",
    "member.removed",
    "member.deactivated",
    "member.reactivated",
    "invite.revoked",
    "invite.declined",
    "org.updated",
    "org.deleted",
    "api_key.created",
    "api_key.revoked",
    "security.refresh_token_reused",
    "security.account_locked",
    "webhook.test",
];

/// True for a catalogue event name or `"*"` (what an endpoint may subscribe to).
pub fn is_subscribable(name: &str) -> bool {
    name == "*" || EVENTS.contains(&name)
}

/// Records an event and queues one delivery per active endpoint of the org subscribed to it.
/// Runs inside the caller's transaction. Returns the event id (`evt_…`).
///
/// The stored body is exactly what receivers get:
/// `{"id","event","orgId","orgSlug","timestamp","data"}` in that order.
pub fn emit(
    tx: &db::Tx,
    org: Option<(&OrgId, &str)>,
    event: &str,
    data: Value,
    now: i64,
) -> db::Result<String> {
    debug_assert!(EVENTS.contains(&event), "unknown event {event:?}");
    let (id, payload) = record_event(tx, org, event, &data, now)?;
    if let Some((org_id, _)) = org {
        for endpoint in webhooks::subscribed(tx, org_id, event)? {
            queue_delivery(tx, org_id, &id, &endpoint, &payload, now)?;
        }
    }
    Ok(id)
}

/// Like [`emit`], but delivered to one endpoint of the org only, whatever it subscribes to
/// (`POST /org/webhooks/{id}/test` sends `webhook.test` this way). Returns
/// `(event id, delivery id)`. The caller checks that the endpoint belongs to the org.
pub fn emit_to(
    tx: &db::Tx,
    org: (&OrgId, &str),
    endpoint_id: &str,
    event: &str,
    data: Value,
    now: i64,
) -> db::Result<(String, String)> {
    debug_assert!(EVENTS.contains(&event), "unknown event {event:?}");
    let (id, payload) = record_event(tx, Some(org), event, &data, now)?;
    let del = queue_delivery(tx, org.0, &id, endpoint_id, &payload, now)?;
    Ok((id, del))
}

/// Writes the `events` row; returns its id and the body receivers get.
fn record_event(
    tx: &db::Tx,
    org: Option<(&OrgId, &str)>,
    event: &str,
    data: &Value,
    now: i64,
) -> db::Result<(String, String)> {
    let id = crate::ids::new_id("evt", now);
    let s = |v: &str| Value::String(v.to_owned()).to_string();
    let (org_id, org_slug) = match org {
        Some((i, slug)) => (s(i), s(slug)),
        None => ("null".into(), "null".into()),
    };
    let payload = format!(
        r#"{{"id":{},"event":{},"orgId":{org_id},"orgSlug":{org_slug},"timestamp":{},"data":{data}}}"#,
        s(&id),
        s(event),
        s(&rfc3339(now)),
    );
    store::insert_event(tx, &id, org.map(|(i, _)| i), event, &payload, now)?;
    Ok((id, payload))
}

fn queue_delivery(
    tx: &db::Tx,
    org_id: &OrgId,
    event_id: &str,
    endpoint_id: &str,
    payload: &str,
    now: i64,
) -> db::Result<String> {
    let id = crate::ids::new_id("del", now);
    store::insert(
        tx,
        &store::NewRow {
            id: &id,
            kind: store::KIND_WEBHOOK,
            org_id: Some(org_id),
            event_id: Some(event_id),
            endpoint_id: Some(endpoint_id),
            payload,
        },
        now,
    )?;
    Ok(id)
}

/// Queues an email (multipart: `text` and `html`) inside the caller's transaction, sealed
/// under `key` (see [`at_rest`]: no token it carries is readable in the file). Returns its id
/// (`msg_…`). Links belong in `text` as `<base>/…?token=<token>`.
#[allow(clippy::too_many_arguments)]
pub fn enqueue_email(
    tx: &db::Tx,
    key: &MailKey,
    org_id: Option<&OrgId>,
    to: &str,
    subject: &str,
    text: &str,
    html: &str,
    now: i64,
) -> db::Result<String> {
    let id = crate::ids::new_id("msg", now);
    let mail = Mail {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text: text.to_owned(),
        html: html.to_owned(),
    };
    let payload = at_rest::seal(key, &id, &mail);
    store::insert(
        tx,
        &store::NewRow {
            id: &id,
            kind: store::KIND_EMAIL,
            org_id: org_id.map(OrgId::as_str),
            event_id: None,
            endpoint_id: None,
            payload: &payload,
        },
        now,
    )?;
    Ok(id)
}

/// Emails an older Latchkey stored in plain text: seals the ones still to send (or to retry)
/// and redacts the ones already sent, in small transactions, with `secure_delete` on so the
/// old text is overwritten rather than left in free space. Returns the rows changed. Runs at
/// start, where the deployment secret is known (the SQL migrations do not know it).
///
/// Only rows of a version before sealing can be plain, and such a version cannot open this
/// database once it has migrated past it, so one complete pass is enough: it is recorded in
/// `meta` and later starts skip the scan (it reads the whole outbox: 16-70 ms at start with
/// 30 days of emails, `bench/coldstart.sh`). A database restored from an older backup has
/// no record, and is scanned again.
pub fn seal_plain_emails(db: &Db, key: &MailKey) -> db::Result<usize> {
    const BATCH: i64 = 200;
    const DONE: &str = "outbox_plain_emails_sealed";
    if db.read(|c| crate::db::meta::get(c, DONE))?.is_some() {
        return Ok(0);
    }
    let mut total = 0;
    loop {
        let n = db.write(|tx| {
            let rows = store::plain_emails(tx, BATCH)?;
            let was = store::set_secure_delete(tx, 1)?;
            let mut changed = 0;
            for (id, status, payload) in &rows {
                let stored = if status == "succeeded" {
                    at_rest::redact(payload)
                } else {
                    match at_rest::open(key, id, payload) {
                        Ok(mail) => at_rest::seal(key, id, &mail),
                        // Not a message that can ever be sent: keep nothing of it.
                        Err(_) => at_rest::redact(payload),
                    }
                };
                store::set_payload(tx, id, &stored)?;
                changed += 1;
            }
            store::set_secure_delete(tx, was)?;
            Ok::<_, db::Error>(changed)
        })?;
        total += n;
        if n < BATCH as usize {
            db.write(|tx| crate::db::meta::put(tx, DONE, "1"))?;
            return Ok(total);
        }
    }
}

/// A fresh endpoint secret: `whsec_` + base64 of 32 random bytes (Standard Webhooks format).
pub fn new_webhook_secret() -> String {
    format!("{SECRET_PREFIX}{}", crypto::b64(&crypto::random_bytes(32)))
}

fn secret_key(app_secret: &str) -> [u8; 32] {
    crypto::derive_key(app_secret, "webhook-secret")
}

/// Seals an endpoint secret for `webhook_endpoints.secret_enc`, bound to the endpoint id.
pub fn seal_secret(app_secret: &str, endpoint_id: &str, secret: &str) -> Vec<u8> {
    crypto::seal(
        &secret_key(app_secret),
        secret.as_bytes(),
        endpoint_id.as_bytes(),
    )
}

/// Opens what [`seal_secret`] made; `None` if the key, endpoint or bytes are wrong.
pub fn open_secret(app_secret: &str, endpoint_id: &str, sealed: &[u8]) -> Option<String> {
    crypto::open(&secret_key(app_secret), sealed, endpoint_id.as_bytes())
        .and_then(|b| String::from_utf8(b).ok())
}

/// Creates an endpoint with a fresh secret inside the caller's transaction; returns
/// `(endpoint id, secret)`. The secret is shown once and stored only sealed. Validate the URL
/// ([`check_url`]) and event names ([`is_subscribable`]) first.
pub fn create_endpoint(
    tx: &db::Tx,
    app_secret: &str,
    org_id: &OrgId,
    url: &str,
    events: &[String],
    description: Option<&str>,
    now: i64,
) -> db::Result<(String, String)> {
    let id = crate::ids::new_id("wh", now);
    let secret = new_webhook_secret();
    let sealed = seal_secret(app_secret, &id, &secret);
    webhooks::insert_endpoint(
        tx,
        &webhooks::NewEndpoint {
            id: &id,
            org_id,
            url,
            events,
            description,
            secret_enc: &sealed,
        },
        now,
    )?;
    Ok((id, secret))
}

/// Deletes finished outbox rows and unreferenced events older than `retention`, in small
/// transactions so writers are never blocked for long. Returns the rows deleted.
pub fn sweep(db: &Db, now: i64, retention: Duration) -> db::Result<usize> {
    const BATCH: i64 = 1000;
    let cutoff = now - retention.as_millis().min(i64::MAX as u128) as i64;
    let mut total = 0;
    loop {
        let n = db.write(|tx| store::sweep_rows(tx, cutoff, BATCH))?;
        total += n;
        if (n as i64) < BATCH {
            break;
        }
    }
    loop {
        let n = db.write(|tx| store::sweep_events(tx, cutoff, BATCH))?;
        total += n;
        if (n as i64) < BATCH {
            break;
        }
    }
    Ok(total)
}

#[derive(Default)]
struct Flags {
    wake: bool,
    stop: bool,
}

/// The outbox signal AppState holds: handlers [`notify`](Notifier::notify) after a commit that
/// queued something, and the worker wakes at once. Also the worker's counters for `/readyz`
/// and metrics.
#[derive(Default)]
pub struct Notifier {
    flags: Mutex<Flags>,
    cv: Condvar,
    /// The scheduler thread's heartbeat (each turn, at least every 5 s) and whether it ended:
    /// what `/readyz` checks.
    pub liveness: crate::maintenance::Liveness,
    /// Attempts that delivered / that failed (any reason), since start.
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

impl Notifier {
    pub fn new() -> Notifier {
        Notifier::default()
    }

    /// Wakes the worker: call after committing a transaction that used [`emit`] or
    /// [`enqueue_email`]. Cheap; never blocks on I/O.
    pub fn notify(&self) {
        let mut f = self.flags.lock().unwrap_or_else(|p| p.into_inner());
        f.wake = true;
        self.cv.notify_all();
    }

    /// Asks the worker to stop: no new attempts start; ones in flight finish or time out.
    pub fn shutdown(&self) {
        let mut f = self.flags.lock().unwrap_or_else(|p| p.into_inner());
        f.stop = true;
        self.cv.notify_all();
    }

    pub fn is_stopping(&self) -> bool {
        self.flags.lock().unwrap_or_else(|p| p.into_inner()).stop
    }

    /// Clears a pending wake-up (before the worker looks for work, so none is lost).
    fn clear_wake(&self) {
        self.flags.lock().unwrap_or_else(|p| p.into_inner()).wake = false;
    }

    /// Sleeps up to `d` unless woken or stopped; true when stopping.
    fn wait(&self, d: Duration) -> bool {
        let f = self.flags.lock().unwrap_or_else(|p| p.into_inner());
        let (f, _) = self
            .cv
            .wait_timeout_while(f, d, |f| !f.wake && !f.stop)
            .unwrap_or_else(|p| p.into_inner());
        f.stop
    }

    fn beat(&self) {
        self.liveness.beat();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_look_right_and_seal() {
        let s = new_webhook_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(crypto::b64_decode(&s[6..]).unwrap().len(), 32);
        let app = "an-app-secret-of-at-least-32-characters!";
        let sealed = seal_secret(app, "wh_1", &s);
        assert_eq!(
            open_secret(app, "wh_1", &sealed).as_deref(),
            Some(s.as_str())
        );
        assert!(open_secret(app, "wh_2", &sealed).is_none());
    }

    #[test]
    fn catalogue_is_complete() {
        assert_eq!(EVENTS.len(), 27);
        assert!(is_subscribable("*") && is_subscribable("member.joined"));
        assert!(!is_subscribable("member.exploded"));
    }
}
