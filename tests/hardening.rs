//! Identity hardening (issue 12), over real HTTP: each test performs an attack one tenant (or
//! an anonymous caller) could try on a deployment-wide account, shows it refused, and shows
//! the legitimate path next to it. Accounts are deployment-wide; orgs are tenants.

mod common;
use common::mail::{Sink, token_in};
use common::{PASSWORD, Resp, TestServer};
use latchkey::totp;
use serde_json::{Value, json};

/// A server whose emails go to an SMTP sink and which trusts `X-Forwarded-For` from
/// loopback, so a test can act from many client IPs. `security` lines are added to the
/// `[security]` section.
fn server(security: &str) -> TestServer {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let text = common::base_config(dir.path(), &sink.config())
        .replace(
            "[server]\n",
            "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        )
        .replace("[security]\n", &format!("[security]\n{security}\n"));
    let mut s = TestServer::start_in(dir, text);
    s.mail = Some(sink);
    s
}

fn post(s: &TestServer, org: &str, path: &str, body: Value) -> Resp {
    s.send("POST", path, &[("X-Org-Slug", org)], Some(body))
}

fn login_from(s: &TestServer, org: &str, email: &str, password: &str, ip: &str) -> Resp {
    s.send(
        "POST",
        "/api/v1/auth/login",
        &[("X-Org-Slug", org), ("X-Forwarded-For", ip)],
        Some(json!({ "email": email, "password": password })),
    )
}

fn token(d: &Value, field: &str) -> String {
    d[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {d}"))
        .to_string()
}

fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&latchkey::crypto::b64url_decode(part).unwrap()).unwrap()
}

fn db(s: &TestServer) -> rusqlite::Connection {
    rusqlite::Connection::open(s.db_path()).unwrap()
}

