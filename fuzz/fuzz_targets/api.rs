//! JSON and form inputs through the real request pipeline (`app::handle`: routing, guards,
//! handlers, the hosted pages), on a real App with its SQLite database in a temporary
//! directory: whatever the body, the query, the media type or the client, the answer is not a
//! 5xx (503 aside), carries `X-Request-Id`, and an API error is the JSON envelope.
//!
//! An input is: a template byte (which endpoint, with which credentials), a media-type byte,
//! two bytes of client address (so per-IP limits do not end the search), then the query and
//! the body, split at the first NUL byte. The last template takes its method and path from
//! the input too. `@ACCESS@`, `@REFRESH@`, `@APIKEY@`, `@USER@` and `@CSRF@` in the query or
//! body become the fixture's live values, so seeds can carry credentials made at start.
#![no_main]

use latchkey::app::{App, AppState, handle};
use latchkey::clock::SystemClock;
use latchkey::config::{Config, ConfigSource, EnvOverrides};
use latchkey_fuzz::fields;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

const PASSWORD: &str = "correct horse battery staple";
/// The hosted pages' CSRF seed cookie, fixed so that seeds can carry the matching field.
const PAGE_CSRF: &str = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuz";

struct Fixture {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
    admin: String,
    owner: String,
    refresh: String,
    api_key: String,
    user_id: String,
    page_csrf: String,
}

impl Fixture {
    /// The input with its placeholders replaced by live values.
    fn fill(&self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for (k, v) in [
            (&b"@ACCESS@"[..], &self.owner),
            (b"@REFRESH@", &self.refresh),
            (b"@APIKEY@", &self.api_key),
            (b"@USER@", &self.user_id),
            (b"@CSRF@", &self.page_csrf),
        ] {
            while let Some(i) = out.windows(k.len()).position(|w| w == k) {
                out.splice(i..i + k.len(), v.bytes());
            }
        }
        out
    }
}

/// Calls the pipeline the way the connection layer does.
fn call(
    state: &AppState,
    peer: SocketAddr,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let req = rouille::Request::fake_http_from(peer, method, url, headers, body.to_vec());
    let resp = handle(state, &req);
    let status = resp.status_code;
    let hdrs = resp
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (mut reader, _) = resp.data.into_reader_and_size();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("response body");
    (status, hdrs, out)
}

