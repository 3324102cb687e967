//! One webhook POST (API.md §9): the stored body byte for byte, both signature families, a
//! deadline, no redirects, and the SSRF guard in the resolver.

use super::ssrf::GuardedResolver;
use crate::config::WebhooksConfig;
use crate::crypto;
use std::io::Read;

pub const USER_AGENT: &str = "Latchkey-Webhooks/1";
pub const SECRET_PREFIX: &str = "whsec_";

/// `sha256=<hex HMAC-SHA256(key = the secret string as issued, msg = body)>` (AuthWorx style).
pub fn signature_hex(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        crypto::hex(&crypto::hmac_sha256(secret.as_bytes(), body))
    )
}

/// `v1,<base64 HMAC-SHA256(key = base64-decode(secret minus "whsec_"), msg = id.ts.body)>`
/// (Standard Webhooks). A secret that is not valid base64 signs with its raw bytes.
pub fn signature_standard(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let raw = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = crypto::b64_decode(raw).unwrap_or_else(|| raw.as_bytes().to_vec());
    let mut msg = Vec::with_capacity(msg_id.len() + body.len() + 24);
    msg.extend_from_slice(msg_id.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(timestamp.to_string().as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    format!("v1,{}", crypto::b64(&crypto::hmac_sha256(&key, &msg)))
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx in time.
    Delivered { code: u16 },
    /// `410 Gone`: the receiver asks us to stop; the endpoint gets disabled.
    Gone,
    /// Anything else: retried on the schedule. `error` is short and holds no secret (never the
    /// URL, which may carry a token in its path or query).
    Failed { code: Option<u16>, error: String },
}

pub struct Delivery<'a> {
    pub url: &'a str,
    pub secret: &'a str,
    pub delivery_id: &'a str,
    pub event: &'a str,
    pub body: &'a [u8],
    /// Unix seconds of this attempt.
    pub timestamp: i64,
}

/// The HTTP client, shared by all delivery lanes (it pools keep-alive connections).
#[derive(Clone)]
pub struct Sender {
    agent: ureq::Agent,
    timeout_secs: u64,
}

/// Bytes of a response body read (and discarded) so the connection can be reused.
const DRAIN_LIMIT: u64 = 64 * 1024;

impl Sender {
    pub fn new(cfg: &WebhooksConfig) -> Sender {
        let agent = ureq::AgentBuilder::new()
            .timeout(cfg.timeout)
            .redirects(0)
            .user_agent(USER_AGENT)
            .max_idle_connections_per_host(4)
            .resolver(GuardedResolver {
                allow_private: cfg.allow_private_addresses,
            })
            .build();
        Sender {
            agent,
            timeout_secs: cfg.timeout.as_secs().max(1),
        }
    }

    pub fn send(&self, d: &Delivery<'_>) -> Outcome {
        let result = self
            .agent
            .post(d.url)
            .set("Content-Type", "application/json")
            .set("User-Agent", USER_AGENT)
            .set("X-Webhook-Signature", &signature_hex(d.secret, d.body))
            .set("X-Webhook-Event", d.event)
            .set("X-Delivery-Id", d.delivery_id)
            .set("webhook-id", d.delivery_id)
            .set("webhook-timestamp", &d.timestamp.to_string())
            .set(
                "webhook-signature",
                &signature_standard(d.secret, d.delivery_id, d.timestamp, d.body),
            )
            .send_bytes(d.body);
        match result {
            Ok(resp) => {
                let code = resp.status();
                drain(resp);
                if (200..300).contains(&code) {
                    Outcome::Delivered { code }
                } else {
                    Outcome::Failed {
                        code: Some(code),
                        error: format!("HTTP {code} (redirects are not followed)"),
                    }
                }
            }
            Err(ureq::Error::Status(410, resp)) => {
                drain(resp);
                Outcome::Gone
            }
            Err(ureq::Error::Status(code, resp)) => {
                drain(resp);
                Outcome::Failed {
                    code: Some(code),
                    error: format!("HTTP {code}"),
                }
            }
            Err(ureq::Error::Transport(t)) => Outcome::Failed {
                code: None,
                error: self.describe(&t),
            },
        }
    }

    /// A transport error in a few words, without the URL.
    fn describe(&self, t: &ureq::Transport) -> String {
        let io = std::error::Error::source(t).and_then(|s| s.downcast_ref::<std::io::Error>());
        if let Some(e) = io {
            match e.kind() {
                std::io::ErrorKind::PermissionDenied => return e.to_string(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    return format!("timed out (webhooks.timeout {}s)", self.timeout_secs);
                }
                _ => {}
            }
        }
        let mut s = t.kind().to_string();
        if let Some(m) = t.message() {
            // ureq's own messages may quote the host name but not the path or query.
            s.push_str(": ");
            s.push_str(m);
        }
        if let Some(e) = io {
            s.push_str(": ");
            s.push_str(&e.to_string());
        }
        s
    }
}

fn drain(resp: ureq::Response) {
    let _ = std::io::copy(
        &mut resp.into_reader().take(DRAIN_LIMIT),
        &mut std::io::sink(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = signature_standard(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn https_is_attempted_and_a_failed_handshake_is_a_plain_failure() {
        // A "server" that accepts and hangs up: TLS must be compiled in and fail cleanly.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in l.incoming().take(2) {
                drop(c);
            }
        });
        let cfg = WebhooksConfig {
            timeout: std::time::Duration::from_secs(2),
            retry_schedule: vec![],
            allow_http: false,
            allow_private_addresses: true,
            retention: std::time::Duration::from_secs(1),
        };
        let url = format!("https://127.0.0.1:{port}/hook?token=secret-in-url");
        let out = Sender::new(&cfg).send(&Delivery {
            url: &url,
            secret: "whsec_AAAA",
            delivery_id: "del_1",
            event: "webhook.test",
            body: b"{}",
            timestamp: 1,
        });
        match out {
            Outcome::Failed { code: None, error } => {
                assert!(!error.contains("secret-in-url"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hex_signature_uses_the_secret_string() {
        let s = signature_hex("whsec_abc", b"{}");
        assert_eq!(
            s,
            format!(
                "sha256={}",
                crypto::hex(&crypto::hmac_sha256(b"whsec_abc", b"{}"))
            )
        );
    }
}
