//! Organizations over real HTTP (API.md §4, §5): the org itself, members and their roles,
//! the last-owner guards, pagination, cross-org ids, invitations and the events emitted.

mod common;
use common::{PASSWORD, Resp, TestServer};
use serde_json::{Value, json};

struct World {
    s: TestServer,
    owner: String,
    admin: String,
    member: String,
    owner_id: String,
    admin_id: String,
    member_id: String,
}

fn world() -> World {
    let mut s = TestServer::start_with_mail("");
    s.org("acme", json!({ "signupMode": "invite_only" }));
    let owner_id = s.user("owner@acme.test", Some(("acme", "owner")));
    let admin_id = s.user("admin@acme.test", Some(("acme", "org_admin")));
    let member_id = s.user("member@acme.test", Some(("acme", "member")));
    let tok = |s: &TestServer, e: &str| {
        s.login_ok("acme", e)["accessToken"]
            .as_str()
            .unwrap()
            .to_string()
    };
    World {
        owner: tok(&s, "owner@acme.test"),
        admin: tok(&s, "admin@acme.test"),
        member: tok(&s, "member@acme.test"),
        s,
        owner_id,
        admin_id,
        member_id,
    }
}

impl World {
    fn call(&self, who: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.s.as_user(method, path, "acme", who, body)
    }
    fn events(&self, name: &str) -> Vec<Value> {
        let conn = rusqlite::Connection::open(self.s.db_path()).unwrap();
        let mut st = conn
            .prepare("SELECT payload FROM events WHERE event = ?1 ORDER BY created_at")
            .unwrap();
        st.query_map([name], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
            .collect()
    }
}

#[test]
fn the_permission_matrix() {
    let w = world();
    let mid = w.member_id.clone();
    // (method, path, body, member may?, org_admin may?)
    let cases: Vec<(&str, String, Option<Value>, bool, bool)> = vec![
        ("GET", "/api/v1/org".into(), None, true, true),
        ("GET", "/api/v1/org/members".into(), None, true, true),
        (
            "GET",
            format!("/api/v1/org/members/{mid}"),
            None,
            true,
            true,
        ),
        (
            "PUT",
            "/api/v1/org".into(),
            Some(json!({ "name": "Acme 2" })),
            false,
            true,
        ),
        (
            "PUT",
            format!("/api/v1/org/members/{mid}"),
            Some(json!({ "metadata": { "team": "a" } })),
            false,
            true,
        ),
        (
            "POST",
            "/api/v1/org/members/invite".into(),
            Some(json!({ "email": "new@acme.test" })),
            false,
            true,
        ),
        ("GET", "/api/v1/org/invites".into(), None, false, true),
        (
            "POST",
            format!("/api/v1/org/members/{mid}/deactivate"),
            None,
            false,
            true,
        ),
        (
            "POST",
            format!("/api/v1/org/members/{mid}/reactivate"),
            None,
            false,
            true,
        ),
    ];
    for (m, p, b, member_ok, _) in &cases {
        let r = w.call(&w.member, m, p, b.clone());
        if *member_ok {
            assert_eq!(r.status, 200, "member {m} {p}: {:?}", r.json());
        } else {
            r.assert_error(403, "forbidden");
        }
    }
    w.call(&w.member, "DELETE", "/api/v1/org", None)
        .assert_error(403, "forbidden");
    for (m, p, b, _, admin_ok) in &cases {
        let r = w.call(&w.admin, m, p, b.clone());
        assert_eq!(
            r.status == 200 || r.status == 201,
            *admin_ok,
            "admin {m} {p}: {} {:?}",
            r.status,
            r.json()
        );
    }
    // Owner-only: deleting the org, ownership changes.
    w.call(&w.admin, "DELETE", "/api/v1/org", None)
        .assert_error(403, "forbidden");
    w.call(
        &w.admin,
        "PUT",
        &format!("/api/v1/org/members/{mid}"),
        Some(json!({ "role": "owner" })),
    )
    .assert_error(403, "forbidden");
    w.call(
        &w.admin,
        "POST",
        "/api/v1/org/members/invite",
        Some(json!({ "email": "boss@acme.test", "role": "owner" })),
    )
    .assert_error(403, "forbidden");
    let oid = w.owner_id.clone();
    w.call(
        &w.admin,
        "DELETE",
        &format!("/api/v1/org/members/{oid}"),
        None,
    )
    .assert_error(403, "forbidden");
    w.call(
        &w.admin,
        "POST",
        &format!("/api/v1/org/members/{oid}/deactivate"),
        None,
    )
    .assert_error(403, "forbidden");
    let r = w.call(
        &w.owner,
        "PUT",
        &format!("/api/v1/org/members/{mid}"),
        Some(json!({ "role": "owner" })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["member"]["role"], "owner");
    // A removed member's session ends at once, and they can no longer sign in here.
    let aid = w.admin_id.clone();
    let r = w.call(
        &w.owner,
        "DELETE",
        &format!("/api/v1/org/members/{aid}"),
        None,
    );
    assert_eq!(r.status, 200);
    w.call(&w.admin, "GET", "/api/v1/org", None)
        .assert_error(401, "unauthenticated");
    w.s.login("acme", "admin@acme.test", PASSWORD)
        .assert_error(403, "not_a_member");
}

#[test]
fn the_last_owner_stays() {
    let w = world();
    let oid = w.owner_id.clone();
    w.call(
        &w.owner,
        "PUT",
        &format!("/api/v1/org/members/{oid}"),
        Some(json!({ "role": "member" })),
    )
    .assert_error(403, "forbidden");
    w.call(
        &w.owner,
        "DELETE",
        &format!("/api/v1/org/members/{oid}"),
        None,
    )
    .assert_error(403, "forbidden");
    w.call(
        &w.owner,
        "POST",
        &format!("/api/v1/org/members/{oid}/deactivate"),
        None,
    )
    .assert_error(403, "forbidden");
    // With a second owner, the first may step down.
    let mid = w.member_id.clone();
    w.call(
        &w.owner,
        "PUT",
        &format!("/api/v1/org/members/{mid}"),
        Some(json!({ "role": "owner" })),
    );
    let r = w.call(
        &w.owner,
        "PUT",
        &format!("/api/v1/org/members/{oid}"),
        Some(json!({ "role": "org_admin" })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let changed = w.events("member.role_changed");
    let last = &changed.last().unwrap()["data"];
    assert_eq!(last["previousRole"], "owner");
    assert_eq!(last["role"], "org_admin");
    assert_eq!(last["user"]["id"], oid.as_str());
}

#[test]
fn removal_and_deactivation_end_sessions_in_the_org_at_once() {
    let w = world();
    let mid = w.member_id.clone();
    let r = w.call(
        &w.admin,
        "POST",
        &format!("/api/v1/org/members/{mid}/deactivate"),
        None,
    );
    assert_eq!(r.data()["member"]["status"], "deactivated");
    w.call(&w.member, "GET", "/api/v1/auth/me", None)
        .assert_error(401, "unauthenticated");
    w.s.login("acme", "member@acme.test", PASSWORD)
        .assert_error(403, "membership_inactive");
    let r = w.call(
        &w.admin,
        "POST",
        &format!("/api/v1/org/members/{mid}/reactivate"),
        None,
    );
    assert_eq!(r.data()["member"]["status"], "active");
    let token = w.s.login_ok("acme", "member@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = w.call(
        &w.admin,
        "DELETE",
        &format!("/api/v1/org/members/{mid}"),
        None,
    );
    assert_eq!(r.status, 200);
    w.call(&token, "GET", "/api/v1/auth/me", None)
        .assert_error(401, "unauthenticated");
    let removed = w.events("member.removed");
    assert_eq!(
        removed[0]["data"],
        json!({ "user": { "id": mid, "email": "member@acme.test" }, "removedBy": { "id": w.admin_id, "email": "admin@acme.test" } })
    );
    assert!(!w.events("member.deactivated").is_empty());
    assert!(!w.events("member.reactivated").is_empty());
    assert!(w.events("session.revoked").len() >= 2);
}

#[test]
fn another_orgs_ids_answer_404() {
    let mut w = world();
    w.s.org("beta", json!({}));
    let stranger = w.s.user("stranger@beta.test", Some(("beta", "member")));
    for (m, p) in [
        ("GET", format!("/api/v1/org/members/{stranger}")),
        ("PUT", format!("/api/v1/org/members/{stranger}")),
        ("DELETE", format!("/api/v1/org/members/{stranger}")),
        ("POST", format!("/api/v1/org/members/{stranger}/deactivate")),
    ] {
        let body = (m == "PUT").then(|| json!({ "role": "member" }));
        let r = w.call(&w.owner, m, &p, body);
        r.assert_error(404, "not_found");
        assert!(!String::from_utf8_lossy(&r.body).contains("stranger@"));
    }
    let r = w.s.login_ok("beta", "stranger@beta.test");
    let t = r["accessToken"].as_str().unwrap();
    let inv = w
        .call(
            &w.owner,
            "POST",
            "/api/v1/org/members/invite",
            Some(json!({ "email": "x@acme.test" })),
        )
        .data();
    let id = inv["invite"]["id"].as_str().unwrap();
    // An admin of beta cannot touch acme's invitation through beta.
    w.s.admin_send(
        "POST",
        "/api/v1/admin/orgs/beta/members",
        Some(json!({ "userId": w.owner_id, "role": "owner" })),
    );
    let beta_owner = w.s.login_ok("beta", "owner@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    w.s.as_user(
        "DELETE",
        &format!("/api/v1/org/invites/{id}"),
        "beta",
        &beta_owner,
        None,
    )
    .assert_error(404, "not_found");
    w.s.as_user("GET", "/api/v1/org", "acme", t, None)
        .assert_error(403, "org_mismatch");
}

#[test]
fn members_page_without_duplicates_or_gaps_while_others_join() {
    let mut w = world();
    for i in 0..12 {
        w.s.user(&format!("m{i:02}@acme.test"), Some(("acme", "member")));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut page = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/org/members?limit=4&cursor={c}"),
            None => "/api/v1/org/members?limit=4".to_string(),
        };
        let d = w.call(&w.member, "GET", &path, None).data();
        for m in d["members"].as_array().unwrap() {
            seen.push(m["userId"].as_str().unwrap().to_string());
        }
        // Someone joins between every page.
        w.s.clock.advance_ms(5);
        w.s.user(&format!("late{page}@acme.test"), Some(("acme", "member")));
        page += 1;
        match d["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "no duplicates");
    assert_eq!(
        seen.len(),
        15,
        "every member present at the start is listed once"
    );
    let d = w
        .call(&w.member, "GET", "/api/v1/org/members?role=owner", None)
        .data();
    assert_eq!(d["members"].as_array().unwrap().len(), 1);
    let d = w
        .call(&w.member, "GET", "/api/v1/org/members?q=m0", None)
        .data();
    assert_eq!(d["members"].as_array().unwrap().len(), 10);
    w.call(
        &w.member,
        "GET",
        "/api/v1/org/members?status=sleeping",
        None,
    )
    .assert_error(400, "invalid_request");
    w.call(&w.member, "GET", "/api/v1/org/members?cursor=forged", None)
        .assert_error(400, "invalid_request");
}

#[test]
fn member_metadata_is_an_object_of_bounded_size() {
    let w = world();
    let mid = w.member_id.clone();
    let p = format!("/api/v1/org/members/{mid}");
    let r = w.call(
        &w.admin,
        "PUT",
        &p,
        Some(json!({ "metadata": { "team": "blue", "level": 3 } })),
    );
    assert_eq!(
        r.data()["member"]["metadata"],
        json!({ "team": "blue", "level": 3 })
    );
    w.call(&w.admin, "PUT", &p, Some(json!({ "metadata": [1] })))
        .assert_error(400, "invalid_request");
    w.call(
        &w.admin,
        "PUT",
        &p,
        Some(json!({ "metadata": { "x": "y".repeat(9000) } })),
    )
    .assert_error(400, "invalid_request");
    assert_eq!(w.events("member.updated").len(), 1);
}

#[test]
fn org_settings_update_and_delete() {
    let w = world();
    let r = w.call(&w.admin, "PUT", "/api/v1/org", Some(json!({ "appUrl": "https://app.acme.test", "settings": { "signupMode": "domain", "allowedDomains": ["acme.test"] } })));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        r.data()["org"]["settings"]["allowedDomains"],
        json!(["acme.test"])
    );
    w.call(
        &w.admin,
        "PUT",
        "/api/v1/org",
        Some(json!({ "plan": "enterprise" })),
    )
    .assert_error(400, "invalid_request");
    assert_eq!(w.events("org.updated").len(), 1);
    let r = w.call(&w.owner, "DELETE", "/api/v1/org", None);
    assert_eq!(r.status, 200);
    w.call(&w.owner, "GET", "/api/v1/org", None)
        .assert_error(404, "org_not_found");
    assert_eq!(w.events("org.deleted").len(), 1);
    let conn = rusqlite::Connection::open(w.s.db_path()).unwrap();
    let live: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(live, 0, "deleting the org revoked its sessions");
}

fn accept(s: &TestServer, body: Value) -> Resp {
    s.send("POST", "/api/v1/invitations/accept", &[], Some(body))
}

#[test]
fn invitations_for_new_and_existing_users() {
    let mut w = world();
    let r = w.call(
        &w.admin,
        "POST",
        "/api/v1/org/members/invite",
        Some(json!({ "email": "New@Acme.test", "role": "org_admin" })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let d = r.data();
    assert_eq!(d["invite"]["email"], "new@acme.test");
    assert_eq!(d["invite"]["state"], "pending");
    assert_eq!(d["invite"]["invitedBy"]["id"], w.admin_id.as_str());
    // Emailed (the default): the inviter never sees the token.
    assert!(
        d.get("token").is_none() && d.get("acceptUrl").is_none(),
        "{d}"
    );
    w.call(
        &w.admin,
        "POST",
        "/api/v1/org/members/invite",
        Some(json!({ "email": "new@acme.test" })),
    )
    .assert_error(409, "invitation_pending");
    w.call(
        &w.admin,
        "POST",
        "/api/v1/org/members/invite",
        Some(json!({ "email": "member@acme.test" })),
    )
    .assert_error(409, "already_member");
    w.call(
        &w.admin,
        "POST",
        "/api/v1/org/members/invite",
        Some(json!({ "email": "z@acme.test", "expiresInDays": 31 })),
    )
    .assert_error(400, "invalid_request");
    // The invitation email goes out with its link; only the mailbox sees the token.
    let mails = w.s.mails_to("new@acme.test");
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(
        mail["text"]
            .as_str()
            .unwrap()
            .contains("/invitations/accept?token=")
    );
    let token = common::mail::token_in(mail);
    assert!(mail["subject"].as_str().unwrap().contains("acme"));

    // A new user needs a password; then lands with the invited role, verified.
    accept(&w.s, json!({ "token": token })).assert_error(400, "invalid_request");
    accept(&w.s, json!({ "token": token, "password": "short" })).assert_error(400, "weak_password");
    let r = accept(
        &w.s,
        json!({ "token": token, "name": "Newbie", "password": "a fine long password" }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let d = r.data();
    assert_eq!(d["isNewUser"], true);
    assert_eq!(d["membership"]["role"], "org_admin");
    assert_eq!(d["user"]["isEmailVerified"], true);
    assert!(d["accessToken"].is_string());
    accept(
        &w.s,
        json!({ "token": token, "password": "a fine long password" }),
    )
    .assert_error(400, "invalid_token");
    let joined = w.events("member.joined");
    assert_eq!(joined[0]["data"]["user"]["email"], "new@acme.test");
    assert_eq!(joined[0]["data"]["membership"]["role"], "org_admin");
    let invited = w.events("member.invited");
    assert_eq!(invited[0]["data"]["email"], "new@acme.test");
    assert_eq!(invited[0]["data"]["invitedBy"]["email"], "admin@acme.test");

    // An existing user (of another org) proves themselves: the token alone is not enough.
    w.s.org("beta", json!({}));
    w.s.user("bob@beta.test", Some(("beta", "member")));
    let t2 = w
        .call(
            &w.owner,
            "POST",
            "/api/v1/org/members/invite",
            Some(json!({ "email": "bob@beta.test", "sendEmail": false })),
        )
        .data()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The invited user sees it in their pending invitations.
    let bob = w.s.login_ok("beta", "bob@beta.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let mine =
        w.s.as_user("GET", "/api/v1/auth/invitations", "beta", &bob, None)
            .data();
    assert_eq!(mine["invitations"][0]["org"]["slug"], "acme");
    w.s.send(
        "POST",
        "/api/v1/invitations/accept",
        &[("X-Org-Slug", "beta")],
        Some(json!({ "token": t2 })),
    )
    .assert_error(403, "org_mismatch");
    accept(&w.s, json!({ "token": t2 })).assert_error(401, "unauthenticated");
    let r = w.s.send(
        "POST",
        "/api/v1/invitations/accept",
        &[("Authorization", &format!("Bearer {bob}"))],
        Some(json!({ "token": t2 })),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["isNewUser"], false);
    assert_eq!(r.data()["membership"]["role"], "member");
}

#[test]
fn invitations_expire_can_be_revoked_resent_and_declined() {
    let mut w = world();
    let inv = |w: &World, email: &str, days: i64| {
        w.call(
            &w.admin,
            "POST",
            "/api/v1/org/members/invite",
            Some(json!({ "email": email, "expiresInDays": days, "sendEmail": false })),
        )
        .data()
    };
    let a = inv(&w, "a@x.test", 1);
    w.s.clock.advance_secs(86_400 + 1);
    w.admin = w.s.login_ok("acme", "admin@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    accept(
        &w.s,
        json!({ "token": a["token"], "password": "a fine long password" }),
    )
    .assert_error(400, "invalid_token");
    let d = w
        .call(&w.admin, "GET", "/api/v1/org/invites?state=expired", None)
        .data();
    assert_eq!(d["invites"].as_array().unwrap().len(), 1);
    // Expired does not block a new invitation.
    let b = inv(&w, "a@x.test", 7);
    let id = b["invite"]["id"].as_str().unwrap().to_string();
    let r = w.call(
        &w.admin,
        "POST",
        &format!("/api/v1/org/invites/{id}/resend"),
        None,
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let fresh = r.data()["token"].as_str().unwrap().to_string();
    accept(
        &w.s,
        json!({ "token": b["token"], "password": "a fine long password" }),
    )
    .assert_error(400, "invalid_token");
    let r = w.call(
        &w.admin,
        "DELETE",
        &format!("/api/v1/org/invites/{id}"),
        None,
    );
    assert_eq!(r.status, 200);
    accept(
        &w.s,
        json!({ "token": fresh, "password": "a fine long password" }),
    )
    .assert_error(400, "invalid_token");
    w.call(
        &w.admin,
        "DELETE",
        &format!("/api/v1/org/invites/{id}"),
        None,
    )
    .assert_error(400, "invalid_request");
    assert_eq!(w.events("invite.revoked").len(), 1);
    let c = inv(&w, "c@x.test", 7);
    let r = w.s.send(
        "POST",
        "/api/v1/invitations/decline",
        &[],
        Some(json!({ "token": c["token"] })),
    );
    assert_eq!(r.status, 200);
    accept(
        &w.s,
        json!({ "token": c["token"], "password": "a fine long password" }),
    )
    .assert_error(400, "invalid_token");
    assert_eq!(w.events("invite.declined")[0]["data"]["email"], "c@x.test");
    let d = w
        .call(&w.admin, "GET", "/api/v1/org/invites?state=pending", None)
        .data();
    assert_eq!(d["invites"].as_array().unwrap().len(), 0);
    w.call(&w.admin, "GET", "/api/v1/org/invites?state=bogus", None)
        .assert_error(400, "invalid_request");
    // Tokens are stored only as hashes.
    let conn = rusqlite::Connection::open(w.s.db_path()).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM invitations WHERE token_hash = ?1",
            [c["token"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}
