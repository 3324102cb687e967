//! End-user authentication over real HTTP (API.md §2, §3, §10): signup modes, login, tokens and
//! their claims, cookies and CSRF, refresh rotation with reuse detection and the grace window,
//! session lifetimes, logout, password change, sessions, orgs, lockout and rate limits.

mod common;
use common::{PASSWORD, Resp, TestServer};
use latchkey::crypto;
use serde_json::{Value, json};

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&crypto::b64url_decode(payload).unwrap()).unwrap()
}

fn server() -> TestServer {
    let mut s = TestServer::start();
    s.org("acme", json!({ "signupMode": "open" }));
    s
}

fn signup(s: &TestServer, org: &str, email: &str, password: &str) -> Resp {
    s.send(
        "POST",
        "/api/v1/auth/signup",
        &[("X-Org-Slug", org)],
        Some(json!({ "email": email, "password": password, "name": "New" })),
    )
}

#[test]
fn signup_follows_the_org_signup_mode() {
    let mut s = server();
    s.org("closed", json!({}));
    s.org(
        "corp",
        json!({ "signupMode": "domain", "allowedDomains": ["corp.test"] }),
    );

    let r = signup(&s, "acme", "new@example.com", PASSWORD);
    assert_eq!(r.status, 201, "{:?}", r.json());
    let d = r.data();
    assert_eq!(d["user"]["email"], "new@example.com");
    assert_eq!(d["membership"]["role"], "member");
    assert_eq!(d["expiresIn"], 900);
    assert!(
        d["refreshToken"].as_str().unwrap().len() >= 43,
        "≥ 256 bits"
    );
    assert!(r.set_cookie("access_token").is_some());

    signup(&s, "closed", "x@example.com", PASSWORD).assert_error(403, "email_not_allowed");
    signup(&s, "corp", "x@example.com", PASSWORD).assert_error(403, "email_not_allowed");
    assert_eq!(signup(&s, "corp", "x@corp.test", PASSWORD).status, 201);
    signup(&s, "acme", "NEW@example.com", PASSWORD).assert_error(409, "already_exists");
    signup(&s, "acme", "weak@example.com", "short").assert_error(400, "weak_password");
    signup(&s, "acme", "bad-email", PASSWORD).assert_error(400, "invalid_email");
    let r = s.send(
        "POST",
        "/api/v1/auth/signup",
        &[],
        Some(json!({ "email": "a@b.test", "password": PASSWORD })),
    );
    r.assert_error(400, "invalid_request");
    let r = s.send(
        "POST",
        "/api/v1/auth/signup",
        &[("X-Org-Slug", "nope-org")],
        Some(json!({ "email": "a@b.test", "password": PASSWORD })),
    );
    r.assert_error(404, "org_not_found");
}

#[test]
fn org_password_minimum_applies_to_signup() {
    let mut s = TestServer::start();
    s.org(
        "strict",
        json!({ "signupMode": "open", "passwordMinLength": 20 }),
    );
    signup(&s, "strict", "a@example.com", "nineteen-characters").assert_error(400, "weak_password");
    assert_eq!(
        signup(&s, "strict", "a@example.com", "twenty-characters-ok").status,
        201
    );
}

#[test]
fn login_issues_tokens_with_the_contract_claims() {
    let mut s = server();
    let uid = s.user("ann@example.com", Some(("acme", "org_admin")));
    let r = s.login("acme", "ann@example.com", PASSWORD);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let d = r.data();
    let c = claims(d["accessToken"].as_str().unwrap());
    assert_eq!(c["sub"], uid.as_str());
    assert_eq!(c["iss"], "http://127.0.0.1");
    assert_eq!(c["aud"], "latchkey");
    assert_eq!(c["org_slug"], "acme");
    assert_eq!(c["org_role"], "org_admin");
    assert_eq!(c["email"], "ann@example.com");
    assert_eq!(c["email_verified"], true);
    assert_eq!(c["amr"], json!(["pwd"]));
    assert!(c["sid"].as_str().unwrap().starts_with("ses_"));
    assert!(c["org_id"].as_str().unwrap().starts_with("org_"));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);
    assert!(c["jti"].is_string());
    let header: Value = serde_json::from_slice(
        &crypto::b64url_decode(
            d["accessToken"]
                .as_str()
                .unwrap()
                .split('.')
                .next()
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    assert!(d["user"]["lastLoginAt"].is_null() || d["user"]["lastLoginAt"].is_string());

    let me = s.as_user(
        "GET",
        "/api/v1/auth/me",
        "acme",
        d["accessToken"].as_str().unwrap(),
        None,
    );
    assert_eq!(me.status, 200);
    let m = me.data();
    assert_eq!(m["user"]["id"], uid.as_str());
    assert_eq!(m["membership"]["role"], "org_admin");
    assert_eq!(m["org"]["slug"], "acme");
}

#[test]
fn wrong_password_and_unknown_email_look_the_same() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    let a = s.login("acme", "ann@example.com", "wrong password!!");
    let b = s.login("acme", "ghost@example.com", "wrong password!!");
    let ja = a.assert_error(401, "invalid_credentials");
    let jb = b.assert_error(401, "invalid_credentials");
    assert_eq!(ja, jb);
}

