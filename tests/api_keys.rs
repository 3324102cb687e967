//! Org API keys over real HTTP (API.md §5): the key shown once and stored hashed, the list
//! never showing it, who may manage keys, validation, scopes, revocation and expiry failing at
//! once, events and audit entries, and `lastUsedAt` written in batches.

mod common;
use common::{Resp, TestServer};
use latchkey::crypto;
use serde_json::{Value, json};

/// Orgs `acme` and `globex`; in acme an owner, an org_admin and a member; returns the
/// admin's access token.
fn server() -> (TestServer, String) {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s.org("globex", json!({}));
    s.user("owner@acme.test", Some(("acme", "owner")));
    s.user("admin@acme.test", Some(("acme", "org_admin")));
    s.user("member@acme.test", Some(("acme", "member")));
    s.user("admin@globex.test", Some(("globex", "org_admin")));
    let token = token(&s, "acme", "admin@acme.test");
    (s, token)
}

fn token(s: &TestServer, org: &str, email: &str) -> String {
    s.login_ok(org, email)["accessToken"]
        .as_str()
        .unwrap()
        .to_string()
}

fn create(s: &TestServer, token: &str, body: Value) -> Resp {
    s.as_user("POST", "/api/v1/org/api-keys", "acme", token, Some(body))
}

fn create_ok(s: &TestServer, token: &str, body: Value) -> (String, Value) {
    let r = create(s, token, body);
    assert_eq!(r.status, 201, "{:?}", r.json());
    let d = r.data();
    (d["key"].as_str().unwrap().to_string(), d["apiKey"].clone())
}

fn list(s: &TestServer, token: &str) -> Resp {
    s.as_user("GET", "/api/v1/org/api-keys", "acme", token, None)
}

/// A `/public/verify` call: the cheapest way to use a key.
fn use_key(s: &TestServer, key: &str) -> Resp {
    s.send(
        "POST",
        "/api/v1/public/verify",
        &[("X-API-Key", key)],
        Some(json!({ "token": "not-a-token" })),
    )
}

fn db(s: &TestServer) -> rusqlite::Connection {
    rusqlite::Connection::open(s.db_path()).unwrap()
}