fn count(s: &TestServer, sql: &str) -> i64 {
    db(s).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Enrolls TOTP for a signed-in user; returns the secret.
fn enroll_totp(s: &TestServer, org: &str, access: &str) -> Vec<u8> {
    let d = s
        .as_user(
            "POST",
            "/api/v1/auth/2fa/setup",
            org,
            access,
            Some(json!({})),
        )
        .data();
    let secret = common::base32_decode(d["secret"].as_str().unwrap());
    let r = s.as_user(
        "POST",
        "/api/v1/auth/2fa/enable",
        org,
        access,
        Some(json!({ "code": code(s, &secret, 0) })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    secret
}

fn code(s: &TestServer, secret: &[u8], offset: i64) -> String {
    let step = s.state().now() / 1000 / 30 + offset;
    totp::code_at_step(secret, step as u64)
}

fn accept(s: &TestServer, headers: &[(&str, &str)], body: Value) -> Resp {
    s.send("POST", "/api/v1/invitations/accept", headers, Some(body))
}

// ------------------------------------------------------------------------------------------
// 1. Invitation accept never signs an existing account in.
// ------------------------------------------------------------------------------------------

/// Org A's admin invites the owner of org B and tries to accept with the token alone: no
/// session for the owner. The owner accepts with their own access token or password.
#[test]
fn an_invitation_token_alone_never_signs_an_existing_account_in() {
    let mut s = server("");
    s.org("alpha", json!({}));
    s.org("beta", json!({}));
    s.user("mallory@a.test", Some(("alpha", "org_admin")));
    s.user("bob@b.test", Some(("beta", "owner")));
    let mallory = token(&s.login_ok("alpha", "mallory@a.test"), "accessToken");
    let invite = |s: &TestServer, send_email: bool| {
        let r = s.as_user(
            "POST",
            "/api/v1/org/members/invite",
            "alpha",
            &mallory,
            Some(json!({ "email": "bob@b.test", "sendEmail": send_email })),
        );
        assert_eq!(r.status, 201, "{:?}", r.json());
        r.data()
    };
    // An emailed invitation's answer carries no token.
    let d = invite(&s, true);
    assert!(
        d.get("token").is_none() && d.get("acceptUrl").is_none(),
        "{d}"
    );
    let id = d["invite"]["id"].as_str().unwrap().to_string();
    s.as_user(
        "DELETE",
        &format!("/api/v1/org/invites/{id}"),
        "alpha",
        &mallory,
        None,
    );
    // With sendEmail:false the inviter holds the token...
    let d = invite(&s, false);
    let t = token(&d, "token");
    assert!(token(&d, "acceptUrl").ends_with(&format!("?token={t}")));
    // ...which alone proves nothing.
    accept(&s, &[], json!({ "token": t })).assert_error(401, "unauthenticated");
    accept(
        &s,
        &[],
        json!({ "token": t, "password": "guessing wrongly" }),
    )
    .assert_error(401, "invalid_credentials");
    // Nor does the inviter's own session.
    let auth = format!("Bearer {mallory}");
    accept(&s, &[("Authorization", &auth)], json!({ "token": t })).assert_error(403, "forbidden");
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM sessions WHERE user_id = (SELECT id FROM users WHERE email = 'bob@b.test')"
        ),
        0,
        "no session was made for bob"
    );
    // Bob proves himself with his own access token (from org b): he joins a.
    let bob = token(&s.login_ok("beta", "bob@b.test"), "accessToken");
    let auth = format!("Bearer {bob}");
    let r = accept(&s, &[("Authorization", &auth)], json!({ "token": t }));
    assert_eq!(r.status, 200, "{:?}", r.json());
    let d = r.data();
    assert_eq!(d["isNewUser"], false);
    assert_eq!(d["membership"]["role"], "member");
    // An access token proves who accepts but never mints a session in another org (it is
    // what resource servers see): no tokens. Bob switches with his own refresh token.
    assert!(
        d.get("accessToken").is_none() && d.get("refreshToken").is_none(),
        "{d}"
    );
    let bob_refresh = token(&s.login_ok("beta", "bob@b.test"), "refreshToken");
    let r = post(
        &s,
        "beta",
        "/api/v1/auth/switch-org",
        json!({ "orgSlug": "alpha", "refreshToken": bob_refresh }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        claims(r.data()["accessToken"].as_str().unwrap())["org_slug"],
        "alpha"
    );
    // Spent.
    accept(&s, &[("Authorization", &auth)], json!({ "token": t }))
        .assert_error(400, "invalid_token");
}

/// The same attack through an API key with `invitations:write`.
#[test]
fn an_api_key_invitation_token_alone_never_signs_an_existing_account_in() {
    let mut s = server("");
    s.org("alpha", json!({}));
    s.org("beta", json!({}));
    s.user("owner@a.test", Some(("alpha", "owner")));
    s.user("bob@b.test", Some(("beta", "owner")));
    let owner = token(&s.login_ok("alpha", "owner@a.test"), "accessToken");
    let key = s
        .as_user(
            "POST",
            "/api/v1/org/api-keys",
            "alpha",
            &owner,
            Some(json!({ "name": "backend", "scopes": ["invitations:write"] })),
        )
        .data()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.send(
        "POST",
        "/api/v1/public/invitations",
        &[("X-API-Key", &key)],
        Some(json!({ "email": "bob@b.test", "sendEmail": false })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let t = token(&r.data(), "token");
    accept(&s, &[], json!({ "token": t })).assert_error(401, "unauthenticated");
    // Bob with his password joins.
    let r = accept(&s, &[], json!({ "token": t, "password": PASSWORD }));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["isNewUser"], false);
}

/// Accepting with a password is a login: 2FA applies, and the membership is made only when
/// the second factor completes it.
#[test]
fn accepting_with_a_password_passes_the_second_factor_before_joining() {
    let mut s = server("");
    s.org("alpha", json!({}));
    s.org("beta", json!({}));
    s.user("admin@a.test", Some(("alpha", "org_admin")));
    s.user("bob@b.test", Some(("beta", "member")));
    let bob = token(&s.login_ok("beta", "bob@b.test"), "accessToken");
    let secret = enroll_totp(&s, "beta", &bob);
    let admin = token(&s.login_ok("alpha", "admin@a.test"), "accessToken");
    let t = token(
        &s.as_user(
            "POST",
            "/api/v1/org/members/invite",
            "alpha",
            &admin,
            Some(json!({ "email": "bob@b.test", "sendEmail": false })),
        )
        .data(),
        "token",
    );
    let r = accept(&s, &[], json!({ "token": t, "password": PASSWORD }));
    assert_eq!(r.status, 200, "{:?}", r.json());
    let d = r.data();
    assert_eq!(d["requires2FA"], true);
    assert!(d.get("accessToken").is_none());
    let partial = token(&d, "partialToken");
    let bob_in_a = "SELECT COUNT(*) FROM memberships m JOIN orgs o ON o.id = m.org_id \
                    JOIN users u ON u.id = m.user_id WHERE o.slug = 'alpha' AND u.email = 'bob@b.test'";
    assert_eq!(
        count(&s, bob_in_a),
        0,
        "not a member before the second factor"
    );
    s.clock.advance_secs(31);
    let r = post(
        &s,
        "alpha",
        "/api/v1/auth/verify-2fa",
        json!({ "partialToken": partial, "code": code(&s, &secret, 0) }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let c = claims(r.data()["accessToken"].as_str().unwrap());
    assert_eq!(c["org_slug"], "alpha");
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
    assert_eq!(count(&s, bob_in_a), 1);
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM invitations WHERE state = 'accepted'"
        ),
        1
    );
}

/// An account created from a token the inviter saw has an unverified email; one created from
/// an emailed token has a verified one.
#[test]
fn only_an_emailed_invitation_vouches_for_the_address() {
    let mut s = server("");
    s.org("alpha", json!({}));
    s.user("admin@a.test", Some(("alpha", "org_admin")));
    let admin = token(&s.login_ok("alpha", "admin@a.test"), "accessToken");
    let invite = |email: &str, send_email: bool| {
        s.as_user(
            "POST",
            "/api/v1/org/members/invite",
            "alpha",
            &admin,
            Some(json!({ "email": email, "sendEmail": send_email })),
        )
        .data()
    };
    let t = token(&invite("app@x.test", false), "token");
    let r = accept(
        &s,
        &[],
        json!({ "token": t, "password": "a fine long password" }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["isNewUser"], true);
    assert_eq!(r.data()["user"]["isEmailVerified"], false);

    invite("mail@x.test", true);
    let mails = s.mails_to("mail@x.test");
    let t = token_in(&mails[0]);
    let r = accept(
        &s,
        &[],
        json!({ "token": t, "password": "a fine long password" }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["user"]["isEmailVerified"], true);
}

// ------------------------------------------------------------------------------------------
// 2. Pre-account takeover.
// ------------------------------------------------------------------------------------------

/// Mallory signs up with Vic's address and keeps a session, a password and a TOTP factor.
/// When Vic uses a magic link, Mallory loses all of it.
#[test]
fn a_magic_link_on_a_never_verified_account_evicts_whoever_made_it() {
    let s = server("");
    let mut s = s;
    s.org("open", json!({ "signupMode": "open" }));
    let r = post(
        &s,
        "open",
        "/api/v1/auth/signup",
        json!({ "email": "vic@x.test", "password": "mallory's password" }),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.data()["user"]["isEmailVerified"], false);
    let mallory = r.data();
    enroll_totp(&s, "open", &token(&mallory, "accessToken"));

    // Vic asks for a sign-in link and follows it.
    post(
        &s,
        "open",
        "/api/v1/auth/magic-link",
        json!({ "email": "vic@x.test" }),
    );
    let t = token_in(&s.mails_to("vic@x.test")[0]);
    let r = post(
        &s,
        "open",
        "/api/v1/auth/magic-link/verify",
        json!({ "token": t }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let vic = r.data();
    assert!(
        vic.get("requires2FA").is_none(),
        "Mallory's factor is gone: {vic}"
    );
    assert_eq!(vic["user"]["isEmailVerified"], true);
    assert_eq!(vic["user"]["twoFactorEnabled"], false);

    // Mallory's session, password and factor are gone.
    s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": mallory["refreshToken"] })),
    )
    .assert_error(401, "invalid_token");
    s.as_user(
        "GET",
        "/api/v1/auth/me",
        "open",
        mallory["accessToken"].as_str().unwrap(),
        None,
    )
    .assert_error(401, "unauthenticated");
    s.login("open", "vic@x.test", "mallory's password")
        .assert_error(401, "invalid_credentials");
    // Vic's own session works; an audit entry says what happened.
    let me = s.as_user(
        "GET",
        "/api/v1/auth/me",
        "open",
        vic["accessToken"].as_str().unwrap(),
        None,
    );
    assert_eq!(me.status, 200);
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.email_claimed'"
        ),
        1
    );
    // On a verified account a magic link changes nothing else.
    s.clock.advance_secs(3600);
    post(
        &s,
        "open",
        "/api/v1/auth/magic-link",
        json!({ "email": "vic@x.test" }),
    );
    let t = token_in(&s.mails_to("vic@x.test")[1]);
    assert_eq!(
        post(
            &s,
            "open",
            "/api/v1/auth/magic-link/verify",
            json!({ "token": t })
        )
        .status,
        200
    );
    let r = s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": vic["refreshToken"] })),
    );
    assert_eq!(
        r.status, 200,
        "Vic's earlier session survives a magic link on a verified account"
    );
}

/// A reset on a never-verified account replaces the password, ends every session and
/// removes the creator's second factor.
#[test]
fn a_reset_on_a_never_verified_account_removes_the_creators_factor() {
    let mut s = server("");
    s.org("open", json!({ "signupMode": "open" }));
    let r = post(
        &s,
        "open",
        "/api/v1/auth/signup",
        json!({ "email": "vic@x.test", "password": "mallory's password" }),
    );
    let mallory = r.data();
    enroll_totp(&s, "open", &token(&mallory, "accessToken"));
    post(
        &s,
        "open",
        "/api/v1/auth/forgot-password",
        json!({ "email": "vic@x.test" }),
    );
    let t = token_in(&s.mails_to("vic@x.test")[0]);
    let r = post(
        &s,
        "open",
        "/api/v1/auth/reset-password",
        json!({ "token": t, "newPassword": "vic's own password" }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = s.login("open", "vic@x.test", "vic's own password");
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(r.data().get("requires2FA").is_none(), "{:?}", r.json());
    assert_eq!(r.data()["user"]["isEmailVerified"], true);
    s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": mallory["refreshToken"] })),
    )
    .assert_error(401, "invalid_token");
}

/// A backend cannot mark an address verified.
#[test]
fn no_tenant_may_vouch_for_an_email() {
    let mut s = server("");
    s.org("alpha", json!({}));
    s.user("owner@a.test", Some(("alpha", "owner")));
    let owner = token(&s.login_ok("alpha", "owner@a.test"), "accessToken");
    let key = s
        .as_user(
            "POST",
            "/api/v1/org/api-keys",
            "alpha",
            &owner,
            Some(json!({ "name": "backend", "scopes": ["users:write"] })),
        )
        .data()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.send(
        "POST",
        "/api/v1/public/users",
        &[("X-API-Key", &key)],
        Some(json!({ "email": "vic@x.test", "password": PASSWORD, "isEmailVerified": true })),
    );
    let e = r.assert_error(400, "invalid_request");
    assert_eq!(e["errors"][0]["field"], "isEmailVerified");
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM users WHERE email = 'vic@x.test'"),
        0
    );
    let r = s.send(
        "POST",
        "/api/v1/public/users",
        &[("X-API-Key", &key)],
        Some(json!({ "email": "vic@x.test", "password": PASSWORD })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.data()["user"]["isEmailVerified"], false);
}

// ------------------------------------------------------------------------------------------
// 3. switch-org is a login into the target org.
// ------------------------------------------------------------------------------------------

#[test]
fn switching_orgs_needs_the_refresh_token_and_meets_the_target_policy() {
    let mut s = server("");
    s.org("home", json!({}));
    s.org("strict", json!({ "require2FA": true }));
    s.org("gone", json!({}));
    let uid = s.user("ann@x.test", Some(("home", "member")));
    for slug in ["strict", "gone"] {
        s.admin_send(
            "POST",
            &format!("/api/v1/admin/orgs/{slug}/members"),
            Some(json!({ "userId": uid, "role": "member" })),
        );
    }
    // Ann's membership in "gone" is deactivated by its owner.
    s.user("owner@gone.test", Some(("gone", "owner")));
    let gone_owner = token(&s.login_ok("gone", "owner@gone.test"), "accessToken");
    let r = s.as_user(
        "POST",
        &format!("/api/v1/org/members/{uid}/deactivate"),
        "gone",
        &gone_owner,
        None,
    );
    assert_eq!(r.status, 200, "{:?}", r.json());

    let home = s.login_ok("home", "ann@x.test");
    let access = token(&home, "accessToken");
    let refresh = token(&home, "refreshToken");
    let switch = |body: Value| {
        s.as_user(
            "POST",
            "/api/v1/auth/switch-org",
            "home",
            &access,
            Some(body),
        )
    };
    // A bearer access token — what every resource server sees — is not enough.
    switch(json!({ "orgSlug": "strict" })).assert_error(401, "unauthenticated");
    // The target org's 2FA requirement applies.
    let r = switch(json!({ "orgSlug": "strict", "refreshToken": refresh }));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["requires2FASetup"], true);
    assert!(r.data().get("accessToken").is_none());
    // A deactivated membership stays closed.
    switch(json!({ "orgSlug": "gone", "refreshToken": refresh }))
        .assert_error(403, "membership_inactive");
    // A rotated (stale) refresh token does not switch.
    let r = s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": refresh })),
    );
    assert_eq!(r.status, 200);
    let fresh = token(&r.data(), "refreshToken");
    switch(json!({ "orgSlug": "strict", "refreshToken": refresh }))
        .assert_error(401, "invalid_token");
    // The refresh cookie works like the body (with the CSRF rule of cookies).
    let cookie = format!("refresh_token={fresh}");
    let r = s.send(
        "POST",
        "/api/v1/auth/switch-org",
        &[("Cookie", &cookie), ("Origin", "http://evil.test")],
        Some(json!({ "orgSlug": "strict" })),
    );
    r.assert_error(403, "csrf_failed");
    let r = s.send(
        "POST",
        "/api/v1/auth/switch-org",
        &[("Cookie", &cookie), ("Origin", "http://app.test")],
        Some(json!({ "orgSlug": "strict" })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["requires2FASetup"], true);
}

/// A user with 2FA whose session passed it may switch without a second prompt; a session that
/// never passed it (2FA enabled afterwards) is asked for it.
#[test]
fn switching_keeps_a_passed_second_factor_and_asks_for_a_missing_one() {
    let mut s = server("");
    s.org("home", json!({}));
    s.org("other", json!({}));
    let uid = s.user("ann@x.test", Some(("home", "member")));
    s.admin_send(
        "POST",
        "/api/v1/admin/orgs/other/members",
        Some(json!({ "userId": uid, "role": "member" })),
    );
    let first = s.login_ok("home", "ann@x.test");
    let secret = enroll_totp(&s, "home", &token(&first, "accessToken"));
    // The session from before 2FA never passed it.
    let r = post(
        &s,
        "home",
        "/api/v1/auth/switch-org",
        json!({ "orgSlug": "other", "refreshToken": first["refreshToken"] }),
    );
    assert_eq!(r.data()["requires2FA"], true, "{:?}", r.json());
    // A session that passed it switches at once, carrying its amr.
    s.clock.advance_secs(31);
    let p = s.login("home", "ann@x.test", PASSWORD).data();
    let d = post(
        &s,
        "home",
        "/api/v1/auth/verify-2fa",
        json!({ "partialToken": p["partialToken"], "code": code(&s, &secret, 0) }),
    )
    .data();
    let r = post(
        &s,
        "home",
        "/api/v1/auth/switch-org",
        json!({ "orgSlug": "other", "refreshToken": d["refreshToken"] }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let c = claims(r.data()["accessToken"].as_str().unwrap());
    assert_eq!(c["org_slug"], "other");
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
}

// ------------------------------------------------------------------------------------------
// 4. Org admins cannot redirect account-wide links.
// ------------------------------------------------------------------------------------------

fn link_host(mail: &Value) -> String {
    let text = mail["text"].as_str().unwrap();
    let at = text.find("http").unwrap();
    let url = text[at..].split_whitespace().next().unwrap();
    url::Url::parse(url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_string()
}

#[test]
fn org_admins_may_point_app_url_only_at_allowed_hosts() {
    let mut s = server("");
    s.org("acme", json!({ "signupMode": "open" }));
    s.user("admin@acme.test", Some(("acme", "org_admin")));
    s.user("ann@x.test", Some(("acme", "member")));
    let admin = token(&s.login_ok("acme", "admin@acme.test"), "accessToken");
    let put = |url: &str| {
        s.as_user(
            "PUT",
            "/api/v1/org",
            "acme",
            &admin,
            Some(json!({ "appUrl": url })),
        )
    };
    let e = put("https://evil.test/collect").assert_error(400, "invalid_request");
    assert_eq!(e["errors"][0]["field"], "appUrl");
    put("https://acme.test.evil.test").assert_error(400, "invalid_request");
    // An allowed host (the test config allows "*.acme.test").
    assert_eq!(put("https://portal.acme.test").status, 200);
    // Links with account-wide tokens always land on Latchkey's own pages.
    post(
        &s,
        "acme",
        "/api/v1/auth/forgot-password",
        json!({ "email": "ann@x.test" }),
    );
    assert_eq!(link_host(&s.mails_to("ann@x.test")[0]), "127.0.0.1");

    // Where a user goes afterwards (the verification redirect) follows the appUrl only while
    // it is allowed: unverified users to verify.
    let verify_redirect = |s: &mut TestServer, email: &str| -> Option<String> {
        let r = s.admin_send(
            "POST",
            "/api/v1/admin/users",
            Some(json!({ "email": email, "password": PASSWORD })),
        );
        let uid = r.data()["user"]["id"].as_str().unwrap().to_string();
        s.admin_send(
            "POST",
            "/api/v1/admin/orgs/acme/members",
            Some(json!({ "userId": uid, "role": "member" })),
        );
        post(
            s,
            "acme",
            "/api/v1/auth/verify-email/send",
            json!({ "email": email }),
        );
        let t = token_in(&s.mails_to(email)[0]);
        let r = s.get(&format!("/api/v1/auth/verify-email?token={t}"));
        r.header("Location").map(str::to_string)
    };
    assert_eq!(
        verify_redirect(&mut s, "v1@x.test").as_deref(),
        Some("https://portal.acme.test?status=success")
    );
    // An appUrl an org admin chose that is not (or no longer) allowed, e.g. set before the
    // list existed, is never used.
    db(&s)
        .execute(
            "UPDATE orgs SET app_url = 'https://evil.test', app_url_by_operator = 0 WHERE slug = 'acme'",
            [],
        )
        .unwrap();
    assert_eq!(verify_redirect(&mut s, "v2@x.test"), None);
    // The operator may choose any host.
    let r = s.admin_send(
        "PUT",
        "/api/v1/admin/orgs/acme",
        Some(json!({ "appUrl": "https://app.acme-corp.example" })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        verify_redirect(&mut s, "v3@x.test").as_deref(),
        Some("https://app.acme-corp.example?status=success")
    );
}

// ------------------------------------------------------------------------------------------
// 5. The second factor has one budget per account.
// ------------------------------------------------------------------------------------------

#[test]
fn wrong_codes_draw_on_one_budget_across_partial_tokens_and_endpoints() {
    let mut s = server("");
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    let access = token(&s.login_ok("acme", "ann@x.test"), "accessToken");
    let secret = enroll_totp(&s, "acme", &access);
    let wrong = |c: &str| if c == "000000" { "111111" } else { "000000" }.to_string();
    // 4 wrong on one partial token, 4 on another: 8.
    for _ in 0..2 {
        let p = s.login("acme", "ann@x.test", PASSWORD).data();
        for _ in 0..4 {
            post(
                &s,
                "acme",
                "/api/v1/auth/verify-2fa",
                json!({ "partialToken": p["partialToken"], "code": wrong(&code(&s, &secret, 0)) }),
            )
            .assert_error(401, "invalid_code");
        }
    }
    // 9, 10 on the signed-in endpoints.
    s.as_user(
        "POST",
        "/api/v1/auth/2fa/disable",
        "acme",
        &access,
        Some(json!({ "code": wrong(&code(&s, &secret, 0)) })),
    )
    .assert_error(401, "invalid_code");
    s.as_user(
        "POST",
        "/api/v1/auth/2fa/backup-codes",
        "acme",
        &access,
        Some(json!({ "code": wrong(&code(&s, &secret, 0)) })),
    )
    .assert_error(401, "invalid_code");
    // Spent: even the right code is refused everywhere, with Retry-After.
    s.clock.advance_secs(31);
    let p = s.login("acme", "ann@x.test", PASSWORD).data();
    let r = post(
        &s,
        "acme",
        "/api/v1/auth/verify-2fa",
        json!({ "partialToken": p["partialToken"], "code": code(&s, &secret, 0) }),
    );
    r.assert_error(429, "rate_limited");
    assert!(r.header("Retry-After").unwrap().parse::<u64>().unwrap() >= 1);
    s.as_user(
        "POST",
        "/api/v1/auth/2fa/disable",
        "acme",
        &access,
        Some(json!({ "code": code(&s, &secret, 0) })),
    )
    .assert_error(429, "rate_limited");
    // After the window the owner signs in.
    s.clock.advance_secs(15 * 60 + 1);
    let p = s.login("acme", "ann@x.test", PASSWORD).data();
    let r = post(
        &s,
        "acme",
        "/api/v1/auth/verify-2fa",
        json!({ "partialToken": p["partialToken"], "code": code(&s, &secret, 0) }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
}

// ------------------------------------------------------------------------------------------
// 6–8. Password guessing: change-password, lockout per (account, IP), an API key's budget.
// ------------------------------------------------------------------------------------------

#[test]
fn change_password_guesses_count_as_failed_logins() {
    let mut s = server("");
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    let access = token(&s.login_ok("acme", "ann@x.test"), "accessToken");
    let change = |current: &str| {
        s.as_user(
            "POST",
            "/api/v1/auth/change-password",
            "acme",
            &access,
            Some(json!({ "currentPassword": current, "newPassword": "a brand new password" })),
        )
    };
    for i in 0..5 {
        change(&format!("guess number {i}")).assert_error(401, "invalid_credentials");
    }
    // The stolen token cannot guess on; and the same IP cannot log in either.
    change(PASSWORD).assert_error(429, "rate_limited");
    s.login("acme", "ann@x.test", PASSWORD)
        .assert_error(429, "rate_limited");
    s.clock.advance_secs(15 * 60 + 1);
    let access = token(&s.login_ok("acme", "ann@x.test"), "accessToken");
    let r = s.as_user(
        "POST",
        "/api/v1/auth/change-password",
        "acme",
        &access,
        Some(json!({ "currentPassword": PASSWORD, "newPassword": "a brand new password" })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
}

#[test]
fn failures_from_one_ip_lock_that_ip_out_not_the_owner() {
    let mut s = server("");
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    for _ in 0..5 {
        login_from(&s, "acme", "ann@x.test", "wrong password!", "203.0.113.9")
            .assert_error(401, "invalid_credentials");
    }
    let r = login_from(&s, "acme", "ann@x.test", PASSWORD, "203.0.113.9");
    r.assert_error(429, "rate_limited");
    assert!(r.header("Retry-After").unwrap().parse::<u64>().unwrap() > 800);
    // Ann, elsewhere, signs in.
    assert_eq!(
        login_from(&s, "acme", "ann@x.test", PASSWORD, "198.51.100.7").status,
        200
    );
    // Unknown accounts lock the same way (a lock reveals nothing).
    for _ in 0..5 {
        login_from(&s, "acme", "ghost@x.test", "wrong password!", "203.0.113.9");
    }
    login_from(&s, "acme", "ghost@x.test", "wrong password!", "203.0.113.9")
        .assert_error(429, "rate_limited");
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.locked'"
        ),
        0,
        "a pair lock is not an account lock"
    );
}

#[test]
fn a_distributed_guessing_run_locks_the_whole_account_with_audit_and_event() {
    let mut s = server("");
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    for i in 0..100 {
        let ip = format!("10.0.{}.{}", i / 200, i % 200 + 1);
        login_from(&s, "acme", "ann@x.test", "wrong password!", &ip)
            .assert_error(401, "invalid_credentials");
    }
    // Locked for everyone now.
    let r = login_from(&s, "acme", "ann@x.test", PASSWORD, "198.51.100.7");
    r.assert_error(429, "rate_limited");
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.locked'"
        ),
        1
    );
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM events WHERE event = 'security.account_locked'"
        ),
        1
    );
    // An operator's unlock lets the owner in at once.
    let uid: String = db(&s)
        .query_row("SELECT id FROM users WHERE email = 'ann@x.test'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let r = s.admin_send("POST", &format!("/api/v1/admin/users/{uid}/unlock"), None);
    assert_eq!(r.status, 200);
    assert_eq!(
        login_from(&s, "acme", "ann@x.test", PASSWORD, "198.51.100.7").status,
        200
    );
}

#[test]
fn an_api_key_has_its_own_budget_of_failed_logins() {
    let mut s = server("");
    s.org("acme", json!({}));
    s.user("owner@acme.test", Some(("acme", "owner")));
    s.user("ann@x.test", Some(("acme", "member")));
    let owner = token(&s.login_ok("acme", "owner@acme.test"), "accessToken");
    let key = s
        .as_user(
            "POST",
            "/api/v1/org/api-keys",
            "acme",
            &owner,
            Some(json!({ "name": "backend", "scopes": ["authenticate"] })),
        )
        .data()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = |password: &str, ip: &str| {
        s.send(
            "POST",
            "/api/v1/public/authenticate",
            &[("X-API-Key", &key)],
            Some(json!({ "email": "ann@x.test", "password": password, "ipAddress": ip })),
        )
    };
    // A fresh `ipAddress` each time dodges the per-IP counters, not the key's budget.
    for i in 0..30 {
        auth("wrong password!", &format!("192.0.2.{}", i + 1))
            .assert_error(401, "invalid_credentials");
    }
    let r = auth(PASSWORD, "192.0.2.200");
    r.assert_error(429, "rate_limited");
    assert!(r.header("X-RateLimit-Limit").is_some());
    // The account itself is fine: Ann signs in directly, and the key recovers in a minute.
    assert_eq!(s.login("acme", "ann@x.test", PASSWORD).status, 200);
    s.clock.advance_secs(61);
    assert_eq!(auth(PASSWORD, "192.0.2.200").status, 200);
}

// ------------------------------------------------------------------------------------------
// 10. `domain` sign-ups prove the mailbox first.
// ------------------------------------------------------------------------------------------

#[test]
fn a_domain_signup_gets_no_session_until_the_email_is_verified() {
    let mut s = server("");
    s.org(
        "corp",
        json!({ "signupMode": "domain", "allowedDomains": ["corp.test"] }),
    );
    let r = post(
        &s,
        "corp",
        "/api/v1/auth/signup",
        json!({ "email": "ceo@corp.test", "password": "someone else's guess" }),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let d = r.data();
    assert_eq!(d["requiresEmailVerification"], true);
    assert!(d.get("accessToken").is_none() && d.get("refreshToken").is_none());
    assert!(r.set_cookie("access_token").is_none());
    assert_eq!(d["user"]["isEmailVerified"], false);
    s.login("corp", "ceo@corp.test", "someone else's guess")
        .assert_error(422, "email_verification_required");
    // The wrong password still says only invalid_credentials.
    s.login("corp", "ceo@corp.test", "not the password")
        .assert_error(401, "invalid_credentials");
    // The mailbox's owner verifies; now the login works.
    let mails = s.mails_to("ceo@corp.test");
    assert_eq!(mails.len(), 1);
    let link = token_in(&mails[0]);
    assert!(
        mails[0]["text"]
            .as_str()
            .unwrap()
            .contains("/verify-email?token=")
    );
    let r = s.get(&format!("/api/v1/auth/verify-email?token={link}"));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        s.login("corp", "ceo@corp.test", "someone else's guess")
            .status,
        200
    );
    // In an open org nothing changes: tokens at once.
    s.org("open", json!({ "signupMode": "open" }));
    let r = post(
        &s,
        "open",
        "/api/v1/auth/signup",
        json!({ "email": "x@y.test", "password": PASSWORD }),
    );
    assert!(r.data()["accessToken"].is_string());
}

// ------------------------------------------------------------------------------------------
// 13. Audit leaks.
// ------------------------------------------------------------------------------------------

#[test]
fn failed_logins_naming_a_foreign_org_stay_in_the_operators_audit() {
    let mut s = server("");
    s.org("alpha", json!({}));
    s.org("beta", json!({}));
    s.user("admin@a.test", Some(("alpha", "owner")));
    s.user("bob@b.test", Some(("beta", "member")));
    // Someone tries Bob's address against org a, where Bob is not a member.
    s.login("alpha", "bob@b.test", "wrong password!")
        .assert_error(401, "invalid_credentials");
    let admin = token(&s.login_ok("alpha", "admin@a.test"), "accessToken");
    let entries = s
        .as_user("GET", "/api/v1/org/audit?limit=100", "alpha", &admin, None)
        .data();
    let text = entries.to_string();
    assert!(!text.contains("user.login_failed"), "{text}");
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM events WHERE event LIKE 'security.%' OR payload LIKE '%bob@b.test%'"
        ),
        0,
        "nothing about Bob reaches org a's webhooks"
    );
    // The operator sees it, with no org.
    let all = s
        .admin_get("/api/v1/admin/audit?action=user.login_failed")
        .data();
    let e = &all["entries"][0];
    assert_eq!(e["orgId"], Value::Null);
    assert_eq!(e["metadata"]["orgSlug"], "alpha");
    // A failure in Bob's own org is that org's to see.
    s.login("beta", "bob@b.test", "wrong password!");
    let n = count(
        &s,
        "SELECT COUNT(*) FROM audit_log WHERE action = 'user.login_failed' AND org_id IS NOT NULL",
    );
    assert_eq!(n, 1);
}

#[test]
fn the_own_audit_trail_hides_other_actors_addresses() {
    let mut s = server("");
    s.org("alpha", json!({}));
    s.user("owner@a.test", Some(("alpha", "owner")));
    let uid = s.user("ann@x.test", Some(("alpha", "member")));
    let owner = s.send(
        "POST",
        "/api/v1/auth/login",
        &[
            ("X-Org-Slug", "alpha"),
            ("X-Forwarded-For", "203.0.113.50"),
            ("User-Agent", "OwnerBrowser/1.0"),
        ],
        Some(json!({ "email": "owner@a.test", "password": PASSWORD })),
    );
    let owner = token(&owner.data(), "accessToken");
    s.send(
        "PUT",
        &format!("/api/v1/org/members/{uid}"),
        &[
            ("X-Org-Slug", "alpha"),
            ("Authorization", &format!("Bearer {owner}")),
            ("X-Forwarded-For", "203.0.113.50"),
            ("User-Agent", "OwnerBrowser/1.0"),
        ],
        Some(json!({ "role": "org_admin" })),
    );
    let ann = s.send(
        "POST",
        "/api/v1/auth/login",
        &[
            ("X-Org-Slug", "alpha"),
            ("X-Forwarded-For", "198.51.100.20"),
            ("User-Agent", "AnnBrowser/2.0"),
        ],
        Some(json!({ "email": "ann@x.test", "password": PASSWORD })),
    );
    let ann = token(&ann.data(), "accessToken");
    let mine = s
        .as_user("GET", "/api/v1/auth/audit?limit=100", "alpha", &ann, None)
        .data();
    let entries = mine["entries"].as_array().unwrap();
    let by_owner: Vec<_> = entries
        .iter()
        .filter(|e| e["actorId"] != json!(uid))
        .collect();
    assert!(!by_owner.is_empty(), "{mine}");
    for e in &by_owner {
        assert_eq!(e["ipAddress"], Value::Null, "{e}");
        assert_eq!(e["userAgent"], Value::Null, "{e}");
    }
    let own_login = entries
        .iter()
        .find(|e| e["action"] == "user.login")
        .unwrap();
    assert_eq!(own_login["ipAddress"], "198.51.100.20");
    assert!(!mine.to_string().contains("203.0.113.50"));
    assert!(!mine.to_string().contains("OwnerBrowser"));
}

// ------------------------------------------------------------------------------------------
// Found by review: the follow-ups of the attacks above.
// ------------------------------------------------------------------------------------------

/// A POST over a fresh connection, for many at once; returns the status.
fn raw_post(base: &str, path: &str, headers: &[(&str, &str)], body: Value) -> u16 {
    use std::io::Write;
    let addr = base.trim_start_matches("http://");
    let mut st = std::net::TcpStream::connect(addr).unwrap();
    st.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let b = body.to_string();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        b.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&b);
    st.write_all(req.as_bytes()).unwrap();
    common::read_response(&mut st).status
}

/// Bob's access token, seen by another org's resource server, plus an invitation an org
/// admin controls, must not become a session in Bob's own orgs.
#[test]
fn an_access_token_and_an_invitation_never_chain_into_another_org() {
    let mut s = server("");
    s.org("alpha", json!({}));
    s.org("gamma", json!({}));
    s.org("beta", json!({}));
    s.user("mallory@a.test", Some(("alpha", "org_admin")));
    let bob_id = s.user("bob@b.test", Some(("beta", "owner")));
    s.admin_send(
        "POST",
        "/api/v1/admin/orgs/gamma/members",
        Some(json!({ "userId": bob_id, "role": "member" })),
    );
    let mallory = token(&s.login_ok("alpha", "mallory@a.test"), "accessToken");
    let seen_by_gamma = token(&s.login_ok("gamma", "bob@b.test"), "accessToken");
    let t = token(
        &s.as_user(
            "POST",
            "/api/v1/org/members/invite",
            "alpha",
            &mallory,
            Some(json!({ "email": "bob@b.test", "sendEmail": false })),
        )
        .data(),
        "token",
    );
    let auth = format!("Bearer {seen_by_gamma}");
    let r = accept(&s, &[("Authorization", &auth)], json!({ "token": t }));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(r.data().get("refreshToken").is_none());
    assert!(r.set_cookie("refresh_token").is_none());
    // Nothing to switch with; the access token alone is refused.
    s.as_user(
        "POST",
        "/api/v1/auth/switch-org",
        "gamma",
        &seen_by_gamma,
        Some(json!({ "orgSlug": "beta" })),
    )
    .assert_error(401, "unauthenticated");
}

/// Claiming a squatted account also spends the squatter's half-done logins: a
/// `requires2FASetup` partial token minted before the reset cannot enrol a factor after it.
#[test]
fn a_claim_spends_the_squatters_partial_tokens() {
    let s = server("");
    let mut s = s;
    s.org(
        "strict",
        json!({ "require2FA": true, "signupMode": "open" }),
    );
    let r = post(
        &s,
        "strict",
        "/api/v1/auth/signup",
        json!({ "email": "vic@x.test", "password": "mallory's password" }),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    // Sign-up in an org that requires 2FA gives no session, only the enrolment step.
    assert_eq!(r.data()["requires2FASetup"], true);
    assert!(r.data().get("accessToken").is_none());
    let partial = token(
        &s.login("strict", "vic@x.test", "mallory's password").data(),
        "partialToken",
    );
    post(
        &s,
        "strict",
        "/api/v1/auth/forgot-password",
        json!({ "email": "vic@x.test" }),
    );
    let t = token_in(s.mails_to("vic@x.test").last().unwrap());
    let r = post(
        &s,
        "strict",
        "/api/v1/auth/reset-password",
        json!({ "token": t, "newPassword": "vic's own password" }),
    );
    assert_eq!(r.status, 200);
    post(
        &s,
        "strict",
        "/api/v1/auth/2fa/setup",
        json!({ "partialToken": partial }),
    )
    .assert_error(400, "invalid_token");
    // Vic's own login reaches the enrolment step.
    let r = s.login("strict", "vic@x.test", "vic's own password");
    assert_eq!(r.data()["requires2FASetup"], true, "{:?}", r.json());
}

/// Concurrent guesses cannot overrun a budget: a wrong password or code is held "in flight"
/// against the budget while it is checked.
#[test]
fn concurrent_guesses_cannot_overrun_the_budgets() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let text = common::base_config(dir.path(), &sink.config())
        .replace("threads = 4", "threads = 32")
        .replace(
            "[argon2]\nmemory_kib = 64\niterations = 1",
            "[argon2]\nmemory_kib = 8192\niterations = 2",
        )
        .replace("[security]\n", "[security]\nlogin_ip_per_minute = 100000\n");
    let mut s = TestServer::start_in(dir, text);
    s.mail = Some(sink);
    s.org("alpha", json!({}));
    s.user("bob@b.test", Some(("alpha", "member")));
    let base = s.base.clone();
    let logins: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..20)
            .map(|i| {
                let base = base.clone();
                sc.spawn(move || {
                    raw_post(
                        &base,
                        "/api/v1/auth/login",
                        &[("X-Org-Slug", "alpha")],
                        json!({ "email": "bob@b.test", "password": format!("guess number {i}") }),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let evaluated = logins.iter().filter(|c| **c == 401).count();
    assert!(evaluated <= 5, "{evaluated} passwords checked: {logins:?}");
    assert!(logins.iter().all(|c| *c == 401 || *c == 429), "{logins:?}");

    // The second factor: 40 partial tokens, 200 concurrent wrong codes.
    s.clock.advance_secs(3600);
    let access = token(&s.login_ok("alpha", "bob@b.test"), "accessToken");
    let secret = enroll_totp(&s, "alpha", &access);
    let _ = secret;
    let partials: Vec<String> = (0..40)
        .map(|_| {
            token(
                &s.login("alpha", "bob@b.test", PASSWORD).data(),
                "partialToken",
            )
        })
        .collect();
    let codes: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..200)
            .map(|i| {
                let p = partials[i % partials.len()].clone();
                let base = base.clone();
                sc.spawn(move || {
                    raw_post(
                        &base,
                        "/api/v1/auth/verify-2fa",
                        &[("X-Org-Slug", "alpha")],
                        json!({ "partialToken": p, "code": format!("{:06}", 100000 + i) }),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wrong = count(
        &s,
        "SELECT COUNT(*) FROM audit_log WHERE action = 'user.2fa_failed'",
    );
    assert!(wrong <= 10, "{wrong} wrong codes evaluated: {codes:?}");
}

/// The org's keys share one budget of failed logins: minting keys does not multiply it.
#[test]
fn minting_api_keys_does_not_multiply_the_login_budget() {
    let mut s = server("api_key_login_failures_per_minute = 3");
    s.org("acme", json!({}));
    s.user("owner@acme.test", Some(("acme", "owner")));
    s.user("ann@x.test", Some(("acme", "member")));
    let owner = token(&s.login_ok("acme", "owner@acme.test"), "accessToken");
    let keys: Vec<String> = (0..4)
        .map(|i| {
            s.as_user(
                "POST",
                "/api/v1/org/api-keys",
                "acme",
                &owner,
                Some(json!({ "name": format!("k{i}"), "scopes": ["authenticate"] })),
            )
            .data()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut refused = 0;
    let mut checked = 0;
    for (i, key) in keys.iter().enumerate() {
        for j in 0..3 {
            let r = s.send(
                "POST",
                "/api/v1/public/authenticate",
                &[("X-API-Key", key)],
                Some(
                    json!({ "email": "ann@x.test", "password": "wrong password!",
                             "ipAddress": format!("192.0.2.{}", i * 10 + j + 1) }),
                ),
            );
            match r.status {
                401 => checked += 1,
                429 => refused += 1,
                other => panic!("{other}"),
            }
        }
    }
    assert_eq!(checked, 3, "the org's budget, whatever the number of keys");
    assert_eq!(refused, 9);
}

/// A switch's audit entry in the target org names no other org.
#[test]
fn a_switch_is_audited_without_the_org_it_came_from() {
    let mut s = server("");
    s.org("alpha", json!({}));
    s.org("beta", json!({}));
    let uid = s.user("bob@b.test", Some(("beta", "member")));
    s.admin_send(
        "POST",
        "/api/v1/admin/orgs/alpha/members",
        Some(json!({ "userId": uid, "role": "owner" })),
    );
    let beta_id: String = db(&s)
        .query_row("SELECT id FROM orgs WHERE slug = 'beta'", [], |r| r.get(0))
        .unwrap();
    let d = s.login_ok("beta", "bob@b.test");
    let r = post(
        &s,
        "beta",
        "/api/v1/auth/switch-org",
        json!({ "orgSlug": "alpha", "refreshToken": d["refreshToken"] }),
    );
    let alpha = token(&r.data(), "accessToken");
    let trail = s
        .as_user("GET", "/api/v1/org/audit?limit=100", "alpha", &alpha, None)
        .data()
        .to_string();
    assert!(trail.contains("user.switch_org"));
    assert!(!trail.contains(&beta_id), "{trail}");
}

/// One IPv6 host can pick any address of its /64: the per-IP counters count the /64.
#[test]
fn an_ipv6_64_is_one_client_for_the_per_ip_limits() {
    let mut s = server("");
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    for i in 0..5 {
        let ip = format!("2001:db8:7:7::{:x}", i + 1);
        login_from(&s, "acme", "ann@x.test", "wrong password!", &ip)
            .assert_error(401, "invalid_credentials");
    }
    login_from(&s, "acme", "ann@x.test", PASSWORD, "2001:db8:7:7:ffff::99")
        .assert_error(429, "rate_limited");
    // Another network is another client.
    assert_eq!(
        login_from(&s, "acme", "ann@x.test", PASSWORD, "2001:db8:7:8::1").status,
        200
    );
}