#[test]
fn membership_is_checked_only_after_the_password() {
    let mut s = server();
    s.org("other", json!({}));
    s.user("ann@example.com", Some(("other", "member")));
    s.login("acme", "ann@example.com", "wrong password!!")
        .assert_error(401, "invalid_credentials");
    s.login("acme", "ann@example.com", PASSWORD)
        .assert_error(403, "not_a_member");
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    conn.execute("UPDATE memberships SET status = 'deactivated'", [])
        .unwrap();
    s.login("other", "ann@example.com", PASSWORD)
        .assert_error(403, "membership_inactive");
}

#[test]
fn cookies_are_exactly_as_the_contract_says() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    let r = s.login("acme", "ann@example.com", PASSWORD);
    let access = r.set_cookie("access_token").unwrap();
    assert!(access.contains("HttpOnly") && access.contains("SameSite=Lax"));
    assert!(access.contains("Path=/;") && access.contains("Max-Age=900"));
    assert!(
        !access.contains("Secure"),
        "cookies.secure = false in this config"
    );
    let refresh = r.set_cookie("refresh_token").unwrap();
    assert!(
        refresh.contains("HttpOnly")
            && refresh.contains("Path=/api/v1/auth")
            && refresh.contains("Max-Age=604800")
    );
    let csrf = r.set_cookie("csrf_token").unwrap();
    assert!(
        !csrf.contains("HttpOnly"),
        "the CSRF cookie is readable by scripts"
    );
    assert_eq!(
        r.cookie_value("access_token").unwrap(),
        r.data()["accessToken"].as_str().unwrap()
    );

    let mut secure = TestServer::start_with("");
    secure.stop();
    let dir = std::mem::replace(&mut secure.dir, tempfile::tempdir().unwrap());
    let text = common::base_config(dir.path(), "").replace("secure = false", "secure = true");
    let mut s2 = TestServer::start_in(dir, text);
    s2.org("acme", json!({}));
    s2.user("ann@example.com", Some(("acme", "member")));
    let r = s2.login("acme", "ann@example.com", PASSWORD);
    for name in ["access_token", "refresh_token", "csrf_token"] {
        assert!(r.set_cookie(name).unwrap().contains("Secure"), "{name}");
    }
}

fn cookie_header(r: &Resp) -> String {
    format!(
        "access_token={}; csrf_token={}",
        r.cookie_value("access_token").unwrap(),
        r.cookie_value("csrf_token").unwrap()
    )
}

#[test]
fn cookie_authenticated_changes_need_an_allowed_origin_or_the_csrf_token() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    let login = s.login("acme", "ann@example.com", PASSWORD);
    let cookies = cookie_header(&login);
    let csrf = login.cookie_value("csrf_token").unwrap();
    let body = Some(json!({ "name": "Ann" }));
    // Reads need no CSRF proof.
    let r = s.send(
        "GET",
        "/api/v1/auth/me",
        &[("X-Org-Slug", "acme"), ("Cookie", &cookies)],
        None,
    );
    assert_eq!(r.status, 200);
    // A change with only the cookie is refused…
    let r = s.send(
        "PUT",
        "/api/v1/auth/me",
        &[("X-Org-Slug", "acme"), ("Cookie", &cookies)],
        body.clone(),
    );
    r.assert_error(403, "csrf_failed");
    let r = s.send(
        "PUT",
        "/api/v1/auth/me",
        &[
            ("X-Org-Slug", "acme"),
            ("Cookie", &cookies),
            ("Origin", "http://evil.test"),
        ],
        body.clone(),
    );
    r.assert_error(403, "csrf_failed");
    let r = s.send(
        "PUT",
        "/api/v1/auth/me",
        &[
            ("X-Org-Slug", "acme"),
            ("Cookie", &cookies),
            ("X-CSRF-Token", "guess"),
        ],
        body.clone(),
    );
    r.assert_error(403, "csrf_failed");
    // …and accepted from an allowed origin, an allowed referer, or with the token.
    let r = s.send(
        "PUT",
        "/api/v1/auth/me",
        &[
            ("X-Org-Slug", "acme"),
            ("Cookie", &cookies),
            ("Origin", "http://app.test"),
        ],
        body.clone(),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = s.send(
        "PUT",
        "/api/v1/auth/me",
        &[
            ("X-Org-Slug", "acme"),
            ("Cookie", &cookies),
            ("Referer", "http://app.test/settings"),
        ],
        body.clone(),
    );
    assert_eq!(r.status, 200);
    let r = s.send(
        "PUT",
        "/api/v1/auth/me",
        &[
            ("X-Org-Slug", "acme"),
            ("Cookie", &cookies),
            ("X-CSRF-Token", &csrf),
        ],
        body.clone(),
    );
    assert_eq!(r.status, 200);
    // Bearer requests are exempt.
    let token = login.data()["accessToken"].as_str().unwrap().to_string();
    assert_eq!(
        s.as_user("PUT", "/api/v1/auth/me", "acme", &token, body)
            .status,
        200
    );
}

fn refresh(s: &TestServer, token: &str) -> Resp {
    s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": token })),
    )
}

