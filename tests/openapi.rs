//! `GET /api/v1/openapi.json` over real HTTP (API.md §8): the document is OpenAPI 3.1, it
//! documents every route of `latchkey::api::ROUTES` and nothing that is not routed, its
//! references resolve, and real answers of the server validate against it (status, content
//! type, required headers, body schema) with the small checker at the bottom of this file.
//! `.ci/schemathesis.sh` fuzzes the same document against a live server.

mod common;
use common::{PASSWORD, Resp, TestServer};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Documented operations whose handlers land with the webhooks/outbox work (API.md §5, §7).
/// Delete each line once its route is in ROUTES.
const NOT_YET_ROUTED: &[(&str, &str)] = &[];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn fetch_document(s: &TestServer) -> Value {
    let r = s.get("/api/v1/openapi.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    r.json()
}

/// (METHOD, path template) of every documented operation.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (m, _) in item.as_object().expect("path item") {
            if METHODS.contains(&m.as_str()) {
                ops.insert((m.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn the_document_is_served_as_openapi_3_1() {
    let s = TestServer::start();
    let doc = fetch_document(&s);
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["info"]["title"].is_string());
    // Paths are absolute, from the server's root.
    assert_eq!(doc["servers"][0]["url"], "/");
    // The same bytes as embedded.
    assert_eq!(
        s.get("/api/v1/openapi.json").body,
        latchkey::api::openapi::DOCUMENT.as_bytes()
    );
}

#[test]
fn every_route_is_documented_and_every_operation_is_routed() {
    let doc: Value = serde_json::from_str(latchkey::api::openapi::DOCUMENT).unwrap();
    let docs = documented(&doc);
    // The WorkOS-compatible routes speak WorkOS's API (its own documentation and the official
    // SDKs are their contract, tests/workos/), not Latchkey's.
    let routes: BTreeSet<(String, String)> = latchkey::api::ROUTES
        .iter()
        .filter(|(_, p, _)| !latchkey::workos::is_workos_path(p))
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let pending: BTreeSet<(String, String)> = NOT_YET_ROUTED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let undocumented: Vec<_> = routes.difference(&docs).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from src/api/openapi.json: {undocumented:?}"
    );
    let unrouted: Vec<_> = docs
        .difference(&routes)
        .filter(|op| !pending.contains(*op))
        .collect();
    assert!(
        unrouted.is_empty(),
        "documented operations with no route (nor in NOT_YET_ROUTED): {unrouted:?}"
    );
    // The exception list only names documented operations.
    for op in &pending {
        assert!(
            docs.contains(op),
            "NOT_YET_ROUTED names {op:?}, which is not documented"
        );
    }
}

/// Every `$ref` resolves; operation ids are unique; path parameters match the template; every
/// operation declares responses with a success and the 500 error.
#[test]
fn the_document_is_internally_consistent() {
    let doc: Value = serde_json::from_str(latchkey::api::openapi::DOCUMENT).unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in &refs {
        assert!(resolve_pointer(&doc, r).is_some(), "dangling $ref {r}");
    }
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_string)
            .collect();
        for (m, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| deref(&doc, p))
                        .filter(|p| p["in"] == "path")
                        .map(|p| {
                            assert_eq!(p["required"], true, "{m} {path}");
                            p["name"].as_str().unwrap().to_string()
                        })
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, in_template, "path parameters of {m} {path}");
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{m} {path} has no success response"
            );
            assert!(responses.contains_key("500"), "{m} {path} lacks 500");
            assert!(op["security"].is_array(), "{m} {path} states no security");
            if op.get("requestBody").is_some() {
                for code in ["400", "413", "415"] {
                    assert!(responses.contains_key(code), "{m} {path} lacks {code}");
                }
            }
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Real answers against the document.

struct World {
    s: TestServer,
    doc: Value,
    token: String,
    api_key: String,
    admin: String,
    owner_id: String,
}

