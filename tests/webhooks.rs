//! `/org/webhooks` over real HTTP with a real receiver: CRUD and permissions, URL and event
//! validation, secret rotation (the new secret signs), the test event, the delivery log and a
//! manual retry, and another org's ids answering 404.

mod common;
use common::TestServer;
use common::receiver::Receiver;
use latchkey::crypto;
use serde_json::json;
use std::time::Duration;

const CONFIG: &str =
    "[webhooks]\nallow_http = true\nallow_private_addresses = true\nretry_schedule = [\"1s\"]\n";

struct W {
    s: TestServer,
    admin: String,
    member: String,
}

fn world() -> W {
    let mut s = TestServer::start_with(CONFIG);
    s.org("acme", json!({}));
    s.user("admin@acme.test", Some(("acme", "org_admin")));
    s.user("member@acme.test", Some(("acme", "member")));
    let admin = s.login_ok("acme", "admin@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let member = s.login_ok("acme", "member@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    W { s, admin, member }
}

fn sig_ok(secret: &str, got: &common::receiver::Got) -> bool {
    let want = format!(
        "sha256={}",
        crypto::hex(&crypto::hmac_sha256(secret.as_bytes(), &got.body))
    );
    got.header("x-webhook-signature") == want
}

#[test]
fn crud_permissions_and_validation() {
    let w = world();
    let rc = Receiver::start();
    let post = |tok: &str, body| {
        w.s.as_user("POST", "/api/v1/org/webhooks", "acme", tok, Some(body))
    };
    post(
        &w.member,
        json!({ "url": rc.url, "events": ["member.invited"] }),
    )
    .assert_error(403, "forbidden");
    post(
        &w.admin,
        json!({ "url": rc.url, "events": ["no.such.event"] }),
    )
    .assert_error(400, "invalid_request");
    post(&w.admin, json!({ "url": rc.url, "events": [] })).assert_error(400, "invalid_request");
    post(&w.admin, json!({ "url": "ftp://x.test/", "events": ["*"] }))
        .assert_error(400, "invalid_request");
    let r = post(
        &w.admin,
        json!({ "url": rc.url, "events": ["member.invited", "member.joined"], "description": "CRM" }),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let d = r.data();
    let secret = d["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(crypto::b64_decode(&secret[6..]).unwrap().len(), 32);
    let id = d["webhook"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("wh_"));
    assert_eq!(d["webhook"]["isActive"], true);
    // The secret is shown once: never in reads.
    let list =
        w.s.as_user("GET", "/api/v1/org/webhooks", "acme", &w.admin, None);
    assert!(!String::from_utf8_lossy(&list.body).contains(&secret));
    assert_eq!(list.data()["webhooks"].as_array().unwrap().len(), 1);
    let path = format!("/api/v1/org/webhooks/{id}");
    let r = w.s.as_user(
        "PUT",
        &path,
        "acme",
        &w.admin,
        Some(json!({ "events": ["*"], "description": null, "isActive": false })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["webhook"]["events"], json!(["*"]));
    assert_eq!(r.data()["webhook"]["isActive"], false);
    assert_eq!(
        w.s.as_user("GET", &path, "acme", &w.admin, None).data()["webhook"]["description"],
        json!(null)
    );
    assert_eq!(
        w.s.as_user("DELETE", &path, "acme", &w.admin, None).status,
        200
    );
    w.s.as_user("GET", &path, "acme", &w.admin, None)
        .assert_error(404, "not_found");
}

#[test]
fn https_is_required_unless_allowed() {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s.user("admin@acme.test", Some(("acme", "owner")));
    let t = s.login_ok("acme", "admin@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.as_user(
        "POST",
        "/api/v1/org/webhooks",
        "acme",
        &t,
        Some(json!({ "url": "http://hooks.example.com/x", "events": ["*"] })),
    );
    let j = r.assert_error(400, "invalid_request");
    assert_eq!(j["errors"][0]["field"], "url");
    let r = s.as_user(
        "POST",
        "/api/v1/org/webhooks",
        "acme",
        &t,
        Some(json!({ "url": "https://hooks.example.com/x", "events": ["*"] })),
    );
    assert_eq!(r.status, 201);
}

#[test]
fn events_test_rotation_deliveries_and_retry() {
    let w = world();
    let rc = Receiver::start();
    let r = w.s.as_user(
        "POST",
        "/api/v1/org/webhooks",
        "acme",
        &w.admin,
        Some(json!({ "url": rc.url, "events": ["member.invited"] })),
    );
    let secret = r.data()["secret"].as_str().unwrap().to_string();
    let id = r.data()["webhook"]["id"].as_str().unwrap().to_string();
    // A real event reaches it, signed with the secret.
    w.s.as_user(
        "POST",
        "/api/v1/org/members/invite",
        "acme",
        &w.admin,
        Some(json!({ "email": "new@acme.test" })),
    );
    let got = rc.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].json()["event"], "member.invited");
    assert_eq!(got[0].json()["data"]["email"], "new@acme.test");
    assert!(sig_ok(&secret, &got[0]));
    // Rotation: the next delivery is signed with the new secret only.
    let r = w.s.as_user(
        "POST",
        &format!("/api/v1/org/webhooks/{id}/rotate-secret"),
        "acme",
        &w.admin,
        None,
    );
    let fresh = r.data()["secret"].as_str().unwrap().to_string();
    assert_ne!(fresh, secret);
    let r = w.s.as_user(
        "POST",
        &format!("/api/v1/org/webhooks/{id}/test"),
        "acme",
        &w.admin,
        None,
    );
    assert_eq!(r.status, 202, "{:?}", r.json());
    let got = rc.wait_for(2, Duration::from_secs(10));
    assert_eq!(got[1].json()["event"], "webhook.test");
    assert!(sig_ok(&fresh, &got[1]) && !sig_ok(&secret, &got[1]));
    // The delivery log, then a failure and a manual retry.
    *rc.script.lock().unwrap() = vec![500];
    rc.status.store(500, std::sync::atomic::Ordering::SeqCst);
    w.s.as_user(
        "POST",
        &format!("/api/v1/org/webhooks/{id}/test"),
        "acme",
        &w.admin,
        None,
    );
    rc.wait_for(3, Duration::from_secs(10));
    let deliveries_path = format!("/api/v1/org/webhooks/{id}/deliveries");
    let mut failed = None;
    for _ in 0..100 {
        w.s.clock.advance_secs(2);
        w.s.state().outbox.notify();
        std::thread::sleep(Duration::from_millis(50));
        let d =
            w.s.as_user(
                "GET",
                &format!("{deliveries_path}?status=failed"),
                "acme",
                &w.admin,
                None,
            )
            .data();
        if let Some(f) = d["deliveries"].as_array().unwrap().first() {
            failed = Some(f.clone());
            break;
        }
    }
    let failed = failed.expect("a failed delivery");
    assert_eq!(failed["lastStatusCode"], 500);
    assert!(failed["attempts"].as_i64().unwrap() >= 2);
    let all =
        w.s.as_user(
            "GET",
            &format!("{deliveries_path}?limit=2"),
            "acme",
            &w.admin,
            None,
        )
        .data();
    assert_eq!(all["deliveries"].as_array().unwrap().len(), 2);
    assert!(all["nextCursor"].is_string());
    rc.status.store(200, std::sync::atomic::Ordering::SeqCst);
    let seen = rc.count();
    let did = failed["id"].as_str().unwrap();
    let r = w.s.as_user(
        "POST",
        &format!("{deliveries_path}/{did}/retry"),
        "acme",
        &w.admin,
        None,
    );
    assert_eq!(r.status, 202);
    let got = rc.wait_for(seen + 1, Duration::from_secs(10));
    // Deliveries now leave as soon as they are queued, so the retry need not be the last to
    // arrive: it is the one carrying the failed delivery's id again.
    assert!(
        got.iter()
            .skip(seen)
            .any(|h| h.header("x-delivery-id") == did),
        "same delivery id on retry"
    );
    w.s.as_user(
        "GET",
        &format!("{deliveries_path}?status=lost"),
        "acme",
        &w.admin,
        None,
    )
    .assert_error(400, "invalid_request");
}

#[test]
fn another_orgs_webhooks_are_not_found() {
    let mut w = world();
    let rc = Receiver::start();
    let id =
        w.s.as_user(
            "POST",
            "/api/v1/org/webhooks",
            "acme",
            &w.admin,
            Some(json!({ "url": rc.url, "events": ["*"] })),
        )
        .data()["webhook"]["id"]
            .as_str()
            .unwrap()
            .to_string();
    w.s.org("beta", json!({}));
    w.s.user("boss@beta.test", Some(("beta", "owner")));
    let boss = w.s.login_ok("beta", "boss@beta.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    for (m, p) in [
        ("GET", format!("/api/v1/org/webhooks/{id}")),
        ("DELETE", format!("/api/v1/org/webhooks/{id}")),
        ("POST", format!("/api/v1/org/webhooks/{id}/rotate-secret")),
        ("POST", format!("/api/v1/org/webhooks/{id}/test")),
        ("GET", format!("/api/v1/org/webhooks/{id}/deliveries")),
    ] {
        w.s.as_user(m, &p, "beta", &boss, None)
            .assert_error(404, "not_found");
    }
    assert_eq!(
        w.s.as_user(
            "GET",
            &format!("/api/v1/org/webhooks/{id}"),
            "acme",
            &w.admin,
            None
        )
        .status,
        200
    );
}
