//! The email flows over real HTTP (API.md §3): forgot/reset password, email verification by
//! POST and by link, magic links — reading the queued mails as a user would read them.

mod common;
use common::{PASSWORD, Resp, TestServer};
use latchkey::crypto;
use serde_json::{Value, json};

/// Emails delivered to `to` (over SMTP to the test's sink: the outbox keeps them sealed).
fn mails_to(s: &TestServer, to: &str) -> Vec<Value> {
    s.mails_to(to)
}

/// The `?token=` of the link in a mail's plain-text part.
fn token_in(mail: &Value) -> String {
    let text = mail["text"].as_str().unwrap();
    let i = text.find("?token=").expect("a ?token= link") + 7;
    text[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn post(s: &TestServer, path: &str, body: Value) -> Resp {
    s.send("POST", path, &[("X-Org-Slug", "acme")], Some(body))
}

fn setup(app_url: Option<&str>) -> TestServer {
    let mut s = TestServer::start_with_mail("");
    s.org("acme", json!({ "signupMode": "open" }));
    if let Some(u) = app_url {
        s.admin_send(
            "PUT",
            "/api/v1/admin/orgs/acme",
            Some(json!({ "appUrl": u })),
        );
    }
    s.user("ann@example.com", Some(("acme", "member")));
    s
}

#[test]
fn forgot_and_reset_password() {
    let s = setup(Some("https://app.acme.test"));
    let other = s.login_ok("acme", "ann@example.com");
    let r = post(
        &s,
        "/api/v1/auth/forgot-password",
        json!({ "email": "ghost@example.com" }),
    );
    assert_eq!(r.status, 200);
    let unknown_body = r.json();
    assert!(mails_to(&s, "ghost@example.com").is_empty());
    let r = post(
        &s,
        "/api/v1/auth/forgot-password",
        json!({ "email": "Ann@Example.com" }),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), unknown_body, "no enumeration");
    let mails = mails_to(&s, "ann@example.com");
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0]["text"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.1/reset-password?token="),
        "the link lands on Latchkey's own page, never the org's host"
    );
    assert!(mails[0]["html"].as_str().unwrap().contains("<a href="));
    let token = token_in(&mails[0]);

    post(
        &s,
        "/api/v1/auth/reset-password",
        json!({ "token": token, "newPassword": "short" }),
    )
    .assert_error(400, "weak_password");
    post(
        &s,
        "/api/v1/auth/reset-password",
        json!({ "token": "nope", "newPassword": "a new long password" }),
    )
    .assert_error(400, "invalid_token");
    let r = post(
        &s,
        "/api/v1/auth/reset-password",
        json!({ "token": token, "newPassword": "a new long password" }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    post(
        &s,
        "/api/v1/auth/reset-password",
        json!({ "token": token, "newPassword": "another long password" }),
    )
    .assert_error(400, "invalid_token");
    // Every session is revoked; the new password works.
    s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": other["refreshToken"] })),
    )
    .assert_error(401, "invalid_token");
    s.login("acme", "ann@example.com", PASSWORD)
        .assert_error(401, "invalid_credentials");
    assert_eq!(
        s.login("acme", "ann@example.com", "a new long password")
            .status,
        200
    );
    // Tokens expire after 30 minutes and are stored only as hashes.
    post(
        &s,
        "/api/v1/auth/forgot-password",
        json!({ "email": "ann@example.com" }),
    );
    let t2 = token_in(mails_to(&s, "ann@example.com").last().unwrap());
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM email_tokens WHERE token_hash = ?1",
            [&t2],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM email_tokens WHERE token_hash = ?1",
            [crypto::token_hash(&t2)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    s.clock.advance_secs(31 * 60);
    post(
        &s,
        "/api/v1/auth/reset-password",
        json!({ "token": t2, "newPassword": "a third long password" }),
    )
    .assert_error(400, "invalid_token");
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE event = 'user.password_reset'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn sending_is_limited_per_email() {
    let s = setup(None);
    for _ in 0..3 {
        assert_eq!(
            post(
                &s,
                "/api/v1/auth/forgot-password",
                json!({ "email": "ghost@example.com" })
            )
            .status,
            200
        );
    }
    let r = post(
        &s,
        "/api/v1/auth/forgot-password",
        json!({ "email": "ghost@example.com" }),
    );
    r.assert_error(429, "rate_limited");
    assert!(r.header("Retry-After").is_some());
    s.clock.advance_secs(2 * 3600);
    assert_eq!(
        post(
            &s,
            "/api/v1/auth/forgot-password",
            json!({ "email": "ghost@example.com" })
        )
        .status,
        200
    );
}

fn signup_unverified(s: &TestServer) -> Value {
    let r = post(
        s,
        "/api/v1/auth/signup",
        json!({ "email": "new@example.com", "password": PASSWORD }),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    r.data()
}

#[test]
fn email_verification_by_post() {
    let s = setup(None);
    let d = signup_unverified(&s);
    assert_eq!(d["user"]["isEmailVerified"], false);
    let token = d["accessToken"].as_str().unwrap();
    let r = s.as_user(
        "POST",
        "/api/v1/auth/verify-email/send",
        "acme",
        token,
        None,
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let mail = mails_to(&s, "new@example.com").pop().unwrap();
    assert!(
        mail["text"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.1/verify-email?token=")
    );
    let t = token_in(&mail);
    let r = post(&s, "/api/v1/auth/verify-email", json!({ "token": t }));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["user"]["isEmailVerified"], true);
    post(&s, "/api/v1/auth/verify-email", json!({ "token": t })).assert_error(400, "invalid_token");
    let me = s
        .as_user("GET", "/api/v1/auth/me", "acme", token, None)
        .data();
    assert_eq!(me["user"]["isEmailVerified"], true);
    // By email, without signing in: nothing is sent for a verified address.
    post(
        &s,
        "/api/v1/auth/verify-email/send",
        json!({ "email": "new@example.com" }),
    );
    assert_eq!(mails_to(&s, "new@example.com").len(), 1);
}

#[test]
fn email_verification_link_redirects_to_the_app() {
    let s = setup(Some("https://app.acme.test/welcome"));
    signup_unverified(&s);
    post(
        &s,
        "/api/v1/auth/verify-email/send",
        json!({ "email": "new@example.com" }),
    );
    let t = token_in(&mails_to(&s, "new@example.com")[0]);
    let r = s.get(&format!("/api/v1/auth/verify-email?token={t}"));
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("Location"),
        Some("https://app.acme.test/welcome?status=success")
    );
    let r = s.get(&format!("/api/v1/auth/verify-email?token={t}"));
    assert_eq!(r.status, 400, "unknown org for a spent token: JSON error");
    // Without an app URL the link answers JSON.
    let s2 = setup(None);
    signup_unverified(&s2);
    post(
        &s2,
        "/api/v1/auth/verify-email/send",
        json!({ "email": "new@example.com" }),
    );
    let t = token_in(&mails_to(&s2, "new@example.com")[0]);
    let r = s2.get(&format!("/api/v1/auth/verify-email?token={t}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["user"]["isEmailVerified"], true);
}

#[test]
fn magic_links_sign_in_once_and_respect_2fa() {
    let s = setup(None);
    assert_eq!(
        post(
            &s,
            "/api/v1/auth/magic-link",
            json!({ "email": "ghost@example.com" })
        )
        .status,
        200
    );
    assert_eq!(
        post(
            &s,
            "/api/v1/auth/magic-link",
            json!({ "email": "ann@example.com" })
        )
        .status,
        200
    );
    let t = token_in(&mails_to(&s, "ann@example.com")[0]);
    let r = post(&s, "/api/v1/auth/magic-link/verify", json!({ "token": t }));
    assert_eq!(r.status, 200, "{:?}", r.json());
    let access = r.data()["accessToken"].as_str().unwrap().to_string();
    let claims: Value =
        serde_json::from_slice(&crypto::b64url_decode(access.split('.').nth(1).unwrap()).unwrap())
            .unwrap();
    assert_eq!(claims["amr"], json!(["email"]));
    post(&s, "/api/v1/auth/magic-link/verify", json!({ "token": t }))
        .assert_error(400, "invalid_token");
    // Expiry after 15 minutes.
    post(
        &s,
        "/api/v1/auth/magic-link",
        json!({ "email": "ann@example.com" }),
    );
    let t = token_in(mails_to(&s, "ann@example.com").last().unwrap());
    s.clock.advance_secs(15 * 60 + 1);
    post(&s, "/api/v1/auth/magic-link/verify", json!({ "token": t }))
        .assert_error(400, "invalid_token");
    // With 2FA on, the link is only the first factor.
    let access = s.login_ok("acme", "ann@example.com")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let setup = s
        .as_user(
            "POST",
            "/api/v1/auth/2fa/setup",
            "acme",
            &access,
            Some(json!({})),
        )
        .data();
    let secret = common::base32_decode(setup["secret"].as_str().unwrap());
    let code = latchkey::totp::code_at_step(&secret, (s.state().now() / 1000 / 30) as u64);
    assert_eq!(
        s.as_user(
            "POST",
            "/api/v1/auth/2fa/enable",
            "acme",
            &access,
            Some(json!({ "code": code }))
        )
        .status,
        200
    );
    post(
        &s,
        "/api/v1/auth/magic-link",
        json!({ "email": "ann@example.com" }),
    );
    let t = token_in(mails_to(&s, "ann@example.com").last().unwrap());
    let r = post(&s, "/api/v1/auth/magic-link/verify", json!({ "token": t }));
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["requires2FA"], true);
    assert!(r.data().get("accessToken").is_none());
}
