//! The hosted pages over real HTTP (API.md §12, docs/pages.md), driven like a browser without
//! JavaScript: a cookie jar, forms posted as application/x-www-form-urlencoded with the CSRF
//! token of the page, redirects followed by hand. The real-browser flows are in tests/browser/.

mod common;
use common::browser::{Browser, csrf_of, html, location};
use common::mail::{Sink, token_in};
use common::{PASSWORD, Resp, TestServer};
use serde_json::json;

fn server() -> TestServer {
    let sink = Sink::start();
    let mut s = TestServer::start_with(&sink.config());
    s.mail = Some(sink);
    s
}

#[test]
fn a_configured_deployment_sets_up_its_first_org_with_the_logged_token() {
    let s = server();
    let mut b = Browser::new(&s);
    let r = b.get("/");
    assert_eq!((r.status, location(&r)), (303, "/setup"));
    let r = b.get("/setup");
    assert_eq!(r.status, 200);
    assert!(html(&r).contains("name=\"setup_token\""));
    let fields = [
        ("org_name", "Acme"),
        ("org_slug", "acme"),
        ("email", "owner@acme.test"),
        ("password", PASSWORD),
    ];
    let mut wrong = fields.to_vec();
    wrong.push(("setup_token", "guess"));
    assert_eq!(b.submit("/setup", "/setup", &wrong).status, 403);
    let token = s.state().setup_token.lock().unwrap().clone().unwrap();
    let mut right = fields.to_vec();
    right.push(("setup_token", &token));
    let r = b.submit("/setup", "/setup", &right);
    assert_eq!((r.status, location(&r)), (303, "/account"), "{}", html(&r));
    let r = b.get("/account");
    assert!(html(&r).contains("owner@acme.test"));
    // Once set up, the page is gone and the token spent.
    let mut other = Browser::new(&s);
    assert_eq!(location(&other.get("/setup")), "/login");
    assert!(s.state().setup_token.lock().unwrap().is_none());
}

#[test]
fn sign_in_sign_out_and_the_org_session_made_from_it() {
    let mut s = server();
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    let mut b = Browser::new(&s);
    // A wrong password and an unknown email read alike.
    let wrong = b.submit(
        "/login",
        "/login",
        &[("email", "ann@x.test"), ("password", "not it at all")],
    );
    let ghost = b.submit(
        "/login",
        "/login",
        &[("email", "ghost@x.test"), ("password", "not it at all")],
    );
    assert_eq!((wrong.status, ghost.status), (401, 401));
    let alert = |r: &Resp| {
        let h = html(r);
        let i = h.find("role=\"alert\"").unwrap();
        h[i..i + 120].to_string()
    };
    assert_eq!(alert(&wrong), alert(&ghost));
    // The deployment's only org needs no ?org=.
    let r = b.submit(
        "/login",
        "/login",
        &[("email", "ann@x.test"), ("password", PASSWORD)],
    );
    assert_eq!((r.status, location(&r)), (303, "/account"), "{}", html(&r));
    let refresh = r
        .cookie_value("refresh_token")
        .expect("the org session's cookies");
    assert!(
        r.set_cookie("latchkey_session")
            .unwrap()
            .contains("HttpOnly")
    );
    let page = b.get("/account");
    assert_eq!(page.status, 200);
    assert!(html(&page).contains("ann@x.test"));
    // Signing out ends the browser session and the org session made from it.
    let r = b.submit("/account", "/logout", &[]);
    assert_eq!((r.status, location(&r)), (303, "/login"));
    let r = s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": refresh })),
    );
    r.assert_error(401, "invalid_token");
    assert_eq!(location(&b.get("/account")), "/login?return_to=%2Faccount");
    // The org hears of it as of an API logout: a `user.logout` event and an audit entry in
    // the org's own trail.
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let (events, audited): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM events WHERE event = 'user.logout' AND org_id IS NOT NULL),
                    (SELECT COUNT(*) FROM audit_log WHERE action = 'user.logout' AND org_id IS NOT NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((events, audited), (1, 1));
}