fn world() -> World {
    let mut s = TestServer::start();
    let doc = fetch_document(&s);
    s.org("acme", json!({ "signupMode": "open" }));
    let owner_id = s.user("owner@acme.test", Some(("acme", "owner")));
    let token = s.login_ok("acme", "owner@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.as_user(
        "POST",
        "/api/v1/org/api-keys",
        "acme",
        &token,
        Some(json!({ "name": "backend" })),
    );
    let api_key = r.data()["key"].as_str().unwrap().to_string();
    let admin = s.admin_key();
    World {
        s,
        doc,
        token,
        api_key,
        admin,
        owner_id,
    }
}

impl World {
    /// Sends `method concrete` with the credentials its area takes, then checks the answer
    /// against the operation `method template` of the document. Returns the answer.
    fn call(&self, method: &str, template: &str, concrete: &str, body: Option<Value>) -> Resp {
        let bearer = format!("Bearer {}", self.token);
        let admin = format!("Bearer {}", self.admin);
        let headers: Vec<(&str, &str)> = if template.starts_with("/api/v1/admin/") {
            vec![("Authorization", &admin)]
        } else if template.starts_with("/api/v1/public/") {
            vec![("X-API-Key", &self.api_key)]
        } else if template.starts_with("/api/v1/auth/") || template.starts_with("/api/v1/org") {
            vec![("Authorization", &bearer), ("X-Org-Slug", "acme")]
        } else {
            vec![]
        };
        let r = self.s.send(method, concrete, &headers, body);
        self.check(method, template, &r);
        r
    }

    /// Like [`World::call`], with exactly the headers given.
    fn call_with(
        &self,
        method: &str,
        template: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let r = self.s.send(method, template, headers, body);
        self.check(method, template, &r);
        r
    }

    fn check(&self, method: &str, template: &str, r: &Resp) {
        let doc = &self.doc;
        let op = &doc["paths"][template][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {template} is not documented");
        let status = r.status.to_string();
        let resp = op["responses"]
            .get(&status)
            .map(|x| deref(doc, x))
            .unwrap_or_else(|| {
                panic!(
                    "{method} {template} answered {status}, not documented: {}",
                    String::from_utf8_lossy(&r.body)
                )
            });
        let what = format!("{method} {template} → {status}");
        if let Some(hs) = resp["headers"].as_object() {
            for (name, h) in hs {
                let h = deref(doc, h);
                if h["required"] == true {
                    assert!(r.header(name).is_some(), "{what}: header {name} missing");
                }
            }
        }
        let Some(content) = resp["content"].as_object() else {
            return;
        };
        let ct = r.header("Content-Type").unwrap_or("");
        let media = ct.split(';').next().unwrap().trim();
        let schema = &content
            .get(media)
            .unwrap_or_else(|| panic!("{what}: content type {ct} not documented"))["schema"];
        if media == "application/json" {
            let body = r.json();
            if let Err(e) = validate(doc, schema, &body, "$") {
                panic!("{what}: {e}\nbody: {body}");
            }
        }
    }
}

#[test]
fn real_answers_validate_against_the_document() {
    let w = world();
    let org = "/api/v1/org";
    // Operations and well-known documents.
    for p in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/api/v1/openapi.json",
    ] {
        w.call("GET", p, p, None);
    }
    // The operator.
    w.call("GET", "/api/v1/admin/orgs", "/api/v1/admin/orgs", None);
    w.call(
        "GET",
        "/api/v1/admin/orgs/{slug}",
        "/api/v1/admin/orgs/acme",
        None,
    );
    let r = w.call(
        "POST",
        "/api/v1/admin/users",
        "/api/v1/admin/users",
        Some(json!({ "email": "m@acme.test", "password": PASSWORD, "name": "M" })),
    );
    let member_id = r.data()["user"]["id"].as_str().unwrap().to_string();
    // An imported row and a refused one (the email just taken) in one answer, then a 400.
    let bcrypt = "$2b$04$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu";
    let r = w.call(
        "POST",
        "/api/v1/admin/users/import",
        "/api/v1/admin/users/import",
        Some(json!({ "users": [
            { "email": "imported@acme.test", "passwordHash": bcrypt, "passwordHashType": "bcrypt", "orgSlug": "acme" },
            { "email": "m@acme.test", "passwordHash": bcrypt, "passwordHashType": "bcrypt" },
        ] })),
    );
    assert_eq!(r.data()["imported"], 1);
    let r = w.call(
        "POST",
        "/api/v1/admin/users/import",
        "/api/v1/admin/users/import",
        Some(json!({ "users": [{ "email": "x@acme.test", "passwordHash": "$2b$31$x", "passwordHashType": "bcrypt" }] })),
    );
    assert_eq!(r.status, 400);
    let r = w.call(
        "POST",
        "/api/v1/admin/orgs/{slug}/members",
        "/api/v1/admin/orgs/acme/members",
        Some(json!({ "userId": member_id, "role": "member" })),
    );
    assert_eq!(r.status, 201);
    w.call(
        "GET",
        "/api/v1/admin/users",
        "/api/v1/admin/users?sortField=email&sortDir=asc&limit=5",
        None,
    );
    w.call(
        "GET",
        "/api/v1/admin/users/{id}",
        &format!("/api/v1/admin/users/{}", w.owner_id),
        None,
    );
    w.call(
        "PUT",
        "/api/v1/admin/orgs/{slug}",
        "/api/v1/admin/orgs/acme",
        Some(json!({ "plan": "pro", "settings": { "require2FA": false } })),
    );
    w.call("GET", "/api/v1/admin/audit", "/api/v1/admin/audit", None);
    let r = w.call(
        "POST",
        "/api/v1/admin/orgs",
        "/api/v1/admin/orgs",
        Some(json!({ "slug": "acme", "name": "Again" })),
    );
    assert_eq!(r.status, 409);
    let r = w.call(
        "GET",
        "/api/v1/admin/orgs/{slug}",
        "/api/v1/admin/orgs/nope-nope",
        None,
    );
    assert_eq!(r.status, 404);
    let r = w.call_with("GET", "/api/v1/admin/orgs", &[], None);
    assert_eq!(r.status, 401);

