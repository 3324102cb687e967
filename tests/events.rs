//! The events of API.md §9 whose causes exist: each action leaves its event (body as sent to
//! webhooks) in the same transaction.

mod common;
use common::{PASSWORD, TestServer};
use serde_json::{Value, json};

fn events(s: &TestServer) -> Vec<Value> {
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let mut st = conn
        .prepare("SELECT payload FROM events ORDER BY created_at, rowid")
        .unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
        .collect()
}

fn names(s: &TestServer) -> Vec<String> {
    events(s)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn user_session_and_security_events() {
    // The account-wide lock (and its event) after 5 failures here, not 100.
    let dir = tempfile::tempdir().unwrap();
    let text = common::base_config(dir.path(), "")
        .replace("[security]\n", "[security]\naccount_max_failures = 5\n");
    let mut s = TestServer::start_in(dir, text);
    let org = s.org("acme", json!({ "signupMode": "open" }));
    let r = s.send(
        "POST",
        "/api/v1/auth/signup",
        &[("X-Org-Slug", "acme")],
        Some(json!({ "email": "ann@example.com", "password": PASSWORD })),
    );
    assert_eq!(r.status, 201);
    let e = events(&s);
    let created = e
        .iter()
        .find(|e| e["event"] == "user.created")
        .expect("user.created");
    assert!(created["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(created["orgId"], org["id"]);
    assert_eq!(created["orgSlug"], "acme");
    assert!(created["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(created["data"]["user"]["email"], "ann@example.com");

    let a = s.login_ok("acme", "ann@example.com");
    let b = s.login_ok("acme", "ann@example.com");
    assert!(names(&s).contains(&"user.login".to_string()));
    let token = a["accessToken"].as_str().unwrap();
    s.as_user(
        "PUT",
        "/api/v1/auth/me",
        "acme",
        token,
        Some(json!({ "name": "Ann" })),
    );
    s.as_user(
        "POST",
        "/api/v1/auth/change-password",
        "acme",
        token,
        Some(json!({ "currentPassword": PASSWORD, "newPassword": "another long password" })),
    );
    let n = names(&s);
    for ev in ["user.updated", "user.password_changed", "session.revoked"] {
        assert!(n.contains(&ev.to_string()), "{ev} in {n:?}");
    }
    let revoked = events(&s)
        .into_iter()
        .find(|e| e["event"] == "session.revoked")
        .unwrap();
    assert_eq!(revoked["data"]["reason"], "password_changed");
    let _ = b;

    // Refresh-token reuse.
    let c = s
        .login("acme", "ann@example.com", "another long password")
        .data();
    let first = c["refreshToken"].as_str().unwrap();
    s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": first })),
    );
    s.clock.advance_secs(11);
    s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": first })),
    );
    assert!(names(&s).contains(&"security.refresh_token_reused".to_string()));

    // Logout.
    let d = s
        .login("acme", "ann@example.com", "another long password")
        .data();
    s.as_user(
        "POST",
        "/api/v1/auth/logout",
        "acme",
        d["accessToken"].as_str().unwrap(),
        None,
    );
    assert!(names(&s).contains(&"user.logout".to_string()));

    // Lockout.
    for _ in 0..5 {
        s.login("acme", "ann@example.com", "wrong password!!");
    }
    let locked = events(&s)
        .into_iter()
        .find(|e| e["event"] == "security.account_locked")
        .expect("locked");
    assert_eq!(locked["data"]["user"]["email"], "ann@example.com");
    assert!(locked["data"]["lockedUntil"].is_string());
}
