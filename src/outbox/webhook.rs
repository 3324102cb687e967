//! One webhook POST (API.md §9): the stored body byte for byte, the signature families
//! (AuthWorx's, Standard Webhooks', and WorkOS's `WorkOS-Signature`), a
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

/// `t=<ms>, v1=<hex HMAC-SHA256(key = the secret string as issued, msg = "<ms>.<body>")>`
/// (WorkOS's `WorkOS-Signature`, which its SDKs' `webhooks.verify_event` checks with the
/// endpoint's secret).
pub fn signature_workos(secret: &str, timestamp_ms: i64, body: &[u8]) -> String {
    let mut msg = Vec::with_capacity(body.len() + 16);
    msg.extend_from_slice(timestamp_ms.to_string().as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    format!(
        "t={timestamp_ms}, v1={}",
        crypto::hex(&crypto::hmac_sha256(secret.as_bytes(), &msg))
    )
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
        let config = ureq::Agent::config_builder()
            // One budget for resolving, connecting, TLS, sending and reading the answer.
            .timeout_global(Some(cfg.timeout))
            // A 3xx is answered as it is (a failed attempt), never followed.
            .max_redirects(0)
            // Every status comes back as a response: 410 and the others are told apart below.
            .http_status_as_error(false)
            // ureq 3 reads HTTP(S)_PROXY from the environment by default; a proxy would
            // resolve the name itself and bypass the SSRF guard in the resolver.
            .proxy(None)
            .user_agent(USER_AGENT)
            .max_idle_connections_per_host(4)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            GuardedResolver {
                allow_private: cfg.allow_private_addresses,
            },
        );
        Sender {
            agent,
            timeout_secs: cfg.timeout.as_secs().max(1),
        }
    }

    pub fn send(&self, d: &Delivery<'_>) -> Outcome {
        let result = self
            .agent
            .post(d.url)
            .header("Content-Type", "application/json")
            .header("User-Agent", USER_AGENT)
            .header("X-Webhook-Signature", &signature_hex(d.secret, d.body))
            .header("X-Webhook-Event", d.event)
            .header("X-Delivery-Id", d.delivery_id)
            .header("webhook-id", d.delivery_id)
            .header("webhook-timestamp", &d.timestamp.to_string())
            .header(
                "webhook-signature",
                &signature_standard(d.secret, d.delivery_id, d.timestamp, d.body),
            )
            .header(
                "WorkOS-Signature",
                &signature_workos(d.secret, d.timestamp * 1000, d.body),
            )
            .send(d.body);
        match result {
            Ok(resp) => {
                let code = resp.status().as_u16();
                drain(resp);
                match code {
                    200..=299 => Outcome::Delivered { code },
                    410 => Outcome::Gone,
                    300..=399 => Outcome::Failed {
                        code: Some(code),
                        error: format!("HTTP {code} (redirects are not followed)"),
                    },
                    _ => Outcome::Failed {
                        code: Some(code),
                        error: format!("HTTP {code}"),
                    },
                }
            }
            Err(e) => Outcome::Failed {
                code: None,
                error: self.describe(&e),
            },
        }
    }

    /// A transport error in a few words, without the URL.
    fn describe(&self, e: &ureq::Error) -> String {
        let timed_out = || format!("timed out (webhooks.timeout {}s)", self.timeout_secs);
        match e {
            ureq::Error::Io(io) => match io.kind() {
                // The SSRF guard's refusal: its message names the address and the setting.
                std::io::ErrorKind::PermissionDenied => io.to_string(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => timed_out(),
                _ => format!("connection failed: {io}"),
            },
            ureq::Error::Timeout(_) => timed_out(),
            // These two quote the URL.
            ureq::Error::BadUri(_) => "invalid URL".to_string(),
            ureq::Error::RequireHttpsOnly(_) => "https required".to_string(),
            // The others carry no URL (ureq's messages may name the host, never the path
            // or query).
            other => other.to_string(),
        }
    }
}

