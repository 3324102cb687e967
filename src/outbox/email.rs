//! Sending one queued email: `log` (development: the message goes to the log, which is the
//! point) or `smtp` (lettre; TLS off, STARTTLS or implicit TLS; optional auth; a timeout).
//! In `smtp` mode nothing of the body is logged: it carries single-use tokens.

use crate::config::{EmailConfig, EmailTransport, SmtpTls};
use crate::log::Logger;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The outbox payload of an email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Worth retrying (connection trouble, 4xx from the server).
    Failed(String),
    /// Will never work (bad address, 5xx from the server): no more retries.
    Permanent(String),
}

pub struct Mailer {
    from: Option<Mailbox>,
    transport: Option<SmtpTransport>,
    /// Why the transport could not be built (reported per message, retried).
    setup_error: Option<String>,
    mode: EmailTransport,
}

impl Mailer {
    pub fn new(cfg: &EmailConfig) -> Mailer {
        let from = cfg.from.parse::<Mailbox>().ok();
        let (transport, setup_error) = match cfg.transport {
            EmailTransport::Log => (None, None),
            EmailTransport::Smtp => match build_transport(cfg) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e)),
            },
        };
        Mailer {
            from,
            transport,
            setup_error,
            mode: cfg.transport,
        }
    }

    pub fn send(&self, log: &Logger, id: &str, mail: &Mail) -> Outcome {
        match self.mode {
            EmailTransport::Log => {
                log.info(
                    "email (log transport; not sent)",
                    &[
                        ("id", json!(id)),
                        ("to", json!(mail.to)),
                        ("subject", json!(mail.subject)),
                        ("text", json!(mail.text)),
                    ],
                );
                Outcome::Sent
            }
            EmailTransport::Smtp => self.send_smtp(id, mail),
        }
    }

    fn send_smtp(&self, id: &str, mail: &Mail) -> Outcome {
        let Some(transport) = &self.transport else {
            return Outcome::Failed(
                self.setup_error
                    .clone()
                    .unwrap_or_else(|| "SMTP transport unavailable".into()),
            );
        };
        let Some(from) = self.from.clone() else {
            return Outcome::Permanent("email.from is not a valid mailbox".into());
        };
        let Ok(to) = mail.to.parse::<Mailbox>() else {
            return Outcome::Permanent("recipient is not a valid address".into());
        };
        let message = Message::builder()
            .message_id(Some(format!("<{id}@latchkey>")))
            .from(from)
            .to(to)
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ));
        let message = match message {
            Ok(m) => m,
            Err(e) => return Outcome::Permanent(format!("cannot build the message: {e}")),
        };
        match transport.send(&message) {
            Ok(_) => Outcome::Sent,
            Err(e) if e.is_permanent() => Outcome::Permanent(short(&e.to_string())),
            Err(e) => Outcome::Failed(short(&e.to_string())),
        }
    }
}

fn build_transport(cfg: &EmailConfig) -> Result<SmtpTransport, String> {
    let s = &cfg.smtp;
    let builder = match s.tls {
        SmtpTls::Off => SmtpTransport::builder_dangerous(s.host.as_str()),
        SmtpTls::Starttls => SmtpTransport::starttls_relay(&s.host)
            .map_err(|e| format!("SMTP STARTTLS setup: {e}"))?,
        SmtpTls::Tls => {
            SmtpTransport::relay(&s.host).map_err(|e| format!("SMTP TLS setup: {e}"))?
        }
    };
    let mut builder = builder.port(s.port).timeout(Some(s.timeout));
    if let (Some(user), Some(pass)) = (&s.username, &s.password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_owned()));
    }
    Ok(builder.build())
}

/// At most 300 characters, on one line.
fn short(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    one_line.chars().take(300).collect()
}
