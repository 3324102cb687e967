//! Test fixture: a real Latchkey server on 127.0.0.1:0 with a temporary SQLite file and a
//! clock the test can move, plus a small HTTP client that returns what a user would see.
#![allow(dead_code)]

pub mod browser;
pub mod mail;
pub mod receiver;

use latchkey::app::{App, Running};
use latchkey::clock::TestClock;
use latchkey::config::{Config, ConfigSource};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const SECRET: &str = "test-secret-key-0123456789abcdef0123456789abcdef";

pub struct TestServer {
    pub running: Option<Running>,
    pub base: String,
    pub clock: Arc<TestClock>,
    pub dir: tempfile::TempDir,
    pub config_text: String,
    /// Where emails go, when started with [`TestServer::start_with_mail`].
    pub mail: Option<mail::Sink>,
    admin: Option<String>,
}

/// The config every test server starts from; `extra` is appended (later keys must not repeat
/// a section already here — use `start_with_sections` for whole sections).
pub fn base_config(dir: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
public_url = "http://127.0.0.1"
threads = 4

[database]
path = "{db}"

[security]
secret_key = "{SECRET}"
allowed_origins = ["http://app.test"]
allowed_app_hosts = ["app.test", "*.acme.test"]

[cookies]
secure = false

[argon2]
memory_kib = 64
iterations = 1
parallelism = 1

[log]
level = "warn"
{extra}
"#,
        db = dir.join("latchkey.db").display()
    )
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with("")
    }

    /// `extra` is TOML appended to the base config (new sections only).
    pub fn start_with(extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = base_config(dir.path(), extra);
        Self::start_in(dir, text)
    }

    pub fn start_in(dir: tempfile::TempDir, text: String) -> TestServer {
        let config = Config::from_toml_str(&text, ConfigSource::File(dir.path().join("t.toml")))
            .unwrap_or_else(|e| panic!("test config: {e}"));
        let clock = Arc::new(TestClock::new());
        let app = App::build(config, clock.clone()).expect("app builds");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let running = app.serve_on(listener).expect("serves");
        let base = format!("http://{}", running.addr());
        TestServer {
            running: Some(running),
            base,
            clock,
            dir,
            config_text: text,
            mail: None,
            admin: None,
        }
    }

    pub fn state(&self) -> &latchkey::app::AppState {
        &self.running.as_ref().expect("running").state
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("latchkey.db")
    }

    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A fresh admin key, made the way `latchkey admin-key create` makes one.
    pub fn admin_key(&mut self) -> String {
        if self.admin.is_none() {
            let st = self.state();
            let key = latchkey::cli::new_admin_key(&st.db, "tests", st.now()).unwrap();
            self.admin = Some(key);
        }
        self.admin.clone().unwrap()
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], None)
    }

    pub fn admin_get(&mut self, path: &str) -> Resp {
        let auth = format!("Bearer {}", self.admin_key());
        self.send("GET", path, &[("Authorization", &auth)], None)
    }

    pub fn admin_send(&mut self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let auth = format!("Bearer {}", self.admin_key());
        self.send(method, path, &[("Authorization", &auth)], body)
    }

    /// A JSON request (Content-Type set when there is a body).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut h: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let bytes = body.map(|b| {
            h.push(("Content-Type".into(), "application/json".into()));
            b.to_string().into_bytes()
        });
        self.raw(method, path, &h, bytes.as_deref())
    }

    /// Any request, bytes exactly as given, over a fresh connection.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Resp {
        let addr = self.base.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        // The server may answer (413) and close before reading a large body.
        let _ = s.write_all(&bytes);
        read_response(&mut s)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a client sees.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `data` of a success envelope (asserts it is one).
    pub fn data(&self) -> Value {
        let j = self.json();
        assert_eq!(
            j["status"], "success",
            "expected success, got {} {j}",
            self.status
        );
        j["data"].clone()
    }

    /// Asserts an error envelope with this status and code; returns the body.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        let j = self.json();
        assert_eq!(self.status, status, "status; body {j}");
        assert_eq!(j["status"], "error", "{j}");
        assert_eq!(j["code"], code, "{j}");
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
        j
    }
}