#[test]
fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    let d = s.login_ok("acme", "ann@example.com");
    let first = d["refreshToken"].as_str().unwrap().to_string();
    let r = refresh(&s, &first);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let second = r.data()["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert!(r.set_cookie("refresh_token").is_some());
    // Within the grace window the old token answers with the same successor.
    let again = refresh(&s, &first);
    assert_eq!(again.status, 200);
    assert_eq!(again.data()["refreshToken"], second.as_str());
    // After it, presenting the old token is theft: the session dies, cookies are cleared.
    s.clock.advance_secs(11);
    let r = refresh(&s, &first);
    r.assert_error(401, "refresh_token_reused");
    assert!(r.set_cookie("refresh_token").unwrap().contains("Max-Age=0"));
    refresh(&s, &second).assert_error(401, "invalid_token");
    let access = again.data()["accessToken"].as_str().unwrap().to_string();
    s.as_user("GET", "/api/v1/auth/me", "acme", &access, None)
        .assert_error(401, "unauthenticated");
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'session.refresh_token_reused'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn concurrent_refreshes_all_succeed_and_leave_one_successor() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    let d = s.login_ok("acme", "ann@example.com");
    let token = d["refreshToken"].as_str().unwrap().to_string();
    let results: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (s, token) = (&s, &token);
                scope.spawn(move || {
                    let r = refresh(s, token);
                    let t = if r.status == 200 {
                        r.data()["refreshToken"].as_str().unwrap().to_string()
                    } else {
                        String::new()
                    };
                    (r.status, t)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|(st, _)| *st == 200), "{results:?}");
    let first = &results[0].1;
    assert!(
        results.iter().all(|(_, t)| t == first),
        "one successor for all"
    );
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM refresh_chain", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2, "the original and exactly one successor");
}

