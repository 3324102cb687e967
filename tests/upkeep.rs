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
