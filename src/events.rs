//! What a change announces: the email type and the shapes events share. Events and emails
//! are queued only through the unit of work (`change::Change::emit` / `email`), in the
//! change's own transaction; delivery is the outbox worker's job.

use serde_json::{Value, json};

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

/// Minimal HTML escaping for values put into email bodies.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `{id, email}`: how events name a user.
pub fn who(id: &str, email: &str) -> Value {
    json!({ "id": id, "email": email })
}