/// Refreshes of many sessions at once share write transactions (db/batch.rs). Every chain
/// stays intact, a session revoked meanwhile fails alone, and a replayed old token is still
/// caught as reuse while the other chains go on.
#[test]
fn concurrent_rotation_chains_stay_intact_under_group_commit() {
    let mut s = server();
    const USERS: usize = 12;
    const ROUNDS: usize = 25;
    let mut starts = Vec::new();
    for i in 0..USERS {
        let email = format!("u{i}@example.com");
        s.user(&email, Some(("acme", "member")));
        let d = s.login_ok("acme", &email);
        starts.push((
            d["refreshToken"].as_str().unwrap().to_string(),
            d["accessToken"].as_str().unwrap().to_string(),
        ));
    }
    // User 0's session is ended by its own logout while the others rotate.
    let (victim_refresh, victim_access) = starts[0].clone();
    let chains: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = starts
            .iter()
            .enumerate()
            .skip(1)
            .map(|(_, (first, _))| {
                let s = &s;
                scope.spawn(move || {
                    let mut chain = vec![first.clone()];
                    for _ in 0..ROUNDS {
                        let r = refresh(s, chain.last().unwrap());
                        assert_eq!(r.status, 200, "{:?}", r.json());
                        chain.push(r.data()["refreshToken"].as_str().unwrap().to_string());
                    }
                    chain
                })
            })
            .collect();
        let r = s.as_user(
            "POST",
            "/api/v1/auth/logout",
            "acme",
            &victim_access,
            Some(serde_json::json!({})),
        );
        assert!(r.status == 200 || r.status == 204, "{:?}", r.json());
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    refresh(&s, &victim_refresh).assert_error(401, "invalid_token");
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    for chain in &chains {
        let mut distinct = chain.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            ROUNDS + 1,
            "every rotation gave a new token"
        );
        // Stored: one session, generations 0, 1, 2, … in order (one chain, no fork), each
        // token but the last rotated.
        let mut session = None;
        for (i, token) in chain.iter().enumerate() {
            let (sid, generation, rotated): (String, i64, bool) = conn
                .query_row(
                    "SELECT session_id, generation, rotated_at IS NOT NULL FROM refresh_chain
                     WHERE lower(hex(token_hash)) = ?1",
                    [sha256_hex(token)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            assert_eq!(generation, i as i64);
            assert_eq!(rotated, i < ROUNDS);
            assert_eq!(*session.get_or_insert(sid.clone()), sid);
        }
    }
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM refresh_chain", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, USERS + (USERS - 1) * ROUNDS);
    // A token from the middle of a chain, past the grace window, is reuse: that session
    // ends, the next chain goes on.
    s.clock.advance_secs(120);
    refresh(&s, &chains[0][3]).assert_error(401, "refresh_token_reused");
    refresh(&s, chains[0].last().unwrap()).assert_error(401, "invalid_token");
    assert_eq!(refresh(&s, chains[1].last().unwrap()).status, 200);
}

/// A refresh token names its session and generation (`<session>-<generation>-<secret>`, so
/// its row is found without a hash index), but only the whole token is a credential: a
/// guessed or edited secret, a forged generation, another session's id or a non-canonical
/// form finds nothing, changes nothing, and the real token still works.
#[test]
fn a_refresh_token_that_names_its_session_is_still_only_its_secret() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    s.user("bob@example.com", Some(("acme", "member")));
    let ann = s.login_ok("acme", "ann@example.com");
    let bob = s.login_ok("acme", "bob@example.com");
    let token = ann["refreshToken"].as_str().unwrap().to_string();
    let sid = claims(ann["accessToken"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let parts: Vec<&str> = token.splitn(3, '-').collect();
    assert_eq!(parts[..2], [sid.as_str(), "0"], "{token}");
    assert!(parts[2].len() >= 43, "256 random bits: {token}");
    let bob_token = bob["refreshToken"].as_str().unwrap();
    let bob_secret = bob_token.splitn(3, '-').nth(2).unwrap();
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let attacks = [
        String::from_utf8(flipped).unwrap(),
        format!("{sid}-0-{}", "A".repeat(43)),
        format!("{sid}-1-{}", parts[2]),
        format!("{sid}-00-{}", parts[2]),
        format!("{sid}-+0-{}", parts[2]),
        format!("{sid}-0-{bob_secret}"),
        format!("{}-0-{}", sid.to_lowercase(), parts[2]),
        format!("{sid}-0"),
        format!("{sid}-0-"),
        format!("{sid}--{}", parts[2]),
        format!("{sid}-99999999999999999999-{}", parts[2]),
        parts[2].to_string(),
    ];
    for forged in &attacks {
        refresh(&s, forged).assert_error(401, "invalid_token");
    }
    // None of them counted as a reuse: the session is live, the real token rotates once.
    let r = refresh(&s, &token);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let next = r.data()["refreshToken"].as_str().unwrap().to_string();
    assert!(next.starts_with(&format!("{sid}-1-")), "{next}");
    // Bob's session was never touched either.
    assert_eq!(refresh(&s, bob_token).status, 200);
    // An old generation with a forged secret is not a reuse of that generation either.
    s.clock.advance_secs(120);
    refresh(&s, &format!("{sid}-0-{}", "B".repeat(43))).assert_error(401, "invalid_token");
    assert_eq!(refresh(&s, &next).status, 200);
}

/// `X-Org-Slug` on a refresh: the token must be of that org. Another org's slug, an unknown
/// or blank one are refused before anything is written: the token is still current after,
/// and rotates once.
#[test]
fn a_refresh_under_another_orgs_slug_is_refused_and_spends_nothing() {
    let mut s = server();
    s.org("beta", json!({}));
    s.user("ann@example.com", Some(("acme", "member")));
    s.user("bea@example.com", Some(("beta", "member")));
    let token = s.login_ok("acme", "ann@example.com")["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let under = |slug: &str, token: &str| {
        s.send(
            "POST",
            "/api/v1/auth/refresh",
            &[("X-Org-Slug", slug)],
            Some(json!({ "refreshToken": token })),
        )
    };
    under("beta", &token).assert_error(403, "org_mismatch");
    under("nope-org", &token).assert_error(404, "org_not_found");
    under(&"a".repeat(65), &token).assert_error(404, "org_not_found");
    under("  ", &token).assert_error(400, "invalid_request");
    // An unknown slug is answered as such whatever the token.
    under("nope-org", "garbage").assert_error(404, "org_not_found");
    under("beta", "garbage").assert_error(401, "invalid_token");
    // Nothing was rotated or counted as a reuse: the token rotates once, under its own org.
    let r = under("acme", &token);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let next = r.data()["refreshToken"].as_str().unwrap().to_string();
    assert_eq!(
        next.split('-').nth(1),
        Some("1"),
        "the first rotation: {next}"
    );
    assert_eq!(refresh(&s, &next).status, 200);
}

/// A refresh token issued before schema version 8 (found by its hash in `refresh_tokens`)
/// still refreshes; its successor starts the session's chain, the grace window and reuse
/// detection hold for it as for any token.
#[test]
fn a_refresh_token_from_before_the_chain_still_rotates_with_grace_and_reuse() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    let d = s.login_ok("acme", "ann@example.com");
    let sid = claims(d["accessToken"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    // Make the session look like one from an older version: its token only in the old table.
    let legacy = latchkey::crypto::random_token(32);
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    conn.execute("DELETE FROM refresh_chain WHERE session_id = ?1", [&sid])
        .unwrap();
    conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, org_id, created_at)
         SELECT ?1, id, org_id, created_at FROM sessions WHERE id = ?2",
        [sha256_hex(&legacy), sid.clone()],
    )
    .unwrap();
    let r = refresh(&s, &legacy);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let next = r.data()["refreshToken"].as_str().unwrap().to_string();
    assert!(next.starts_with(&format!("{sid}-1-")), "{next}");
    // Within the grace window the old token answers with the same successor.
    let again = refresh(&s, &legacy);
    assert_eq!(again.status, 200, "{:?}", again.json());
    assert_eq!(again.data()["refreshToken"], next.as_str());
    let stored: Option<String> = conn
        .query_row(
            "SELECT successor_hash FROM refresh_tokens WHERE token_hash = ?1",
            [sha256_hex(&legacy)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, Some(sha256_hex(&next)));
    // The chain goes on from there.
    let r = refresh(&s, &next);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let third = r.data()["refreshToken"].as_str().unwrap().to_string();
    assert!(third.starts_with(&format!("{sid}-2-")), "{third}");
    // Past the grace window the legacy token is a reuse: the session ends.
    s.clock.advance_secs(120);
    refresh(&s, &legacy).assert_error(401, "refresh_token_reused");
    refresh(&s, &third).assert_error(401, "invalid_token");
}

fn sha256_hex(token: &str) -> String {
    latchkey::crypto::token_hash(token)
}

#[test]
fn sessions_have_idle_and_absolute_lifetimes() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    // Idle: 7 days without a refresh ends the session.
    let d = s.login_ok("acme", "ann@example.com");
    s.clock.advance_secs(7 * 86_400 + 1);
    refresh(&s, d["refreshToken"].as_str().unwrap()).assert_error(401, "invalid_token");
    // Absolute: refreshing every 6 days keeps it alive only up to 30 days.
    let mut token = s.login_ok("acme", "ann@example.com")["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..4 {
        s.clock.advance_secs(6 * 86_400);
        let r = refresh(&s, &token);
        assert_eq!(r.status, 200, "{:?}", r.json());
        token = r.data()["refreshToken"].as_str().unwrap().to_string();
    }
    s.clock.advance_secs(6 * 86_400 + 1); // day 30 + 1 s
    refresh(&s, &token).assert_error(401, "invalid_token");
}

/// A refresh writes its session's last sight (and so its idle deadline) only once that is a
/// minute old (docs/architecture.md, "Refresh tokens"): `lastSeenAt` is to the minute, and a
/// session may end up to a minute sooner than 7 days after its last refresh, never later.
#[test]
fn a_refresh_moves_the_idle_deadline_at_most_a_minute_behind() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    // Two sessions on one timeline: one is refreshed just before the written deadline, the
    // other just after it.
    let d = s.login_ok("acme", "ann@example.com");
    let other = s.login_ok("acme", "ann@example.com");
    let seen = |s: &TestServer, access: &str| -> Value {
        let r = s.as_user("GET", "/api/v1/auth/sessions", "acme", access, None);
        assert_eq!(r.status, 200, "{:?}", r.json());
        let sid = claims(access)["sid"].as_str().unwrap().to_string();
        let sessions = r.data()["sessions"].as_array().unwrap().clone();
        let mine = sessions.iter().find(|x| x["id"] == sid.as_str()).unwrap();
        mine["lastSeenAt"].clone()
    };
    let at_login = seen(&s, d["accessToken"].as_str().unwrap());
    let step = |s: &TestServer, token: &str| -> (String, String) {
        let r = refresh(s, token);
        assert_eq!(r.status, 200, "{:?}", r.json());
        let d = r.data();
        (
            d["refreshToken"].as_str().unwrap().to_string(),
            d["accessToken"].as_str().unwrap().to_string(),
        )
    };
    let mut tokens = [
        d["refreshToken"].as_str().unwrap().to_string(),
        other["refreshToken"].as_str().unwrap().to_string(),
    ];
    s.clock.advance_secs(30);
    // Both refreshed; the first session's sight is what is looked at.
    let both = |s: &TestServer, tokens: &mut [String; 2]| -> String {
        let (t1, _) = step(s, &tokens[1]);
        let (t0, access) = step(s, &tokens[0]);
        *tokens = [t0, t1];
        access
    };
    let access = both(&s, &mut tokens);
    assert_eq!(seen(&s, &access), at_login, "30 s later: not written");
    s.clock.advance_secs(31);
    let access = both(&s, &mut tokens);
    assert_ne!(seen(&s, &access), at_login, "61 s later: written");
    // 30 s on, not written: the idle deadline stays 7 days after the write.
    s.clock.advance_secs(30);
    both(&s, &mut tokens);
    s.clock.advance_secs(7 * 86_400 - 30 - 1);
    let _ = step(&s, &tokens[0]);
    s.clock.advance_secs(2);
    refresh(&s, &tokens[1]).assert_error(401, "invalid_token");
}