fn setup_json(
    state: &AppState,
    method: &str,
    url: &str,
    auth: &[(&str, String)],
    body: Value,
) -> Value {
    let mut h = auth.to_vec();
    h.push(("Content-Type", "application/json".into()));
    let peer = "127.0.0.1:1".parse().unwrap();
    let (status, _, out) = call(state, peer, method, url, &h, body.to_string().as_bytes());
    let v: Value = serde_json::from_slice(&out).expect("setup answer is JSON");
    assert!(status < 300, "setup {method} {url}: {status} {v}");
    v["data"].clone()
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    // In $TMPDIR: bench/fuzz.sh points it at a directory it removes afterwards (libFuzzer
    // exits without dropping this).
    let dir = tempfile::Builder::new()
        .prefix("latchkey-fuzz-api-")
        .tempdir()
        .expect("tempdir");
    let text = format!(
        r#"
[server]
bind = "127.0.0.1:0"
public_url = "http://127.0.0.1"
threads = 1
[database]
path = "{}"
[security]
secret_key = "fuzz-secret-key-0123456789abcdef0123456789abcdef"
allowed_origins = ["http://app.test"]
allowed_app_hosts = ["app.test"]
[cookies]
secure = false
[argon2]
memory_kib = 64
iterations = 1
parallelism = 1
[log]
level = "error"
"#,
        dir.path().join("fuzz.db").display()
    );
    let config = Config::from_toml_str_with_env(
        &text,
        ConfigSource::File(dir.path().join("latchkey.toml")),
        &EnvOverrides::default(),
    )
    .expect("fuzz config");
    let app = App::build(config, Arc::new(SystemClock)).expect("app builds");
    let state = app.state;
    let now = state.now();
    let admin = latchkey::cli::new_admin_key(&state.db, "fuzz", now).expect("admin key");
    let a = [("Authorization", format!("Bearer {admin}"))];
    setup_json(
        &state,
        "POST",
        "/api/v1/admin/orgs",
        &a,
        json!({"slug": "acme", "name": "Acme", "settings": {"signupMode": "open"}}),
    );
    let user = setup_json(
        &state,
        "POST",
        "/api/v1/admin/users",
        &a,
        json!({"email": "owner@acme.test", "password": PASSWORD, "name": "Owner", "isEmailVerified": true}),
    );
    let user_id = user["user"]["id"].as_str().unwrap().to_string();
    setup_json(
        &state,
        "POST",
        "/api/v1/admin/orgs/acme/members",
        &a,
        json!({"userId": user_id, "role": "owner"}),
    );
    let org = [("X-Org-Slug", "acme".to_string())];
    let login = setup_json(
        &state,
        "POST",
        "/api/v1/auth/login",
        &org,
        json!({"email": "owner@acme.test", "password": PASSWORD}),
    );
    let owner = login["accessToken"].as_str().unwrap().to_string();
    let refresh = login["refreshToken"].as_str().unwrap().to_string();
    let o = [
        ("X-Org-Slug", "acme".to_string()),
        ("Authorization", format!("Bearer {owner}")),
    ];
    let key = setup_json(
        &state,
        "POST",
        "/api/v1/org/api-keys",
        &o,
        json!({"name": "fuzz"}),
    );
    let api_key = key["key"].as_str().unwrap().to_string();
    // The hosted pages' CSRF field for the fixed seed cookie, as a login form carries it.
    let peer = "127.0.0.1:1".parse().unwrap();
    let cookie = [("Cookie", format!("latchkey_csrf={PAGE_CSRF}"))];
    let (_, _, page) = call(&state, peer, "GET", "/login?org=acme", &cookie, b"");
    let page = String::from_utf8_lossy(&page);
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let page_csrf = page[at..].split('"').next().unwrap().to_string();
    Fixture {
        _dir: dir,
        state,
        admin,
        owner,
        refresh,
        api_key,
        user_id,
        page_csrf,
    }
});

#[derive(Clone, Copy)]
enum Cred {
    None,
    Org,
    Admin,
    Owner,
    ApiKey,
    Refresh,
    Page,
}

#[derive(Clone, Copy, PartialEq)]
enum Media {
    Json,
    Form,
}

/// (method, path, credentials, the media type it expects)
#[rustfmt::skip]
const TEMPLATES: &[(&str, &str, Cred, Media)] = &[
    ("POST", "/api/v1/auth/signup", Cred::Org, Media::Json),
    ("POST", "/api/v1/auth/login", Cred::Org, Media::Json),
    ("POST", "/api/v1/auth/refresh", Cred::Refresh, Media::Json),
    ("POST", "/api/v1/auth/is-available", Cred::Org, Media::Json),
    ("POST", "/api/v1/auth/verify-2fa", Cred::Org, Media::Json),
    ("POST", "/api/v1/auth/forgot-password", Cred::Org, Media::Json),
    ("POST", "/api/v1/auth/reset-password", Cred::Org, Media::Json),
    ("POST", "/api/v1/auth/magic-link/verify", Cred::Org, Media::Json),
    ("POST", "/api/v1/invitations/accept", Cred::None, Media::Json),
    ("PUT", "/api/v1/auth/me", Cred::Owner, Media::Json),
    ("POST", "/api/v1/auth/change-password", Cred::Owner, Media::Json),
    ("POST", "/api/v1/auth/switch-org", Cred::Owner, Media::Json),
    ("POST", "/api/v1/org/members/invite", Cred::Owner, Media::Json),
    ("PUT", "/api/v1/org", Cred::Owner, Media::Json),
    ("POST", "/api/v1/org/api-keys", Cred::Owner, Media::Json),
    ("GET", "/api/v1/org/members", Cred::Owner, Media::Json),
    ("GET", "/api/v1/org/audit", Cred::Owner, Media::Json),
    ("POST", "/api/v1/admin/orgs", Cred::Admin, Media::Json),
    ("PUT", "/api/v1/admin/orgs/acme", Cred::Admin, Media::Json),
    ("POST", "/api/v1/admin/users", Cred::Admin, Media::Json),
    ("PUT", "/api/v1/admin/users/{user}", Cred::Admin, Media::Json),
    ("GET", "/api/v1/admin/users", Cred::Admin, Media::Json),
    ("GET", "/api/v1/admin/audit", Cred::Admin, Media::Json),
    ("POST", "/api/v1/public/verify", Cred::ApiKey, Media::Json),
    ("POST", "/api/v1/public/authenticate", Cred::ApiKey, Media::Json),
    ("POST", "/api/v1/public/users", Cred::ApiKey, Media::Json),
    ("GET", "/api/v1/public/users", Cred::ApiKey, Media::Json),
    ("POST", "/login", Cred::Page, Media::Form),
    ("POST", "/signup", Cred::Page, Media::Form),
    ("POST", "/forgot-password", Cred::Page, Media::Form),
    ("POST", "/reset-password", Cred::Page, Media::Form),
    ("POST", "/login/2fa", Cred::Page, Media::Form),
    ("POST", "/setup", Cred::Page, Media::Form),
    ("GET", "/login", Cred::Page, Media::Form),
    ("GET", "/invitations/accept", Cred::Page, Media::Form),
];