    // An end user.
    for p in [
        "/api/v1/auth/me",
        "/api/v1/auth/sessions",
        "/api/v1/auth/orgs",
        "/api/v1/auth/audit",
        "/api/v1/auth/2fa/status",
        "/api/v1/auth/invitations",
    ] {
        w.call("GET", p, p, None);
    }
    w.call(
        "PUT",
        "/api/v1/auth/me",
        "/api/v1/auth/me",
        Some(json!({ "firstName": "Ann", "phoneNumber": "+14155550123", "avatarUrl": null })),
    );
    w.call(
        "POST",
        "/api/v1/auth/2fa/setup",
        "/api/v1/auth/2fa/setup",
        None,
    );
    let r = w.call(
        "POST",
        "/api/v1/auth/is-available",
        "/api/v1/auth/is-available",
        Some(json!({ "email": "owner@acme.test" })),
    );
    assert_eq!(r.data()["available"], false);
    w.call(
        "POST",
        "/api/v1/auth/forgot-password",
        "/api/v1/auth/forgot-password",
        Some(json!({ "email": "owner@acme.test" })),
    );
    let r = w.call(
        "POST",
        "/api/v1/auth/signup",
        "/api/v1/auth/signup",
        Some(json!({ "email": "new@acme.test", "password": PASSWORD })),
    );
    assert_eq!(r.status, 201);
    let refresh = r.data()["refreshToken"].as_str().unwrap().to_string();
    let r = w.call_with(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": refresh })),
    );
    assert_eq!(r.status, 200);
    let r = w.call_with(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": "nope" })),
    );
    assert_eq!(r.status, 401);

