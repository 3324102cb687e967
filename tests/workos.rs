//! The WorkOS-compatible API over real HTTP (API.md §14, docs/workos.md): the rules the
//! official SDKs cannot see — who may hold a WorkOS key, what its tokens may do, idempotency —
//! with the attacks next to them. The SDKs themselves run in tests/workos/ (latchkey.sh).

mod common;
use common::{PASSWORD, Resp, TestServer};
use serde_json::{Value, json};

struct W {
    s: TestServer,
    id: String,
    key: String,
}

fn server(enabled: bool) -> W {
    let mut s = TestServer::start_with(&format!("[workos]\nenabled = {enabled}\n"));
    let r = s.admin_send(
        "POST",
        "/api/v1/admin/oauth-clients",
        Some(json!({ "name": "App", "redirectUris": ["http://app.test/cb"], "profile": "workos", "firstParty": true })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let d = r.data();
    W {
        id: d["client"]["id"].as_str().unwrap().into(),
        key: d["clientSecret"].as_str().unwrap().into(),
        s,
    }
}

fn call(w: &W, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> Resp {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut h: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        h.push(("Authorization", a));
    }
    w.s.send(method, path, &h, body)
}

#[test]
fn the_api_is_off_unless_enabled_and_needs_a_workos_clients_key() {
    let off = server(false);
    let r = call(&off, "GET", "/user_management/users", Some(&off.key), None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "not_found");

    let mut w = server(true);
    // No key, a wrong key, and the secret of an ordinary OIDC client: 401 in WorkOS's shape.
    for key in [None, Some("sk_wrong")] {
        let r = call(&w, "GET", "/user_management/users", key, None);
        assert_eq!(r.status, 401);
        assert!(r.json()["message"].is_string());
    }
    let r = w.s.admin_send(
        "POST",
        "/api/v1/admin/oauth-clients",
        Some(json!({ "name": "Portal", "redirectUris": ["http://app.test/cb"] })),
    );
    let oidc_secret = r.data()["clientSecret"].as_str().unwrap().to_string();
    assert_eq!(
        call(
            &w,
            "GET",
            "/user_management/users",
            Some(&oidc_secret),
            None
        )
        .status,
        401
    );
    // An admin key is no WorkOS key either.
    let admin = w.s.admin_key();
    assert_eq!(
        call(&w, "GET", "/user_management/users", Some(&admin), None).status,
        401
    );
    let r = call(&w, "GET", "/user_management/users", Some(&w.key), None);
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["object"], "list");
}

#[test]
fn a_workos_key_is_the_operators_never_a_tenants() {
    let mut w = server(true);
    w.s.org("acme", json!({}));
    // Org-owned: refused (its key creates accounts and sets passwords).
    let r = w.s.admin_send(
        "POST",
        "/api/v1/admin/oauth-clients",
        Some(json!({ "name": "X", "redirectUris": ["http://app.test/cb"], "profile": "workos", "orgSlug": "acme" })),
    );
    r.assert_error(400, "invalid_request");
    // An org admin cannot register one.
    w.s.user("boss@acme.test", Some(("acme", "org_admin")));
    let t = w.s.login_ok("acme", "boss@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = w.s.as_user(
        "POST",
        "/api/v1/org/oauth-clients",
        "acme",
        &t,
        Some(json!({ "name": "X", "redirectUris": ["http://localhost/cb"], "profile": "workos" })),
    );
    r.assert_error(400, "invalid_request");
    // Nor turn an org client into one.
    let r = w.s.as_user(
        "POST",
        "/api/v1/org/oauth-clients",
        "acme",
        &t,
        Some(json!({ "name": "Y", "redirectUris": ["http://localhost/cb"] })),
    );
    let id = r.data()["client"]["id"].as_str().unwrap().to_string();
    let r = w.s.as_user(
        "PUT",
        &format!("/api/v1/org/oauth-clients/{id}"),
        "acme",
        &t,
        Some(json!({ "profile": "workos" })),
    );
    r.assert_error(400, "invalid_request");
}

fn sign_in(w: &W, email: &str) -> Resp {
    call(
        w,
        "POST",
        "/user_management/authenticate",
        None,
        Some(
            json!({ "grant_type": "password", "client_id": w.id, "client_secret": w.key,
                     "email": email, "password": PASSWORD, "ip_address": "203.0.113.7",
                     "device_id": "ignored" }),
        ),
    )
}

#[test]
fn tokens_of_a_workos_sign_in_are_the_apps_not_latchkey_api_credentials() {
    let mut w = server(true);
    w.s.org("acme", json!({}));
    w.s.user("ann@acme.test", Some(("acme", "member")));
    let r = sign_in(&w, "ann@acme.test");
    assert_eq!(r.status, 200, "{:?}", r.json());
    let d = r.json();
    assert_eq!(d["user"]["email"], "ann@acme.test");
    assert_eq!(d["authentication_method"], "Password");
    let access = d["access_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &latchkey::crypto::b64url_decode(access.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    let claims: Value = serde_json::from_slice(
        &latchkey::crypto::b64url_decode(access.split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    assert!(claims["sid"].is_string() && claims["auth_time"].is_i64());
    assert_eq!(claims["org_id"], d["organization_id"]);
    assert!(claims.get("sub_type").is_none());
    // /api/v1 refuses it (and the session's refresh token).
    w.s.as_user("GET", "/api/v1/auth/me", "acme", access, None)
        .assert_error(401, "unauthenticated");
    let r = w.s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[("X-Org-Slug", "acme")],
        Some(json!({ "refreshToken": d["refresh_token"] })),
    );
    assert_eq!(r.status, 401);
    // The session records the end user's address the app forwarded.
    let uid = d["user"]["id"].as_str().unwrap();
    let r = call(
        &w,
        "GET",
        &format!("/user_management/users/{uid}/sessions"),
        Some(&w.key),
        None,
    );
    assert_eq!(r.json()["data"][0]["ip_address"], "203.0.113.7");
    // A wrong password is WorkOS's 400, and counts like any failed login.
    let r = call(
        &w,
        "POST",
        "/user_management/authenticate",
        None,
        Some(
            json!({ "grant_type": "password", "client_id": w.id, "client_secret": w.key,
                     "email": "ann@acme.test", "password": "wrong" }),
        ),
    );
    assert_eq!(r.status, 400);
    // Another client's key cannot authenticate as this client.
    let r = call(
        &w,
        "POST",
        "/user_management/authenticate",
        None,
        Some(
            json!({ "grant_type": "password", "client_id": w.id, "client_secret": "sk_nope",
                     "email": "ann@acme.test", "password": PASSWORD }),
        ),
    );
    assert_eq!(r.json()["error"], "invalid_client");
}

#[test]
fn a_post_with_an_idempotency_key_changes_once() {
    let w = server(true);
    let post = |key: &str, email: &str| {
        let auth = format!("Bearer {}", w.key);
        w.s.send(
            "POST",
            "/user_management/users",
            &[("Authorization", &auth), ("Idempotency-Key", key)],
            Some(json!({ "email": email, "password": PASSWORD })),
        )
    };
    let a = post("k-1", "ann@x.test");
    assert_eq!(a.status, 200, "{:?}", a.json());
    let b = post("k-1", "ann@x.test");
    assert_eq!(b.status, 200);
    assert_eq!(
        a.json()["id"],
        b.json()["id"],
        "the same answer, no second user"
    );
    assert_eq!(b.header("Idempotent-Replayed"), Some("true"));
    // The same key with another body is refused; a new key makes the (duplicate) user → 409.
    assert_eq!(post("k-1", "bob@x.test").status, 422);
    assert_eq!(post("k-2", "ann@x.test").status, 409);
}

#[test]
fn lists_page_by_object_id_and_bad_input_is_a_422() {
    let w = server(true);
    let auth = format!("Bearer {}", w.key);
    for i in 0..5 {
        let r = w.s.send(
            "POST",
            "/organizations",
            &[("Authorization", &auth)],
            Some(json!({ "name": format!("Org {i}"), "domain_data": [{ "domain": format!("o{i}.test"), "state": "verified" }] })),
        );
        assert_eq!(r.status, 200, "{:?}", r.json());
    }
    let page = |q: &str| {
        w.s.send(
            "GET",
            &format!("/organizations?{q}"),
            &[("Authorization", &auth)],
            None,
        )
        .json()
    };
    let p1 = page("limit=2&order=desc");
    assert_eq!(p1["data"].as_array().unwrap().len(), 2);
    let after = p1["list_metadata"]["after"].as_str().unwrap().to_string();
    let p2 = page(&format!("limit=2&order=desc&after={after}"));
    assert_ne!(p1["data"][0]["id"], p2["data"][0]["id"]);
    let p3 = page(&format!(
        "limit=10&order=desc&after={}",
        p2["list_metadata"]["after"].as_str().unwrap()
    ));
    assert_eq!(p3["data"].as_array().unwrap().len(), 1);
    assert_eq!(p3["list_metadata"]["after"], Value::Null);
    // A domain filter.
    let f = page("domains=o3.test");
    assert_eq!(f["data"].as_array().unwrap().len(), 1);
    assert_eq!(f["data"][0]["domains"][0]["domain"], "o3.test");
    // Bad input.
    assert_eq!(
        w.s.send(
            "GET",
            "/organizations?limit=0",
            &[("Authorization", &auth)],
            None
        )
        .status,
        422
    );
    let r = w.s.send(
        "POST",
        "/organizations",
        &[("Authorization", &auth)],
        Some(json!({ "name": "X", "domain_data": [{ "domain": "not a domain" }] })),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["code"], "invalid_request_parameters");
    let r = w.s.send(
        "GET",
        "/organizations/org_nope",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "entity_not_found");
}

#[test]
fn the_jwks_is_public_rsa_only_with_x5c() {
    let w = server(true);
    let r = w.s.get(&format!("/sso/jwks/{}", w.id));
    assert_eq!(r.status, 200);
    let keys = r.json()["keys"].as_array().unwrap().clone();
    assert!(!keys.is_empty());
    for k in keys {
        assert_eq!(k["kty"], "RSA");
        assert!(k["x5c"][0].is_string() && k["x5t#S256"].is_string());
    }
    assert_eq!(w.s.get("/sso/jwks/client_nope").status, 404);
}

#[test]
fn a_user_with_no_organization_signs_in_to_a_session_that_passes_no_org_check() {
    let mut w = server(true);
    let uid = w.s.user("solo@x.test", None);
    let r = sign_in(&w, "solo@x.test");
    assert_eq!(r.status, 200, "{:?}", r.json());
    let d = r.json();
    assert_eq!(d["organization_id"], Value::Null);
    let access = d["access_token"].as_str().unwrap().to_string();
    let claims: Value = serde_json::from_slice(
        &latchkey::crypto::b64url_decode(access.split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    assert!(claims.get("org_id").is_none() && claims["sid"].is_string());
    // No org-scoped check passes it, whatever org is named.
    w.s.org("acme", json!({}));
    w.s.as_user("GET", "/api/v1/auth/me", "acme", &access, None)
        .assert_error(401, "unauthenticated");
    // The sentinel org is nobody's: not listed, not found.
    let orgs = w.s.admin_get("/api/v1/admin/orgs").data();
    assert!(!orgs.to_string().contains("org_none"));
    // Its refresh token rotates; once a member, refreshing into the org switches.
    let r = refresh(&w, d["refresh_token"].as_str().unwrap(), None);
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["organization_id"], Value::Null);
    let rt = r.json()["refresh_token"].as_str().unwrap().to_string();
    let org = w.s.admin_get("/api/v1/admin/orgs/acme").data()["org"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = w.s.admin_send(
        "POST",
        "/api/v1/admin/orgs/acme/members",
        Some(json!({ "userId": uid, "role": "member" })),
    );
    assert_eq!(r.status, 201);
    let r = refresh(&w, &rt, Some(&org));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["organization_id"], json!(org));
    // The org-less session ended with the switch.
    assert_eq!(refresh(&w, &rt, None).status, 400);
}

fn refresh(w: &W, rt: &str, org: Option<&str>) -> Resp {
    let mut b = json!({ "grant_type": "refresh_token", "client_id": w.id, "client_secret": w.key, "refresh_token": rt });
    if let Some(o) = org {
        b["organization_id"] = json!(o);
    }
    call(w, "POST", "/user_management/authenticate", None, Some(b))
}
