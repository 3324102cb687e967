//! The unit of work: the one path every state change takes.
//!
//! [`AppState::change`] opens the write transaction and hands the closure a [`Change`]: the
//! transaction (it derefs to [`Tx`], so every `db::…` function takes it as is) plus the only
//! ways to announce what changed — [`Change::emit`] (a webhook event), [`Change::email`] (a
//! sealed email) and [`Change::audit`] (an audit entry stamped with the request's IP and user
//! agent, taken once). The change, its events, its emails and its audit entries commit together
//! or not at all; after the commit, if anything was queued, the outbox worker is woken. Nothing
//! else can queue an outbox row, so a queued delivery always wakes the worker, by construction.
//!
//! ```ignore
//! state.change(ctx, req, |tx| {
//!     orgs::update(tx, &org)?;                       // any db function: `tx` derefs to Tx
//!     tx.emit(Some(&org), "org.updated", json!({ "org": views::org(&org) }))?;
//!     tx.audit(Entry::new(Some(&org.id), "user", Some(&me.user.id), "org.updated",
//!                         Some("org"), Some(&org.id)))?;
//!     Ok(())
//! })?;
//! ```

use crate::api::Ctx;
use crate::db::audit::Entry;
use crate::db::orgs::Org;
use crate::db::{self, Tx};
use crate::error::ApiResult;
use crate::events::Email;
use crate::ids::{self, OrgId, SessionId};
use crate::outbox::MailKey;
use crate::state::AppState;
use rouille::Request;
use serde_json::{Value, json};
use std::cell::Cell;

/// Who caused a change and from where: the request's time, client address and user agent
/// (or those of the end user a backend acts for, see `Ctx::on_behalf_of`).
pub struct Origin {
    pub now: i64,
    pub ip: String,
    pub user_agent: Option<String>,
}

impl Origin {
    pub fn of(ctx: &Ctx, req: &Request) -> Origin {
        Origin {
            now: ctx.now,
            ip: ctx.ip.to_string(),
            user_agent: ctx.user_agent(req),
        }
    }
}

/// One open write transaction and what it announces (see the module documentation).
pub struct Change<'a> {
    tx: &'a Tx,
    origin: &'a Origin,
    mail_key: &'a MailKey,
    queued: Cell<bool>,
}

impl std::ops::Deref for Change<'_> {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        self.tx
    }
}

impl Change<'_> {
    /// The request's time: what every row written by this change is stamped with.
    pub fn now(&self) -> i64 {
        self.origin.now
    }

    pub fn origin(&self) -> &Origin {
        self.origin
    }

    /// Records `event` with its AuthWorx-shaped body and queues a delivery to every
    /// subscribed webhook endpoint of the org; returns the event id (`evt_…`).
    pub fn emit(&self, org: Option<&Org>, event: &str, data: Value) -> db::Result<String> {
        let id = crate::outbox::emit(
            self.tx,
            org.map(|o| (&o.id, o.slug.as_str())),
            event,
            data,
            self.origin.now,
        )?;
        self.queued.set(true);
        Ok(id)
    }

    /// [`Change::emit`] to one endpoint of the org only, whatever it subscribes to (the
    /// webhook test); returns `(event id, delivery id)`. The caller checks that the endpoint
    /// belongs to the org.
    pub fn emit_to(
        &self,
        org: &Org,
        endpoint_id: &str,
        event: &str,
        data: Value,
    ) -> db::Result<(String, String)> {
        let out = crate::outbox::emit_to(
            self.tx,
            (&org.id, org.slug.as_str()),
            endpoint_id,
            event,
            data,
            self.origin.now,
        )?;
        self.queued.set(true);
        Ok(out)
    }

    /// [`Change::emit`] for an org known only by id (the org may be gone: then nothing is
    /// sent).
    pub fn emit_in(&self, org_id: &OrgId, event: &str, data: Value) -> db::Result<()> {
        if let Some(org) = db::orgs::find_by_id(self.tx, org_id)? {
            self.emit(Some(&org), event, data)?;
        }
        Ok(())
    }

    /// Announces revoked sessions (`session.revoked`), each in its own org.
    pub fn sessions_revoked(
        &self,
        revoked: &[(SessionId, OrgId)],
        user: Value,
        reason: &str,
    ) -> db::Result<()> {
        for (sid, org_id) in revoked {
            self.emit_in(
                org_id,
                "session.revoked",
                json!({ "session": { "id": sid }, "user": user, "reason": reason }),
            )?;
        }
        Ok(())
    }

    /// Queues `mail` in the outbox, sealed (no token it carries is readable in the
    /// database); returns its id.
    pub fn email(&self, org_id: Option<&OrgId>, mail: &Email) -> db::Result<String> {
        let id = crate::outbox::enqueue_email(
            self.tx,
            self.mail_key,
            org_id,
            &mail.to,
            &mail.subject,
            &mail.text,
            &mail.html,
            self.origin.now,
        )?;
        self.queued.set(true);
        Ok(id)
    }

    /// Marks an existing outbox row made due again in this change (an operator's retry): the
    /// worker is woken after the commit as for a new one.
    pub fn requeued(&self) {
        self.queued.set(true);
    }

    /// Writes an audit entry stamped with the request's client IP and user agent.
    pub fn audit(&self, entry: Entry<'_>) -> db::Result<()> {
        let mut e = entry;
        e.ip = Some(&self.origin.ip);
        e.user_agent = self.origin.user_agent.as_deref();
        db::audit::insert(
            self.tx,
            &ids::new_id("aud", self.origin.now),
            &e,
            self.origin.now,
        )
    }
}

impl AppState {
    /// Runs `f` as one unit of work for the request (see the module documentation).
    pub fn change<T>(
        &self,
        ctx: &Ctx,
        req: &Request,
        f: impl FnOnce(&Change) -> ApiResult<T>,
    ) -> ApiResult<T> {
        self.change_from(&Origin::of(ctx, req), f)
    }

    /// [`AppState::change`] for a caller that already holds its [`Origin`].
    pub fn change_from<T>(
        &self,
        origin: &Origin,
        f: impl FnOnce(&Change) -> ApiResult<T>,
    ) -> ApiResult<T> {
        let queued = Cell::new(false);
        let out = self.db.write(|tx| -> ApiResult<T> {
            let change = Change {
                tx,
                origin,
                mail_key: &self.mail_key,
                queued: Cell::new(false),
            };
            let out = f(&change)?;
            queued.set(change.queued.get());
            Ok(out)
        })?;
        // Committed: wake the outbox worker now rather than at its next timer.
        if queued.get() {
            self.outbox.notify();
        }
        Ok(out)
    }
}