    // The org.
    for p in [
        org,
        "/api/v1/org/members",
        "/api/v1/org/audit",
        "/api/v1/org/invites",
        "/api/v1/org/api-keys",
    ] {
        w.call("GET", p, p, None);
    }
    w.call(
        "GET",
        "/api/v1/org/members/{userId}",
        &format!("/api/v1/org/members/{member_id}"),
        None,
    );
    w.call(
        "PUT",
        "/api/v1/org/members/{userId}",
        &format!("/api/v1/org/members/{member_id}"),
        Some(json!({ "metadata": { "team": "x" } })),
    );
    w.call(
        "POST",
        "/api/v1/org/members/{userId}/deactivate",
        &format!("/api/v1/org/members/{member_id}/deactivate"),
        None,
    );
    let r = w.call(
        "POST",
        "/api/v1/org/members/invite",
        "/api/v1/org/members/invite",
        Some(json!({ "email": "guest@acme.test", "role": "org_admin" })),
    );
    assert_eq!(r.status, 201);
    let invite_id = r.data()["invite"]["id"].as_str().unwrap().to_string();
    w.call(
        "POST",
        "/api/v1/org/invites/{id}/resend",
        &format!("/api/v1/org/invites/{invite_id}/resend"),
        None,
    );
    w.call("PUT", org, org, Some(json!({ "appUrl": null })));
    let r = w.call(
        "GET",
        "/api/v1/org/members/{userId}",
        "/api/v1/org/members/usr_nope",
        None,
    );
    assert_eq!(r.status, 404);

    // A backend.
    let r = w.call(
        "POST",
        "/api/v1/public/verify",
        "/api/v1/public/verify",
        Some(json!({ "token": w.token })),
    );
    assert_eq!(r.data()["valid"], true);
    let r = w.call(
        "POST",
        "/api/v1/public/verify",
        "/api/v1/public/verify",
        Some(json!({ "token": "x.y.z" })),
    );
    assert_eq!(r.data()["valid"], false);
    w.call("GET", "/api/v1/public/users", "/api/v1/public/users", None);
    w.call(
        "GET",
        "/api/v1/public/users/{id}",
        &format!("/api/v1/public/users/{}", w.owner_id),
        None,
    );
    w.call(
        "GET",
        "/api/v1/public/members/{userId}",
        &format!("/api/v1/public/members/{}", w.owner_id),
        None,
    );
    let r = w.call(
        "POST",
        "/api/v1/public/users",
        "/api/v1/public/users",
        Some(json!({ "email": "api@acme.test", "isEmailVerified": false })),
    );
    assert_eq!(r.status, 201);
    let r = w.call_with(
        "GET",
        "/api/v1/public/users",
        &[("X-API-Key", "pk_live_nope")],
        None,
    );
    assert_eq!(r.status, 401);

    // Errors of the conventions.
    let login = "/api/v1/auth/login";
    let r = w.call_with(
        "POST",
        login,
        &[("X-Org-Slug", "acme")],
        Some(json!({ "email": "owner@acme.test", "password": "wrong password" })),
    );
    assert_eq!(r.status, 401);
    let r = w.call_with(
        "POST",
        login,
        &[("X-Org-Slug", "acme")],
        Some(json!({ "email": "owner@acme.test", "passwrd": "x" })),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["errors"][0]["field"].is_string());
    let r = w.s.raw(
        "POST",
        login,
        &[("X-Org-Slug".into(), "acme".into())],
        Some(b"email=a"),
    );
    w.check("POST", login, &r);
    assert_eq!(r.status, 415);
    let r = w.call_with("GET", "/api/v1/auth/me", &[], None);
    assert_eq!(r.status, 400);
    let r = w.call_with("GET", "/api/v1/auth/me", &[("X-Org-Slug", "acme")], None);
    assert_eq!(r.status, 401);
    let r = w.call_with(
        "POST",
        login,
        &[("X-Org-Slug", "no-such-org")],
        Some(json!({ "email": "a@b.test", "password": "x" })),
    );
    assert_eq!(r.status, 404);
    // 405 has its shared response in the document.
    let r = w.s.send("DELETE", "/api/v1/auth/me", &[], None);
    assert_eq!(r.status, 405);
    let not_allowed = &w.doc["components"]["responses"]["MethodNotAllowed"];
    assert!(r.header("Allow").is_some());
    validate(
        &w.doc,
        &not_allowed["content"]["application/json"]["schema"],
        &r.json(),
        "$",
    )
    .unwrap();

    // Last: the session ends.
    let r = w.call("POST", "/api/v1/auth/logout", "/api/v1/auth/logout", None);
    assert_eq!(r.status, 200);
    let r = w.call("GET", "/api/v1/auth/me", "/api/v1/auth/me", None);
    assert_eq!(r.status, 401);
}

