//! The server-to-server API over real HTTP (API.md §6): the API-key guard, tenant isolation
//! (one org's key against another org's users and tokens), every `valid:false` reason of
//! `/public/verify`, user listing and creation, `/public/authenticate` with lockout, per-IP
//! limits and the 2FA step, revoking sessions, invitations, and the rate-limit headers.

mod common;
use common::{PASSWORD, Resp, TestServer};
use latchkey::{crypto, totp};
use serde_json::{Value, json};

struct World {
    s: TestServer,
    /// acme's key (created by acme's org_admin) and globex's key.
    acme: String,
    globex: String,
    alice: String,
    bob: String,
}

fn new_key(s: &TestServer, org: &str, admin_email: &str, body: Value) -> String {
    let t = s.login_ok(org, admin_email)["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.as_user("POST", "/api/v1/org/api-keys", org, &t, Some(body));
    assert_eq!(r.status, 201, "{:?}", r.json());
    r.data()["key"].as_str().unwrap().to_string()
}

/// acme (alice, a member; admin@acme, an org_admin; owner@acme) and globex (bob).
fn world_with(s: TestServer) -> World {
    let mut s = s;
    s.org("acme", json!({}));
    s.org("globex", json!({}));
    s.user("owner@acme.test", Some(("acme", "owner")));
    s.user("admin@acme.test", Some(("acme", "org_admin")));
    s.user("admin@globex.test", Some(("globex", "org_admin")));
    let alice = s.user("alice@example.com", Some(("acme", "member")));
    let bob = s.user("bob@example.com", Some(("globex", "member")));
    let acme = new_key(&s, "acme", "admin@acme.test", json!({ "name": "acme" }));
    let globex = new_key(
        &s,
        "globex",
        "admin@globex.test",
        json!({ "name": "globex" }),
    );
    World {
        s,
        acme,
        globex,
        alice,
        bob,
    }
}

fn world() -> World {
    world_with(TestServer::start())
}

fn call(s: &TestServer, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    s.send(
        method,
        &format!("/api/v1/public{path}"),
        &[("X-API-Key", key)],
        body,
    )
}

fn verify(w: &World, key: &str, token: &str) -> Value {
    let r = call(
        &w.s,
        key,
        "POST",
        "/verify",
        Some(json!({ "token": token })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.data()
}

fn reason(w: &World, key: &str, token: &str) -> String {
    let d = verify(w, key, token);
    assert_eq!(d["valid"], false, "{d}");
    assert_eq!(
        d.as_object().unwrap().len(),
        2,
        "only valid and reason: {d}"
    );
    d["reason"].as_str().unwrap().to_string()
}

fn access(w: &World, org: &str, email: &str) -> String {
    w.s.login_ok(org, email)["accessToken"]
        .as_str()
        .unwrap()
        .to_string()
}

fn db(s: &TestServer) -> rusqlite::Connection {
    rusqlite::Connection::open(s.db_path()).unwrap()
}

fn exec(s: &TestServer, sql: &str, id: &str) {
    db(s).execute(sql, [id]).unwrap();
}

#[test]
fn the_key_guard() {
    let w = world();
    let s = &w.s;
    let r = s.send(
        "POST",
        "/api/v1/public/verify",
        &[],
        Some(json!({ "token": "x" })),
    );
    r.assert_error(401, "invalid_api_key");
    assert!(
        r.header("X-RateLimit-Limit").is_some(),
        "headers on a 401 too"
    );
    for bad in [
        "pk_live_",
        "sk_admin_0000000000000000000000000000000000000000000000000000000000000000",
        "pk_live_zz00000000000000000000000000000000000000000000000000000000000000",
        "pk_live_0000000000000000000000000000000000000000000000000000000000000000",
        &w.acme[..w.acme.len() - 1],
    ] {
        call(s, bad, "POST", "/verify", Some(json!({ "token": "x" })))
            .assert_error(401, "invalid_api_key");
    }
    // X-Org-Slug may name the key's own org, never another.
    let r = s.send(
        "GET",
        "/api/v1/public/users",
        &[("X-API-Key", &w.acme), ("X-Org-Slug", "globex")],
        None,
    );
    r.assert_error(403, "org_mismatch");
    assert!(r.header("X-RateLimit-Remaining").is_some());
    let r = s.send(
        "GET",
        "/api/v1/public/users",
        &[("X-API-Key", &w.acme), ("X-Org-Slug", "acme")],
        None,
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    // Bodies are validated like everywhere else.
    call(s, &w.acme, "POST", "/verify", Some(json!({}))).assert_error(400, "invalid_request");
}

#[test]
fn verify_accepts_a_live_token_of_the_keys_org() {
    let w = world();
    let token = access(&w, "acme", "alice@example.com");
    let d = verify(&w, &w.acme, &token);
    assert_eq!(d["valid"], true, "{d}");
    assert_eq!(d["user"]["id"], w.alice.as_str());
    assert_eq!(d["user"]["email"], "alice@example.com");
    assert!(d["user"].get("passwordHash").is_none());
    assert_eq!(d["membership"]["role"], "member");
    assert_eq!(d["membership"]["status"], "active");
    assert_eq!(d["org"]["slug"], "acme");
    assert_eq!(d["claims"]["sub"], w.alice.as_str());
    assert_eq!(d["claims"]["org_slug"], "acme");
    assert_eq!(d["claims"]["amr"], json!(["pwd"]));
    assert_eq!(d["session"]["id"], d["claims"]["sid"]);
    assert!(d["session"]["expiresAt"].as_str().unwrap().ends_with('Z'));
    // The answer is written by typed views: its keys are in sorted order at every level, as
    // the `serde_json::Value` it replaced wrote them (a `Value` re-serializes them sorted).
    for token in [token.as_str(), "garbage"] {
        let r = call(
            &w.s,
            &w.acme,
            "POST",
            "/verify",
            Some(json!({ "token": token })),
        );
        let text = String::from_utf8(r.body.clone()).unwrap();
        assert_eq!(text, r.json().to_string(), "keys in sorted order");
    }
}

#[test]
fn verify_says_why_a_token_is_not_valid() {
    let w = world();
    let s = &w.s;
    assert_eq!(reason(&w, &w.acme, ""), "invalid_token");
    assert_eq!(reason(&w, &w.acme, "garbage"), "invalid_token");
    let token = access(&w, "acme", "alice@example.com");
    // One character in the middle of the signature changed.
    let sig_at = token.rfind('.').unwrap() + 10;
    let mut tampered = token.clone();
    let c = if &token[sig_at..sig_at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(sig_at..sig_at + 1, c);
    assert_eq!(reason(&w, &w.acme, &tampered), "invalid_token");
    let fake_payload = {
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut claims: Value =
            serde_json::from_slice(&crypto::b64url_decode(&parts[1]).unwrap()).unwrap();
        claims["org_id"] = json!("org_other");
        parts[1] = crypto::b64url(claims.to_string().as_bytes());
        parts.join(".")
    };
    assert_eq!(reason(&w, &w.acme, &fake_payload), "invalid_token");

    // Another org's token, and this org's token with another org's key.
    let bobs = access(&w, "globex", "bob@example.com");
    assert_eq!(reason(&w, &w.acme, &bobs), "org_mismatch");
    assert_eq!(reason(&w, &w.globex, &token), "org_mismatch");
    assert_eq!(verify(&w, &w.globex, &bobs)["valid"], true);

    // A revoked session (logout).
    let t2 = access(&w, "acme", "alice@example.com");
    assert_eq!(verify(&w, &w.acme, &t2)["valid"], true);
    let r = s.as_user("POST", "/api/v1/auth/logout", "acme", &t2, None);
    assert_eq!(r.status, 200);
    assert_eq!(reason(&w, &w.acme, &t2), "session_revoked");

    // A session past its idle deadline while the access token still verifies.
    let t3 = access(&w, "acme", "alice@example.com");
    let sid = verify(&w, &w.acme, &t3)["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    exec(
        s,
        "UPDATE sessions SET idle_expires_at = 1 WHERE id = ?1",
        &sid,
    );
    assert_eq!(reason(&w, &w.acme, &t3), "session_expired");

    // Deactivated membership, removed membership, disabled account.
    exec(
        s,
        "UPDATE memberships SET status = 'deactivated' WHERE user_id = ?1",
        &w.alice,
    );
    assert_eq!(reason(&w, &w.acme, &token), "membership_inactive");
    exec(s, "DELETE FROM memberships WHERE user_id = ?1", &w.alice);
    assert_eq!(reason(&w, &w.acme, &token), "not_a_member");
    exec(
        s,
        "UPDATE users SET status = 'disabled' WHERE id = ?1",
        &w.alice,
    );
    assert_eq!(reason(&w, &w.acme, &token), "user_inactive");

    // An expired access token.
    s.clock.advance_secs(901);
    assert_eq!(reason(&w, &w.globex, &bobs), "token_expired");
}

#[test]
fn users_of_another_org_are_not_found() {
    let w = world();
    let s = &w.s;
    let r = call(s, &w.acme, "GET", &format!("/users/{}", w.alice), None);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let d = r.data();
    assert_eq!(d["user"]["email"], "alice@example.com");
    assert_eq!(d["membership"]["role"], "member");
    call(s, &w.acme, "GET", &format!("/users/{}", w.bob), None).assert_error(404, "not_found");
    call(s, &w.acme, "GET", "/users/usr_nope", None).assert_error(404, "not_found");

    let r = call(s, &w.acme, "GET", &format!("/members/{}", w.alice), None);
    assert_eq!(r.data()["membership"]["status"], "active");
    call(s, &w.acme, "GET", &format!("/members/{}", w.bob), None).assert_error(404, "not_found");
    assert_eq!(
        call(s, &w.globex, "GET", &format!("/members/{}", w.bob), None).status,
        200
    );
    call(
        s,
        &w.globex,
        "DELETE",
        &format!("/users/{}/sessions", w.alice),
        None,
    )
    .assert_error(404, "not_found");
}

#[test]
fn users_are_listed_newest_first_with_a_cursor_and_by_email() {
    let w = world();
    let s = &w.s;
    for i in 0..3 {
        s.clock.advance_secs(1);
        let r = call(
            s,
            &w.acme,
            "POST",
            "/users",
            Some(json!({ "email": format!("u{i}@example.com") })),
        );
        assert_eq!(r.status, 201, "{:?}", r.json());
    }
    let page = |cursor: Option<&str>| {
        let path = match cursor {
            Some(c) => format!("/users?limit=2&cursor={c}"),
            None => "/users?limit=2".into(),
        };
        let r = call(s, &w.acme, "GET", &path, None);
        assert_eq!(r.status, 200, "{:?}", r.json());
        r.data()
    };
    let mut emails = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let d = page(cursor.as_deref());
        for u in d["users"].as_array().unwrap() {
            assert!(u["membership"]["id"].is_string());
            emails.push(u["user"]["email"].as_str().unwrap().to_string());
        }
        match d["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(emails.len(), 6, "{emails:?}");
    assert_eq!(
        &emails[..3],
        ["u2@example.com", "u1@example.com", "u0@example.com"]
    );
    assert!(!emails.contains(&"bob@example.com".to_string()));

    let r = call(s, &w.acme, "GET", "/users?email=ALICE@example.com", None);
    let users = r.data()["users"].clone();
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["user"]["id"], w.alice.as_str());
    let r = call(s, &w.acme, "GET", "/users?email=bob@example.com", None);
    assert_eq!(r.data()["users"], json!([]));
    call(s, &w.acme, "GET", "/users?cursor=forged.cursor", None)
        .assert_error(400, "invalid_request");
    call(s, &w.acme, "GET", "/users?limit=0", None).assert_error(400, "invalid_request");
}

#[test]
fn backend_driven_signup() {
    let w = world();
    let s = &w.s;
    let r = call(
        s,
        &w.acme,
        "POST",
        "/users",
        Some(
            json!({ "email": "New@Example.com", "password": PASSWORD, "name": "New", "isEmailVerified": false }),
        ),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let d = r.data();
    assert_eq!(d["user"]["email"], "new@example.com");
    assert_eq!(d["user"]["isEmailVerified"], false);
    assert_eq!(d["membership"]["role"], "member");
    // acme's signupMode is invite_only: a backend is trusted by its org regardless.
    assert_eq!(s.login("acme", "new@example.com", PASSWORD).status, 200);

    let again = call(
        s,
        &w.acme,
        "POST",
        "/users",
        Some(json!({ "email": "new@example.com" })),
    );
    again.assert_error(409, "already_member");
    // An account that exists elsewhere is not seated without its owner: invite it instead.
    call(
        s,
        &w.acme,
        "POST",
        "/users",
        Some(json!({ "email": "bob@example.com", "password": PASSWORD })),
    )
    .assert_error(409, "already_exists");
    call(
        s,
        &w.acme,
        "POST",
        "/users",
        Some(json!({ "email": "weak@example.com", "password": "short" })),
    )
    .assert_error(400, "weak_password");
    call(
        s,
        &w.acme,
        "POST",
        "/users",
        Some(json!({ "email": "nope" })),
    )
    .assert_error(400, "invalid_email");
    let r = call(
        s,
        &w.acme,
        "POST",
        "/users",
        Some(json!({ "email": "x@example.com", "role": "admin" })),
    );
    assert_eq!(
        r.assert_error(400, "invalid_request")["errors"][0]["field"],
        "role"
    );

    // Roles: org_admin from any key; owner only from a key an owner created.
    let r = call(
        s,
        &w.acme,
        "POST",
        "/users",
        Some(json!({ "email": "adm@example.com", "role": "org_admin" })),
    );
    assert_eq!(r.data()["membership"]["role"], "org_admin");
    call(
        s,
        &w.acme,
        "POST",
        "/users",
        Some(json!({ "email": "own@example.com", "role": "owner" })),
    )
    .assert_error(403, "forbidden");
    let owners = new_key(s, "acme", "owner@acme.test", json!({ "name": "owner's" }));
    let r = call(
        s,
        &owners,
        "POST",
        "/users",
        Some(json!({ "email": "own@example.com", "role": "owner" })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    // Without a password the account exists but cannot sign in with one.
    s.login("acme", "adm@example.com", PASSWORD)
        .assert_error(401, "invalid_credentials");

    let conn = db(s);
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE event = 'member.joined'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 3);
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.created' AND actor_type = 'api_key'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 3);
}

fn authenticate(s: &TestServer, key: &str, body: Value) -> Resp {
    call(s, key, "POST", "/authenticate", Some(body))
}

#[test]
fn authenticate_is_login_in_the_keys_org() {
    let w = world();
    let s = &w.s;
    let r = authenticate(
        s,
        &w.acme,
        json!({ "email": "alice@example.com", "password": PASSWORD, "ipAddress": "203.0.113.9", "userAgent": "Alice's Browser" }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(
        r.headers_named("Set-Cookie").is_empty(),
        "no cookies for a backend"
    );
    let d = r.data();
    assert_eq!(d["user"]["id"], w.alice.as_str());
    let token = d["accessToken"].as_str().unwrap().to_string();
    assert!(d["refreshToken"].is_string());
    assert_eq!(verify(&w, &w.acme, &token)["valid"], true);
    // The session records the end user's address and agent, not the backend's.
    let sessions = s
        .as_user("GET", "/api/v1/auth/sessions", "acme", &token, None)
        .data();
    assert_eq!(sessions["sessions"][0]["ipAddress"], "203.0.113.9");
    assert_eq!(sessions["sessions"][0]["userAgent"], "Alice's Browser");

    authenticate(
        s,
        &w.acme,
        json!({ "email": "alice@example.com", "password": "wrong password!!" }),
    )
    .assert_error(401, "invalid_credentials");
    authenticate(
        s,
        &w.acme,
        json!({ "email": "ghost@example.com", "password": "wrong password!!" }),
    )
    .assert_error(401, "invalid_credentials");
    // Bob's password is right, but bob is not in acme.
    authenticate(
        s,
        &w.acme,
        json!({ "email": "bob@example.com", "password": PASSWORD }),
    )
    .assert_error(403, "not_a_member");
    let r = authenticate(
        s,
        &w.acme,
        json!({ "email": "alice@example.com", "password": PASSWORD, "ipAddress": "localhost" }),
    );
    assert_eq!(
        r.assert_error(400, "invalid_request")["errors"][0]["field"],
        "ipAddress"
    );
}

#[test]
fn authenticate_locks_the_account_like_login() {
    let w = world();
    let s = &w.s;
    for _ in 0..5 {
        authenticate(
            s,
            &w.acme,
            json!({ "email": "alice@example.com", "password": "wrong password!!" }),
        )
        .assert_error(401, "invalid_credentials");
    }
    let r = authenticate(
        s,
        &w.acme,
        json!({ "email": "alice@example.com", "password": PASSWORD }),
    );
    r.assert_error(429, "rate_limited");
    let wait: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!((850..=900).contains(&wait), "{wait}");
    assert!(r.header("X-RateLimit-Limit").is_some());
    // The lock is the account's, whichever door is used.
    s.login("acme", "alice@example.com", PASSWORD)
        .assert_error(429, "rate_limited");
    s.clock.advance_secs(15 * 60 + 1);
    assert_eq!(
        authenticate(
            s,
            &w.acme,
            json!({ "email": "alice@example.com", "password": PASSWORD }),
        )
        .status,
        200
    );
}

#[test]
fn authenticate_limits_per_end_user_ip() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::base_config(dir.path(), "")
        .replace("[security]\n", "[security]\nlogin_ip_per_minute = 3\n");
    let w = world_with(TestServer::start_in(dir, text));
    let s = &w.s;
    let attempt = |ip: &str| {
        authenticate(
            s,
            &w.acme,
            json!({ "email": "ghost@example.com", "password": "whatever-password", "ipAddress": ip }),
        )
    };
    for _ in 0..3 {
        attempt("203.0.113.5").assert_error(401, "invalid_credentials");
    }
    attempt("203.0.113.5").assert_error(429, "rate_limited");
    // Another end user behind the same backend is not held back.
    attempt("2001:db8::7").assert_error(401, "invalid_credentials");
}

#[test]
fn authenticate_hands_over_the_2fa_step() {
    let w = world();
    let s = &w.s;
    let token = access(&w, "acme", "alice@example.com");
    let r = s.as_user(
        "POST",
        "/api/v1/auth/2fa/setup",
        "acme",
        &token,
        Some(json!({})),
    );
    let secret = common::base32_decode(r.data()["secret"].as_str().unwrap());
    let code = |s: &TestServer| totp::code_at_step(&secret, (s.state().now() / 30_000) as u64);
    let r = s.as_user(
        "POST",
        "/api/v1/auth/2fa/enable",
        "acme",
        &token,
        Some(json!({ "code": code(s) })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());

    let r = authenticate(
        s,
        &w.acme,
        json!({ "email": "alice@example.com", "password": PASSWORD }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(r.headers_named("Set-Cookie").is_empty());
    let d = r.data();
    assert_eq!(d["requires2FA"], true);
    assert!(d.get("accessToken").is_none());
    let partial = d["partialToken"].as_str().unwrap().to_string();

    // The backend completes it with /auth/verify-2fa (a fresh TOTP step).
    s.clock.advance_secs(30);
    let r = s.send(
        "POST",
        "/api/v1/auth/verify-2fa",
        &[("X-Org-Slug", "acme")],
        Some(json!({ "partialToken": partial, "code": code(s) })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let t = r.data()["accessToken"].as_str().unwrap().to_string();
    let d = verify(&w, &w.acme, &t);
    assert_eq!(d["claims"]["amr"], json!(["pwd", "otp"]));
}

#[test]
fn revoking_a_users_sessions_in_the_org() {
    let mut w = world();
    // Alice is also in globex: those sessions are not the acme key's business.
    w.s.admin_send(
        "POST",
        "/api/v1/admin/orgs/globex/members",
        Some(json!({ "userId": w.alice, "role": "member" })),
    );
    let s = &w.s;
    let a1 = s.login_ok("acme", "alice@example.com");
    let a2 = s.login_ok("acme", "alice@example.com");
    let g = s.login_ok("globex", "alice@example.com");
    let r = call(
        s,
        &w.acme,
        "DELETE",
        &format!("/users/{}/sessions", w.alice),
        None,
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["revoked"], 2);
    for d in [&a1, &a2] {
        let t = d["accessToken"].as_str().unwrap();
        assert_eq!(reason(&w, &w.acme, t), "session_revoked");
        let r = s.send(
            "POST",
            "/api/v1/auth/refresh",
            &[],
            Some(json!({ "refreshToken": d["refreshToken"] })),
        );
        r.assert_error(401, "invalid_token");
    }
    assert_eq!(
        verify(&w, &w.globex, g["accessToken"].as_str().unwrap())["valid"],
        true
    );

    let conn = db(s);
    let payloads: Vec<String> = conn
        .prepare("SELECT payload FROM events WHERE event = 'session.revoked'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(payloads.len(), 2);
    let e: Value = serde_json::from_str(&payloads[0]).unwrap();
    assert_eq!(e["orgSlug"], "acme");
    assert_eq!(e["data"]["user"]["email"], "alice@example.com");
    assert_eq!(e["data"]["reason"], "revoked_by_api_key");
    assert!(
        e["data"]["session"]["id"]
            .as_str()
            .unwrap()
            .starts_with("ses_")
    );
}

#[test]
fn invitations_from_a_backend() {
    let w = world_with(TestServer::start_with_mail(""));
    let s = &w.s;
    let r = call(
        s,
        &w.acme,
        "POST",
        "/invitations",
        Some(json!({ "email": "Bob@Example.com", "role": "org_admin", "sendEmail": false })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let d = r.data();
    let token = d["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 43);
    assert_eq!(d["invite"]["email"], "bob@example.com");
    assert_eq!(d["invite"]["role"], "org_admin");
    assert_eq!(d["invite"]["state"], "pending");
    assert!(d["invite"]["id"].as_str().unwrap().starts_with("inv_"));
    assert!(
        d["invite"]["invitedBy"]["id"]
            .as_str()
            .unwrap()
            .starts_with("key_")
    );
    assert!(
        d["acceptUrl"]
            .as_str()
            .unwrap()
            .ends_with(&format!("?token={token}"))
    );
    let created = latchkey::clock::parse_rfc3339(d["invite"]["createdAt"].as_str().unwrap());
    let expires = latchkey::clock::parse_rfc3339(d["invite"]["expiresAt"].as_str().unwrap());
    assert_eq!(expires.unwrap() - created.unwrap(), 7 * 86_400_000);

    let conn = db(s);
    let stored: String = conn
        .query_row("SELECT token_hash FROM invitations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, crypto::token_hash(&token));
    let event: String = conn
        .query_row(
            "SELECT payload FROM events WHERE event = 'member.invited'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let event: Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["data"]["email"], "bob@example.com");
    assert_eq!(event["data"]["inviteId"], d["invite"]["id"]);
    // sendEmail:false: the backend delivers it; nothing is mailed.
    assert!(s.mails_to("bob@example.com").is_empty());

    call(
        s,
        &w.acme,
        "POST",
        "/invitations",
        Some(json!({ "email": "bob@example.com" })),
    )
    .assert_error(409, "invitation_pending");
    call(
        s,
        &w.acme,
        "POST",
        "/invitations",
        Some(json!({ "email": "alice@example.com" })),
    )
    .assert_error(409, "already_member");
    call(
        s,
        &w.acme,
        "POST",
        "/invitations",
        Some(json!({ "email": "x@example.com", "role": "owner" })),
    )
    .assert_error(403, "forbidden");
    // globex may invite the same email: invitations are per org.
    assert_eq!(
        call(
            s,
            &w.globex,
            "POST",
            "/invitations",
            Some(json!({ "email": "carol@example.com" })),
        )
        .status,
        201
    );
    // After expiry a new invitation may be sent.
    s.clock.advance_secs(7 * 86_400 + 1);
    assert_eq!(
        call(
            s,
            &w.acme,
            "POST",
            "/invitations",
            Some(json!({ "email": "bob@example.com" })),
        )
        .status,
        201
    );
}

fn limited() -> World {
    let dir = tempfile::tempdir().unwrap();
    let text = common::base_config(dir.path(), "")
        .replace("[security]\n", "[security]\npublic_api_per_minute = 5\n");
    let w = world_with(TestServer::start_in(dir, text));
    // Start just after a minute boundary: the window is the clock's minute.
    let now = w.s.state().now();
    w.s.clock
        .advance_ms(60_000 - now.rem_euclid(60_000) + 1_000);
    w
}

fn rate(r: &Resp) -> (u32, u32, i64) {
    let n = |h: &str| {
        r.header(h)
            .unwrap_or_else(|| panic!("{h} missing on {}", r.status))
            .parse::<i64>()
            .unwrap()
    };
    (
        n("X-RateLimit-Limit") as u32,
        n("X-RateLimit-Remaining") as u32,
        n("X-RateLimit-Reset"),
    )
}

#[test]
fn rate_limit_headers_and_429() {
    let w = limited();
    let s = &w.s;
    let now_secs = s.state().now() / 1000;
    let reset = (now_secs / 60 + 1) * 60;
    let answers = [
        call(s, &w.acme, "POST", "/verify", Some(json!({ "token": "x" }))),
        call(s, &w.acme, "GET", &format!("/users/{}", w.alice), None),
        call(s, &w.acme, "GET", &format!("/users/{}", w.bob), None),
        call(s, &w.acme, "POST", "/verify", Some(json!({}))),
        call(s, &w.acme, "GET", "/users", None),
    ];
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 404, 400, 200]);
    for (i, r) in answers.iter().enumerate() {
        assert_eq!(rate(r), (5, 4 - i as u32, reset), "answer {i}");
    }
    let r = call(s, &w.acme, "GET", "/users", None);
    r.assert_error(429, "rate_limited");
    assert_eq!(rate(&r), (5, 0, reset));
    let wait: i64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!(
        (1..=60).contains(&wait) && wait <= reset - now_secs,
        "{wait}"
    );

    // Each key has its own quota.
    let r = call(s, &w.globex, "GET", "/users", None);
    assert_eq!(r.status, 200);
    assert_eq!(rate(&r).1, 4);

    // The next minute starts afresh.
    s.clock.advance_secs(60);
    let r = call(s, &w.acme, "GET", "/users", None);
    assert_eq!(r.status, 200);
    assert_eq!(rate(&r), (5, 4, reset + 60));
}

#[test]
fn requests_without_a_valid_key_count_against_the_callers_ip() {
    let w = limited();
    let s = &w.s;
    let bad = "pk_live_0000000000000000000000000000000000000000000000000000000000000000";
    for i in 0..5 {
        let r = call(s, bad, "GET", "/users", None);
        r.assert_error(401, "invalid_api_key");
        assert_eq!(rate(&r).1, 4 - i);
    }
    let r = call(s, bad, "GET", "/users", None);
    r.assert_error(429, "rate_limited");
    assert!(r.header("Retry-After").is_some());
    // A valid key has its own quota.
    assert_eq!(call(s, &w.acme, "GET", "/users", None).status, 200);
}
