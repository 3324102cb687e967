//! The conventions of API.md §1 over real HTTP: envelope, request ids, 404/405, body limits,
//! content types, malformed and mistyped JSON, caching headers, health endpoints.

mod common;
use common::TestServer;
use serde_json::json;

#[test]
fn unknown_route_is_404_in_the_envelope_with_a_request_id() {
    let s = TestServer::start();
    let r = s.get("/no/such/route");
    r.assert_error(404, "not_found");
    assert!(
        r.header("X-Request-Id")
            .is_some_and(|v| v.starts_with("req_"))
    );
    assert_eq!(r.header("Content-Type"), Some("application/json"));
}

#[test]
fn sane_request_ids_are_echoed_and_others_replaced() {
    let s = TestServer::start();
    let r = s.send("GET", "/healthz", &[("X-Request-Id", "abc-123.x")], None);
    assert_eq!(r.header("X-Request-Id"), Some("abc-123.x"));
    let long = "a".repeat(300);
    let r = s.send("GET", "/healthz", &[("X-Request-Id", &long)], None);
    assert!(r.header("X-Request-Id").unwrap().starts_with("req_"));
    let r = s.send(
        "GET",
        "/healthz",
        &[("X-Request-Id", "bad id<script>")],
        None,
    );
    assert!(r.header("X-Request-Id").unwrap().starts_with("req_"));
}

#[test]
fn wrong_method_is_405_with_allow() {
    let s = TestServer::start();
    let r = s.send("DELETE", "/api/v1/admin/users", &[], None);
    r.assert_error(405, "method_not_allowed");
    let allow = r.header("Allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[test]
fn health_and_readiness() {
    let s = TestServer::start();
    let r = s.get("/healthz");
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["status"], "ok");
    let r = s.get("/readyz");
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["database"], "ok");
}

#[test]
fn api_responses_are_not_cached() {
    let mut s = TestServer::start();
    let r = s.admin_get("/api/v1/admin/orgs");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    let r = s.get("/api/v1/nothing-here");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
}

#[test]
fn bodies_of_another_type_get_415() {
    let mut s = TestServer::start();
    let auth = format!("Bearer {}", s.admin_key());
    let h = vec![
        ("Authorization".to_string(), auth.clone()),
        ("Content-Type".to_string(), "text/plain".to_string()),
    ];
    let r = s.raw(
        "POST",
        "/api/v1/admin/orgs",
        &h,
        Some(br#"{"slug":"abc","name":"A"}"#),
    );
    r.assert_error(415, "unsupported_media_type");
    // No Content-Type at all is not JSON either.
    let h = vec![("Authorization".to_string(), auth)];
    let r = s.raw(
        "POST",
        "/api/v1/admin/orgs",
        &h,
        Some(br#"{"slug":"abc","name":"A"}"#),
    );
    r.assert_error(415, "unsupported_media_type");
}

#[test]
fn bodies_over_the_limit_get_413() {
    let mut s = TestServer::start_with("");
    let auth = format!("Bearer {}", s.admin_key());
    let h = vec![
        ("Authorization".to_string(), auth),
        ("Content-Type".to_string(), "application/json".to_string()),
    ];
    let big = vec![b' '; 1024 * 1024 + 1];
    let r = s.raw("POST", "/api/v1/admin/orgs", &h, Some(&big));
    r.assert_error(413, "payload_too_large");
}

#[test]
fn malformed_missing_mistyped_and_unknown_fields_get_400_naming_the_field() {
    let mut s = TestServer::start();
    let auth = format!("Bearer {}", s.admin_key());
    let h = vec![
        ("Authorization".to_string(), auth.clone()),
        ("Content-Type".to_string(), "application/json".to_string()),
    ];
    let r = s.raw("POST", "/api/v1/admin/orgs", &h, Some(b"{\"slug\": "));
    r.assert_error(400, "invalid_request");

    let r = s.admin_send(
        "POST",
        "/api/v1/admin/orgs",
        Some(json!({ "name": "Acme" })),
    );
    let j = r.assert_error(400, "invalid_request");
    assert_eq!(j["errors"][0]["field"], "slug");

    let r = s.admin_send(
        "POST",
        "/api/v1/admin/orgs",
        Some(json!({ "slug": 5, "name": "Acme" })),
    );
    let j = r.assert_error(400, "invalid_request");
    assert_eq!(j["errors"][0]["field"], "slug");

    let r = s.admin_send(
        "POST",
        "/api/v1/admin/orgs",
        Some(json!({ "slug": "acme", "name": "Acme", "colour": "red" })),
    );
    let j = r.assert_error(400, "invalid_request");
    assert_eq!(j["errors"][0]["field"], "colour");

    let r = s.admin_send(
        "POST",
        "/api/v1/admin/orgs",
        Some(json!({ "slug": "acme", "name": "Acme", "settings": { "signupMode": "sometimes" } })),
    );
    let j = r.assert_error(400, "invalid_request");
    assert_eq!(j["errors"][0]["field"], "settings.signupMode");

    let r = s.admin_send("POST", "/api/v1/admin/orgs", Some(json!([1, 2])));
    r.assert_error(400, "invalid_request");
    // Nothing half-written.
    let r = s.admin_get("/api/v1/admin/orgs");
    assert_eq!(r.data()["orgs"].as_array().unwrap().len(), 0);
}

#[test]
fn error_bodies_never_leak_internals() {
    let mut s = TestServer::start();
    for path in [
        "/api/v1/admin/orgs/%00",
        "/api/v1/admin/orgs/'; DROP TABLE orgs;--",
    ] {
        let r = s.admin_get(&path.replace(' ', "%20"));
        let text = String::from_utf8_lossy(&r.body).to_lowercase();
        assert!(r.status < 500, "{path}: {}", r.status);
        assert!(
            !text.contains("sqlite") && !text.contains("select"),
            "{text}"
        );
    }
}