/// The login answers (tokens, `requires2FASetup`, `requires2FA`) and the 2FA operations.
#[test]
fn the_login_and_two_factor_answers_validate() {
    let w = world();
    let login = "/api/v1/auth/login";
    let slug = [("X-Org-Slug", "acme")];
    let creds = json!({ "email": "owner@acme.test", "password": PASSWORD });
    let r = w.call_with("POST", login, &slug, Some(creds.clone()));
    assert!(r.data()["accessToken"].is_string());

    // The org requires 2FA: enrol with the partial token, which completes the login.
    w.call(
        "PUT",
        "/api/v1/org",
        "/api/v1/org",
        Some(json!({ "settings": { "require2FA": true } })),
    );
    let r = w.call_with("POST", login, &slug, Some(creds.clone()));
    assert_eq!(r.data()["requires2FASetup"], true);
    let partial = json!({ "partialToken": r.data()["partialToken"] });
    let r = w.call_with(
        "POST",
        "/api/v1/auth/2fa/setup",
        &slug,
        Some(partial.clone()),
    );
    let secret = common::base32_decode(r.data()["secret"].as_str().unwrap());
    let code = |s: &TestServer| {
        latchkey::totp::code_at_step(&secret, (s.state().now() / 1000 / 30) as u64)
    };
    let mut enable = partial;
    enable["code"] = json!(code(&w.s));
    let r = w.call_with("POST", "/api/v1/auth/2fa/enable", &slug, Some(enable));
    assert_eq!(r.data()["backupCodes"].as_array().unwrap().len(), 10);
    assert!(r.data()["accessToken"].is_string());
    w.call(
        "GET",
        "/api/v1/auth/2fa/status",
        "/api/v1/auth/2fa/status",
        None,
    );

    // Now the second step.
    let r = w.call_with("POST", login, &slug, Some(creds));
    assert_eq!(r.data()["requires2FA"], true);
    let partial = r.data()["partialToken"].clone();
    let r = w.call_with(
        "POST",
        "/api/v1/auth/verify-2fa",
        &slug,
        Some(json!({ "partialToken": partial, "code": "000000" })),
    );
    assert_eq!(r.status, 401);
    w.s.clock.advance_secs(30);
    let r = w.call_with(
        "POST",
        "/api/v1/auth/verify-2fa",
        &slug,
        Some(json!({ "partialToken": partial, "code": code(&w.s) })),
    );
    assert!(r.data()["accessToken"].is_string());
    w.s.clock.advance_secs(30);
    let r = w.call(
        "POST",
        "/api/v1/auth/2fa/backup-codes",
        "/api/v1/auth/2fa/backup-codes",
        Some(json!({ "code": code(&w.s) })),
    );
    let backup = r.data()["backupCodes"][0].as_str().unwrap().to_string();
    let r = w.call(
        "POST",
        "/api/v1/auth/2fa/disable",
        "/api/v1/auth/2fa/disable",
        Some(json!({ "code": backup })),
    );
    assert_eq!(r.status, 200);
}

