//! Upkeep that was declared but not wired (issue 13): a request's webhook and email leave at
//! once (the wake-up after commit), the maintenance sweep deletes what has outlived its use,
//! and `/readyz` tells a dead outbox worker.

mod common;
use common::TestServer;
use common::receiver::Receiver;
use serde_json::json;
use std::time::{Duration, Instant};

const WEBHOOKS: &str = "[webhooks]\nallow_http = true\nallow_private_addresses = true\n";

/// An org `acme` with an owner logged in; returns the owner's access token.
fn acme(s: &mut TestServer) -> String {
    s.org("acme", json!({}));
    s.user("owner@acme.test", Some(("acme", "owner")));
    s.login_ok("acme", "owner@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Invitations made over HTTP reach a healthy webhook receiver and the SMTP server within a
/// second of the answer, several times in a row, with the worker idle before each: the
/// request pipeline wakes it after the handler's commit (the test never calls `notify`).
/// Before the fix each delivery waited for the worker's 5-second idle timer.
#[test]
fn a_request_s_webhook_and_email_arrive_within_a_second_of_the_answer() {
    let rx = Receiver::start();
    let mut s = TestServer::start_with_mail(WEBHOOKS);
    let token = acme(&mut s);
    let r = s.as_user(
        "POST",
        "/api/v1/org/webhooks",
        "acme",
        &token,
        Some(json!({ "url": rx.url, "events": ["member.invited"] })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let sink = s.mail.clone().unwrap();
    let mails = || sink.received.lock().unwrap().len();
    for round in 0..4 {
        // Let the worker go back to sleep (its idle timer is 5 s).
        std::thread::sleep(Duration::from_millis(300));
        let (hooks_before, mails_before) = (rx.count(), mails());
        let r = s.as_user(
            "POST",
            "/api/v1/org/members/invite",
            "acme",
            &token,
            Some(json!({ "email": format!("new{round}@acme.test"), "role": "member" })),
        );
        let answered = Instant::now();
        assert_eq!(r.status, 201, "{:?}", r.json());
        let got = rx.wait_for(hooks_before + 1, Duration::from_secs(10));
        let hook_after = answered.elapsed();
        let ev = got.last().unwrap().json();
        assert_eq!(ev["event"], "member.invited");
        assert_eq!(ev["data"]["email"], format!("new{round}@acme.test"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while mails() <= mails_before {
            assert!(Instant::now() < deadline, "the invitation email never came");
            std::thread::sleep(Duration::from_millis(2));
        }
        let mail_after = answered.elapsed();
        assert!(
            hook_after < Duration::from_secs(1) && mail_after < Duration::from_secs(1),
            "round {round}: webhook {hook_after:?}, email {mail_after:?} after the answer"
        );
    }
}

const DAY: i64 = 86_400;

/// The `state.clock` time now; then waits (bounded) until the maintenance thread has finished
/// a sweep pass that started at or after it. Call after moving the clock by more than a
/// minute (passes run a minute apart, by that clock).
fn wait_for_sweep(s: &TestServer) {
    let t = s.state().now();
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.state().maintenance.swept_at() < t {
        assert!(
            Instant::now() < deadline,
            "no maintenance sweep finished after the clock moved"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads one number from the database file, as an operator with `sqlite3` would.
fn count(s: &TestServer, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(s.db_path()).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn refresh(s: &TestServer, token: &str) -> common::Resp {
    s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": token })),
    )
}

/// Sealed refresh successors are forgotten once the grace window is over (the rotated token
/// itself stays, so its reuse is still caught); sessions go 30 days after they ended —
/// revoked, or idle-expired — with their refresh tokens, while a session that ended less
/// than 30 days ago stays.
#[test]
fn the_sweep_forgets_successors_and_deletes_long_ended_sessions() {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s.user("ann@acme.test", Some(("acme", "member")));
    // Session 1: rotated once; session 2: logged out; session 3: left alone.
    let first = s.login_ok("acme", "ann@acme.test")["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = refresh(&s, &first);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let second = s.login_ok("acme", "ann@acme.test")["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.send(
        "POST",
        "/api/v1/auth/logout",
        &[],
        Some(json!({ "refreshToken": second })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    s.login_ok("acme", "ann@acme.test");
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sessions"), 3);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM refresh_chain"), 4);
    let sealed = "SELECT COUNT(*) FROM refresh_successors";
    assert_eq!(count(&s, sealed), 1);

    // Two minutes on (the grace window is 10 s): the successor is forgotten, the rotated
    // token kept — presenting it again is a reuse, and ends session 1.
    s.clock.advance_secs(120);
    wait_for_sweep(&s);
    assert_eq!(count(&s, sealed), 0);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM refresh_chain"), 4);
    refresh(&s, &first).assert_error(401, "refresh_token_reused");
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sessions"), 3);

    // 29 days on: sessions 1 and 2 ended 29 days ago, session 3 (idle for 7 days) 22: all
    // kept.
    s.clock.advance_secs(29 * DAY);
    wait_for_sweep(&s);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sessions"), 3);
    // 2 more days: sessions 1 and 2 go, with their refresh tokens; session 3 stays.
    s.clock.advance_secs(2 * DAY);
    wait_for_sweep(&s);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sessions"), 1);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM refresh_chain"), 1);
    // 30 days after session 3's idle expiry it goes too.
    s.clock.advance_secs(7 * DAY);
    wait_for_sweep(&s);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sessions"), 0);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM refresh_chain"), 0);
    // The account itself is untouched, and signs in.
    s.login_ok("acme", "ann@acme.test");
}

/// `audit.retention` is applied: entries older than it are deleted, newer ones kept, and the
/// audit API lists only what is left.
#[test]
fn the_sweep_applies_audit_retention() {
    let mut s = TestServer::start_with("[audit]\nretention = \"10d\"\n");
    s.org("acme", json!({}));
    s.user("owner@acme.test", Some(("acme", "owner")));
    s.login_ok("acme", "owner@acme.test");
    let old = count(&s, "SELECT COUNT(*) FROM audit_log");
    assert!(old >= 2, "{old}");
    s.clock.advance_secs(9 * DAY);
    wait_for_sweep(&s);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM audit_log"), old);
    s.clock.advance_secs(2 * DAY);
    let token = s.login_ok("acme", "owner@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for_sweep(&s);
    // Only what the last login wrote (at most 10 days old) is left.
    let left = count(&s, "SELECT COUNT(*) FROM audit_log");
    assert!(left >= 1 && left < old, "{left} of {old}");
    let cutoff = (s.state().now() - 10 * DAY * 1000).to_string();
    assert_eq!(
        count(
            &s,
            &format!("SELECT COUNT(*) FROM audit_log WHERE created_at < {cutoff}")
        ),
        0
    );
    let listed = s.as_user("GET", "/api/v1/org/audit", "acme", &token, None);
    assert_eq!(listed.status, 200, "{:?}", listed.json());
    let items = listed.data();
    let items = items
        .as_object()
        .and_then(|o| o.values().find_map(|v| v.as_array().cloned()))
        .unwrap();
    assert!(
        items.iter().all(|e| e["action"] == "user.login"),
        "{items:?}"
    );
}

/// Partial (2FA-step) and email tokens are deleted a day after they expire, used or not;
/// unexpired ones are kept.
#[test]
fn the_sweep_deletes_expired_partial_and_email_tokens() {
    let mut s = TestServer::start();
    s.org("strict", json!({ "require2FA": true }));
    s.user("bob@strict.test", Some(("strict", "member")));
    let r = s.login("strict", "bob@strict.test", common::PASSWORD);
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(r.data()["partialToken"].is_string(), "{:?}", r.json());
    let forgot = |s: &TestServer| {
        let r = s.send(
            "POST",
            "/api/v1/auth/forgot-password",
            &[("X-Org-Slug", "strict")],
            Some(json!({ "email": "bob@strict.test" })),
        );
        assert_eq!(r.status, 200, "{:?}", r.json());
    };
    forgot(&s);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM partial_tokens"), 1);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM email_tokens"), 1);

    // Expired (5 minutes; an hour) but not yet for a day: kept.
    s.clock.advance_secs(2 * 3600);
    wait_for_sweep(&s);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM partial_tokens"), 1);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM email_tokens"), 1);
    // A day and more after expiry: deleted; a fresh reset token stays.
    s.clock.advance_secs(DAY);
    forgot(&s);
    wait_for_sweep(&s);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM partial_tokens"), 0);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM email_tokens"), 1);
    let now = s.state().now().to_string();
    assert_eq!(
        count(
            &s,
            &format!("SELECT COUNT(*) FROM email_tokens WHERE expires_at > {now}")
        ),
        1
    );
}

/// Invitations are listed (as `expired`, `revoked`, …) for 30 days after they closed, then
/// deleted; open ones are never touched.
#[test]
fn the_sweep_deletes_invitations_30_days_after_they_closed() {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s.user("owner@acme.test", Some(("acme", "owner")));
    let login = |s: &TestServer| {
        s.login_ok("acme", "owner@acme.test")["accessToken"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let invite = |s: &TestServer, t: &str, email: &str, days: i64| {
        let r = s.as_user(
            "POST",
            "/api/v1/org/members/invite",
            "acme",
            t,
            Some(json!({ "email": email, "role": "member", "expiresInDays": days, "sendEmail": false })),
        );
        assert_eq!(r.status, 201, "{:?}", r.json());
        r.data()["invite"]["id"].as_str().unwrap().to_string()
    };
    let t = login(&s);
    invite(&s, &t, "expiring@x.test", 7);
    let revoked = invite(&s, &t, "revoked@x.test", 7);
    let r = s.as_user(
        "DELETE",
        &format!("/api/v1/org/invites/{revoked}"),
        "acme",
        &t,
        None,
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    invite(&s, &t, "open@x.test", 30);
    let listed = |s: &TestServer, t: &str| -> Vec<(String, String)> {
        let r = s.as_user("GET", "/api/v1/org/invites", "acme", t, None);
        assert_eq!(r.status, 200, "{:?}", r.json());
        let mut v: Vec<(String, String)> = r.data()["invites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["email"].as_str().unwrap().to_string(),
                    i["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let pair = |e: &str, st: &str| (e.to_string(), st.to_string());

    // Day 29: the expired one (closed on day 7) and the revoked one (day 0) are listed.
    s.clock.advance_secs(29 * DAY);
    wait_for_sweep(&s);
    let t = login(&s);
    assert_eq!(
        listed(&s, &t),
        vec![
            pair("expiring@x.test", "expired"),
            pair("open@x.test", "pending"),
            pair("revoked@x.test", "revoked"),
        ]
    );
    // Day 31: the revoked one is gone.
    s.clock.advance_secs(2 * DAY);
    wait_for_sweep(&s);
    let t = login(&s);
    assert_eq!(
        listed(&s, &t),
        vec![
            pair("expiring@x.test", "expired"),
            pair("open@x.test", "expired"),
        ]
    );
    // Day 38: so is the one that expired on day 7; day 61 for the one that expired on 30.
    s.clock.advance_secs(7 * DAY);
    wait_for_sweep(&s);
    let t = login(&s);
    assert_eq!(listed(&s, &t), vec![pair("open@x.test", "expired")]);
    s.clock.advance_secs(23 * DAY);
    wait_for_sweep(&s);
    let t = login(&s);
    assert_eq!(listed(&s, &t), vec![]);
}

fn readyz_problem(s: &TestServer) -> Option<String> {
    let r = s.get("/readyz");
    if r.status == 200 {
        return None;
    }
    let j = r.assert_error(503, "not_ready");
    Some(j["message"].as_str().unwrap().to_string())
}

fn wait_not_ready(s: &TestServer) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(m) = readyz_problem(s) {
            return m;
        }
        assert!(Instant::now() < deadline, "/readyz stayed ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A dead outbox worker makes `/readyz` 503 (it used to read only the maintenance thread's
/// heartbeat), while the process is still up (`/healthz`).
#[test]
fn readyz_fails_when_the_outbox_worker_is_dead() {
    let s = TestServer::start();
    assert_eq!(readyz_problem(&s), None);
    // What a crashed worker leaves: its scheduler has returned.
    s.state().outbox.shutdown();
    let m = wait_not_ready(&s);
    assert_eq!(m, "The outbox worker has stopped");
    assert_eq!(s.get("/healthz").status, 200);
}

/// A dead maintenance thread makes `/readyz` 503 too.
#[test]
fn readyz_fails_when_the_maintenance_thread_is_dead() {
    let s = TestServer::start();
    assert_eq!(readyz_problem(&s), None);
    s.state().maintenance.stop();
    let m = wait_not_ready(&s);
    assert_eq!(m, "The maintenance thread has stopped");
}