static RUNS: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let fx = &*FIXTURE;
    let [t, m, a, b, rest @ ..] = data else {
        return;
    };
    let rest = fx.fill(rest);
    let f = fields(&rest, 0, 2);
    let (query, body) = (String::from_utf8_lossy(f[0]), f[1]);
    let raw_route = *t as usize % (TEMPLATES.len() + 1) == TEMPLATES.len();
    let (method, path, cred, media) = if raw_route {
        // "METHOD /path?query" from the input.
        let (method, path) = query.split_once(' ').unwrap_or(("GET", &query));
        (method.to_string(), path.to_string(), Cred::Org, Media::Json)
    } else {
        let (method, path, cred, media) = TEMPLATES[*t as usize % TEMPLATES.len()];
        let path = path.replace("{user}", &fx.user_id);
        let path = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        (method.to_string(), path, cred, media)
    };
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };

    let mut headers: Vec<(&str, String)> = Vec::new();
    let ct = match m % 6 {
        0 | 1 if media == Media::Json => Some("application/json"),
        0 | 1 => Some("application/x-www-form-urlencoded"),
        2 => Some("application/json; charset=utf-8"),
        3 => Some("application/x-www-form-urlencoded; charset=UTF-8"),
        4 => Some("text/plain"),
        _ => None,
    };
    if let Some(ct) = ct {
        headers.push(("Content-Type", ct.into()));
    }
    match cred {
        Cred::None => {}
        Cred::Org => headers.push(("X-Org-Slug", "acme".into())),
        Cred::Admin => headers.push(("Authorization", format!("Bearer {}", fx.admin))),
        Cred::Owner => {
            headers.push(("X-Org-Slug", "acme".into()));
            headers.push(("Authorization", format!("Bearer {}", fx.owner)));
        }
        Cred::ApiKey => headers.push(("X-API-Key", fx.api_key.clone())),
        Cred::Refresh => {
            headers.push(("X-Org-Slug", "acme".into()));
            headers.push(("Cookie", format!("refresh_token={}", fx.refresh)));
            headers.push(("Origin", "http://app.test".into()));
        }
        Cred::Page => headers.push(("Cookie", format!("latchkey_csrf={PAGE_CSRF}"))),
    }
    let peer = SocketAddr::from(([10, 0, *a, *b], 40000));
    let (status, hdrs, out) = call(&fx.state, peer, &method, &path, &headers, body);

    assert!(
        status < 500 || status == 503,
        "{status} for {method} {path}: {}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        hdrs.iter().any(|(k, _)| k == "X-Request-Id"),
        "no X-Request-Id"
    );
    if path.starts_with("/api/") && status >= 400 {
        let v: Value = serde_json::from_slice(&out)
            .unwrap_or_else(|_| panic!("{status} for {method} {path} is not JSON"));
        assert_eq!(v["status"], "error", "{v}");
        assert!(v["code"].is_string(), "{v}");
    }

    // The server checkpoints from its maintenance thread, which does not run here.
    if RUNS.fetch_add(1, Ordering::Relaxed) % 2048 == 2047 {
        let _ = fx.state.db.checkpoint();
    }
});
