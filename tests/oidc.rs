//! The OAuth 2.1 / OpenID Connect provider over real HTTP (API.md §13, docs/oidc.md): the
//! sign-in driven like a browser without JavaScript (tests/common/browser.rs), the back
//! channel as a relying party calls it. Tests are named after the OpenID Foundation's Basic
//! OP test plan where one fits (`oidcc_…`); the attacks sit next to the paths they attack.
//! Real client libraries (authlib, openid-client) run in tests/browser/.

mod common;
use common::browser::{Browser, html, location};
use common::{PASSWORD, Resp, TestServer};
use latchkey::crypto;
use serde_json::{Value, json};
use std::collections::HashMap;

const REDIRECT: &str = "http://app.test/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWjvxmTA0123456789";

fn challenge(verifier: &str) -> String {
    crypto::b64url(&crypto::sha256(verifier.as_bytes()))
}

struct Setup {
    s: TestServer,
    /// A confidential third-party client: (id, secret).
    app: (String, String),
}

fn client(s: &mut TestServer, body: Value) -> (String, Option<String>) {
    let r = s.admin_send("POST", "/api/v1/admin/oauth-clients", Some(body));
    assert_eq!(r.status, 201, "{:?}", r.json());
    let d = r.data();
    (
        d["client"]["id"].as_str().unwrap().to_string(),
        d["clientSecret"].as_str().map(str::to_string),
    )
}

fn setup() -> Setup {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s.org("globex", json!({}));
    s.user("ann@acme.test", Some(("acme", "member")));
    let (id, secret) = client(
        &mut s,
        json!({ "name": "Acme Portal", "redirectUris": [REDIRECT],
                "postLogoutRedirectUris": ["http://app.test/bye"] }),
    );
    Setup {
        s,
        app: (id, secret.unwrap()),
    }
}

fn query_of(loc: &str) -> HashMap<String, String> {
    let q = loc.split_once('?').map(|(_, q)| q).unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

fn authorize_path(client_id: &str, extra: &[(&str, &str)]) -> String {
    let ch = challenge(VERIFIER);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile email offline_access")
        .append_pair("state", "st-123")
        .append_pair("nonce", "n-456")
        .append_pair("code_challenge", &ch)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("/oauth2/authorize?{}", q.finish())
}

/// Signs in on the hosted login page (following `return_to`), consents if asked, and returns
/// the final redirect to the client.
fn sign_in_and_authorize(b: &mut Browser<'_>, path: &str, email: &str) -> Resp {
    let mut r = b.get(path);
    if r.status == 303 && location(&r).starts_with("/login") {
        let q = query_of(location(&r));
        let login = location(&r).to_string();
        r = b.submit(
            &login,
            "/login",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("return_to", &q["return_to"]),
                ("org", q.get("org").map(String::as_str).unwrap_or("")),
            ],
        );
        assert_eq!(r.status, 303, "{}", html(&r));
        let back = location(&r).to_string();
        assert!(back.starts_with("/oauth2/authorize?"), "{back}");
        r = b.get(&back);
    }
    consent(b, r)
}

/// Approves the consent page if `r` is one.
fn consent(b: &mut Browser<'_>, r: Resp) -> Resp {
    if r.status != 200 {
        return r;
    }
    let page = html(&r);
    assert!(page.contains("authorize&#x2f;decide"), "{page}");
    let fields = hidden_fields(&page);
    let mut all: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.push(("decision", "approve"));
    b.post("/oauth2/authorize/decide", &all)
}

fn hidden_fields(page: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in page.split("<input type=\"hidden\" name=\"").skip(1) {
        let name = part.split('"').next().unwrap().to_string();
        let value = part
            .split("value=\"")
            .nth(1)
            .and_then(|v| v.split('"').next())
            .unwrap_or("")
            .replace("&amp;", "&")
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"");
        out.push((name, value));
    }
    out
}

fn token(s: &TestServer, auth: Option<(&str, &str)>, form: &[(&str, &str)]) -> Resp {
    form_post(s, "/oauth2/token", auth, form)
}

