//! How an email sits in `outbox.payload`: sealed (AES-256-GCM under a key derived from the
//! deployment secret, bound to the row id) until the worker hands it to the transport, then
//! redacted. Either way no live token is readable in the file or a backup of it (API.md §11).
//!
//! Stored forms, told apart by `format`:
//! - `{"format":"sealed","to","subject","box"}` — `box` is base64 of the sealed [`Mail`];
//! - `{"format":"redacted","to","subject"}` — sent: nothing left to send again;
//! - `{"to","subject","text","html"}` (no `format`) — written by an older Latchkey in plain
//!   text; still delivered, and sealed or redacted at start ([`super::seal_plain_emails`]).
//!
//! `to` and `subject` stay readable for the operator's listing; a subject that carries a
//! link's token is stored as [`WITHHELD`].

use super::email::Mail;
use crate::crypto;
use serde_json::{Value, json};
use std::fmt;

pub const SEALED: &str = "sealed";
pub const REDACTED: &str = "redacted";
/// The subject kept for the listing when the real one carries a token.
pub const WITHHELD: &str = "[withheld]";

/// The key emails are sealed with (`derive_key(secret, "outbox-email")`). Never printed.
#[derive(Clone, Copy)]
pub struct MailKey([u8; 32]);

impl MailKey {
    pub fn derive(secret: &str) -> MailKey {
        MailKey(crypto::derive_key(secret, "outbox-email"))
    }
}

impl fmt::Debug for MailKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MailKey(…)")
    }
}

/// Why a stored email cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Already sent; its content was erased.
    Redacted,
    /// The box does not open: another `security.secret_key`, another row, or damaged bytes.
    Unreadable,
    /// Not an email payload at all.
    Malformed,
}

/// The sealed form of `mail` for outbox row `id`.
pub fn seal(key: &MailKey, id: &str, mail: &Mail) -> String {
    let plain = serde_json::to_vec(mail).expect("a Mail always serializes");
    let sealed = crypto::seal(&key.0, &plain, id.as_bytes());
    json!({
        "format": SEALED,
        "to": mail.to,
        "subject": listed_subject(mail),
        "box": crypto::b64(&sealed),
    })
    .to_string()
}

/// The message stored in `payload` of row `id`, ready to send.
pub fn open(key: &MailKey, id: &str, payload: &str) -> Result<Mail, OpenError> {
    let v: Value = serde_json::from_str(payload).map_err(|_| OpenError::Malformed)?;
    match v.get("format").and_then(Value::as_str) {
        None => serde_json::from_value(v).map_err(|_| OpenError::Malformed),
        Some(REDACTED) => Err(OpenError::Redacted),
        Some(SEALED) => {
            let boxed = v
                .get("box")
                .and_then(Value::as_str)
                .and_then(crypto::b64_decode)
                .ok_or(OpenError::Malformed)?;
            let plain = crypto::open(&key.0, &boxed, id.as_bytes()).ok_or(OpenError::Unreadable)?;
            serde_json::from_slice(&plain).map_err(|_| OpenError::Unreadable)
        }
        Some(_) => Err(OpenError::Malformed),
    }
}

/// What is left of a stored email once it was sent: recipient and (token-free) subject.
pub fn redact(payload: &str) -> String {
    let (to, subject) = summary(payload).unwrap_or_default();
    json!({ "format": REDACTED, "to": to, "subject": subject }).to_string()
}

/// `(to, subject)` of any stored form, for the operator's listing; never the body or box.
pub fn summary(payload: &str) -> Option<(String, String)> {
    let v: Value = serde_json::from_str(payload).ok()?;
    let to = v.get("to")?.as_str()?.to_owned();
    let subject = v.get("subject")?.as_str()?;
    let subject = match v.get("format") {
        // Plain text from an older Latchkey: the subject was never checked.
        None => {
            let mail: Mail = serde_json::from_value(v.clone()).ok()?;
            listed_subject(&mail)
        }
        Some(_) => subject.to_owned(),
    };
    Some((to, subject))
}

