//! No live token stays readable in the database (API.md §11): emails wait in the outbox
//! sealed, are redacted once handed to the SMTP server, and still carry working links. Read
//! from the SQLite file itself, as someone holding a stolen copy or a backup would.

mod common;
use common::mail::{Sink, token_in};
use common::{PASSWORD, TestServer};
use rusqlite::types::ValueRef;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn db(s: &TestServer) -> rusqlite::Connection {
    rusqlite::Connection::open(s.db_path()).unwrap()
}

/// Every column of every row of `table`, as text (blobs lossily), one string per row.
fn dump(s: &TestServer, table: &str) -> Vec<String> {
    let conn = db(s);
    let mut st = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        let mut row = String::new();
        for i in 0..n {
            match r.get_ref(i)? {
                ValueRef::Null => row.push_str("NULL"),
                ValueRef::Integer(v) => row.push_str(&v.to_string()),
                ValueRef::Real(v) => row.push_str(&v.to_string()),
                ValueRef::Text(t) | ValueRef::Blob(t) => row.push_str(&String::from_utf8_lossy(t)),
            }
            row.push('|');
        }
        Ok(row)
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The database file and its WAL, byte for byte.
fn raw_files(s: &TestServer) -> Vec<u8> {
    let mut bytes = std::fs::read(s.db_path()).unwrap();
    let wal = s.db_path().with_extension("db-wal");
    if let Ok(w) = std::fs::read(wal) {
        bytes.extend_from_slice(&w);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `(status, payload)` of the email rows, oldest first.
fn email_rows(s: &TestServer) -> Vec<(String, Value)> {
    let conn = db(s);
    let mut st = conn
        .prepare("SELECT status, payload FROM outbox WHERE kind = 'email' ORDER BY id")
        .unwrap();
    st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            serde_json::from_str(&r.get::<_, String>(1)?).unwrap(),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn post(s: &TestServer, path: &str, body: Value) -> common::Resp {
    s.send("POST", path, &[("X-Org-Slug", "acme")], Some(body))
}

#[test]
fn tokens_are_never_readable_in_the_outbox_and_still_work() {
    let sink = Sink::start_held(true);
    let mut s = TestServer::start_with(&sink.config());
    s.mail = Some(sink.clone());
    s.org("acme", json!({ "signupMode": "open" }));
    s.user("ann@example.com", Some(("acme", "member")));
    s.user("admin@acme.test", Some(("acme", "org_admin")));
    let admin = s.login_ok("acme", "admin@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(
        &s,
        "/api/v1/auth/signup",
        json!({ "email": "new@example.com", "password": PASSWORD }),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());

    // The four flows that mail a token.
    for (path, email) in [
        ("/api/v1/auth/forgot-password", "ann@example.com"),
        ("/api/v1/auth/magic-link", "ann@example.com"),
        ("/api/v1/auth/verify-email/send", "new@example.com"),
    ] {
        assert_eq!(post(&s, path, json!({ "email": email })).status, 200);
    }
    let r = s.as_user(
        "POST",
        "/api/v1/org/members/invite",
        "acme",
        &admin,
        Some(json!({ "email": "invitee@example.com" })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    // An emailed invitation's token is not in the answer: only the mailbox sees it.
    assert!(r.data().get("token").is_none());

    // Before delivery: every email is sealed (the tokens, read from the delivered mails
    // below, are checked against these snapshots).
    let rows = email_rows(&s);
    assert!(rows.len() >= 4, "{rows:?}");
    for (_, p) in &rows {
        assert_eq!(p["format"], "sealed", "{p}");
        assert!(p.get("text").is_none() && p.get("html").is_none(), "{p}");
    }
    let outbox_before = dump(&s, "outbox").join("\n");
    let events_before = dump(&s, "events").join("\n");
    let raw_before = raw_files(&s);
    assert!(!outbox_before.contains("token="));

    sink.release();
    let reset = s.mails_to("ann@example.com");
    assert_eq!(reset.len(), 2, "reset and magic link");
    let verify = s.mails_to("new@example.com");
    let invite = s.mails_to("invitee@example.com");
    assert_eq!(invite.len(), 1);
    let invite_token = token_in(&invite[0]);
    let tokens = [
        token_in(&reset[0]),
        token_in(&reset[1]),
        token_in(verify.last().unwrap()),
        invite_token.clone(),
    ];
    for t in &tokens {
        assert!(t.len() >= 32, "{t}");
        assert!(!outbox_before.contains(t.as_str()), "token in the outbox");
        assert!(!events_before.contains(t.as_str()), "token in an event");
        assert!(!contains(&raw_before, t), "token in the database file");
    }

    // After delivery: every email row is redacted; to and subject stay for the operator.
    wait_until("results recorded", || {
        email_rows(&s).iter().all(|(st, _)| st == "succeeded")
    });
    for (_, p) in email_rows(&s) {
        assert_eq!(p["format"], "redacted", "{p}");
        assert!(p.get("box").is_none(), "{p}");
    }
    let outbox_after = dump(&s, "outbox").join("\n");
    let raw_after = raw_files(&s);
    for t in &tokens {
        assert!(!outbox_after.contains(t.as_str()));
        assert!(!contains(&raw_after, t), "token in the database file");
    }
    let list = s.admin_get("/api/v1/admin/outbox?kind=email").data();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), rows.len());
    assert!(items.iter().any(
        |i| i["to"] == "invitee@example.com" && i["subject"].as_str().unwrap().contains("acme")
    ));
    let listed = list.to_string();
    for t in &tokens {
        assert!(!listed.contains(t.as_str()));
    }
    assert!(
        !listed.contains("box") && !listed.contains("token="),
        "{listed}"
    );

    // The delivered links work.
    let r = post(
        &s,
        "/api/v1/auth/reset-password",
        json!({ "token": tokens[0], "newPassword": "a new long password" }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        s.login("acme", "ann@example.com", "a new long password")
            .status,
        200
    );
    let r = s.get(&format!("/api/v1/auth/verify-email?token={}", tokens[2]));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.data()["user"]["isEmailVerified"], true);

    // A redacted email cannot be sent again: a retry fails it and says why.
    let id = items[0]["id"].as_str().unwrap().to_string();
    let sent_before = sink.mails().len();
    let r = s.admin_send("POST", &format!("/api/v1/admin/outbox/{id}/retry"), None);
    assert_eq!(r.status, 202);
    let item = |s: &mut TestServer| -> Value {
        s.admin_get("/api/v1/admin/outbox?kind=email&limit=100")
            .data()["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id.as_str())
            .unwrap()
            .clone()
    };
    wait_until("the retry to fail", || item(&mut s)["status"] == "failed");
    let it = item(&mut s);
    assert!(it["lastError"].as_str().unwrap().contains("erased"), "{it}");
    assert!(it["deliveredAt"].is_string(), "{it}");
    assert_eq!(sink.mails().len(), sent_before);
}

#[test]
fn an_email_that_finally_fails_stays_sealed() {
    // A port nobody listens on; one retry, one second later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = TestServer::start_with(&format!(
        "[email]\ntransport = \"smtp\"\n[email.smtp]\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"off\"\ntimeout = \"2s\"\n[webhooks]\nretry_schedule = [\"1s\"]\n"
    ));
    s.org("acme", json!({}));
    s.user("admin@acme.test", Some(("acme", "org_admin")));
    let admin = s.login_ok("acme", "admin@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.as_user(
        "POST",
        "/api/v1/org/members/invite",
        "acme",
        &admin,
        Some(json!({ "email": "invitee@example.com" })),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    // Never delivered, so the token is known to nobody; no link may be readable.
    let token = "token=";
    wait_until("the first attempt", || {
        db(&s)
            .query_row(
                "SELECT attempts FROM outbox WHERE kind = 'email'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            == 1
    });
    s.clock.advance_secs(5);
    s.state().outbox.notify();
    wait_until("retries exhausted", || {
        email_rows(&s).iter().all(|(st, _)| st == "failed")
    });
    let (_, p) = &email_rows(&s)[0];
    assert_eq!(p["format"], "sealed", "{p}");
    assert!(!dump(&s, "outbox").join("\n").contains(token));
    assert!(!contains(&raw_files(&s), token));
}

#[test]
fn plain_text_emails_of_an_older_version_are_sealed_at_start_and_still_delivered() {
    let sink = Sink::start();
    let mut s = TestServer::start_with(&sink.config());
    s.stop();
    // Rows as an older Latchkey wrote them: the whole message in plain text.
    let plain = |to: &str, token: &str| {
        json!({
            "to": to,
            "subject": "Reset your password",
            "text": format!("Reset: http://127.0.0.1/reset-password?token={token}\n"),
            "html": format!("<a href=\"http://127.0.0.1/reset-password?token={token}\">Reset</a>"),
        })
        .to_string()
    };
    let (pending, failed, sent) = (
        "legacyPendingToken0123456789abcdefXYZ",
        "legacyFailedToken0123456789abcdefXYZ",
        "legacySentToken0123456789abcdefXYZ",
    );
    {
        let conn = db(&s);
        let now = latchkey::clock::Clock::now_ms(&*s.clock);
        for (id, status, to, token) in [
            ("msg_1legacypending", "pending", "p@example.com", pending),
            ("msg_2legacyfailed", "failed", "f@example.com", failed),
            ("msg_3legacysent", "succeeded", "s@example.com", sent),
        ] {
            conn.execute(
                "INSERT INTO outbox (id, kind, payload, status, attempts, next_attempt_at,
                                     created_at)
                 VALUES (?1, 'email', ?2, ?3, 0, ?4 + 3600000, ?4)",
                rusqlite::params![id, plain(to, token), status, now],
            )
            .unwrap();
        }
        // An older version's database has no record of a sealing pass (the start above
        // wrote one, so later starts skip the scan).
        let n = conn
            .execute(
                "DELETE FROM meta WHERE key = 'outbox_plain_emails_sealed'",
                [],
            )
            .unwrap();
        assert_eq!(n, 1, "the first start recorded its pass");
    }
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let text = s.config_text.clone();
    let mut s = TestServer::start_in(dir, text);
    s.mail = Some(sink.clone());

    // At start: the ones to send sealed, the sent one redacted; no token left readable.
    let rows = email_rows(&s);
    assert_eq!(rows[0].1["format"], "sealed");
    assert_eq!(rows[1].1["format"], "sealed");
    assert_eq!(rows[2].1["format"], "redacted");
    let outbox = dump(&s, "outbox").join("\n");
    for t in [pending, failed, sent] {
        assert!(!outbox.contains(t), "{outbox}");
    }
    let list = s.admin_get("/api/v1/admin/outbox?kind=email").data();
    assert_eq!(list["items"][2]["to"], "p@example.com");
    assert_eq!(list["items"][2]["subject"], "Reset your password");

    // They still go out with their links: the pending one when due, the failed one on retry.
    s.clock.advance_secs(7200);
    s.state().outbox.notify();
    let mails = s.mails_to("p@example.com");
    assert_eq!(token_in(&mails[0]), pending);
    let r = s.admin_send("POST", "/api/v1/admin/outbox/msg_2legacyfailed/retry", None);
    assert_eq!(r.status, 202);
    let mails = s.mails_to("f@example.com");
    assert_eq!(token_in(&mails[0]), failed);
    wait_until("results recorded", || {
        email_rows(&s).iter().all(|(st, _)| st == "succeeded")
    });
    assert!(
        email_rows(&s)
            .iter()
            .all(|(_, p)| p["format"] == "redacted")
    );
    let outbox = dump(&s, "outbox").join("\n");
    for t in [pending, failed, sent] {
        assert!(!outbox.contains(t));
    }
}
