//! Two-factor authentication over real HTTP with the test clock: enrollment, the two-step
//! login by cookie and by body, replay, drift, the wrong-code limit, backup codes, the
//! require2FA enrollment path, and the partial token refused everywhere else.

mod common;
use common::{PASSWORD, Resp, TestServer};
use latchkey::{crypto, totp};
use serde_json::{Value, json};

struct Ctx {
    s: TestServer,
    token: String,
    secret: Vec<u8>,
    backup: Vec<String>,
}

impl Ctx {
    fn code(&self, offset_steps: i64) -> String {
        let step = self.s.clock_now_secs() / 30 + offset_steps;
        totp::code_at_step(&self.secret, step as u64)
    }
}

trait Now {
    fn clock_now_secs(&self) -> i64;
}
impl Now for TestServer {
    fn clock_now_secs(&self) -> i64 {
        self.state().now() / 1000
    }
}

fn post(s: &TestServer, path: &str, token: &str, body: Value) -> Resp {
    s.as_user("POST", path, "acme", token, Some(body))
}

/// A user with 2FA enabled (the enabling code's step is then spent).
fn enrolled() -> Ctx {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s.user("ann@example.com", Some(("acme", "member")));
    let token = s.login_ok("acme", "ann@example.com")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(&s, "/api/v1/auth/2fa/setup", &token, json!({}));
    assert_eq!(r.status, 200, "{:?}", r.json());
    let d = r.data();
    let secret = common::base32_decode(d["secret"].as_str().unwrap());
    let url = d["otpauthUrl"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/acme:ann%40example.com?secret="),
        "{url}"
    );
    assert!(url.contains(&format!("secret={}", d["secret"].as_str().unwrap())));
    assert!(url.contains("issuer=acme") && url.contains("digits=6") && url.contains("period=30"));
    assert!(d["qrSvg"].as_str().unwrap().contains("<svg"));
    let mut ctx = Ctx {
        s,
        token,
        secret,
        backup: vec![],
    };
    post(
        &ctx.s,
        "/api/v1/auth/2fa/enable",
        &ctx.token,
        json!({ "code": "000000" }),
    )
    .assert_error(401, "invalid_code");
    let r = post(
        &ctx.s,
        "/api/v1/auth/2fa/enable",
        &ctx.token,
        json!({ "code": ctx.code(0) }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    ctx.backup = r.data()["backupCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ctx.backup.len(), 10);
    ctx
}

fn login_step1(s: &TestServer) -> Resp {
    let r = s.login("acme", "ann@example.com", PASSWORD);
    assert_eq!(r.status, 200, "{:?}", r.json());
    r
}

fn verify(s: &TestServer, partial: &str, code: &str) -> Resp {
    s.send(
        "POST",
        "/api/v1/auth/verify-2fa",
        &[("X-Org-Slug", "acme")],
        Some(json!({ "partialToken": partial, "code": code })),
    )
}

fn amr(r: &Resp) -> Value {
    let t = r.data()["accessToken"].as_str().unwrap().to_string();
    let p: Value =
        serde_json::from_slice(&crypto::b64url_decode(t.split('.').nth(1).unwrap()).unwrap())
            .unwrap();
    p["amr"].clone()
}

#[test]
fn enrollment_then_two_step_login_by_body_and_by_cookie() {
    let c = enrolled();
    let s = &c.s;
    let st = s
        .as_user("GET", "/api/v1/auth/2fa/status", "acme", &c.token, None)
        .data();
    assert_eq!(
        st,
        json!({ "enabled": true, "method": "totp", "backupCodesRemaining": 10 })
    );
    post(s, "/api/v1/auth/2fa/setup", &c.token, json!({})).assert_error(409, "already_exists");

    let r = login_step1(s);
    let d = r.data();
    assert_eq!(d["requires2FA"], true);
    assert!(d.get("accessToken").is_none());
    let partial = d["partialToken"].as_str().unwrap().to_string();
    let cookie = r.set_cookie("partial_token").unwrap();
    assert!(
        cookie.contains("Path=/api/v1/auth")
            && cookie.contains("Max-Age=300")
            && cookie.contains("HttpOnly")
    );
    // The partial token is not an access token.
    s.as_user("GET", "/api/v1/auth/me", "acme", &partial, None)
        .assert_error(401, "unauthenticated");

    // The enabling code's step is spent: a fresh step is needed.
    verify(s, &partial, &c.code(0)).assert_error(401, "invalid_code");
    s.clock.advance_secs(30);
    let ok = verify(s, &partial, &c.code(0));
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    assert_eq!(amr(&ok), json!(["pwd", "otp"]));
    assert!(
        ok.set_cookie("partial_token")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(ok.set_cookie("access_token").is_some());
    // Used once: the partial token and the code are both spent.
    verify(s, &partial, &c.code(0)).assert_error(400, "invalid_token");

    // By cookie, with a code one step behind (drift); that step was never used.
    s.clock.advance_secs(60);
    let r = login_step1(s);
    let cookie = format!("partial_token={}", r.cookie_value("partial_token").unwrap());
    let code = c.code(-1);
    let replay = c.code(-1);
    let r = s.send(
        "POST",
        "/api/v1/auth/verify-2fa",
        &[("X-Org-Slug", "acme"), ("Cookie", &cookie)],
        Some(json!({ "code": code })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    // Replay of an accepted code on a new login is refused.
    let p = login_step1(s).data()["partialToken"]
        .as_str()
        .unwrap()
        .to_string();
    verify(s, &p, &replay).assert_error(401, "invalid_code");
}

#[test]
fn drift_beyond_one_step_and_missing_inputs_are_refused() {
    let c = enrolled();
    let s = &c.s;
    s.clock.advance_secs(60);
    let p = login_step1(s).data()["partialToken"]
        .as_str()
        .unwrap()
        .to_string();
    verify(s, &p, &c.code(2)).assert_error(401, "invalid_code");
    verify(s, &p, &c.code(-2)).assert_error(401, "invalid_code");
    s.send(
        "POST",
        "/api/v1/auth/verify-2fa",
        &[("X-Org-Slug", "acme")],
        Some(json!({ "partialToken": p })),
    )
    .assert_error(400, "invalid_token");
    s.send(
        "POST",
        "/api/v1/auth/verify-2fa",
        &[("X-Org-Slug", "acme")],
        Some(json!({ "code": "123456" })),
    )
    .assert_error(400, "invalid_token");
    verify(s, "not-a-token", &c.code(0)).assert_error(400, "invalid_token");
    let ok = verify(s, &p, &c.code(1));
    assert_eq!(ok.status, 200, "+1 step accepted");
    // An expired partial token.
    s.clock.advance_secs(60);
    let p = login_step1(s).data()["partialToken"]
        .as_str()
        .unwrap()
        .to_string();
    s.clock.advance_secs(301);
    verify(s, &p, &c.code(0)).assert_error(400, "invalid_token");
}

#[test]
fn the_fifth_wrong_code_burns_the_partial_token() {
    let c = enrolled();
    let s = &c.s;
    s.clock.advance_secs(30);
    let p = login_step1(s).data()["partialToken"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..4 {
        verify(s, &p, "000000").assert_error(401, "invalid_code");
    }
    let r = verify(s, &p, "000000");
    r.assert_error(429, "rate_limited");
    assert!(r.header("Retry-After").is_some());
    verify(s, &p, &c.code(0)).assert_error(400, "invalid_token");
}

#[test]
fn backup_codes_work_once_and_can_be_regenerated() {
    let c = enrolled();
    let s = &c.s;
    let p = login_step1(s).data()["partialToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = verify(s, &p, &c.backup[0].to_uppercase());
    assert_eq!(r.status, 200, "{:?}", r.json());
    let p = login_step1(s).data()["partialToken"]
        .as_str()
        .unwrap()
        .to_string();
    verify(s, &p, &c.backup[0]).assert_error(401, "invalid_code");
    let st = s
        .as_user("GET", "/api/v1/auth/2fa/status", "acme", &c.token, None)
        .data();
    assert_eq!(st["backupCodesRemaining"], 9);

    post(
        s,
        "/api/v1/auth/2fa/backup-codes",
        &c.token,
        json!({ "code": "000000" }),
    )
    .assert_error(401, "invalid_code");
    s.clock.advance_secs(30);
    let r = post(
        s,
        "/api/v1/auth/2fa/backup-codes",
        &c.token,
        json!({ "code": c.code(0) }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let fresh: Vec<String> = r.data()["backupCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(fresh.len(), 10);
    let p = login_step1(s).data()["partialToken"]
        .as_str()
        .unwrap()
        .to_string();
    verify(s, &p, &c.backup[1]).assert_error(401, "invalid_code");
    assert_eq!(verify(s, &p, &fresh[0]).status, 200);
    // Stored only as hashes.
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let hashes: Vec<String> = conn
        .prepare("SELECT code_hash FROM backup_codes")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        hashes
            .iter()
            .all(|h| !fresh.iter().any(|c| h.contains(&c.replace('-', ""))))
    );
}

#[test]
fn totp_secrets_are_sealed_at_rest() {
    let c = enrolled();
    let conn = rusqlite::Connection::open(c.s.db_path()).unwrap();
    let sealed: Vec<u8> = conn
        .query_row("SELECT secret_enc FROM totp_secrets", [], |r| r.get(0))
        .unwrap();
    assert!(
        !sealed
            .windows(c.secret.len())
            .any(|w| w == c.secret.as_slice())
    );
    assert_ne!(sealed.len(), c.secret.len());
}

#[test]
fn disabling_needs_a_valid_code() {
    let c = enrolled();
    let s = &c.s;
    post(
        s,
        "/api/v1/auth/2fa/disable",
        &c.token,
        json!({ "code": "000000" }),
    )
    .assert_error(401, "invalid_code");
    let r = post(
        s,
        "/api/v1/auth/2fa/disable",
        &c.token,
        json!({ "code": c.backup[3] }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let st = s
        .as_user("GET", "/api/v1/auth/2fa/status", "acme", &c.token, None)
        .data();
    assert_eq!(
        st,
        json!({ "enabled": false, "method": "", "backupCodesRemaining": 0 })
    );
    let r = s.login("acme", "ann@example.com", PASSWORD);
    assert!(r.data()["accessToken"].is_string(), "one step again");
}

#[test]
fn an_org_requiring_2fa_enrolls_on_login() {
    let mut s = TestServer::start();
    s.org("acme", json!({ "require2FA": true }));
    s.user("ann@example.com", Some(("acme", "member")));
    let r = s.login("acme", "ann@example.com", PASSWORD);
    let d = r.data();
    assert_eq!(d["requires2FASetup"], true);
    let partial = d["partialToken"].as_str().unwrap().to_string();
    // The setup partial token is good for setup and enable only.
    verify(&s, &partial, "123456").assert_error(400, "invalid_token");
    s.as_user("GET", "/api/v1/auth/me", "acme", &partial, None)
        .assert_error(401, "unauthenticated");
    s.as_user("GET", "/api/v1/auth/2fa/status", "acme", &partial, None)
        .assert_error(401, "unauthenticated");
    let body = |extra: Value| {
        let mut b = json!({ "partialToken": partial });
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let r = s.send(
        "POST",
        "/api/v1/auth/2fa/setup",
        &[("X-Org-Slug", "acme")],
        Some(body(json!({}))),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let secret = common::base32_decode(r.data()["secret"].as_str().unwrap());
    let code = totp::code_at_step(&secret, (s.state().now() / 1000 / 30) as u64);
    let r = s.send(
        "POST",
        "/api/v1/auth/2fa/enable",
        &[("X-Org-Slug", "acme")],
        Some(body(json!({ "code": code }))),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let d = r.data();
    assert_eq!(d["backupCodes"].as_array().unwrap().len(), 10);
    assert_eq!(amr(&r), json!(["pwd", "otp"]));
    assert_eq!(d["user"]["twoFactorEnabled"], true);
    let token = d["accessToken"].as_str().unwrap();
    assert_eq!(
        s.as_user("GET", "/api/v1/auth/me", "acme", token, None)
            .status,
        200
    );
    // The partial token is spent.
    s.send(
        "POST",
        "/api/v1/auth/2fa/setup",
        &[("X-Org-Slug", "acme")],
        Some(body(json!({}))),
    )
    .assert_error(400, "invalid_token");
    // The next login asks for the code.
    assert_eq!(
        s.login("acme", "ann@example.com", PASSWORD).data()["requires2FA"],
        true
    );
}