/// The checker must refuse what it should, or the test above proves nothing.
#[test]
fn the_checker_refuses_bodies_off_the_document() {
    let doc: Value = serde_json::from_str(latchkey::api::openapi::DOCUMENT).unwrap();
    let user = json!({ "$ref": "#/components/schemas/User" });
    let good = json!({
        "id": "usr_01JD0000000000000000000000", "email": "a@b.test", "name": null,
        "firstName": null, "lastName": null, "avatarUrl": null, "phoneNumber": null,
        "role": "user", "isEmailVerified": false, "twoFactorEnabled": false,
        "createdAt": "2026-11-23T10:30:00.000Z", "updatedAt": "2026-11-23T10:30:00.000Z",
        "lastLoginAt": null
    });
    validate(&doc, &user, &good, "$").unwrap();
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("email");
    assert!(validate(&doc, &user, &missing, "$").is_err());
    let mut wrong_type = good.clone();
    wrong_type["isEmailVerified"] = json!("yes");
    assert!(validate(&doc, &user, &wrong_type, "$").is_err());
    let mut no_millis = good.clone();
    no_millis["createdAt"] = json!("2026-11-23T10:30:00Z");
    assert!(validate(&doc, &user, &no_millis, "$").is_err());
    let mut bad_enum = good;
    bad_enum["role"] = json!("root");
    assert!(validate(&doc, &user, &bad_enum, "$").is_err());
    let err = json!({ "$ref": "#/components/schemas/Error" });
    validate(
        &doc,
        &err,
        &json!({"status":"error","code":"x","message":"m"}),
        "$",
    )
    .unwrap();
    assert!(
        validate(
            &doc,
            &err,
            &json!({"status":"error","code":"x","message":"m","extra":1}),
            "$"
        )
        .is_err()
    );
    assert!(
        validate(
            &doc,
            &err,
            &json!({"status":"success","code":"x","message":"m"}),
            "$"
        )
        .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// A small JSON Schema checker for the subset the document uses: $ref, type (one or a list),
// const, enum, required, properties, additionalProperties, items, min/maxItems,
// min/maxLength, minimum/maximum, allOf, anyOf, oneOf, and `format: date-time` (which here
// means the contract's RFC 3339 UTC with milliseconds). `pattern` is left to schemathesis.

fn resolve_pointer<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    doc.pointer(r.strip_prefix('#')?)
}

fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => deref(doc, resolve_pointer(doc, r).expect("$ref resolves")),
        None => v,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        _ => false,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = deref(doc, schema);
    let Some(s) = schema.as_object() else {
        return Ok(()); // `true` / `{}`
    };
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_matches(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap_or(""), v)),
            _ => true,
        };
        if !ok {
            return Err(format!("{at}: {v} is not of type {t}"));
        }
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        return Err(format!("{at}: {v} is not {c}"));
    }
    if let Some(Value::Array(e)) = s.get("enum")
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {e:?}"));
    }
    if s.get("format").and_then(Value::as_str) == Some("date-time")
        && let Some(t) = v.as_str()
        && !is_timestamp(t)
    {
        return Err(format!(
            "{at}: {t} is not an RFC 3339 UTC time with milliseconds"
        ));
    }
    if let Some(text) = v.as_str() {
        let n = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
            || s.get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| n > m)
        {
            return Err(format!("{at}: length of {v} out of bounds"));
        }
    }
    if let Some(n) = v.as_f64()
        && (s
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
            || s.get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n > m))
    {
        return Err(format!("{at}: {v} out of bounds"));
    }
    if let Some(o) = v.as_object() {
        if let Some(Value::Array(req)) = s.get("required") {
            for k in req.iter().filter_map(Value::as_str) {
                if !o.contains_key(k) {
                    return Err(format!("{at}: required key `{k}` missing"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, x) in o {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(doc, ps, x, &format!("{at}.{k}"))?,
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{at}: key `{k}` is not allowed"));
                    }
                    Some(extra @ Value::Object(_)) => {
                        validate(doc, extra, x, &format!("{at}.{k}"))?
                    }
                    _ => {}
                },
            }
        }
    }
    if let Some(a) = v.as_array() {
        let n = a.len() as u64;
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
            || s.get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| n > m)
        {
            return Err(format!("{at}: {n} items out of bounds"));
        }
        if let Some(items) = s.get("items") {
            for (i, x) in a.iter().enumerate() {
                validate(doc, items, x, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            validate(doc, sub, v, at)?;
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf") {
        let errs: Vec<String> = any
            .iter()
            .filter_map(|sub| validate(doc, sub, v, at).err())
            .collect();
        if errs.len() == any.len() {
            return Err(format!("{at}: matches none of anyOf: {errs:?}"));
        }
    }
    if let Some(Value::Array(one)) = s.get("oneOf") {
        let n = one
            .iter()
            .filter(|sub| validate(doc, sub, v, at).is_ok())
            .count();
        if n != 1 {
            return Err(format!("{at}: matches {n} of oneOf, not exactly 1"));
        }
    }
    Ok(())
}
