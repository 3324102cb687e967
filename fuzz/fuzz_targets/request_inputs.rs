//! What handlers read from a request besides the body: cookies, `Authorization`, the client
//! address, `User-Agent`, the request id, the language, query parameters and cursors, the
//! CSRF rule, the JSON body's media type, and the validators that take those strings. Header
//! values arrive as the connection layer hands them on (lossily decoded, trimmed).
#![no_main]

use latchkey::config::{Config, ConfigSource, EnvOverrides};
use latchkey::http::{cookies, input, respond};
use latchkey::{clock, crypto, cursor, ratelimit, totp, ui, validate};
use latchkey_fuzz::{fields, seed_and_rest};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    let text = r#"
[server]
public_url = "https://auth.example.test"
trusted_proxies = ["127.0.0.1", "::1"]
[database]
path = "/nonexistent/fuzz.db"
[security]
secret_key = "fuzz-secret-key-0123456789abcdef0123456789abcdef"
allowed_origins = ["https://app.example.test"]
"#;
    Config::from_toml_str_with_env(
        text,
        ConfigSource::File("/fuzz/latchkey.toml".into()),
        &EnvOverrides::default(),
    )
    .expect("fuzz config")
});

const HEADERS: [&str; 11] = [
    "Content-Type",
    "Cookie",
    "Authorization",
    "X-Forwarded-For",
    "User-Agent",
    "Accept-Language",
    "Origin",
    "Referer",
    "X-CSRF-Token",
    "X-Request-Id",
    "X-Org-Slug",
];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "HEAD"];

fuzz_target!(|data: &[u8]| {
    let (seed, data) = seed_and_rest(data);
    // url, one field per header, body.
    let f = fields(data, 0, HEADERS.len() + 2);
    let url = String::from_utf8_lossy(f[0]);
    let url = if url.starts_with('/') {
        url.into_owned()
    } else {
        format!("/{url}")
    };
    let mut headers = Vec::new();
    for (i, name) in HEADERS.iter().enumerate() {
        if seed >> i & 1 == 1 {
            let v = String::from_utf8_lossy(f[i + 1]).trim().to_string();
            headers.push((name.to_string(), v));
        }
    }
    let body = f[HEADERS.len() + 1].to_vec();
    let peer: SocketAddr = if seed >> 20 & 1 == 0 {
        "127.0.0.1:4000".parse().unwrap()
    } else {
        "[::1]:4000".parse().unwrap()
    };
    let method = METHODS[(seed >> 24) as usize % METHODS.len()];
    let req = rouille::Request::fake_http_from(peer, method, url, headers.clone(), body);
    let header = |name: &str| req.header(name);

    // Bodies: media type and JSON.
    let _ = input::json::<serde_json::Value>(&req, 1 << 16);
    let _ = input::json_or_default::<serde_json::Value>(&req, 1 << 16);

    // Credentials and cookies.
    if let Some(t) = input::bearer(&req) {
        assert!(!t.is_empty() && header("Authorization").unwrap().contains(t));
    }
    for name in [
        cookies::ACCESS,
        cookies::REFRESH,
        cookies::CSRF,
        cookies::PARTIAL,
        ui::SESSION_COOKIE,
        "latchkey_lang",
        "latchkey_csrf",
    ] {
        if let Some(v) = input::cookie(&req, name) {
            assert!(header("Cookie").unwrap().contains(v));
        }
    }
    let _ = cookies::csrf_ok(&CONFIG, &req);

    // Where the request comes from and what it calls itself.
    let ip = input::client_ip(&req, &CONFIG.server.trusted_proxies);
    if ip != peer.ip() {
        let xff = header("X-Forwarded-For").expect("an address other than the peer");
        assert!(xff.split(',').any(|p| p.trim().parse::<IpAddr>() == Ok(ip)));
    }
    let _ = ratelimit::client_key(&ip);
    if let Some(ua) = input::user_agent(&req) {
        assert!(ua.len() <= 512 && header("User-Agent").unwrap().starts_with(&ua));
    }
    let id = respond::request_id(header("X-Request-Id"), 0);
    assert!(!id.is_empty() && id.len() <= 128 && id.is_ascii());
    let lang = ui::request_language(&req);
    assert!(!lang.is_empty());

    // Query parameters and cursors.
    let _ = input::query(&req, "cursor");
    if let Ok(n) = input::query_int(&req, "limit", 20, 1, 100) {
        assert!((1..=100).contains(&n));
    }
    let _ = cursor::from_query(&[7; 32], &req);

    // The validators, on one of the same strings.
    if let Some((name, v)) = headers.get((seed >> 28) as usize % HEADERS.len()) {
        let _ = validate::email(v);
        let _ = validate::slug(v);
        let _ = validate::http_url(name, v);
        let _ = validate::name(name, v);
        let _ = validate::org_role(name, v);
        let _ = clock::parse_rfc3339(v);
        let _ = totp::backup_code_hash(v);
        let _ = crypto::b64url_decode(v);
        let _ = crypto::b64_decode(v);
    }
});
