//! The operator API (API.md §7) over real HTTP: admin keys, orgs and slugs, users, members.

mod common;
use common::TestServer;
use serde_json::json;

#[test]
fn admin_endpoints_need_a_live_admin_key() {
    let mut s = TestServer::start();
    s.get("/api/v1/admin/orgs")
        .assert_error(401, "unauthenticated");
    for bad in [
        "Bearer nope",
        "Bearer sk_admin_zz",
        &format!("Bearer sk_admin_{}", "0".repeat(64)),
        "Basic abc",
    ] {
        let r = s.send("GET", "/api/v1/admin/orgs", &[("Authorization", bad)], None);
        r.assert_error(401, "unauthenticated");
    }
    let key = s.admin_key();
    assert!(key.starts_with("sk_admin_") && key.len() == 9 + 64);
    let r = s.send(
        "GET",
        "/api/v1/admin/orgs",
        &[("Authorization", &format!("Bearer {key}"))],
        None,
    );
    assert_eq!(r.status, 200);
    // Stored only as a hash.
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let (hash, prefix): (String, String) = conn
        .query_row("SELECT key_hash, prefix FROM admin_keys", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_ne!(hash, key);
    assert!(!hash.contains(&key[9..]));
    assert_eq!(prefix, &key[..10]);
}

#[test]
fn org_crud_and_slug_rules() {
    let mut s = TestServer::start();
    let r = s.admin_send(
        "POST",
        "/api/v1/admin/orgs",
        Some(json!({ "slug": "acme-corp", "name": "Acme Corp", "settings": { "signupMode": "open" } })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let org = r.data()["org"].clone();
    assert!(org["id"].as_str().unwrap().starts_with("org_"));
    assert_eq!(org["slug"], "acme-corp");
    assert_eq!(org["settings"]["signupMode"], "open");
    assert_eq!(org["status"], "active");
    assert!(org["createdAt"].as_str().unwrap().ends_with('Z'));

    s.admin_send(
        "POST",
        "/api/v1/admin/orgs",
        Some(json!({ "slug": "acme-corp", "name": "Again" })),
    )
    .assert_error(409, "already_exists");
    for bad in [
        "ab",
        "-acme",
        "acme-",
        "Acme",
        "admin",
        "api",
        "acme corp",
        "a_b_c",
    ] {
        let r = s.admin_send(
            "POST",
            "/api/v1/admin/orgs",
            Some(json!({ "slug": bad, "name": "X" })),
        );
        let j = r.assert_error(400, "invalid_request");
        assert_eq!(j["errors"][0]["field"], "slug", "{bad}");
    }

    let r = s.admin_get("/api/v1/admin/orgs/acme-corp");
    assert_eq!(r.data()["org"]["name"], "Acme Corp");
    s.admin_get("/api/v1/admin/orgs/nope-org")
        .assert_error(404, "org_not_found");

    let r = s.admin_send(
        "PUT",
        "/api/v1/admin/orgs/acme-corp",
        Some(
            json!({ "name": "Acme Inc", "appUrl": "https://app.acme.test",
                     "settings": { "require2FA": true, "passwordMinLength": 12 } }),
        ),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let org = r.data()["org"].clone();
    assert_eq!(org["name"], "Acme Inc");
    assert_eq!(org["appUrl"], "https://app.acme.test");
    assert_eq!(org["settings"]["require2FA"], true);
    assert_eq!(
        org["settings"]["signupMode"], "open",
        "untouched settings stay"
    );
    s.admin_send(
        "PUT",
        "/api/v1/admin/orgs/acme-corp",
        Some(json!({ "appUrl": "javascript:alert(1)" })),
    )
    .assert_error(400, "invalid_request");
    s.admin_send(
        "PUT",
        "/api/v1/admin/orgs/acme-corp",
        Some(json!({ "settings": { "signupMode": "domain" } })),
    )
    .assert_error(400, "invalid_request");
    let r = s.admin_send(
        "PUT",
        "/api/v1/admin/orgs/acme-corp",
        Some(json!({ "appUrl": null })),
    );
    assert_eq!(r.data()["org"]["appUrl"], serde_json::Value::Null);

    let r = s.admin_send("DELETE", "/api/v1/admin/orgs/acme-corp", None);
    assert_eq!(r.status, 200);
    s.admin_get("/api/v1/admin/orgs/acme-corp")
        .assert_error(404, "org_not_found");
    s.admin_send("DELETE", "/api/v1/admin/orgs/acme-corp", None)
        .assert_error(404, "org_not_found");
    // The slug is free again once the org is gone.
    let r = s.admin_send(
        "POST",
        "/api/v1/admin/orgs",
        Some(json!({ "slug": "acme-corp", "name": "New" })),
    );
    assert_eq!(r.status, 201);
}

#[test]
fn org_listing_pages_with_opaque_cursors() {
    let mut s = TestServer::start();
    for i in 0..5 {
        let r = s.admin_send(
            "POST",
            "/api/v1/admin/orgs",
            Some(json!({ "slug": format!("org-{i}"), "name": "O" })),
        );
        assert_eq!(r.status, 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/admin/orgs?limit=2&cursor={c}"),
            None => "/api/v1/admin/orgs?limit=2".to_string(),
        };
        let d = s.admin_get(&path).data();
        for o in d["orgs"].as_array().unwrap() {
            seen.push(o["slug"].as_str().unwrap().to_string());
        }
        match d["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec!["org-4", "org-3", "org-2", "org-1", "org-0"],
        "newest first, no gaps"
    );
    s.admin_get("/api/v1/admin/orgs?cursor=forged")
        .assert_error(400, "invalid_request");
    s.admin_get("/api/v1/admin/orgs?cursor=MTIzOm9yZ19Y.AAAAAAAAAAAAAAAAAAAAAA")
        .assert_error(400, "invalid_request");
    s.admin_get("/api/v1/admin/orgs?limit=0")
        .assert_error(400, "invalid_request");
    s.admin_get("/api/v1/admin/orgs?limit=101")
        .assert_error(400, "invalid_request");
}

#[test]
fn users_are_created_listed_sorted_and_searched() {
    let mut s = TestServer::start();
    for (email, name) in [
        ("carol@example.com", "Carol"),
        ("alice@example.com", "Alice"),
        ("bob@example.com", "Bob"),
    ] {
        let r = s.admin_send(
            "POST",
            "/api/v1/admin/users",
            Some(json!({ "email": email, "name": name, "password": "correct horse battery", "isEmailVerified": true })),
        );
        assert_eq!(r.status, 201, "{:?}", r.json());
        let u = r.data()["user"].clone();
        assert!(u["id"].as_str().unwrap().starts_with("usr_"));
        assert_eq!(u["isEmailVerified"], true);
        assert!(u.get("password").is_none() && u.get("passwordHash").is_none());
    }
    s.admin_send(
        "POST",
        "/api/v1/admin/users",
        Some(json!({ "email": "ALICE@example.com" })),
    )
    .assert_error(409, "already_exists");
    s.admin_send(
        "POST",
        "/api/v1/admin/users",
        Some(json!({ "email": "not-an-email" })),
    )
    .assert_error(400, "invalid_email");
    s.admin_send(
        "POST",
        "/api/v1/admin/users",
        Some(json!({ "email": "d@example.com", "password": "short" })),
    )
    .assert_error(400, "weak_password");
    // One of the 10,000 most common passwords, whatever its case (password.reject_common).
    let j = s
        .admin_send(
            "POST",
            "/api/v1/admin/users",
            Some(json!({ "email": "d@example.com", "password": "Qwerty123" })),
        )
        .assert_error(400, "weak_password");
    assert!(j["message"].as_str().unwrap().contains("too common"), "{j}");

    let d = s
        .admin_get("/api/v1/admin/users?sortField=email&sortDir=asc")
        .data();
    let emails: Vec<_> = d["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        emails,
        ["alice@example.com", "bob@example.com", "carol@example.com"]
    );
    assert_eq!(d["total"], 3);
    assert_eq!(d["sortField"], "email");
    assert_eq!(d["sortDir"], "asc");

    let d = s
        .admin_get("/api/v1/admin/users?sortField=name&sortDir=desc&offset=1&limit=1")
        .data();
    assert_eq!(d["list"][0]["name"], "Bob");
    assert_eq!(d["total"], 3);

    let d = s.admin_get("/api/v1/admin/users?query=car").data();
    assert_eq!(d["total"], 1);
    assert_eq!(d["list"][0]["email"], "carol@example.com");
    let d = s.admin_get("/api/v1/admin/users?query=%25").data();
    assert_eq!(d["total"], 0, "LIKE wildcards are escaped");

    s.admin_get("/api/v1/admin/users?sortField=password")
        .assert_error(400, "invalid_request");
    s.admin_get("/api/v1/admin/users?sortDir=up")
        .assert_error(400, "invalid_request");
    s.admin_get("/api/v1/admin/users?limit=1000")
        .assert_error(400, "invalid_request");
}

#[test]
fn operators_seat_members_in_orgs() {
    let mut s = TestServer::start();
    s.admin_send(
        "POST",
        "/api/v1/admin/orgs",
        Some(json!({ "slug": "acme", "name": "Acme" })),
    );
    let uid = s
        .admin_send(
            "POST",
            "/api/v1/admin/users",
            Some(json!({ "email": "owner@acme.test", "name": "O" })),
        )
        .data()["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.admin_send(
        "POST",
        "/api/v1/admin/orgs/acme/members",
        Some(json!({ "userId": uid, "role": "owner" })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let m = r.data()["member"].clone();
    assert_eq!(m["userId"], uid.as_str());
    assert_eq!(m["role"], "owner");
    assert_eq!(m["status"], "active");
    assert_eq!(m["email"], "owner@acme.test");

    s.admin_send(
        "POST",
        "/api/v1/admin/orgs/acme/members",
        Some(json!({ "userId": uid, "role": "member" })),
    )
    .assert_error(409, "already_member");
    s.admin_send(
        "POST",
        "/api/v1/admin/orgs/acme/members",
        Some(json!({ "userId": "usr_nope", "role": "member" })),
    )
    .assert_error(404, "not_found");
    s.admin_send(
        "POST",
        "/api/v1/admin/orgs/nope-org/members",
        Some(json!({ "userId": uid, "role": "member" })),
    )
    .assert_error(404, "org_not_found");
    s.admin_send(
        "POST",
        "/api/v1/admin/orgs/acme/members",
        Some(json!({ "userId": uid, "role": "king" })),
    )
    .assert_error(400, "invalid_request");

    // ownerEmail seats an existing user as owner at creation.
    let r = s.admin_send(
        "POST",
        "/api/v1/admin/orgs",
        Some(json!({ "slug": "beta", "name": "Beta", "ownerEmail": "OWNER@acme.test" })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.data()["owner"]["role"], "owner");
    s.admin_send(
        "POST",
        "/api/v1/admin/orgs",
        Some(json!({ "slug": "gamma", "name": "G", "ownerEmail": "ghost@acme.test" })),
    )
    .assert_error(400, "invalid_request");
    s.admin_get("/api/v1/admin/orgs/gamma")
        .assert_error(404, "org_not_found");
}