#[test]
fn the_key_is_shown_once_and_stored_only_as_its_hash() {
    let (s, t) = server();
    let (key, api_key) = create_ok(&s, &t, json!({ "name": "backend" }));
    let hex = key.strip_prefix("pk_live_").expect("pk_live_ prefix");
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{key}"
    );
    assert!(api_key["id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(api_key["name"], "backend");
    assert_eq!(api_key["prefix"], &key[..10]);
    assert_eq!(
        api_key["scopes"],
        json!([
            "verify",
            "users:read",
            "users:write",
            "authenticate",
            "sessions:write",
            "invitations:write"
        ])
    );
    assert_eq!(api_key["isActive"], true);
    assert!(api_key["expiresAt"].is_null() && api_key["lastUsedAt"].is_null());
    assert!(api_key["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(api_key.get("key").is_none());

    // Stored as SHA-256 only: nowhere in the database is the key itself.
    let conn = db(&s);
    let stored: String = conn
        .query_row("SELECT key_hash FROM api_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, crypto::token_hash(&key));
    drop(conn);
    let file = std::fs::read(s.db_path()).unwrap();
    let wal = std::fs::read(s.db_path().with_extension("db-wal")).unwrap_or_default();
    for bytes in [&file, &wal] {
        assert!(
            !bytes.windows(hex.len()).any(|w| w == hex.as_bytes()),
            "the key is in the database"
        );
    }

    // The list shows the key's facts, never the key.
    let r = list(&s, &t);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(!body.contains(hex));
    let keys = r.data()["apiKeys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], api_key["id"]);
    assert!(keys[0].get("key").is_none());

    // Newest first.
    let (_, second) = create_ok(&s, &t, json!({ "name": "second" }));
    let keys = list(&s, &t).data()["apiKeys"].clone();
    assert_eq!(keys[0]["id"], second["id"]);
    assert_eq!(keys[1]["id"], api_key["id"]);
}

#[test]
fn only_org_admins_and_owners_manage_keys() {
    let (s, admin) = server();
    let owner = token(&s, "acme", "owner@acme.test");
    let member = token(&s, "acme", "member@acme.test");
    create(&s, &member, json!({ "name": "x" })).assert_error(403, "forbidden");
    list(&s, &member).assert_error(403, "forbidden");
    let (_, k) = create_ok(&s, &owner, json!({ "name": "owner's" }));
    let id = k["id"].as_str().unwrap();
    s.as_user(
        "DELETE",
        &format!("/api/v1/org/api-keys/{id}"),
        "acme",
        &member,
        None,
    )
    .assert_error(403, "forbidden");
    s.send(
        "POST",
        "/api/v1/org/api-keys",
        &[("X-Org-Slug", "acme")],
        Some(json!({ "name": "x" })),
    )
    .assert_error(401, "unauthenticated");
    // An org_admin of acme sees the owner's key; globex's admin does not, and cannot revoke it.
    assert_eq!(list(&s, &admin).data()["apiKeys"][0]["id"], k["id"]);
    let globex = token(&s, "globex", "admin@globex.test");
    let r = s.as_user("GET", "/api/v1/org/api-keys", "globex", &globex, None);
    assert_eq!(r.data()["apiKeys"], json!([]));
    s.as_user(
        "DELETE",
        &format!("/api/v1/org/api-keys/{id}"),
        "globex",
        &globex,
        None,
    )
    .assert_error(404, "not_found");
    // A globex token on acme's keys: another org.
    s.as_user("GET", "/api/v1/org/api-keys", "acme", &globex, None)
        .assert_error(403, "org_mismatch");
}

#[test]
fn creation_is_validated() {
    let (s, t) = server();
    let field = |r: Resp, f: &str| {
        let j = r.assert_error(400, "invalid_request");
        assert_eq!(j["errors"][0]["field"], f, "{j}");
    };
    field(create(&s, &t, json!({})), "name");
    field(create(&s, &t, json!({ "name": "  " })), "name");
    field(
        create(&s, &t, json!({ "name": "k", "expiresAt": "tomorrow" })),
        "expiresAt",
    );
    field(
        create(
            &s,
            &t,
            json!({ "name": "k", "expiresAt": "2001-01-01T00:00:00Z" }),
        ),
        "expiresAt",
    );
    field(
        create(&s, &t, json!({ "name": "k", "scopes": ["users:delete"] })),
        "scopes",
    );
    field(
        create(&s, &t, json!({ "name": "k", "scopes": [] })),
        "scopes",
    );
    field(
        create(&s, &t, json!({ "name": "k", "scopes": "verify" })),
        "scopes",
    );
    field(create(&s, &t, json!({ "name": "k", "key": "mine" })), "key");

    let (_, k) = create_ok(
        &s,
        &t,
        json!({ "name": "k", "scopes": ["users:read", "verify", "verify"], "expiresAt": "2099-01-01T00:00:00+01:00" }),
    );
    assert_eq!(k["scopes"], json!(["verify", "users:read"]));
    assert_eq!(k["expiresAt"], "2098-12-31T23:00:00.000Z");
}

#[test]
fn scopes_are_enforced_on_public_endpoints() {
    let (s, t) = server();
    let (key, _) = create_ok(&s, &t, json!({ "name": "verifier", "scopes": ["verify"] }));
    assert_eq!(use_key(&s, &key).status, 200);
    let r = s.send("GET", "/api/v1/public/users", &[("X-API-Key", &key)], None);
    r.assert_error(403, "forbidden");
    assert!(r.header("X-RateLimit-Limit").is_some());
    s.send(
        "POST",
        "/api/v1/public/invitations",
        &[("X-API-Key", &key)],
        Some(json!({ "email": "x@example.com" })),
    )
    .assert_error(403, "forbidden");
}

#[test]
fn a_revoked_key_fails_at_once() {
    let (s, t) = server();
    let (key, k) = create_ok(&s, &t, json!({ "name": "backend" }));
    let (other, _) = create_ok(&s, &t, json!({ "name": "other" }));
    let id = k["id"].as_str().unwrap().to_string();
    assert_eq!(use_key(&s, &key).status, 200);

    let path = format!("/api/v1/org/api-keys/{id}");
    let r = s.as_user("DELETE", &path, "acme", &t, None);
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["apiKey"]["isActive"], false);
    use_key(&s, &key).assert_error(401, "invalid_api_key");
    assert_eq!(use_key(&s, &other).status, 200, "other keys live on");
    // Again: nothing more to do, still 200, no second event.
    assert_eq!(s.as_user("DELETE", &path, "acme", &t, None).status, 200);
    s.as_user("DELETE", "/api/v1/org/api-keys/key_nope", "acme", &t, None)
        .assert_error(404, "not_found");

    let keys = list(&s, &t).data()["apiKeys"].clone();
    let listed = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["isActive"], false);
    assert!(listed["revokedAt"].is_string());

    // Events (in the write transaction) and audit entries.
    let conn = db(&s);
    let events: Vec<(String, String)> = conn
        .prepare("SELECT event, payload FROM events WHERE event LIKE 'api_key.%' ORDER BY created_at, id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        ["api_key.created", "api_key.created", "api_key.revoked"]
    );
    let revoked: Value = serde_json::from_str(&events[2].1).unwrap();
    assert_eq!(revoked["orgSlug"], "acme");
    assert_eq!(revoked["data"]["apiKey"]["id"], id.as_str());
    assert_eq!(revoked["data"]["apiKey"]["prefix"], &key[..10]);
    assert_eq!(revoked["data"]["revokedBy"]["email"], "admin@acme.test");
    let created: Value = events[..2]
        .iter()
        .map(|(_, p)| serde_json::from_str::<Value>(p).unwrap())
        .find(|e| e["data"]["apiKey"]["id"] == id.as_str())
        .expect("a created event for the key");
    assert_eq!(created["data"]["createdBy"]["email"], "admin@acme.test");
    assert_eq!(created["data"]["apiKey"]["name"], "backend");
    let audits: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE action IN ('api_key.created', 'api_key.revoked')
             AND target_type = 'api_key' AND actor_type = 'user'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audits, 3);
}

#[test]
fn an_expired_key_fails() {
    let (s, t) = server();
    let now = s.state().now();
    let at = latchkey::clock::rfc3339(now + 60_000);
    let (key, k) = create_ok(&s, &t, json!({ "name": "short", "expiresAt": at }));
    assert_eq!(k["expiresAt"], at.as_str());
    assert_eq!(use_key(&s, &key).status, 200);
    s.clock.advance_secs(61);
    use_key(&s, &key).assert_error(401, "invalid_api_key");
    assert_eq!(list(&s, &t).data()["apiKeys"][0]["isActive"], false);
}

#[test]
fn keys_of_a_deleted_org_fail() {
    let (mut s, t) = server();
    let (key, _) = create_ok(&s, &t, json!({ "name": "backend" }));
    assert_eq!(use_key(&s, &key).status, 200);
    assert_eq!(
        s.admin_send("DELETE", "/api/v1/admin/orgs/acme", None)
            .status,
        200
    );
    use_key(&s, &key).assert_error(401, "invalid_api_key");
}

#[test]
fn last_used_is_kept_in_memory_and_written_in_batches() {
    let (s, t) = server();
    let (key, k) = create_ok(&s, &t, json!({ "name": "backend" }));
    let id = k["id"].as_str().unwrap().to_string();
    let before = s.state().now();
    assert_eq!(use_key(&s, &key).status, 200);
    // The list already shows it (from memory).
    let listed = list(&s, &t).data()["apiKeys"][0].clone();
    let shown = latchkey::clock::parse_rfc3339(listed["lastUsedAt"].as_str().unwrap()).unwrap();
    assert!(shown >= before - 1, "{listed}");

    // A use ≥ 5 s after the last flush writes every pending use in one go.
    s.clock.advance_secs(6);
    assert_eq!(use_key(&s, &key).status, 200);
    let stored: Option<i64> = db(&s)
        .query_row(
            "SELECT last_used_at FROM api_keys WHERE id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    let stored = stored.expect("flushed");
    assert!(stored >= before + 6_000, "{stored} vs {before}");
    let listed = list(&s, &t).data()["apiKeys"][0].clone();
    assert_eq!(
        latchkey::clock::parse_rfc3339(listed["lastUsedAt"].as_str().unwrap()).unwrap(),
        stored
    );
}

#[test]
fn pending_uses_are_written_on_shutdown() {
    let (mut s, t) = server();
    let (key, k) = create_ok(&s, &t, json!({ "name": "backend" }));
    assert_eq!(use_key(&s, &key).status, 200);
    s.stop();
    let stored: Option<i64> = db(&s)
        .query_row(
            "SELECT last_used_at FROM api_keys WHERE id = ?1",
            [k["id"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored.is_some());
}