/// True when `payload` is an email written in plain text (by an older Latchkey).
pub fn is_plain(payload: &str) -> bool {
    serde_json::from_str::<Value>(payload)
        .map(|v| v.is_object() && v.get("format").is_none())
        .unwrap_or(false)
}

/// The subject as the listing may show it: withheld if it carries a link's token.
fn listed_subject(mail: &Mail) -> String {
    let carries = mail.subject.contains("token=")
        || link_tokens(&mail.text)
            .chain(link_tokens(&mail.html))
            .any(|t| mail.subject.contains(t));
    if carries {
        WITHHELD.to_owned()
    } else {
        mail.subject.clone()
    }
}

/// The values of `token=` in the links of `body` (at least 8 characters long).
fn link_tokens(body: &str) -> impl Iterator<Item = &str> {
    body.match_indices("token=").filter_map(move |(i, m)| {
        let rest = &body[i + m.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        (end >= 8).then(|| &rest[..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(subject: &str) -> Mail {
        Mail {
            to: "ann@example.com".into(),
            subject: subject.into(),
            text: "Reset: https://a.test/reset?token=tok_ABCdef-123_xyz\n".into(),
            html: "<a href=\"https://a.test/reset?token=tok_ABCdef-123_xyz\">Reset</a>".into(),
        }
    }

    #[test]
    fn seals_opens_and_redacts() {
        let key = MailKey::derive("an-app-secret-of-at-least-32-characters!");
        let m = mail("Reset your password — Acme");
        let stored = seal(&key, "msg_1", &m);
        assert!(!stored.contains("tok_ABCdef"), "{stored}");
        assert!(!is_plain(&stored));
        let opened = open(&key, "msg_1", &stored).unwrap();
        assert_eq!((opened.text, opened.html), (m.text.clone(), m.html.clone()));
        // Bound to its row and its key.
        assert_eq!(open(&key, "msg_2", &stored), Err(OpenError::Unreadable));
        let other = MailKey::derive("another-secret-key-of-32-characters!!");
        assert_eq!(open(&other, "msg_1", &stored), Err(OpenError::Unreadable));
        let gone = redact(&stored);
        assert!(
            !gone.contains("tok_ABCdef") && !gone.contains("box"),
            "{gone}"
        );
        assert_eq!(open(&key, "msg_1", &gone), Err(OpenError::Redacted));
        let want = Some((
            "ann@example.com".into(),
            "Reset your password — Acme".into(),
        ));
        assert_eq!(summary(&stored), want);
        assert_eq!(summary(&gone), want);
    }

    #[test]
    fn plain_rows_of_an_older_version_still_open() {
        let key = MailKey::derive("an-app-secret-of-at-least-32-characters!");
        let m = mail("Welcome");
        let plain = serde_json::to_string(&m).unwrap();
        assert!(is_plain(&plain));
        assert_eq!(open(&key, "msg_1", &plain).unwrap().text, m.text);
        let gone = redact(&plain);
        assert!(!gone.contains("tok_ABCdef"), "{gone}");
        assert_eq!(summary(&gone).unwrap().1, "Welcome");
    }

    #[test]
    fn a_subject_carrying_the_token_is_withheld() {
        let key = MailKey::derive("an-app-secret-of-at-least-32-characters!");
        for s in ["Your code tok_ABCdef-123_xyz", "see ?token=abc"] {
            let stored = seal(&key, "msg_1", &mail(s));
            assert!(!stored.contains("tok_ABCdef") && !stored.contains("token="));
            assert_eq!(summary(&stored).unwrap().1, WITHHELD);
            let plain = serde_json::to_string(&mail(s)).unwrap();
            assert_eq!(summary(&plain).unwrap().1, WITHHELD);
            assert!(!redact(&plain).contains("tok_ABCdef"));
        }
    }
}