fn form_post(
    s: &TestServer,
    path: &str,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Resp {
    let mut h = vec![(
        "Content-Type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    if let Some((id, secret)) = auth {
        h.push((
            "Authorization".into(),
            format!("Basic {}", crypto::b64(format!("{id}:{secret}").as_bytes())),
        ));
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    s.raw("POST", path, &h, Some(body.as_bytes()))
}

fn code_of(r: &Resp) -> String {
    assert_eq!(r.status, 302, "{}", html(r));
    let loc = location(r);
    assert!(loc.starts_with(REDIRECT), "{loc}");
    let q = query_of(loc);
    assert_eq!(q.get("state").map(String::as_str), Some("st-123"));
    assert_eq!(q.get("iss").map(String::as_str), Some("http://127.0.0.1"));
    q.get("code")
        .unwrap_or_else(|| panic!("no code: {loc}"))
        .clone()
}

fn exchange(t: &Setup, code: &str) -> Resp {
    token(
        &t.s,
        Some((&t.app.0, &t.app.1)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
}

fn userinfo(s: &TestServer, access: &str) -> Resp {
    s.raw(
        "GET",
        "/oauth2/userinfo",
        &[("Authorization".into(), format!("Bearer {access}"))],
        None,
    )
}

fn jwt_claims(t: &str) -> Value {
    let part = t.split('.').nth(1).unwrap();
    serde_json::from_slice(&crypto::b64url_decode(part).unwrap()).unwrap()
}

#[test]
fn oidcc_server_discovery_lists_the_real_endpoints() {
    let s = TestServer::start();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}");
        let d = r.json();
        assert_eq!(d["issuer"], "http://127.0.0.1");
        assert_eq!(
            d["authorization_endpoint"],
            "http://127.0.0.1/oauth2/authorize"
        );
        assert_eq!(d["token_endpoint"], "http://127.0.0.1/oauth2/token");
        assert_eq!(d["response_types_supported"], json!(["code"]));
        assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
        assert!(
            d["id_token_signing_alg_values_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("RS256"))
        );
        assert_eq!(d["authorization_response_iss_parameter_supported"], true);
        for scope in ["openid", "profile", "email", "offline_access"] {
            assert!(
                d["scopes_supported"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(scope))
            );
        }
        for g in [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
        ] {
            assert!(
                d["grant_types_supported"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(g))
            );
        }
    }
    let oidc = s.get("/.well-known/openid-configuration").json();
    assert_eq!(
        oidc["userinfo_endpoint"],
        "http://127.0.0.1/oauth2/userinfo"
    );
    assert_eq!(
        oidc["end_session_endpoint"],
        "http://127.0.0.1/oauth2/logout"
    );
    assert_eq!(
        oidc["device_authorization_endpoint"],
        "http://127.0.0.1/oauth2/device_authorization"
    );
}

#[test]
fn clients_are_managed_by_the_operator_and_by_org_admins_of_their_own_org_only() {
    let mut t = setup();
    // The secret is shown once and stored only as its hash.
    let stored: Option<String> = rusqlite_free_secret_hash(&t.s, &t.app.0);
    assert_eq!(
        stored.as_deref(),
        Some(crypto::token_hash(&t.app.1).as_str())
    );
    let r =
        t.s.admin_get(&format!("/api/v1/admin/oauth-clients/{}", t.app.0));
    assert_eq!(r.status, 200);
    assert!(!r.body_text().contains(&t.app.1));
    assert_eq!(r.data()["client"]["public"], false);
    // An org admin of acme registers acme's own client…
    t.s.user("boss@acme.test", Some(("acme", "org_admin")));
    let boss = t.s.login_ok("acme", "boss@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let body =
        json!({ "name": "Acme CLI", "redirectUris": ["http://localhost:8765/cb"], "public": true });
    let r = t.s.as_user(
        "POST",
        "/api/v1/org/oauth-clients",
        "acme",
        &boss,
        Some(body),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.data()["clientSecret"], Value::Null);
    assert_eq!(r.data()["client"]["orgSlug"], "acme");
    let acme_cli = r.data()["client"]["id"].as_str().unwrap().to_string();
    // …but never a first-party one, another org's, or a redirect to a host the operator did
    // not allow.
    let r = t.s.as_user(
        "POST",
        "/api/v1/org/oauth-clients",
        "acme",
        &boss,
        Some(json!({ "name": "x", "redirectUris": ["https://app.test/cb"], "firstParty": true })),
    );
    assert_eq!(r.status, 403);
    let r = t.s.as_user(
        "POST",
        "/api/v1/org/oauth-clients",
        "acme",
        &boss,
        Some(json!({ "name": "x", "redirectUris": ["https://evil.example/cb"] })),
    );
    r.assert_error(400, "invalid_request");
    let r = t.s.as_user(
        "POST",
        "/api/v1/org/oauth-clients",
        "acme",
        &boss,
        Some(json!({ "name": "x", "redirectUris": ["https://app.test/cb"], "orgSlug": "globex" })),
    );
    r.assert_error(403, "org_mismatch");
    // Another org's admin sees none of acme's clients.
    t.s.user("gil@globex.test", Some(("globex", "owner")));
    let gil = t.s.login_ok("globex", "gil@globex.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/org/oauth-clients/{acme_cli}");
    t.s.as_user("GET", &path, "globex", &gil, None)
        .assert_error(404, "not_found");
    t.s.as_user("DELETE", &path, "globex", &gil, None)
        .assert_error(404, "not_found");
    let list =
        t.s.as_user("GET", "/api/v1/org/oauth-clients", "globex", &gil, None);
    assert_eq!(list.data()["clients"], json!([]));
    // A member is no admin.
    let ann = t.s.login_ok("acme", "ann@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        t.s.as_user("GET", "/api/v1/org/oauth-clients", "acme", &ann, None)
            .status,
        403
    );
    // Bad input is a 400 naming the field; an unknown field too.
    let r = t.s.admin_send(
        "POST",
        "/api/v1/admin/oauth-clients",
        Some(json!({ "name": "x", "redirectUris": ["javascript:alert(1)"] })),
    );
    r.assert_error(400, "invalid_request");
    let r = t.s.admin_send(
        "POST",
        "/api/v1/admin/oauth-clients",
        Some(json!({ "name": "x", "redirectUris": [REDIRECT], "secret": "mine" })),
    );
    r.assert_error(400, "invalid_request");
    // Update and delete.
    let r = t.s.admin_send(
        "PUT",
        &format!("/api/v1/admin/oauth-clients/{}", t.app.0),
        Some(json!({ "name": "Acme Portal 2" })),
    );
    assert_eq!(r.data()["client"]["name"], "Acme Portal 2");
    let r = t.s.as_user("DELETE", &path, "acme", &boss, None);
    assert_eq!(r.status, 200);
    assert_eq!(t.s.as_user("GET", &path, "acme", &boss, None).status, 404);
}

/// The stored secret hash of a client, read through the library's own storage layer.
fn rusqlite_free_secret_hash(s: &TestServer, id: &str) -> Option<String> {
    s.state()
        .db
        .read(|c| latchkey::db::oauth::find_client(c, id))
        .unwrap()
        .and_then(|c| c.secret_hash)
}

trait BodyText {
    fn body_text(&self) -> String;
}
impl BodyText for Resp {
    fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

#[test]
fn oidcc_basic_code_flow_signs_in_consents_and_gets_verified_tokens() {
    let t = setup();
    let mut b = Browser::new(&t.s);
    let r = sign_in_and_authorize(&mut b, &authorize_path(&t.app.0, &[]), "ann@acme.test");
    let code = code_of(&r);
    let r = exchange(&t, &code);
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(r.header("Pragma"), Some("no-cache"));
    let tok = r.json();
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["scope"], "openid profile email offline_access");
    assert!(tok["refresh_token"].is_string());
    // The id_token: RS256, for this client, with the nonce, the session and the org.
    let id = tok["id_token"].as_str().unwrap();
    let header: Value =
        serde_json::from_slice(&crypto::b64url_decode(id.split('.').next().unwrap()).unwrap())
            .unwrap();
    assert_eq!(header["alg"], "RS256");
    let c = jwt_claims(id);
    assert_eq!(c["iss"], "http://127.0.0.1");
    assert_eq!(c["aud"], t.app.0);
    assert_eq!(c["nonce"], "n-456");
    assert_eq!(c["email"], "ann@acme.test");
    assert_eq!(c["org_slug"], "acme");
    assert_eq!(c["amr"], json!(["pwd"]));
    assert!(c["auth_time"].is_i64() && c["sid"].is_string());
    // The access token works at userinfo (GET and POST) and names the same subject.
    let access = tok["access_token"].as_str().unwrap();
    let u = userinfo(&t.s, access);
    assert_eq!(u.status, 200, "{}", u.body_text());
    assert_eq!(u.json()["sub"], c["sub"]);
    assert_eq!(u.json()["email"], "ann@acme.test");
    let u = form_post(&t.s, "/oauth2/userinfo", None, &[("access_token", access)]);
    assert_eq!(u.json()["sub"], c["sub"]);
    // The second sign-in of the same person skips the consent already given.
    let r = b.get(&authorize_path(&t.app.0, &[]));
    assert_eq!(r.status, 302);
    assert!(query_of(location(&r)).contains_key("code"));
}

#[test]
fn oidcc_codereuse_revokes_what_the_first_use_produced() {
    let t = setup();
    let mut b = Browser::new(&t.s);
    let code = code_of(&sign_in_and_authorize(
        &mut b,
        &authorize_path(&t.app.0, &[]),
        "ann@acme.test",
    ));
    let first = exchange(&t, &code).json();
    let access = first["access_token"].as_str().unwrap().to_string();
    assert_eq!(userinfo(&t.s, &access).status, 200);
    let again = exchange(&t, &code);
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["error"], "invalid_grant");
    // The first token set is dead now.
    let u = userinfo(&t.s, &access);
    assert_eq!(u.status, 401);
    assert!(
        u.header("WWW-Authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    let r = token(
        &t.s,
        Some((&t.app.0, &t.app.1)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[test]
fn a_code_lives_60_seconds_and_only_for_its_client_verifier_and_redirect_uri() {
    let mut t = setup();
    let (other, other_secret) = client(
        &mut t.s,
        json!({ "name": "Other", "redirectUris": [REDIRECT], "firstParty": true }),
    );
    let other_secret = other_secret.unwrap();
    let mut b = Browser::new(&t.s);
    let code = code_of(&sign_in_and_authorize(
        &mut b,
        &authorize_path(&t.app.0, &[]),
        "ann@acme.test",
    ));
    // Client B presenting client A's code.
    let r = token(
        &t.s,
        Some((&other, &other_secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_grant");
    // A wrong verifier, a different redirect URI.
    let mut wrong = VERIFIER.to_string();
    wrong.replace_range(0..1, "X");
    let r = token(
        &t.s,
        Some((&t.app.0, &t.app.1)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &wrong),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_grant");
    let r = token(
        &t.s,
        Some((&t.app.0, &t.app.1)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://app.test/other"),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_grant");
    // Past 60 s the code is gone.
    t.s.clock.advance_secs(61);
    assert_eq!(exchange(&t, &code).json()["error"], "invalid_grant");
    // A fresh code still works (none of the attempts above spent anything of it).
    let code = code_of(&b.get(&authorize_path(&t.app.0, &[])));
    assert_eq!(exchange(&t, &code).status, 200);
}

#[test]
fn oidcc_ensure_registered_redirect_uri_and_unknown_clients_never_redirect() {
    let t = setup();
    let mut b = Browser::new(&t.s);
    let evil = authorize_path(&t.app.0, &[]).replace(
        &url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
        "https%3A%2F%2Fevil.example%2Fcb",
    );
    let r = b.get(&evil);
    assert_eq!(r.status, 400);
    assert!(r.header("Location").is_none());
    assert!(html(&r).contains("not registered") || html(&r).contains("registriert"));
    let r = b.get(&authorize_path("client_nope", &[]));
    assert_eq!(r.status, 400);
    assert!(r.header("Location").is_none());
    // A near miss is no match either (exact comparison).
    let near = authorize_path(&t.app.0, &[]).replace(
        &url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
        "http%3A%2F%2Fapp.test%2Fcallback%2F",
    );
    assert_eq!(b.get(&near).status, 400);
}

#[test]
fn pkce_is_required_and_only_s256() {
    let t = setup();
    let mut b = Browser::new(&t.s);
    let base = format!(
        "/oauth2/authorize?client_id={}&redirect_uri={}&response_type=code&scope=openid&state=st-123",
        t.app.0,
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    for extra in [
        String::new(),
        format!("&code_challenge={VERIFIER}&code_challenge_method=plain"),
        format!("&code_challenge={}", challenge(VERIFIER)),
    ] {
        let r = b.get(&format!("{base}{extra}"));
        assert_eq!(r.status, 302, "{extra}");
        let q = query_of(location(&r));
        assert_eq!(q["error"], "invalid_request", "{extra}");
        assert_eq!(q["state"], "st-123");
    }
    let r =
        b.get(&authorize_path(&t.app.0, &[]).replace("response_type=code", "response_type=token"));
    assert_eq!(query_of(location(&r))["error"], "unsupported_response_type");
}

#[test]
fn oidcc_prompt_none_login_and_max_age() {
    let t = setup();
    let mut b = Browser::new(&t.s);
    // Not signed in: prompt=none answers login_required to the client.
    let r = b.get(&authorize_path(&t.app.0, &[("prompt", "none")]));
    assert_eq!(r.status, 302);
    assert_eq!(query_of(location(&r))["error"], "login_required");
    code_of(&sign_in_and_authorize(
        &mut b,
        &authorize_path(&t.app.0, &[]),
        "ann@acme.test",
    ));
    // Signed in and consented: prompt=none gets a code at once.
    let r = b.get(&authorize_path(&t.app.0, &[("prompt", "none")]));
    code_of(&r);
    // prompt=login and a passed max_age send the person to sign in again…
    for extra in [("prompt", "login"), ("max_age", "60")] {
        t.s.clock.advance_secs(120);
        let r = b.get(&authorize_path(&t.app.0, &[extra]));
        assert_eq!(r.status, 303, "{extra:?}");
        assert!(location(&r).starts_with("/login?"), "{}", location(&r));
        let q = query_of(location(&r));
        // The login form shows even though the browser is signed in.
        let form = b.get(location(&r));
        assert_eq!(form.status, 200);
        assert!(html(&form).contains("name=\"password\""));
        // …and after signing in, the id_token's auth_time is the new sign-in (120 s after
        // the last one; the test clock runs with the real one, so the sign-in's second is
        // between these two readings).
        let login = location(&r).to_string();
        let before = t.s.state().now() / 1000;
        let r = b.submit(
            &login,
            "/login",
            &[
                ("email", "ann@acme.test"),
                ("password", PASSWORD),
                ("return_to", &q["return_to"]),
            ],
        );
        let r = b.get(location(&r));
        let tok = exchange(&t, &code_of(&r)).json();
        let c = jwt_claims(tok["id_token"].as_str().unwrap());
        let auth_time = c["auth_time"].as_i64().unwrap();
        let after = t.s.state().now() / 1000;
        assert!(
            (before..=after).contains(&auth_time),
            "auth_time {auth_time} not in {before}..={after}"
        );
    }
    // A max_age the sign-in still meets: no new sign-in.
    code_of(&b.get(&authorize_path(&t.app.0, &[("max_age", "3600")])));
}

#[test]
fn oidcc_unknown_parameters_are_ignored_and_the_consent_can_be_denied() {
    let t = setup();
    let mut b = Browser::new(&t.s);
    let r = sign_in_and_authorize(
        &mut b,
        &authorize_path(&t.app.0, &[("foo", "bar"), ("claims_locales", "fr")]),
        "ann@acme.test",
    );
    code_of(&r);
    // A second person denies.
    let mut s = t.s;
    s.user("bob@acme.test", Some(("acme", "member")));
    let mut b = Browser::new(&s);
    let r = b.get(&authorize_path(&t.app.0, &[]));
    let q = query_of(location(&r));
    let r = b.submit(
        location(&r).to_string().as_str(),
        "/login",
        &[
            ("email", "bob@acme.test"),
            ("password", PASSWORD),
            ("return_to", &q["return_to"]),
        ],
    );
    let page = b.get(location(&r));
    let fields = hidden_fields(&html(&page));
    let mut all: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.push(("decision", "deny"));
    let r = b.post("/oauth2/authorize/decide", &all);
    assert_eq!(r.status, 302);
    assert_eq!(query_of(location(&r))["error"], "access_denied");
    // The decision form needs this browser's CSRF token.
    let mut forged: Vec<(&str, &str)> = all.iter().filter(|(k, _)| *k != "csrf").copied().collect();
    forged.retain(|(k, _)| *k != "decision");
    forged.push(("decision", "approve"));
    forged.push(("csrf", "forged"));
    assert_eq!(b.post("/oauth2/authorize/decide", &forged).status, 403);
}

#[test]
fn an_org_owned_client_never_obtains_tokens_for_another_org() {
    let mut t = setup();
    let (globex_app, secret) = client(
        &mut t.s,
        json!({ "name": "Globex App", "redirectUris": [REDIRECT], "orgSlug": "globex", "firstParty": true }),
    );
    let _ = secret;
    // Ann is a member of acme only: the globex client cannot sign her in, even if asked for acme.
    let mut b = Browser::new(&t.s);
    let r = sign_in_and_authorize(
        &mut b,
        &authorize_path(&globex_app, &[("organization", "acme")]),
        "ann@acme.test",
    );
    assert_eq!(r.status, 302, "{}", html(&r));
    assert_eq!(query_of(location(&r))["error"], "access_denied");
    // A deployment client asked for an org she is not in: also refused.
    let r = b.get(&authorize_path(&t.app.0, &[("organization", "globex")]));
    assert_eq!(query_of(location(&r))["error"], "access_denied");
}

#[test]
fn refresh_rotates_and_a_reused_refresh_token_revokes_the_session() {
    let t = setup();
    let mut b = Browser::new(&t.s);
    let code = code_of(&sign_in_and_authorize(
        &mut b,
        &authorize_path(&t.app.0, &[]),
        "ann@acme.test",
    ));
    let first = exchange(&t, &code).json();
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let auth = Some((t.app.0.as_str(), t.app.1.as_str()));
    let r = token(
        &t.s,
        auth,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let second = r.json();
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    assert!(second["id_token"].is_string());
    // Another client cannot use it.
    let mut s = t.s;
    let (other, other_secret) = client(&mut s, json!({ "name": "O", "redirectUris": [REDIRECT] }));
    let r = token(
        &s,
        Some((&other, &other_secret.unwrap())),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    );
    assert_eq!(r.json()["error"], "invalid_grant");
    // The old one, past the grace window: reuse → the whole session ends.
    s.clock.advance_secs(120);
    let r = token(
        &s,
        auth,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    );
    assert_eq!(r.json()["error"], "invalid_grant");
    let r = token(
        &s,
        auth,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    );
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[test]
fn revocation_and_introspection_answer_only_for_the_calling_clients_tokens() {
    let mut t = setup();
    let (other, other_secret) =
        client(&mut t.s, json!({ "name": "O", "redirectUris": [REDIRECT] }));
    let other_secret = other_secret.unwrap();
    let mut b = Browser::new(&t.s);
    let code = code_of(&sign_in_and_authorize(
        &mut b,
        &authorize_path(&t.app.0, &[]),
        "ann@acme.test",
    ));
    let tok = exchange(&t, &code).json();
    let access = tok["access_token"].as_str().unwrap();
    let refresh = tok["refresh_token"].as_str().unwrap();
    let me = Some((t.app.0.as_str(), t.app.1.as_str()));
    let r = form_post(&t.s, "/oauth2/introspect", me, &[("token", access)]);
    let i = r.json();
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["client_id"], t.app.0);
    assert_eq!(i["token_type"], "access_token");
    let i = form_post(&t.s, "/oauth2/introspect", me, &[("token", refresh)]).json();
    assert_eq!(
        (i["active"].clone(), i["token_type"].clone()),
        (json!(true), json!("refresh_token"))
    );
    // Another client learns nothing, and cannot revoke it.
    let them = Some((other.as_str(), other_secret.as_str()));
    assert_eq!(
        form_post(&t.s, "/oauth2/introspect", them, &[("token", access)]).json(),
        json!({ "active": false })
    );
    assert_eq!(
        form_post(&t.s, "/oauth2/revoke", them, &[("token", refresh)]).status,
        200
    );
    assert_eq!(userinfo(&t.s, access).status, 200);
    // Garbage is simply inactive.
    assert_eq!(
        form_post(&t.s, "/oauth2/introspect", me, &[("token", "nonsense")]).json()["active"],
        false
    );
    // The owner revokes: the session ends.
    assert_eq!(
        form_post(
            &t.s,
            "/oauth2/revoke",
            me,
            &[("token", refresh), ("token_type_hint", "refresh_token")]
        )
        .status,
        200
    );
    assert_eq!(userinfo(&t.s, access).status, 401);
    assert_eq!(
        form_post(&t.s, "/oauth2/introspect", me, &[("token", access)]).json()["active"],
        false
    );
}

#[test]
fn client_authentication_is_checked_and_errors_are_rfc_6749() {
    let t = setup();
    let r = token(
        &t.s,
        Some((&t.app.0, "sk_wrong")),
        &[("grant_type", "authorization_code"), ("code", "x")],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_client");
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Basic"));
    // No secret for a confidential client.
    let r = token(
        &t.s,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &t.app.0),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_client");
    let auth = Some((t.app.0.as_str(), t.app.1.as_str()));
    assert_eq!(
        token(&t.s, auth, &[("grant_type", "password")]).json()["error"],
        "unsupported_grant_type"
    );
    assert_eq!(token(&t.s, auth, &[]).json()["error"], "invalid_request");
    // A parameter twice; a JSON body.
    let r = token(
        &t.s,
        auth,
        &[
            ("grant_type", "refresh_token"),
            ("grant_type", "refresh_token"),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_request");
    let r = t.s.send(
        "POST",
        "/oauth2/token",
        &[],
        Some(json!({ "grant_type": "refresh_token" })),
    );
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["error"], "invalid_request");
    // client_secret_post works like Basic.
    let r = token(
        &t.s,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "nope"),
            ("client_id", &t.app.0),
            ("client_secret", &t.app.1),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[test]
fn a_public_client_uses_pkce_without_a_secret_and_cors_answers_its_origin_only() {
    let mut t = setup();
    let (spa, secret) = client(
        &mut t.s,
        json!({ "name": "SPA", "redirectUris": [REDIRECT], "public": true, "firstParty": true }),
    );
    assert!(secret.is_none());
    let mut b = Browser::new(&t.s);
    let code = code_of(&sign_in_and_authorize(
        &mut b,
        &authorize_path(&spa, &[]),
        "ann@acme.test",
    ));
    // A secret offered by a public client is refused.
    let r = token(
        &t.s,
        Some((&spa, "sk_made_up")),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_client");
    let cors = |origin: &str| {
        t.s.raw(
            "OPTIONS",
            "/oauth2/token",
            &[
                ("Origin".into(), origin.into()),
                ("Access-Control-Request-Method".into(), "POST".into()),
            ],
            None,
        )
    };
    let r = cors("http://app.test");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://app.test")
    );
    assert!(
        cors("https://evil.example")
            .header("Access-Control-Allow-Origin")
            .is_none()
    );
    let mut h = vec![
        (
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("Origin".to_string(), "http://app.test".to_string()),
    ];
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", spa.as_str()),
        ])
        .finish();
    let r = t.s.raw("POST", "/oauth2/token", &h, Some(body.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://app.test")
    );
    h.clear();
}

#[test]
fn the_device_flow_polls_slows_down_and_is_approved_on_the_device_page() {
    let mut t = setup();
    let (cli, _) = client(
        &mut t.s,
        json!({ "name": "Acme CLI", "redirectUris": ["http://localhost/cb"], "public": true }),
    );
    let r = form_post(
        &t.s,
        "/oauth2/device_authorization",
        None,
        &[
            ("client_id", &cli),
            ("scope", "openid email offline_access"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let d = r.json();
    let device_code = d["device_code"].as_str().unwrap().to_string();
    let user_code = d["user_code"].as_str().unwrap().to_string();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert_eq!(d["verification_uri"], "http://127.0.0.1/device");
    assert_eq!(d["interval"], 5);
    let poll = |s: &TestServer| {
        form_post(
            s,
            "/oauth2/token",
            None,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &device_code),
                ("client_id", &cli),
            ],
        )
    };
    assert_eq!(poll(&t.s).json()["error"], "authorization_pending");
    // Polled again at once: slow_down (and the interval grows).
    assert_eq!(poll(&t.s).json()["error"], "slow_down");
    t.s.clock.advance_secs(11);
    assert_eq!(poll(&t.s).json()["error"], "authorization_pending");
    // The person signs in on /device and approves.
    let mut b = Browser::new(&t.s);
    let r = b.get(&format!("/device?user_code={user_code}"));
    assert_eq!(r.status, 303);
    let q = query_of(location(&r));
    let r = b.submit(
        location(&r).to_string().as_str(),
        "/login",
        &[
            ("email", "ann@acme.test"),
            ("password", PASSWORD),
            ("return_to", &q["return_to"]),
        ],
    );
    assert_eq!(location(&r), format!("/device?user_code={user_code}"));
    // A wrong code first.
    let r = b.submit("/device", "/device", &[("user_code", "BBBB-CCCC")]);
    assert_eq!(r.status, 400);
    let typed = user_code.to_lowercase().replace('-', " ");
    let r = b.submit("/device", "/device", &[("user_code", &typed)]);
    assert_eq!(r.status, 200);
    assert!(html(&r).contains("Acme CLI"), "{}", html(&r));
    let r = b.submit(
        "/device",
        "/device",
        &[
            ("user_code", &user_code),
            ("organization", "acme"),
            ("decision", "approve"),
        ],
    );
    assert_eq!(r.status, 200, "{}", html(&r));
    t.s.clock.advance_secs(20);
    let r = poll(&t.s);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let tok = r.json();
    assert!(tok["refresh_token"].is_string());
    assert_eq!(jwt_claims(tok["id_token"].as_str().unwrap())["aud"], cli);
    // Spent.
    t.s.clock.advance_secs(20);
    assert_eq!(poll(&t.s).json()["error"], "invalid_grant");
}

#[test]
fn user_code_guesses_are_rate_limited() {
    let t = setup();
    let mut b = Browser::new(&t.s);
    let r = b.get("/device");
    let q = query_of(location(&r));
    b.submit(
        location(&r).to_string().as_str(),
        "/login",
        &[
            ("email", "ann@acme.test"),
            ("password", PASSWORD),
            ("return_to", &q["return_to"]),
        ],
    );
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            b.submit("/device", "/device", &[("user_code", "BBBB-CCCC")])
                .status,
        );
    }
    assert_eq!(&statuses[..10], &[400; 10]);
    assert_eq!(statuses[11], 429);
}

#[test]
fn rp_initiated_logout_ends_the_browser_session_and_returns_only_to_registered_uris() {
    let t = setup();
    let mut b = Browser::new(&t.s);
    let code = code_of(&sign_in_and_authorize(
        &mut b,
        &authorize_path(&t.app.0, &[]),
        "ann@acme.test",
    ));
    let tok = exchange(&t, &code).json();
    let id_token = tok["id_token"].as_str().unwrap();
    let access = tok["access_token"].as_str().unwrap();
    // Not a registered post-logout URI: no redirect.
    let q = |post: &str| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("id_token_hint", id_token)
            .append_pair("post_logout_redirect_uri", post)
            .append_pair("state", "bye-1")
            .finish()
    };
    let r = b.get(&format!("/oauth2/logout?{}", q("https://evil.example/")));
    assert_eq!(r.status, 400);
    assert!(r.header("Location").is_none());
    // A forged hint neither.
    let forged = format!("{}x", &id_token[..id_token.len() - 1]);
    let r = b.get(&format!("/oauth2/logout?id_token_hint={forged}"));
    assert_eq!(r.status, 400);
    // The registered one, with the person's own id_token: signed out at once.
    let r = b.get(&format!("/oauth2/logout?{}", q("http://app.test/bye")));
    assert_eq!(r.status, 302, "{}", html(&r));
    assert_eq!(location(&r), "http://app.test/bye?state=bye-1");
    assert_eq!(userinfo(&t.s, access).status, 401);
    assert!(location(&b.get("/account")).starts_with("/login"));
    // Without a hint, a signed-in person confirms first.
    let r = sign_in_and_authorize(&mut b, &authorize_path(&t.app.0, &[]), "ann@acme.test");
    code_of(&r);
    let r = b.get("/oauth2/logout");
    assert_eq!(r.status, 200);
    assert!(html(&r).contains("action=\"/oauth2/logout\""));
    let r = b.submit("/oauth2/logout", "/oauth2/logout", &[]);
    assert_eq!(r.status, 200);
    assert!(location(&b.get("/account")).starts_with("/login"));
}

#[test]
fn a_two_factor_account_signs_in_through_the_provider_with_its_code() {
    let t = setup();
    let s = &t.s;
    let access = s.login_ok("acme", "ann@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let d = s
        .as_user(
            "POST",
            "/api/v1/auth/2fa/setup",
            "acme",
            &access,
            Some(json!({})),
        )
        .data();
    let secret = common::base32_decode(d["secret"].as_str().unwrap());
    let code = |s: &TestServer| {
        latchkey::totp::code_at_step(&secret, (s.state().now() / 1000 / 30) as u64)
    };
    let r = s.as_user(
        "POST",
        "/api/v1/auth/2fa/enable",
        "acme",
        &access,
        Some(json!({ "code": code(s) })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    s.clock.advance_secs(31);
    let mut b = Browser::new(s);
    let r = b.get(&authorize_path(&t.app.0, &[]));
    let q = query_of(location(&r));
    let r = b.submit(
        location(&r),
        "/login",
        &[
            ("email", "ann@acme.test"),
            ("password", PASSWORD),
            ("return_to", &q["return_to"]),
        ],
    );
    assert_eq!(location(&r), "/login/2fa");
    // Pending the second factor: the provider does not count it as signed in.
    let r = b.get(&authorize_path(&t.app.0, &[("prompt", "none")]));
    assert_eq!(query_of(location(&r))["error"], "login_required");
    let r = b.submit("/login/2fa", "/login/2fa", &[("code", &code(s))]);
    assert_eq!(r.status, 303, "{}", html(&r));
    assert!(
        location(&r).starts_with("/oauth2/authorize?"),
        "{}",
        location(&r)
    );
    let page = b.get(location(&r));
    let r = consent(&mut b, page);
    let tok = exchange(&t, &code_of(&r)).json();
    let c = jwt_claims(tok["id_token"].as_str().unwrap());
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
}

#[test]
fn an_oauth_clients_tokens_are_not_latchkey_api_credentials() {
    let t = setup();
    let mut b = Browser::new(&t.s);
    let code = code_of(&sign_in_and_authorize(
        &mut b,
        &authorize_path(&t.app.0, &[]),
        "ann@acme.test",
    ));
    let tok = exchange(&t, &code).json();
    let access = tok["access_token"].as_str().unwrap();
    let refresh = tok["refresh_token"].as_str().unwrap();
    // A third-party app granted `openid profile` cannot act as the person in the org…
    for (m, path) in [
        ("GET", "/api/v1/auth/me"),
        ("GET", "/api/v1/org/members"),
        ("GET", "/api/v1/auth/sessions"),
    ] {
        t.s.as_user(m, path, "acme", access, None)
            .assert_error(401, "unauthenticated");
    }
    // …nor refresh its session through the JSON API (only through /oauth2/token).
    let r = t.s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[("X-Org-Slug", "acme")],
        Some(json!({ "refreshToken": refresh })),
    );
    assert_eq!(r.status, 401);
    // The app's own endpoints still take them.
    assert_eq!(userinfo(&t.s, access).status, 200);
}

#[test]
fn the_sweep_deletes_codes_and_device_codes_a_day_after_they_expired() {
    let t = setup();
    let mut b = Browser::new(&t.s);
    code_of(&sign_in_and_authorize(
        &mut b,
        &authorize_path(&t.app.0, &[]),
        "ann@acme.test",
    ));
    let r = form_post(
        &t.s,
        "/oauth2/device_authorization",
        Some((&t.app.0, &t.app.1)),
        &[("scope", "openid")],
    );
    assert_eq!(r.status, 200);
    let count = |sql: &str| -> i64 {
        let c = rusqlite::Connection::open(t.s.db_path()).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    let wait_for_sweep = || {
        let at = t.s.state().now();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while t.s.state().maintenance.swept_at() < at {
            assert!(std::time::Instant::now() < deadline, "no sweep");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    assert_eq!(count("SELECT COUNT(*) FROM oauth_codes"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM oauth_device_codes"), 1);
    // Expired, but not for a day yet: kept (a replay still finds its code).
    t.s.clock.advance_secs(3600);
    wait_for_sweep();
    assert_eq!(count("SELECT COUNT(*) FROM oauth_codes"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM oauth_device_codes"), 1);
    t.s.clock.advance_secs(86_400);
    wait_for_sweep();
    assert_eq!(count("SELECT COUNT(*) FROM oauth_codes"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM oauth_device_codes"), 0);
}