#[test]
fn refresh_by_cookie_needs_csrf_proof_and_failure_clears_cookies() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    let login = s.login("acme", "ann@example.com", PASSWORD);
    let cookie = format!(
        "refresh_token={}; csrf_token={}",
        login.cookie_value("refresh_token").unwrap(),
        login.cookie_value("csrf_token").unwrap()
    );
    let r = s.send("POST", "/api/v1/auth/refresh", &[("Cookie", &cookie)], None);
    r.assert_error(403, "csrf_failed");
    // Refused for CSRF, not for its token: the cookies stay.
    assert!(r.set_cookie("refresh_token").is_none());
    let r = s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[("Cookie", &cookie), ("Origin", "http://app.test")],
        None,
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(r.set_cookie("access_token").is_some());
    let r = s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[
            ("Cookie", "refresh_token=garbage"),
            ("Origin", "http://app.test"),
        ],
        None,
    );
    r.assert_error(401, "invalid_token");
    for name in ["access_token", "refresh_token", "csrf_token"] {
        assert!(r.set_cookie(name).unwrap().contains("Max-Age=0"), "{name}");
    }
    let r = s.send("POST", "/api/v1/auth/refresh", &[], None);
    r.assert_error(401, "invalid_token");
    assert!(r.set_cookie("refresh_token").unwrap().contains("Max-Age=0"));
}

fn forge(
    token: &str,
    header: Value,
    payload_edit: Option<(&str, Value)>,
    sig: Option<&str>,
) -> String {
    let mut parts = token.split('.');
    let (_, p, sg) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut payload: Value = serde_json::from_slice(&crypto::b64url_decode(p).unwrap()).unwrap();
    if let Some((k, v)) = payload_edit {
        payload[k] = v;
    }
    format!(
        "{}.{}.{}",
        crypto::b64url(header.to_string().as_bytes()),
        crypto::b64url(payload.to_string().as_bytes()),
        sig.unwrap_or(sg)
    )
}

