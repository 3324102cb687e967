//! The "Low" findings of security review issue 12, each attacked over real HTTP (or through a
//! real `latchkey` process) next to the legitimate use it must not break: impossible dates,
//! forged tokens on logout, log injection, file modes and the example's placeholder secret.

mod common;
use common::TestServer;
use serde_json::json;

/// Org `acme` with an org_admin; returns the server and the admin's access token.
fn acme_admin() -> (TestServer, String) {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s.user("admin@acme.test", Some(("acme", "org_admin")));
    let token = s.login_ok("acme", "admin@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    (s, token)
}

// --- 16: dates that do not exist -------------------------------------------------------------

#[test]
fn api_key_expiry_must_be_a_date_that_exists() {
    let (s, t) = acme_admin();
    let create = |at: &str| {
        s.as_user(
            "POST",
            "/api/v1/org/api-keys",
            "acme",
            &t,
            Some(json!({ "name": "k", "expiresAt": at })),
        )
    };
    for at in [
        "2099-02-30T00:00:00Z",
        "2099-02-29T00:00:00Z",
        "2099-04-31T00:00:00Z",
        "2099-01-01T00:00:00+25:00",
        "2099-01-01T00:00:00-24:00",
        "2099-01-01T00:00:00+01:60",
    ] {
        let r = create(at);
        let j = r.assert_error(400, "invalid_request");
        assert_eq!(j["errors"][0]["field"], "expiresAt", "{at}: {j}");
    }
    // Real dates, the last days of months and the widest offsets, are accepted.
    for (at, utc) in [
        ("2096-02-29T00:00:00Z", "2096-02-29T00:00:00.000Z"),
        ("2099-04-30T12:00:00Z", "2099-04-30T12:00:00.000Z"),
        ("2099-01-01T23:59:00+23:59", "2099-01-01T00:00:00.000Z"),
        ("2098-12-31T00:01:00-23:59", "2099-01-01T00:00:00.000Z"),
    ] {
        let r = create(at);
        assert_eq!(r.status, 201, "{at}: {:?}", r.json());
        assert_eq!(r.data()["apiKey"]["expiresAt"], utc, "{at}");
    }
}