#[test]
fn forms_need_the_csrf_token_and_our_origin() {
    let mut s = server();
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    let mut b = Browser::new(&s);
    b.get("/login");
    let r = b.post("/login", &[("email", "ann@x.test"), ("password", PASSWORD)]);
    assert_eq!(r.status, 403, "no token");
    let r = b.post(
        "/login",
        &[
            ("csrf", "forged"),
            ("email", "ann@x.test"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 403, "a forged token");
    b.origin = "http://evil.test".into();
    let r = b.submit(
        "/login",
        "/login",
        &[("email", "ann@x.test"), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 403, "another origin");
    assert!(r.set_cookie("latchkey_session").is_none());
    // Another browser's token does not work in this one.
    let mut other = Browser::new(&s);
    let theirs = csrf_of(&other.get("/login"));
    b.origin = "http://127.0.0.1".into();
    let r = b.post(
        "/login",
        &[
            ("csrf", &theirs),
            ("email", "ann@x.test"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 403);
    // Security headers on every page.
    let r = b.get("/login");
    let csp = r.header("Content-Security-Policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'none'"));
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    assert_eq!(r.header("Referrer-Policy"), Some("no-referrer"));
    // A form that is not a form.
    let mut h = b.headers();
    h.push(("Content-Type".into(), "application/json".into()));
    h.push(("Origin".into(), "http://127.0.0.1".into()));
    assert_eq!(s.raw("POST", "/login", &h, Some(b"{}")).status, 415);
}

#[test]
fn return_to_is_followed_only_to_allowed_places() {
    let mut s = server();
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    let go = |to: &str| {
        let mut b = Browser::new(&s);
        let page = format!(
            "/login?return_to={}",
            url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>()
        );
        let r = b.submit(
            &page,
            "/login",
            &[
                ("email", "ann@x.test"),
                ("password", PASSWORD),
                ("return_to", to),
            ],
        );
        location(&r).to_string()
    };
    assert_eq!(go("https://evil.example/steal"), "/account");
    assert_eq!(go("//evil.example/x"), "/account");
    assert_eq!(go("https://user@app.test/x"), "/account");
    // The test config allows "app.test" and "*.acme.test".
    assert_eq!(go("https://app.test/welcome"), "https://app.test/welcome");
    assert_eq!(go("https://portal.acme.test/"), "https://portal.acme.test/");
    assert_eq!(go("/account"), "/account");
}

#[test]
fn a_link_page_spends_nothing_on_get() {
    let mut s = server();
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    let mut b = Browser::new(&s);
    let r = b.submit("/login", "/login/magic-link", &[("email", "ann@x.test")]);
    assert_eq!(r.status, 200);
    // An unknown address gets the very same page.
    let r2 = b.submit("/login", "/login/magic-link", &[("email", "ghost@x.test")]);
    assert_eq!(r2.status, 200);
    let mail = s.mails_to("ann@x.test").pop().unwrap();
    assert!(
        mail["text"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.1/magic-link?token=")
    );
    let t = token_in(&mail);
    let page = format!("/magic-link?token={t}");
    // A mail scanner prefetching the link twice spends nothing.
    assert_eq!(b.get(&page).status, 200);
    assert_eq!(b.get(&page).status, 200);
    let r = b.submit(&page, "/magic-link", &[("token", &t)]);
    assert_eq!((r.status, location(&r)), (303, "/account"), "{}", html(&r));
    // Spent: a second use shows an error page and signs nobody in.
    let mut other = Browser::new(&s);
    let r = other.submit("/login", "/magic-link", &[("token", &t)]);
    assert_eq!(r.status, 400);
    assert!(r.set_cookie("latchkey_session").is_none());
    assert_eq!(other.get(&page).status, 400);
}

#[test]
fn the_second_factor_step_and_its_limits() {
    let mut s = server();
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    let access = s.login_ok("acme", "ann@x.test")["accessToken"]
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
    let code = |s: &TestServer, off: i64| {
        latchkey::totp::code_at_step(&secret, (s.state().now() / 1000 / 30 + off) as u64)
    };
    s.as_user(
        "POST",
        "/api/v1/auth/2fa/enable",
        "acme",
        &access,
        Some(json!({ "code": code(&s, 0) })),
    );
    s.clock.advance_secs(31);
    let mut b = Browser::new(&s);
    let r = b.submit(
        "/login",
        "/login",
        &[("email", "ann@x.test"), ("password", PASSWORD)],
    );
    assert_eq!(location(&r), "/login/2fa");
    // Pending: not signed in yet.
    assert_eq!(location(&b.get("/account")), "/login?return_to=%2Faccount");
    let r = b.submit("/login/2fa", "/login/2fa", &[("code", "000000")]);
    assert_eq!(r.status, 401);
    let r = b.submit("/login/2fa", "/login/2fa", &[("code", &code(&s, 0))]);
    assert_eq!((r.status, location(&r)), (303, "/account"), "{}", html(&r));
    // Five wrong codes end a pending sign-in.
    s.clock.advance_secs(31);
    let mut m = Browser::new(&s);
    m.submit(
        "/login",
        "/login",
        &[("email", "ann@x.test"), ("password", PASSWORD)],
    );
    let mut last = 0;
    for _ in 0..5 {
        last = m
            .submit("/login/2fa", "/login/2fa", &[("code", "000000")])
            .status;
    }
    assert_eq!(last, 429);
    assert_eq!(location(&m.get("/login/2fa")), "/login");
}

#[test]
fn the_pages_speak_german_when_asked() {
    let mut s = server();
    s.org("acme", json!({}));
    let mut b = Browser::new(&s);
    b.lang = Some("de-DE,de;q=0.9,en;q=0.5".into());
    let h = html(&b.get("/login"));
    assert!(h.contains("<html lang=\"de\">"), "{}", &h[..200]);
    assert!(h.contains("Anmelden"));
    let mut e = Browser::new(&s);
    assert!(html(&e.get("/login")).contains("<html lang=\"en\">"));
    assert!(html(&e.get("/login?lang=de")).contains("<html lang=\"de\">"));
    // Remembered for the next page.
    assert!(html(&e.get("/forgot-password")).contains("<html lang=\"de\">"));
}

#[test]
fn the_api_lockout_applies_to_the_login_page() {
    let mut s = server();
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    let mut b = Browser::new(&s);
    for _ in 0..5 {
        b.submit(
            "/login",
            "/login",
            &[("email", "ann@x.test"), ("password", "wrong password")],
        );
    }
    let r = b.submit(
        "/login",
        "/login",
        &[("email", "ann@x.test"), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 429);
    assert!(r.header("Retry-After").is_some());
}

#[test]
fn an_existing_account_signs_in_then_joins_an_invitation() {
    let mut s = server();
    s.org("acme", json!({}));
    s.org("beta", json!({}));
    s.user("admin@acme.test", Some(("acme", "org_admin")));
    s.user("bob@x.test", Some(("beta", "member")));
    let admin = s.login_ok("acme", "admin@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.as_user(
        "POST",
        "/api/v1/org/members/invite",
        "acme",
        &admin,
        Some(json!({ "email": "bob@x.test" })),
    );
    assert_eq!(r.status, 201);
    let mail = s.mails_to("bob@x.test").pop().unwrap();
    assert!(
        mail["text"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.1/invitations/accept?token=")
    );
    let t = token_in(&mail);
    let page = format!("/invitations/accept?token={t}");
    let mut b = Browser::new(&s);
    let r = b.get(&page);
    assert!(html(&r).contains("login?return_to="), "sign in first");
    // Posting without being signed in as Bob joins nobody.
    let r = b.submit("/login", "/invitations/accept", &[("token", &t)]);
    assert_eq!(r.status, 401);
    let r = b.submit(
        &format!(
            "/login?org=beta&return_to={}",
            url::form_urlencoded::byte_serialize(page.as_bytes()).collect::<String>()
        ),
        "/login",
        &[
            ("email", "bob@x.test"),
            ("password", PASSWORD),
            ("org", "beta"),
            ("return_to", &page),
        ],
    );
    assert_eq!(location(&r), page, "back to the invitation");
    let r = b.get(&page);
    assert!(html(&r).contains("name=\"token\""));
    let r = b.submit(&page, "/invitations/accept", &[("token", &t)]);
    assert_eq!((r.status, location(&r)), (303, "/account"), "{}", html(&r));
    let orgs = html(&b.get("/account"));
    assert!(orgs.contains("acme") && orgs.contains("beta"));
}

#[test]
fn ended_browser_sessions_are_swept_a_day_later() {
    let mut s = server();
    s.org("acme", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    let mut b = Browser::new(&s);
    b.submit(
        "/login",
        "/login",
        &[("email", "ann@x.test"), ("password", PASSWORD)],
    );
    b.submit("/account", "/logout", &[]);
    let count = || {
        rusqlite::Connection::open(s.db_path())
            .unwrap()
            .query_row("SELECT COUNT(*) FROM browser_sessions", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
    };
    assert_eq!(count(), 1, "kept a while after sign-out");
    s.clock.advance_secs(86_400 + 120);
    let t = s.state().now();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while s.state().maintenance.swept_at() < t {
        assert!(std::time::Instant::now() < deadline, "no sweep");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(count(), 0);
}

/// Mallory signs up with Vic's address in a `domain` org and waits for Vic to click the
/// genuine verification link. On the page the clicker must hold the account's password, so
/// Vic's click verifies nothing for Mallory; Vic resets the password instead (which claims
/// the account). The person who did sign up verifies with their password.
#[test]
fn a_verification_click_never_hands_a_squatted_account_over() {
    let mut s = server();
    s.org(
        "corp",
        json!({ "signupMode": "domain", "allowedDomains": ["corp.test"] }),
    );
    s.send(
        "POST",
        "/api/v1/auth/signup",
        &[("X-Org-Slug", "corp")],
        Some(json!({ "email": "vic@corp.test", "password": "mallory's password" })),
    );
    let t = token_in(&s.mails_to("vic@corp.test")[0]);
    let page = format!("/verify-email?token={t}");
    let mut vic = Browser::new(&s);
    let r = vic.get(&page);
    assert!(
        html(&r).contains("name=\"password\""),
        "the page asks for the password"
    );
    let r = vic.submit(&page, "/verify-email", &[("token", &t), ("password", "")]);
    assert_eq!(r.status, 401);
    let r = vic.submit(
        &page,
        "/verify-email",
        &[("token", &t), ("password", "vic's guess")],
    );
    assert_eq!(r.status, 401);
    s.login("corp", "vic@corp.test", "mallory's password")
        .assert_error(422, "email_verification_required");
    // The one who signed up (holding the password) verifies.
    let mut m = Browser::new(&s);
    let r = m.submit(
        &page,
        "/verify-email",
        &[("token", &t), ("password", "mallory's password")],
    );
    assert_eq!(r.status, 200, "{}", html(&r));
    assert_eq!(
        s.login("corp", "vic@corp.test", "mallory's password")
            .status,
        200
    );
}

#[test]
fn a_broken_template_override_is_refused_when_the_config_loads() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("templates");
    std::fs::create_dir(&t).unwrap();
    std::fs::write(
        t.join("login.html"),
        "{% extends \"base.html\" %}{% block content %}{% if %}",
    )
    .unwrap();
    let text = common::base_config(
        dir.path(),
        &format!("[ui]\ntemplates_dir = \"{}\"\n", t.display()),
    );
    let err = latchkey::config::Config::from_toml_str(
        &text,
        latchkey::config::ConfigSource::File(dir.path().join("t.toml")),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("ui.templates_dir") && err.contains("login.html"),
        "{err}"
    );
    // A good override replaces the embedded page.
    std::fs::write(
        t.join("login.html"),
        "{% extends \"base.html\" %}{% block content %}<p>Our own sign-in</p>{% endblock %}",
    )
    .unwrap();
    let s = TestServer::start_in(dir, text);
    let mut b = Browser::new(&s);
    assert!(html(&b.get("/login")).contains("Our own sign-in"));
}

/// Naming (or picking) an org the account is not an active member of makes no org session
/// there, whatever the form says.
#[test]
fn a_sign_in_never_makes_a_session_in_a_foreign_org() {
    let mut s = server();
    s.org("acme", json!({}));
    s.org("other", json!({}));
    s.user("ann@x.test", Some(("acme", "member")));
    let mut b = Browser::new(&s);
    let r = b.submit(
        "/login?org=other",
        "/login",
        &[
            ("email", "ann@x.test"),
            ("password", PASSWORD),
            ("org", "other"),
        ],
    );
    assert_eq!(r.status, 403, "{}", html(&r));
    assert!(r.set_cookie("access_token").is_none());
    // Signed in at Latchkey, but the picker refuses the foreign org too.
    let r = b.submit("/account", "/login/select-org", &[("org", "other")]);
    assert_eq!(r.status, 403);
    assert!(r.set_cookie("access_token").is_none());
    let n: i64 = rusqlite::Connection::open(s.db_path())
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sessions s JOIN orgs o ON o.id = s.org_id WHERE o.slug = 'other'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}