fn drain(resp: ureq::http::Response<ureq::Body>) {
    let _ = std::io::copy(
        &mut resp.into_body().into_reader().take(DRAIN_LIMIT),
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

    fn cfg(allow_private: bool) -> WebhooksConfig {
        WebhooksConfig {
            timeout: std::time::Duration::from_secs(2),
            retry_schedule: vec![],
            allow_http: true,
            allow_private_addresses: allow_private,
            retention: std::time::Duration::from_secs(1),
        }
    }

    fn deliver(sender: &Sender, url: &str) -> Outcome {
        sender.send(&Delivery {
            url,
            secret: "whsec_AAAA",
            delivery_id: "del_1",
            event: "webhook.test",
            body: b"{}",
            timestamp: 1,
        })
    }

    /// A listener that answers every request on it with `answer`, counting connections.
    fn answering(answer: String) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::Write;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = c.write_all(answer.as_bytes());
            }
        });
        (port, seen)
    }

    #[test]
    fn the_client_uses_no_proxy_and_follows_no_redirect() {
        // ureq 3 picks a proxy up from the environment unless told not to; a proxy would
        // resolve webhook hosts itself, past the SSRF guard.
        let sender = Sender::new(&cfg(false));
        assert!(sender.agent.config().proxy().is_none());
        assert_eq!(sender.agent.config().max_redirects(), 0);
        assert!(!sender.agent.config().http_status_as_error());
    }

    #[test]
    fn a_redirect_is_a_failure_and_is_not_followed() {
        use std::sync::atomic::Ordering;
        let (target, reached) = answering("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".into());
        let (port, _) = answering(format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target}/x\r\n\
             Content-Length: 0\r\n\r\n"
        ));
        let out = deliver(
            &Sender::new(&cfg(true)),
            &format!("http://127.0.0.1:{port}/hook"),
        );
        assert_eq!(
            out,
            Outcome::Failed {
                code: Some(307),
                error: "HTTP 307 (redirects are not followed)".into()
            }
        );
        assert_eq!(reached.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn statuses_map_to_outcomes() {
        for (status, want) in [
            ("204 No Content", Outcome::Delivered { code: 204 }),
            ("410 Gone", Outcome::Gone),
            (
                "503 Service Unavailable",
                Outcome::Failed {
                    code: Some(503),
                    error: "HTTP 503".into(),
                },
            ),
        ] {
            let (port, _) = answering(format!(
                "HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\nhello"
            ));
            let out = deliver(
                &Sender::new(&cfg(true)),
                &format!("http://127.0.0.1:{port}/"),
            );
            assert_eq!(out, want, "{status}");
        }
    }

    #[test]
    fn a_receiver_that_never_answers_times_out_within_the_budget() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let held: Vec<_> = l.incoming().take(1).collect();
            std::thread::sleep(std::time::Duration::from_secs(5));
            drop(held);
        });
        let mut c = cfg(true);
        c.timeout = std::time::Duration::from_secs(1);
        let start = std::time::Instant::now();
        let out = deliver(&Sender::new(&c), &format!("http://127.0.0.1:{port}/"));
        assert_eq!(
            out,
            Outcome::Failed {
                code: None,
                error: "timed out (webhooks.timeout 1s)".into()
            }
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(3));
    }

    #[test]
    fn a_name_that_resolves_to_loopback_is_refused_before_any_connection() {
        use std::sync::atomic::Ordering;
        let (port, seen) = answering("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".into());
        let url = format!("http://localhost:{port}/hook?token=secret-in-url");
        match deliver(&Sender::new(&cfg(false)), &url) {
            Outcome::Failed { code: None, error } => {
                assert!(error.contains("refused to connect"), "{error}");
                assert!(error.contains("loopback"), "{error}");
                assert!(!error.contains("secret-in-url"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(seen.load(Ordering::SeqCst), 0, "nothing reached loopback");
        // Allowed, the same name connects (to the address the resolver returned).
        let out = deliver(&Sender::new(&cfg(true)), &url);
        assert_eq!(out, Outcome::Delivered { code: 200 });
        assert_eq!(seen.load(Ordering::SeqCst), 1);
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
        let w = signature_workos("whsec_abc", 1_700_000_000_123, b"{}");
        assert_eq!(
            w,
            format!(
                "t=1700000000123, v1={}",
                crypto::hex(&crypto::hmac_sha256(b"whsec_abc", b"1700000000123.{}"))
            )
        );
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
