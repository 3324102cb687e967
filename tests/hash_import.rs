//! Password-hash import over real HTTP (API.md §14, docs/api.md "Importing password hashes"):
//! `POST /api/v1/admin/users/import` takes users with the hashes of the system they come from;
//! each signs in with the old password (JSON API and hosted page), the stored hash becomes
//! argon2id on the first success, a wrong password fails like any other and leaves the hash.
//! The hashes below were made by other implementations (Python bcrypt 5.0, passlib 1.7.4,
//! hashlib, argon2-cffi 25.1, and Firebase's own scrypt utility), not by the crates that
//! verify them. Then the attacks: costs beyond the bounds, malformed hashes, callers that are
//! not the operator, and emails that are already taken.

mod common;
use common::browser::{Browser, location};
use common::{PASSWORD, Resp, TestServer};
use serde_json::{Value, json};

const PW: &str = "hunter2 old password";

/// (passwordHashType, passwordHash, the password it was made from).
const HASHES: &[(&str, &str, &str)] = &[
    (
        "bcrypt",
        "$2b$04$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu",
        PW,
    ),
    (
        "bcrypt",
        "$2a$05$COMyEPO6cfqMid6tsVEjUubkrYDVhuJ3vEMUrxK5AR45jAx0IMNyK",
        PW,
    ),
    (
        "bcrypt",
        "$2y$04$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu",
        PW,
    ),
    (
        "pbkdf2",
        "$pbkdf2-sha256$i=1000,l=32$R2a5pF9Mf1QMnqVRHj6a4g$Y8zkNApowue8TAvFxze6FVALuiWyz2uOI9VVeEvMSDA",
        PW,
    ),
    (
        "pbkdf2",
        "$pbkdf2-sha512$i=1000,l=64$R2a5pF9Mf1QMnqVRHj6a4g$MS8wM4DBwDtF9JXJLuVeGtd4XHaZmBLucm4q5otRZcTxqOvN9SCeSOc8pGSD/PDpIHfIq1lVH7tIsHBw37Mahg",
        PW,
    ),
    (
        "pbkdf2",
        "$pbkdf2-sha256$1000$dY6xViqlVCrlXKu1NkaoVQ$IOIK891DAnHWIOb3dTSA3vreyhSJIhzL.LM5yu6YRP4",
        PW,
    ),
    (
        "pbkdf2",
        "$pbkdf2$1000$C0GIEQJAKOUcA2DMmTPGOA$zlMGKrEeYVeNRJL1G.KwvUzDV48",
        PW,
    ),
    (
        "pbkdf2",
        "pbkdf2_sha256$1000$Xq9vKp2mWz7L$GGZ6mdeLo1gsM8rUQtGLNlXMQD7rGNTaykjnC0l1QW0=",
        PW,
    ),
    (
        "scrypt",
        "$scrypt$ln=10,r=8,p=1$d865NyZk7P2fE2IMoRTivA$5yzmU43dGJBOMZ2ut59TW5+u5s8m5ys1LwI7o5tqYH0",
        PW,
    ),
    (
        "scrypt",
        "$scrypt$ln=10,r=8,p=2$R2a5pF9Mf1QMnqVRHj6a4g$qhkkRd+BcRdCs2ElPkxoZ/+VOfVUpf5nLIJNK1JIR5k",
        PW,
    ),
    ("ssha", "{SSHA}vYfBuctbcps9HfN9IBhkc+lFCgb6X4uR", PW),
    (
        "ssha",
        "{SSHA256}AkQuseNJBXWRvsV1TkvwXxhDN8/+cop9NpHI3f7qyNPw/n+Pce7duw==",
        PW,
    ),
    (
        "ssha",
        "{SSHA512}0OT5AgqFEFvYVtMSz7cCkPvvDxtqXHEbz82EqlYxjKUQn1I+IbHp47Iva+4xYSk6i1f0OX1Lsqa6Odqn1hKBOcB4D4Hw3puz",
        PW,
    ),
    // firebase/scrypt's README: the sample project's parameters and exported user.
    (
        "firebase-scrypt",
        "$firebase-scrypt$hash=lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==$salt=42xEC+ixf3L2lw==$sk=jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==$ss=Bw==$r=8$m=14",
        "user1password",
    ),
    (
        "argon2",
        "$argon2id$v=19$m=1024,t=2,p=1$65sjVno/NUQNno+7rZrs0w$myL4G01PS764n18aNKHMRAW26dH8xD5d47txKYBt6wo",
        PW,
    ),
    (
        "argon2",
        "$argon2i$v=19$m=512,t=3,p=2$SEhnj4ifsNwYYAiMtcmuzg$CLcSetihEzwx67lJOdtYz8MZRzK1XjOrTQe1h9XNKVk",
        PW,
    ),
];

