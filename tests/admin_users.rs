//! The operator's user management and the audit readers over real HTTP (API.md §5, §7).

mod common;
use common::{PASSWORD, TestServer};
use serde_json::json;

fn setup() -> (TestServer, String) {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s.user("owner@acme.test", Some(("acme", "owner")));
    let uid = s.user("ann@acme.test", Some(("acme", "member")));
    (s, uid)
}

#[test]
fn read_update_and_disable_a_user() {
    let (mut s, uid) = setup();
    let d = s.admin_get(&format!("/api/v1/admin/users/{uid}")).data();
    assert_eq!(d["user"]["email"], "ann@acme.test");
    assert_eq!(d["memberships"][0]["org"]["slug"], "acme");
    s.admin_get("/api/v1/admin/users/usr_nope")
        .assert_error(404, "not_found");

    let session = s.login_ok("acme", "ann@acme.test");
    let r = s.admin_send(
        "PUT",
        &format!("/api/v1/admin/users/{uid}"),
        Some(json!({ "name": "Ann B", "role": "admin" })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["user"]["role"], "admin");
    s.admin_send(
        "PUT",
        &format!("/api/v1/admin/users/{uid}"),
        Some(json!({ "email": "owner@acme.test" })),
    )
    .assert_error(409, "already_exists");
    s.admin_send(
        "PUT",
        &format!("/api/v1/admin/users/{uid}"),
        Some(json!({ "status": "gone" })),
    )
    .assert_error(400, "invalid_request");
    let r = s.admin_send(
        "PUT",
        &format!("/api/v1/admin/users/{uid}"),
        Some(json!({ "status": "disabled" })),
    );
    assert_eq!(r.status, 200);
    s.as_user(
        "GET",
        "/api/v1/auth/me",
        "acme",
        session["accessToken"].as_str().unwrap(),
        None,
    )
    .assert_error(401, "unauthenticated");
    s.login("acme", "ann@acme.test", PASSWORD)
        .assert_error(401, "invalid_credentials");
    s.admin_send(
        "PUT",
        &format!("/api/v1/admin/users/{uid}"),
        Some(json!({ "status": "active", "password": "a new long password" })),
    );
    assert_eq!(
        s.login("acme", "ann@acme.test", "a new long password")
            .status,
        200
    );
}

#[test]
fn unlock_sessions_and_delete() {
    let (mut s, uid) = setup();
    for _ in 0..5 {
        s.login("acme", "ann@acme.test", "wrong password!!");
    }
    s.login("acme", "ann@acme.test", PASSWORD)
        .assert_error(429, "rate_limited");
    assert_eq!(
        s.admin_send("POST", &format!("/api/v1/admin/users/{uid}/unlock"), None)
            .status,
        200
    );
    let a = s.login_ok("acme", "ann@acme.test");
    s.login_ok("acme", "ann@acme.test");
    let r = s.admin_send(
        "DELETE",
        &format!("/api/v1/admin/users/{uid}/sessions"),
        None,
    );
    assert_eq!(r.data()["revoked"], 2);
    s.as_user(
        "GET",
        "/api/v1/auth/me",
        "acme",
        a["accessToken"].as_str().unwrap(),
        None,
    )
    .assert_error(401, "unauthenticated");

    let owner = s.admin_get("/api/v1/admin/users?query=owner").data()["list"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.admin_send("DELETE", &format!("/api/v1/admin/users/{owner}"), None)
        .assert_error(403, "forbidden");
    assert_eq!(
        s.admin_send("DELETE", &format!("/api/v1/admin/users/{uid}"), None)
            .status,
        200
    );
    s.admin_get(&format!("/api/v1/admin/users/{uid}"))
        .assert_error(404, "not_found");
    s.login("acme", "ann@acme.test", PASSWORD)
        .assert_error(401, "invalid_credentials");
}

#[test]
fn audit_readers_for_self_org_admins_and_the_operator() {
    let (mut s, uid) = setup();
    s.login("acme", "ann@acme.test", "wrong password!!");
    let ann = s.login_ok("acme", "ann@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let owner = s.login_ok("acme", "owner@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    s.as_user("GET", "/api/v1/org/audit", "acme", &ann, None)
        .assert_error(403, "forbidden");
    let d = s
        .as_user(
            "GET",
            "/api/v1/org/audit?action=user.login_failed",
            "acme",
            &owner,
            None,
        )
        .data();
    let e = &d["entries"].as_array().unwrap()[0];
    assert_eq!(e["targetId"], uid.as_str());
    assert_eq!(e["ipAddress"], "127.0.0.1");
    let d = s
        .as_user(
            "GET",
            &format!("/api/v1/org/audit?actorId={uid}"),
            "acme",
            &owner,
            None,
        )
        .data();
    assert!(
        d["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actorId"] == uid.as_str())
    );
    let d = s
        .admin_get(&format!("/api/v1/admin/audit?userId={uid}&limit=100"))
        .data();
    let actions: Vec<_> = d["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for a in [
        "user.login",
        "user.login_failed",
        "member.added",
        "user.created",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    s.admin_get("/api/v1/admin/audit?cursor=bad")
        .assert_error(400, "invalid_request");
    // Another org's admin sees nothing of acme.
    s.org("beta", json!({}));
    s.user("boss@beta.test", Some(("beta", "owner")));
    let boss = s.login_ok("beta", "boss@beta.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let d = s
        .as_user("GET", "/api/v1/org/audit?limit=100", "beta", &boss, None)
        .data();
    assert!(
        d["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["orgId"] != json!(null) && e["targetId"] != uid.as_str())
    );
}