pub fn read_response(s: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
        .unwrap_or_else(|| panic!("bad response: {:?}", String::from_utf8_lossy(&buf)))
}

/// Parses one HTTP/1.1 response (Content-Length or chunked, or to EOF).
pub fn parse_response(buf: &[u8]) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let rest = &buf[end + 4..];
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(len) = get("Content-Length") {
        let n: usize = len.parse().ok()?;
        rest.get(..n)?.to_vec()
    } else if get("Transfer-Encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        let mut r = rest;
        loop {
            let nl = r.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&r[..nl]).ok()?.trim(), 16).ok()?;
            r = &r[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(r.get(..size)?);
            r = &r[size + 2..];
        }
        out
    } else {
        rest.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

/// The release-independent path of the built `latchkey` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_latchkey")
}

pub const PASSWORD: &str = "correct horse battery staple";

impl TestServer {
    /// An org with the given settings (JSON object).
    pub fn org(&mut self, slug: &str, settings: Value) -> Value {
        let r = self.admin_send(
            "POST",
            "/api/v1/admin/orgs",
            Some(serde_json::json!({ "slug": slug, "name": slug, "settings": settings })),
        );
        assert_eq!(r.status, 201, "{:?}", r.json());
        r.data()["org"].clone()
    }

    /// A user with PASSWORD, seated in `org` with `role` (if given); returns the user id.
    pub fn user(&mut self, email: &str, org: Option<(&str, &str)>) -> String {
        let r = self.admin_send(
            "POST",
            "/api/v1/admin/users",
            Some(serde_json::json!({ "email": email, "password": PASSWORD, "name": "Test User", "isEmailVerified": true })),
        );
        assert_eq!(r.status, 201, "{:?}", r.json());
        let id = r.data()["user"]["id"].as_str().unwrap().to_string();
        if let Some((slug, role)) = org {
            let r = self.admin_send(
                "POST",
                &format!("/api/v1/admin/orgs/{slug}/members"),
                Some(serde_json::json!({ "userId": id, "role": role })),
            );
            assert_eq!(r.status, 201, "{:?}", r.json());
        }
        id
    }

    pub fn login(&self, org: &str, email: &str, password: &str) -> Resp {
        self.send(
            "POST",
            "/api/v1/auth/login",
            &[("X-Org-Slug", org)],
            Some(serde_json::json!({ "email": email, "password": password })),
        )
    }

    /// Logs in and returns the success `data` (tokens, user, membership).
    pub fn login_ok(&self, org: &str, email: &str) -> Value {
        let r = self.login(org, email, PASSWORD);
        assert_eq!(r.status, 200, "{:?}", r.json());
        r.data()
    }

    /// A request with `X-Org-Slug` and a bearer access token.
    pub fn as_user(
        &self,
        method: &str,
        path: &str,
        org: &str,
        token: &str,
        body: Option<Value>,
    ) -> Resp {
        let auth = format!("Bearer {token}");
        self.send(
            method,
            path,
            &[("X-Org-Slug", org), ("Authorization", &auth)],
            body,
        )
    }
}

impl Resp {
    /// The `Set-Cookie` header for `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers_named("Set-Cookie")
            .into_iter()
            .find(|c| c.split('=').next() == Some(name))
    }

    /// The value a `Set-Cookie` for `name` sets.
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        let c = self.set_cookie(name)?;
        Some(c.split(';').next()?.split_once('=')?.1.to_string())
    }
}

/// RFC 4648 base32 (no padding) → bytes: reads the `secret` of `/auth/2fa/setup`.
pub fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut out) = (0u64, 0u32, Vec::new());
    for c in s.bytes() {
        buf = (buf << 5) | alphabet.iter().position(|a| *a == c).expect("base32") as u64;
        bits += 5;
        if bits >= 8 {
            out.push((buf >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}