/// What the test server writes (base_config's argon2 parameters).
const OWN_PREFIX: &str = "$argon2id$v=19$m=64,t=1,p=1$";

fn server() -> TestServer {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s
}

fn import(s: &mut TestServer, users: Value) -> Resp {
    s.admin_send(
        "POST",
        "/api/v1/admin/users/import",
        Some(json!({ "users": users })),
    )
}

fn stored_hash(s: &TestServer, email: &str) -> Option<String> {
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    conn.query_row(
        "SELECT password_hash FROM users WHERE email = ?1",
        [email],
        |r| r.get(0),
    )
    .unwrap()
}

fn user_count(s: &TestServer) -> i64 {
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap()
}

fn field_of(r: &Resp) -> String {
    r.assert_error(400, "invalid_request")["errors"][0]["field"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn every_format_signs_in_with_the_old_password_and_becomes_argon2id() {
    let mut s = server();
    let rows: Vec<Value> = HASHES
        .iter()
        .enumerate()
        .map(|(i, (ty, hash, _))| {
            json!({
                "email": format!("User{i}@Old.test"),
                "passwordHash": hash,
                "passwordHashType": ty,
                "firstName": "Old",
                "emailVerified": true,
                "orgSlug": "acme",
            })
        })
        .collect();
    let r = import(&mut s, Value::Array(rows));
    assert_eq!(r.status, 200, "{:?}", r.json());
    let d = r.data();
    assert_eq!(d["imported"], HASHES.len());
    for (i, (ty, hash, pw)) in HASHES.iter().enumerate() {
        let email = format!("user{i}@old.test");
        let res = &d["results"][i];
        assert_eq!(res["email"], email.as_str());
        assert!(res["id"].as_str().unwrap().starts_with("usr_"), "{res}");
        assert_eq!(stored_hash(&s, &email).as_deref(), Some(*hash), "{ty}");

        // A wrong password fails like any other and leaves the imported hash.
        s.login("acme", &email, "not the old password")
            .assert_error(401, "invalid_credentials");
        assert_eq!(stored_hash(&s, &email).as_deref(), Some(*hash), "{ty}");

        let r = s.login("acme", &email, pw);
        assert_eq!(r.status, 200, "{ty} {hash}: {:?}", r.json());
        assert_eq!(r.data()["user"]["email"], email.as_str());
        let now = stored_hash(&s, &email).unwrap();
        assert!(now.starts_with(OWN_PREFIX), "{ty}: {now}");

        // The rewritten hash takes the same password, and only it.
        assert_eq!(s.login("acme", &email, pw).status, 200, "{ty}");
        assert_eq!(
            stored_hash(&s, &email).unwrap(),
            now,
            "{ty}: no second rewrite"
        );
        s.login("acme", &email, "not the old password")
            .assert_error(401, "invalid_credentials");
        // Four logins from one IP each; stay under login_ip_per_minute.
        s.clock.advance_secs(61);
    }
}

#[test]
fn the_hosted_sign_in_page_and_change_password_take_the_old_password() {
    let mut s = server();
    let (ty, hash, pw) = HASHES[0];
    let r = import(
        &mut s,
        json!([
            { "email": "page@old.test", "passwordHash": hash, "passwordHashType": ty, "orgSlug": "acme" },
            { "email": "change@old.test", "passwordHash": hash, "passwordHashType": ty, "orgSlug": "acme" },
        ]),
    );
    assert_eq!(r.data()["imported"], 2);

    let mut b = Browser::new(&s);
    let r = b.submit(
        "/login",
        "/login",
        &[
            ("email", "page@old.test"),
            ("password", "not the old password"),
        ],
    );
    assert_eq!(r.status, 401);
    assert_eq!(stored_hash(&s, "page@old.test").as_deref(), Some(hash));
    let r = b.submit(
        "/login",
        "/login",
        &[("email", "page@old.test"), ("password", pw)],
    );
    assert_eq!((r.status, location(&r)), (303, "/account"));
    assert!(
        stored_hash(&s, "page@old.test")
            .unwrap()
            .starts_with(OWN_PREFIX)
    );

    // change-password checks the current password against whatever is stored: put the
    // imported hash back after the login that rewrote it.
    let token = s.login("acme", "change@old.test", pw).data()["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    conn.execute(
        "UPDATE users SET password_hash = ?1 WHERE email = 'change@old.test'",
        [hash],
    )
    .unwrap();
    let change = |current: &str| {
        s.as_user(
            "POST",
            "/api/v1/auth/change-password",
            "acme",
            &token,
            Some(json!({ "currentPassword": current, "newPassword": "a brand new passphrase" })),
        )
    };
    change("not the old password").assert_error(401, "invalid_credentials");
    assert_eq!(change(pw).status, 200);
    assert!(
        stored_hash(&s, "change@old.test")
            .unwrap()
            .starts_with(OWN_PREFIX)
    );
    assert_eq!(
        s.login("acme", "change@old.test", "a brand new passphrase")
            .status,
        200
    );
}

#[test]
fn rows_fail_alone_and_an_existing_account_is_never_overwritten() {
    let mut s = server();
    s.user("ann@acme.test", Some(("acme", "member")));
    let before = stored_hash(&s, "ann@acme.test");
    let (ty, hash, pw) = HASHES[0];
    let row = |email: &str| json!({ "email": email, "passwordHash": hash, "passwordHashType": ty });
    let mut dave = row("dave@old.test");
    dave["orgSlug"] = json!("acme");
    dave["role"] = json!("org_admin");
    let mut carol = row("carol@old.test");
    carol["orgSlug"] = json!("no-such-org");
    let r = import(
        &mut s,
        json!([
            row(" ANN@acme.test "),
            row("bob@old.test"),
            row("Bob@old.test"),
            carol,
            dave
        ]),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let d = r.data();
    assert_eq!(d["imported"], 2);
    let results = d["results"].as_array().unwrap();
    let error_of = |i: usize| {
        results[i]["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(results[0]["email"], "ann@acme.test");
    assert_eq!(error_of(0), "already_exists");
    assert!(results[0].get("id").is_none());
    assert!(results[1]["id"].is_string());
    assert_eq!(
        error_of(2),
        "already_exists",
        "a duplicate within the request"
    );
    assert_eq!(error_of(3), "org_not_found");
    assert!(results[4]["id"].is_string());

    // Ann keeps her password; the imported hash was not written anywhere.
    assert_eq!(stored_hash(&s, "ann@acme.test"), before);
    s.login("acme", "ann@acme.test", pw)
        .assert_error(401, "invalid_credentials");
    assert_eq!(s.login("acme", "ann@acme.test", PASSWORD).status, 200);
    assert!(stored_hash_opt(&s, "carol@old.test").is_none());
    assert_eq!(user_count(&s), 3, "ann, bob and dave");

    // Dave is seated with the role asked for; bob has no membership.
    let r = s.login("acme", "dave@old.test", pw);
    assert_eq!(r.data()["membership"]["role"], "org_admin");
    s.login("acme", "bob@old.test", pw)
        .assert_error(403, "not_a_member");

    // One audit entry for the call, by the admin key.
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let (actor, meta): (String, String) = conn
        .query_row(
            "SELECT actor_type, metadata FROM audit_log WHERE action = 'users.imported'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(actor, "admin_key");
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["imported"], 2);
    assert_eq!(meta["failed"], 3);
    assert_eq!(meta["userIds"].as_array().unwrap().len(), 2);
}

#[test]
fn costs_beyond_the_bounds_are_refused_before_anything_is_written() {
    let mut s = server();
    let good = json!({ "email": "good@old.test", "passwordHash": HASHES[0].1, "passwordHashType": "bcrypt" });
    for (ty, hash, what) in [
        (
            "bcrypt",
            "$2b$31$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu",
            "cost",
        ),
        (
            "bcrypt",
            "$2b$15$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu",
            "cost",
        ),
        (
            "scrypt",
            "$scrypt$ln=30,r=8,p=1$d865NyZk7P2fE2IMoRTivA$5yzmU43dGJBOMZ2ut59TW5+u5s8m5ys1LwI7o5tqYH0",
            "64 MiB",
        ),
        (
            "scrypt",
            "$scrypt$ln=14,r=8,p=100$d865NyZk7P2fE2IMoRTivA$5yzmU43dGJBOMZ2ut59TW5+u5s8m5ys1LwI7o5tqYH0",
            "work",
        ),
        (
            "firebase-scrypt",
            "$firebase-scrypt$hash=lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==$salt=42xEC+ixf3L2lw==$sk=jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==$ss=Bw==$r=8$m=31",
            "64 MiB",
        ),
        (
            "pbkdf2",
            "$pbkdf2-sha256$i=4000000000,l=32$R2a5pF9Mf1QMnqVRHj6a4g$Y8zkNApowue8TAvFxze6FVALuiWyz2uOI9VVeEvMSDA",
            "rounds",
        ),
        (
            "argon2",
            "$argon2id$v=19$m=4194304,t=2,p=1$65sjVno/NUQNno+7rZrs0w$myL4G01PS764n18aNKHMRAW26dH8xD5d47txKYBt6wo",
            "m must be",
        ),
        (
            "argon2",
            "$argon2id$v=19$m=1024,t=1000,p=1$65sjVno/NUQNno+7rZrs0w$myL4G01PS764n18aNKHMRAW26dH8xD5d47txKYBt6wo",
            "t must be",
        ),
    ] {
        let bad = json!({ "email": "bad@old.test", "passwordHash": hash, "passwordHashType": ty });
        let r = import(&mut s, json!([good, bad]));
        let e = r.assert_error(400, "invalid_request");
        assert_eq!(e["errors"][0]["field"], "users[1].passwordHash", "{hash}");
        assert!(e["message"].as_str().unwrap().contains(what), "{hash}: {e}");
    }
    assert_eq!(
        user_count(&s),
        0,
        "the good row of a refused request is not written"
    );
}

#[test]
fn malformed_hashes_and_requests_are_400s_naming_the_field() {
    let mut s = server();
    let (ty, hash, _) = HASHES[0];
    let ok = json!({ "email": "a@old.test", "passwordHash": hash, "passwordHashType": ty });
    let with = |k: &str, v: Value| {
        let mut r = ok.clone();
        r[k] = v;
        r
    };
    for bad in [
        "",
        "plaintext-password",
        "$2b$04$tooShort",
        "$2b$04$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkx!",
        // A valid hash of another type than declared.
        "$scrypt$ln=10,r=8,p=1$d865NyZk7P2fE2IMoRTivA$5yzmU43dGJBOMZ2ut59TW5+u5s8m5ys1LwI7o5tqYH0",
    ] {
        let r = import(&mut s, json!([ok, with("passwordHash", json!(bad))]));
        assert_eq!(field_of(&r), "users[1].passwordHash", "{bad:?}");
    }
    for (ty, bad) in [
        ("scrypt", "$scrypt$ln=10,r=8$c2FsdA$aGFzaGhhc2hoYXNo"),
        ("pbkdf2", "$pbkdf2-sha256$i=ten$c2FsdA$aGFzaGhhc2hoYXNo"),
        ("ssha", "{SSHA}c2hvcnQ="),
        (
            "firebase-scrypt",
            "$firebase-scrypt$hash=aGFzaA$salt=c2FsdA$r=8$m=14",
        ),
        (
            "argon2",
            "$argon2id$v=19$m=1024,t=2,p=1$65sjVno/NUQNno+7rZrs0w",
        ),
    ] {
        let row = json!({ "email": "b@old.test", "passwordHash": bad, "passwordHashType": ty });
        assert_eq!(
            field_of(&import(&mut s, json!([row]))),
            "users[0].passwordHash",
            "{bad}"
        );
    }
    let r = import(&mut s, json!([with("passwordHashType", json!("md5"))]));
    assert_eq!(field_of(&r), "users[0].passwordHashType");
    let r = import(&mut s, json!([with("role", json!("org_admin"))]));
    assert_eq!(field_of(&r), "users[0].role", "a role needs orgSlug");
    let mut seated = with("orgSlug", json!("acme"));
    seated["role"] = json!("superuser");
    assert_eq!(field_of(&import(&mut s, json!([seated]))), "users[0].role");
    assert_eq!(
        field_of(&import(&mut s, json!([with("name", json!("  "))]))),
        "users[0].name"
    );
    let r = import(&mut s, json!([with("email", json!("not an email"))]));
    assert_eq!(
        r.assert_error(400, "invalid_email")["errors"][0]["field"],
        "users[0].email"
    );
    // Unknown fields, including the plain password of POST /admin/users.
    let r = import(&mut s, json!([with("password", json!(PASSWORD))]));
    assert_eq!(r.status, 400);
    assert_eq!(field_of(&import(&mut s, json!([]))), "users");
    let many: Vec<Value> = (0..1001)
        .map(|i| with("email", json!(format!("u{i}@old.test"))))
        .collect();
    assert_eq!(field_of(&import(&mut s, Value::Array(many))), "users");
    assert_eq!(user_count(&s), 0);
}

#[test]
fn only_the_operator_may_import() {
    let mut s = server();
    s.user("owner@acme.test", Some(("acme", "owner")));
    let token = s.login_ok("acme", "owner@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.as_user(
        "POST",
        "/api/v1/org/api-keys",
        "acme",
        &token,
        Some(json!({ "name": "migration" })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let api_key = r.data()["key"].as_str().unwrap().to_string();
    let body = json!({ "users": [{ "email": "x@old.test", "passwordHash": HASHES[0].1, "passwordHashType": "bcrypt" }] });
    let bearer_token = format!("Bearer {token}");
    let bearer_key = format!("Bearer {api_key}");
    let forged = format!("Bearer sk_admin_{}", "0".repeat(64));
    for headers in [
        vec![],
        vec![
            ("X-Org-Slug", "acme"),
            ("Authorization", bearer_token.as_str()),
        ],
        vec![("X-API-Key", api_key.as_str())],
        vec![("Authorization", bearer_key.as_str())],
        vec![("Authorization", forged.as_str())],
    ] {
        let r = s.send(
            "POST",
            "/api/v1/admin/users/import",
            &headers,
            Some(body.clone()),
        );
        assert!(
            r.status == 401 || r.status == 403,
            "{headers:?}: {} {:?}",
            r.status,
            r.json()
        );
    }
    assert!(stored_hash_opt(&s, "x@old.test").is_none());
}

fn stored_hash_opt(s: &TestServer, email: &str) -> Option<Option<String>> {
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    conn.query_row(
        "SELECT password_hash FROM users WHERE email = ?1",
        [email],
        |r| r.get(0),
    )
    .ok()
}