#[test]
fn tampered_access_tokens_are_refused() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    let token = s.login_ok("acme", "ann@example.com")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let header: Value =
        serde_json::from_slice(&crypto::b64url_decode(token.split('.').next().unwrap()).unwrap())
            .unwrap();
    let kid = header["kid"].clone();
    let hs = {
        let unsigned = forge(
            &token,
            json!({ "alg": "HS256", "typ": "JWT", "kid": kid }),
            None,
            Some(""),
        );
        let signing_input = unsigned.trim_end_matches('.');
        let mac = crypto::hmac_sha256(b"secret", signing_input.as_bytes());
        format!("{signing_input}.{}", crypto::b64url(&mac))
    };
    let cases = vec![
        (
            "alg none",
            forge(
                &token,
                json!({ "alg": "none", "typ": "JWT", "kid": kid }),
                None,
                Some(""),
            ),
        ),
        ("HS256", hs),
        (
            "edited role",
            forge(
                &token,
                header.clone(),
                Some(("org_role", json!("owner"))),
                None,
            ),
        ),
        (
            "edited sub",
            forge(
                &token,
                header.clone(),
                Some(("sub", json!("usr_someone"))),
                None,
            ),
        ),
        ("truncated", token[..token.len() - 10].to_string()),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (name, bad) in cases {
        let r = s.as_user("GET", "/api/v1/auth/me", "acme", &bad, None);
        assert_eq!(r.status, 401, "{name}: {:?}", r.json());
    }
    // Expired.
    s.clock.advance_secs(901);
    s.as_user("GET", "/api/v1/auth/me", "acme", &token, None)
        .assert_error(401, "token_expired");
}

#[test]
fn a_token_of_one_org_is_refused_under_another() {
    let mut s = server();
    s.org("beta", json!({}));
    s.user("ann@example.com", Some(("acme", "member")));
    let r = s.admin_send(
        "POST",
        "/api/v1/admin/users",
        Some(json!({ "email": "bob@example.com" })),
    );
    let bob = r.data()["user"]["id"].as_str().unwrap().to_string();
    s.admin_send(
        "POST",
        "/api/v1/admin/orgs/beta/members",
        Some(json!({ "userId": bob, "role": "member" })),
    );
    let token = s.login_ok("acme", "ann@example.com")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    s.as_user("GET", "/api/v1/auth/me", "beta", &token, None)
        .assert_error(403, "org_mismatch");
    s.as_user("GET", "/api/v1/auth/me", "nope-org", &token, None)
        .assert_error(404, "org_not_found");
    // The org's verdict comes before the token's (both are read in one transaction now):
    // an unknown slug is a 404 whatever the token, and a known one with a bad token a 401.
    s.as_user("GET", "/api/v1/auth/me", "nope-org", "not.a.jwt", None)
        .assert_error(404, "org_not_found");
    s.send(
        "GET",
        "/api/v1/auth/me",
        &[("X-Org-Slug", "nope-org")],
        None,
    )
    .assert_error(404, "org_not_found");
    s.as_user("GET", "/api/v1/auth/me", "beta", "not.a.jwt", None)
        .assert_error(401, "unauthenticated");
    s.send("GET", "/api/v1/auth/me", &[("X-Org-Slug", "beta")], None)
        .assert_error(401, "unauthenticated");
    // A cookie-authenticated change that fails the CSRF rule, under an unknown slug: 404.
    let login = s.login("acme", "ann@example.com", PASSWORD);
    let cookies = format!(
        "access_token={}; csrf_token={}",
        login.cookie_value("access_token").unwrap(),
        login.cookie_value("csrf_token").unwrap()
    );
    let change = Some(json!({ "name": "Ann" }));
    s.send(
        "PUT",
        "/api/v1/auth/me",
        &[("X-Org-Slug", "nope-org"), ("Cookie", &cookies)],
        change.clone(),
    )
    .assert_error(404, "org_not_found");
    s.send(
        "PUT",
        "/api/v1/auth/me",
        &[("X-Org-Slug", "acme"), ("Cookie", &cookies)],
        change,
    )
    .assert_error(403, "csrf_failed");
    // An expired token under an unknown slug: 404; under its own org: 401 token_expired.
    s.clock.advance_secs(901);
    s.as_user("GET", "/api/v1/auth/me", "nope-org", &token, None)
        .assert_error(404, "org_not_found");
    s.as_user("GET", "/api/v1/auth/me", "acme", &token, None)
        .assert_error(401, "token_expired");
    s.send(
        "GET",
        "/api/v1/auth/me",
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    )
    .assert_error(400, "invalid_request");
}

#[test]
fn logout_revokes_the_session_and_clears_cookies() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    let d = s.login_ok("acme", "ann@example.com");
    let access = d["accessToken"].as_str().unwrap();
    let r = s.as_user("POST", "/api/v1/auth/logout", "acme", access, None);
    assert_eq!(r.status, 200, "{:?}", r.json());
    for name in ["access_token", "refresh_token", "csrf_token"] {
        assert!(r.set_cookie(name).unwrap().contains("Max-Age=0"), "{name}");
    }
    refresh(&s, d["refreshToken"].as_str().unwrap()).assert_error(401, "invalid_token");
    s.as_user("GET", "/api/v1/auth/me", "acme", access, None)
        .assert_error(401, "unauthenticated");
    // No session at all: still 200.
    assert_eq!(
        s.send(
            "POST",
            "/api/v1/auth/logout",
            &[("X-Org-Slug", "acme")],
            None
        )
        .status,
        200
    );
    // By refresh token in the body.
    let d = s.login_ok("acme", "ann@example.com");
    let r = s.send(
        "POST",
        "/api/v1/auth/logout",
        &[],
        Some(json!({ "refreshToken": d["refreshToken"] })),
    );
    assert_eq!(r.status, 200);
    refresh(&s, d["refreshToken"].as_str().unwrap()).assert_error(401, "invalid_token");
}

