//! A tiny SMTP sink for tests that read emails as a user would: the server sends to it over
//! real SMTP, and [`Sink::mails`] parses what arrived (headers, `multipart/alternative` parts,
//! quoted-printable, base64, RFC 2047 subjects) into `{to, subject, text, html, messageId}`.
//! Queued emails are stored sealed and redacted once sent, so the outbox is no place to read
//! them from.

use super::TestServer;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// `(RCPT TO addresses, DATA)` of one message.
pub type Received = (Vec<String>, String);

#[derive(Clone, Default)]
pub struct Sink {
    /// Every message received, in order.
    pub received: Arc<Mutex<Vec<Received>>>,
    pub port: u16,
    /// While true, a connection waits before the greeting (the mail stays in the outbox).
    held: Arc<(Mutex<bool>, Condvar)>,
}

impl Sink {
    pub fn start() -> Sink {
        Self::start_held(false)
    }

    /// A sink that holds every connection before the SMTP greeting until [`Sink::release`]
    /// (when `held`): what was queued can be inspected before it is delivered.
    pub fn start_held(held: bool) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sink = Sink {
            port: listener.local_addr().unwrap().port(),
            held: Arc::new((Mutex::new(held), Condvar::new())),
            ..Sink::default()
        };
        let s2 = sink.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let sink = s2.clone();
                std::thread::spawn(move || sink.serve(conn));
            }
        });
        sink
    }

    /// The `[email]` sections that send to this sink.
    pub fn config(&self) -> String {
        format!(
            "[email]\ntransport = \"smtp\"\nfrom = \"Latchkey <no-reply@example.com>\"\n\
             [email.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"off\"\ntimeout = \"30s\"\n",
            self.port
        )
    }

    /// Lets held connections go on (see [`Sink::start_held`]).
    pub fn release(&self) {
        let (held, cv) = &*self.held;
        *held.lock().unwrap() = false;
        cv.notify_all();
    }

    fn serve(&self, conn: TcpStream) {
        {
            let (held, cv) = &*self.held;
            let _open = cv.wait_while(held.lock().unwrap(), |h| *h).unwrap();
        }
        let mut w = conn.try_clone().unwrap();
        let mut rd = BufReader::new(conn);
        let mut say = |s: &str| w.write_all(format!("{s}\r\n").as_bytes()).is_ok();
        say("220 sink ESMTP");
        let mut rcpt = Vec::new();
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let cmd = line.trim_end().to_string();
            let upper = cmd.to_ascii_uppercase();
            if upper.starts_with("RCPT TO:") {
                rcpt.push(cmd[8..].trim().trim_matches(['<', '>']).to_string());
                say("250 OK");
            } else if upper == "DATA" {
                say("354 go ahead");
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if rd.read_line(&mut l).unwrap_or(0) == 0 {
                        return;
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    // Undo dot-stuffing.
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                self.received
                    .lock()
                    .unwrap()
                    .push((std::mem::take(&mut rcpt), data));
                say("250 queued");
            } else if upper == "QUIT" {
                say("221 bye");
                return;
            } else if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                say("250 sink");
            } else {
                say("250 OK");
            }
        }
    }

    /// Every message received so far, parsed.
    pub fn mails(&self) -> Vec<Value> {
        let received = self.received.lock().unwrap().clone();
        received
            .iter()
            .map(|(rcpt, data)| parse(rcpt, data))
            .collect()
    }
}

impl TestServer {
    /// A server whose emails go over SMTP to a fresh [`Sink`] (`extra` as in `start_with`).
    pub fn start_with_mail(extra: &str) -> TestServer {
        let sink = Sink::start();
        let mut s = TestServer::start_with(&format!("{}{extra}", sink.config()));
        s.mail = Some(sink);
        s
    }

    /// Emails delivered to `to` (exact address), oldest first, once every email queued so far
    /// has left the outbox's pending state.
    pub fn mails_to(&self, to: &str) -> Vec<Value> {
        let sink = self.mail.as_ref().expect("started with start_with_mail");
        let conn = rusqlite::Connection::open(self.db_path()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let pending: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM outbox WHERE kind = 'email' AND status = 'pending'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            if pending == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "emails still pending after 15 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        sink.mails().into_iter().filter(|m| m["to"] == to).collect()
    }
}

/// The `?token=` of the link in a mail's plain-text part.
pub fn token_in(mail: &Value) -> String {
    let text = mail["text"].as_str().unwrap();
    let i = text.find("?token=").expect("a ?token= link") + 7;
    text[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn parse(rcpt: &[String], data: &str) -> Value {
    let (headers, body) = split_message(data);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (mut text, mut html) = (String::new(), String::new());
    let ctype = header("Content-Type");
    if let Some(boundary) = param(&ctype, "boundary") {
        let sep = format!("--{boundary}");
        for part in body.split(sep.as_str()).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let (ph, pb) = split_message(part.trim_start_matches("\r\n"));
            let get = |name: &str| {
                ph.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let decoded = decode_body(&get("Content-Transfer-Encoding"), &pb);
            let t = get("Content-Type").to_ascii_lowercase();
            if t.starts_with("text/plain") {
                text = decoded;
            } else if t.starts_with("text/html") {
                html = decoded;
            }
        }
    } else {
        text = decode_body(&header("Content-Transfer-Encoding"), &body);
    }
    json!({
        "to": rcpt.first().cloned().unwrap_or_default(),
        "subject": decode_words(&header("Subject")),
        "messageId": header("Message-ID"),
        "text": text,
        "html": html,
        "raw": data,
    })
}

/// Unfolded headers and the body.
fn split_message(data: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = data.split_once("\r\n\r\n").unwrap_or((data, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (headers, body.to_string())
}

fn param(header: &str, name: &str) -> Option<String> {
    header.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case(name)
            .then(|| v.trim_matches('"').to_string())
    })
}

fn decode_body(cte: &str, body: &str) -> String {
    match cte.to_ascii_lowercase().as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            String::from_utf8(latchkey::crypto::b64_decode(&compact).expect("base64 body"))
                .expect("utf-8 body")
        }
        "quoted-printable" => quoted_printable(&body.replace("=\r\n", ""), false),
        _ => body.to_string(),
    }
    .replace("\r\n", "\n")
}

fn quoted_printable(s: &str, underscore_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'=' if i + 3 <= b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b'_' if underscore_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8")
}

/// RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`); whitespace between two words
/// is dropped.
fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        let word = &rest[start + 2..];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        let Some(end) = parts.get(2).and_then(|p| p.find("?=")) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let (enc, payload) = (parts[1], &parts[2][..end]);
        let decoded = if enc.eq_ignore_ascii_case("b") {
            String::from_utf8(latchkey::crypto::b64_decode(payload).unwrap_or_default())
                .unwrap_or_default()
        } else {
            quoted_printable(payload, true)
        };
        out.push_str(&decoded);
        let consumed = 2 + parts[0].len() + 1 + parts[1].len() + 1 + end + 2;
        rest = &rest[start + consumed..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}