#[test]
fn change_password_revokes_every_other_session() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    let keep = s.login_ok("acme", "ann@example.com");
    let other = s.login_ok("acme", "ann@example.com");
    let token = keep["accessToken"].as_str().unwrap();
    let change = |cur: &str, new: &str| {
        s.as_user(
            "POST",
            "/api/v1/auth/change-password",
            "acme",
            token,
            Some(json!({ "currentPassword": cur, "newPassword": new })),
        )
    };
    change("wrong password!!", "a brand new passphrase").assert_error(401, "invalid_credentials");
    change(PASSWORD, PASSWORD).assert_error(400, "weak_password");
    change(PASSWORD, "short").assert_error(400, "weak_password");
    let r = change(PASSWORD, "a brand new passphrase");
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["sessionsRevoked"], 1);
    assert_eq!(
        s.as_user("GET", "/api/v1/auth/me", "acme", token, None)
            .status,
        200
    );
    refresh(&s, other["refreshToken"].as_str().unwrap()).assert_error(401, "invalid_token");
    s.login("acme", "ann@example.com", PASSWORD)
        .assert_error(401, "invalid_credentials");
    assert_eq!(
        s.login("acme", "ann@example.com", "a brand new passphrase")
            .status,
        200
    );
}

#[test]
fn profile_updates_are_validated() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    let token = s.login_ok("acme", "ann@example.com")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let put = |b: Value| s.as_user("PUT", "/api/v1/auth/me", "acme", &token, Some(b));
    let r = put(
        json!({ "firstName": "Ann", "lastName": "Lee", "phoneNumber": "+14155550123", "avatarUrl": "https://img.test/a.png" }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let u = r.data()["user"].clone();
    assert_eq!(u["firstName"], "Ann");
    assert_eq!(u["phoneNumber"], "+14155550123");
    put(json!({ "phoneNumber": "555-0123" })).assert_error(400, "invalid_request");
    put(json!({ "avatarUrl": "javascript:alert(1)" })).assert_error(400, "invalid_request");
    put(json!({ "email": "steal@example.com" })).assert_error(400, "invalid_request");
    let r = put(json!({ "phoneNumber": null }));
    assert_eq!(r.data()["user"]["phoneNumber"], Value::Null);
}

#[test]
fn sessions_are_listed_and_revoked() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    s.user("bob@example.com", Some(("acme", "member")));
    let a1 = s.login_ok("acme", "ann@example.com");
    let a2 = s.login_ok("acme", "ann@example.com");
    let a3 = s.login_ok("acme", "ann@example.com");
    let bob = s.login_ok("acme", "bob@example.com");
    let t1 = a1["accessToken"].as_str().unwrap();
    let list = s
        .as_user("GET", "/api/v1/auth/sessions", "acme", t1, None)
        .data();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|x| x["current"] == true).count(), 1);
    assert_eq!(sessions[0]["ipAddress"], "127.0.0.1");
    assert_eq!(sessions[0]["authMethods"], json!(["pwd"]));

    let sid2 = claims(a2["accessToken"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.as_user(
        "DELETE",
        &format!("/api/v1/auth/sessions/{sid2}"),
        "acme",
        t1,
        None,
    );
    assert_eq!(r.status, 200);
    refresh(&s, a2["refreshToken"].as_str().unwrap()).assert_error(401, "invalid_token");
    // Another user's session is not found, not revoked.
    let bob_sid = claims(bob["accessToken"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    s.as_user(
        "DELETE",
        &format!("/api/v1/auth/sessions/{bob_sid}"),
        "acme",
        t1,
        None,
    )
    .assert_error(404, "not_found");
    assert_eq!(
        refresh(&s, bob["refreshToken"].as_str().unwrap()).status,
        200
    );

    let r = s.as_user("DELETE", "/api/v1/auth/sessions", "acme", t1, None);
    assert_eq!(r.data()["revoked"], 1);
    refresh(&s, a3["refreshToken"].as_str().unwrap()).assert_error(401, "invalid_token");
    assert_eq!(
        s.as_user("GET", "/api/v1/auth/me", "acme", t1, None).status,
        200
    );
}

#[test]
fn orgs_are_listed_and_switched() {
    let mut s = server();
    s.org("beta", json!({}));
    s.org("gamma", json!({}));
    let uid = s.user("ann@example.com", Some(("acme", "member")));
    s.admin_send(
        "POST",
        "/api/v1/admin/orgs/beta/members",
        Some(json!({ "userId": uid, "role": "owner" })),
    );
    let login = s.login_ok("acme", "ann@example.com");
    let token = login["accessToken"].as_str().unwrap().to_string();
    let refresh_token = login["refreshToken"].as_str().unwrap().to_string();
    let d = s
        .as_user("GET", "/api/v1/auth/orgs", "acme", &token, None)
        .data();
    let slugs: Vec<_> = d["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["org"]["slug"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(slugs, ["acme", "beta"]);
    // An access token alone never mints a session in another org.
    s.as_user(
        "POST",
        "/api/v1/auth/switch-org",
        "acme",
        &token,
        Some(json!({ "orgSlug": "beta" })),
    )
    .assert_error(401, "unauthenticated");
    let r = s.as_user(
        "POST",
        "/api/v1/auth/switch-org",
        "acme",
        &token,
        Some(json!({ "orgSlug": "beta", "refreshToken": refresh_token })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let c = claims(r.data()["accessToken"].as_str().unwrap());
    assert_eq!(c["org_slug"], "beta");
    assert_eq!(c["org_role"], "owner");
    s.as_user(
        "POST",
        "/api/v1/auth/switch-org",
        "acme",
        &token,
        Some(json!({ "orgSlug": "gamma", "refreshToken": refresh_token })),
    )
    .assert_error(403, "not_a_member");
}

#[test]
fn is_available_answers_and_is_rate_limited() {
    let mut s = TestServer::start_with("");
    s.org("acme", json!({ "signupMode": "open" }));
    s.user("ann@example.com", None);
    let ask = |e: &str| {
        s.send(
            "POST",
            "/api/v1/auth/is-available",
            &[("X-Org-Slug", "acme")],
            Some(json!({ "email": e })),
        )
    };
    let d = ask("ann@example.com").data();
    assert_eq!(d, json!({ "available": false, "field": "email" }));
    assert_eq!(ask("free@example.com").data()["available"], true);
    let mut limited = false;
    for _ in 0..25 {
        let r = ask("x@example.com");
        if r.status == 429 {
            r.assert_error(429, "rate_limited");
            assert!(r.header("Retry-After").unwrap().parse::<u64>().unwrap() >= 1);
            limited = true;
            break;
        }
    }
    assert!(limited, "20 per IP per minute by default");
}

#[test]
fn repeated_failures_lock_the_account_for_a_while() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    for _ in 0..5 {
        s.login("acme", "ann@example.com", "wrong password!!")
            .assert_error(401, "invalid_credentials");
    }
    let r = s.login("acme", "ann@example.com", PASSWORD);
    r.assert_error(429, "rate_limited");
    let wait: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!((850..=900).contains(&wait), "{wait}");
    // Unknown emails lock the same way: a lockout reveals nothing.
    for _ in 0..5 {
        s.login("acme", "ghost@example.com", "wrong password!!");
    }
    s.login("acme", "ghost@example.com", "wrong password!!")
        .assert_error(429, "rate_limited");
    s.clock.advance_secs(15 * 60 + 1);
    assert_eq!(s.login("acme", "ann@example.com", PASSWORD).status, 200);
    // Five failures lock the account for this IP only, which is not an account lock (that
    // takes `account_max_failures` from all IPs: tests/hardening.rs).
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.locked'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn logins_are_limited_per_ip() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::base_config(dir.path(), "")
        .replace("[security]\n", "[security]\nlogin_ip_per_minute = 3\n");
    let mut s = TestServer::start_in(dir, text);
    s.org("acme", json!({}));
    for _ in 0..3 {
        s.login("acme", "x@example.com", "whatever-password")
            .assert_error(401, "invalid_credentials");
    }
    s.login("acme", "y@example.com", "whatever-password")
        .assert_error(429, "rate_limited");
    s.clock.advance_secs(120);
    s.login("acme", "y@example.com", "whatever-password")
        .assert_error(401, "invalid_credentials");
}

#[test]
fn a_login_flood_gets_503_not_unbounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::base_config(dir.path(), "")
        .replace(
            "memory_kib = 64\niterations = 1",
            "memory_kib = 19456\niterations = 4",
        )
        .replace(
            "[security]\n",
            "[security]\nmax_concurrent_hashes = 1\nhash_queue = 1\n",
        );
    let mut s = TestServer::start_in(dir, text);
    s.org("acme", json!({}));
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    s.login("acme", &format!("u{i}@example.com"), "whatever-password")
                        .status
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|c| [401, 503].contains(c)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&503), "{statuses:?}");
    let r = s.login("acme", "z@example.com", "whatever-password");
    assert_eq!(r.status, 401, "the server recovers");
}

#[test]
fn the_audit_trail_records_auth_events_with_ip_and_agent() {
    let mut s = server();
    s.user("ann@example.com", Some(("acme", "member")));
    s.login("acme", "ann@example.com", "wrong password!!");
    let d = s.login_ok("acme", "ann@example.com");
    let token = d["accessToken"].as_str().unwrap();
    s.as_user(
        "POST",
        "/api/v1/auth/change-password",
        "acme",
        token,
        Some(json!({ "currentPassword": PASSWORD, "newPassword": "another long passphrase" })),
    );
    let r = s.send(
        "GET",
        "/api/v1/auth/audit?limit=2",
        &[
            ("X-Org-Slug", "acme"),
            ("Authorization", &format!("Bearer {token}")),
            ("User-Agent", "test-agent/1"),
        ],
        None,
    );
    let page = r.data();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["action"], "user.password_changed");
    assert_eq!(entries[0]["ipAddress"], "127.0.0.1");
    let next = page["nextCursor"].as_str().unwrap();
    let more = s
        .as_user(
            "GET",
            &format!("/api/v1/auth/audit?cursor={next}"),
            "acme",
            token,
            None,
        )
        .data();
    let actions: Vec<_> = more["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert!(
        actions.contains(&"user.login_failed".to_string()),
        "{actions:?}"
    );
}
