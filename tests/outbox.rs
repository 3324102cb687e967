//! The outbox over real sockets: webhook deliveries to a local receiver (signatures, retries
//! with the same delivery id, 410, the SSRF guard, a slow receiver, a restart mid-backlog),
//! rollback sending nothing, email through a tiny SMTP sink, and the operator's outbox API.

mod common;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::TestServer;
use common::receiver::Receiver;
use hmac::{Hmac, KeyInit, Mac};
use latchkey::db::outbox as store;
use latchkey::outbox;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WEBHOOKS: &str = r#"
[webhooks]
allow_http = true
allow_private_addresses = true
retry_schedule = ["1s", "2s"]
"#;

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

fn create_org(s: &mut TestServer, slug: &str) -> (String, String) {
    let r = s.admin_send(
        "POST",
        "/api/v1/admin/orgs",
        Some(json!({ "slug": slug, "name": "Acme" })),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.data()["org"]["id"].as_str().unwrap().to_string();
    (id, slug.to_string())
}

fn add_endpoint(s: &TestServer, org_id: &str, url: &str, events: &[&str]) -> (String, String) {
    let st = s.state();
    let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    st.db
        .write(|tx| {
            outbox::create_endpoint(
                tx,
                st.secret(),
                &org_id.into(),
                url,
                &events,
                None,
                st.now(),
            )
        })
        .unwrap()
}

fn emit(s: &TestServer, org: &(String, String), event: &str, data: Value) -> String {
    let st = s.state();
    let id = st
        .db
        .write(|tx| {
            outbox::emit(
                tx,
                Some((&org.0.as_str().into(), &org.1)),
                event,
                data,
                st.now(),
            )
        })
        .unwrap();
    st.outbox.notify();
    id
}

fn deliveries_of(s: &TestServer, event_id: &str) -> Vec<store::Item> {
    let f = store::ListFilter::default();
    s.state()
        .db
        .read(|c| store::list(c, &f, None, 1000))
        .unwrap()
        .into_iter()
        .filter(|i| i.event_id.as_deref() == Some(event_id))
        .collect()
}

fn item(s: &TestServer, id: &str) -> store::Item {
    s.state().db.read(|c| store::get(c, id)).unwrap().unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Moves the server's clock past the next retry and wakes the worker.
fn skip_ahead(s: &TestServer, secs: i64) {
    s.clock.advance_secs(secs);
    s.state().outbox.notify();
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[test]
fn a_failed_delivery_is_retried_with_the_same_id_and_both_signatures_verify() {
    let rx = Receiver::start();
    rx.script.lock().unwrap().push(500);
    let mut s = TestServer::start_with(WEBHOOKS);
    let org = create_org(&mut s, "acme-corp");
    let (_wh, secret) = add_endpoint(&s, &org.0, &rx.url, &["member.joined"]);
    let data = json!({ "user": { "id": "usr_1", "name": "Ann", "email": "ann@example.com" },
                       "membership": { "role": "member", "status": "active" } });
    let evt = emit(&s, &org, "member.joined", data.clone());

    let first = rx.wait_for(1, Duration::from_secs(10));
    let dels = deliveries_of(&s, &evt);
    assert_eq!(dels.len(), 1);
    let del = dels[0].id.clone();
    assert!(del.starts_with("del_"), "{del}");
    wait_until("the failure to be recorded", Duration::from_secs(5), || {
        item(&s, &del).attempts == 1
    });
    let after_one = item(&s, &del);
    assert_eq!(after_one.status, "pending");
    assert_eq!(after_one.last_status_code, Some(500));
    assert_eq!(after_one.last_error.as_deref(), Some("HTTP 500"));

    skip_ahead(&s, 3);
    let got = rx.wait_for(2, Duration::from_secs(10));
    wait_until("success to be recorded", Duration::from_secs(5), || {
        item(&s, &del).status == "succeeded"
    });
    let done = item(&s, &del);
    assert_eq!(done.attempts, 2);
    assert_eq!(done.last_status_code, Some(200));
    assert!(done.delivered_at.is_some());
    assert_eq!(first[0].header("X-Delivery-Id"), del);

    for g in &got {
        // Same delivery id on every retry, in both header families.
        assert_eq!(g.header("X-Delivery-Id"), del);
        assert_eq!(g.header("webhook-id"), del);
        assert_eq!(g.header("Content-Type"), "application/json");
        assert_eq!(g.header("User-Agent"), "Latchkey-Webhooks/1");
        assert_eq!(g.header("X-Webhook-Event"), "member.joined");

        // AuthWorx style: hex HMAC-SHA256 keyed with the secret string as issued.
        let want = format!("sha256={}", hex(&hmac(secret.as_bytes(), &g.body)));
        assert_eq!(g.header("X-Webhook-Signature"), want);

        // Standard Webhooks: key = base64-decode(secret minus "whsec_"), msg = id.ts.body.
        let ts = g.header("webhook-timestamp");
        assert!(ts.parse::<i64>().is_ok(), "{ts}");
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut signed = format!("{del}.{ts}.").into_bytes();
        signed.extend_from_slice(&g.body);
        let want = format!("v1,{}", STANDARD.encode(hmac(&key, &signed)));
        let sigs: Vec<&str> = g.header("webhook-signature").split(' ').collect();
        assert!(sigs.contains(&want.as_str()), "{sigs:?} vs {want}");

        // WorkOS's: `t=<ms>, v1=<hex HMAC-SHA256(secret string, "<ms>.<body>")>`, the same
        // moment as webhook-timestamp (as the WorkOS SDKs' webhooks.verify_event reads it).
        let workos = g.header("WorkOS-Signature");
        let (t, v1) = workos.split_once(", ").expect("t=…, v1=…");
        let t = t.strip_prefix("t=").unwrap();
        assert_eq!(t, format!("{ts}000"));
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(&g.body);
        assert_eq!(v1, format!("v1={}", hex(&hmac(secret.as_bytes(), &signed))));

        // The body, byte for byte as stored, fields in the documented order.
        let body = String::from_utf8(g.body.clone()).unwrap();
        assert!(
            body.starts_with(&format!(
                r#"{{"id":"{evt}","event":"member.joined","orgId":"{}","orgSlug":"acme-corp","timestamp":""#,
                org.0
            )),
            "{body}"
        );
        let j = g.json();
        assert_eq!(j["data"], data);
        let ts = j["timestamp"].as_str().unwrap();
        assert!(
            latchkey::clock::parse_rfc3339(ts).is_some() && ts.ends_with('Z') && ts.len() == 24
        );
    }
    assert_eq!(got[0].body, got[1].body, "retries resend the same body");
}

#[test]
fn a_rolled_back_transaction_sends_nothing_and_only_subscribers_get_events() {
    let rx = Receiver::start();
    let other = Receiver::start();
    let mut s = TestServer::start_with(WEBHOOKS);
    let org = create_org(&mut s, "acme-corp");
    add_endpoint(&s, &org.0, &rx.url, &["*"]);
    add_endpoint(&s, &org.0, &other.url, &["org.deleted"]);

    let st = s.state();
    let mut rolled_back = String::new();
    let r: Result<(), latchkey::db::Error> = st.db.write(|tx| {
        rolled_back = outbox::emit(
            tx,
            Some((&org.0.as_str().into(), &org.1)),
            "org.updated",
            json!({}),
            st.now(),
        )?;
        Err(latchkey::db::Error::Invalid("roll back".into()))
    });
    assert!(r.is_err());
    st.outbox.notify();
    let kept = emit(&s, &org, "user.created", json!({ "n": 2 }));

    let got = rx.wait_for(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let got_now = rx.all();
    assert_eq!(got_now.len(), 1, "only the committed event is sent");
    assert_eq!(got[0].json()["id"], kept);
    assert!(
        got_now
            .iter()
            .all(|g| g.json()["id"] != rolled_back.as_str())
    );
    let n: i64 = st
        .db
        .read(|c| {
            Ok::<_, latchkey::db::Error>(c.query_row(
                "SELECT COUNT(*) FROM events WHERE id = ?1",
                [&rolled_back],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(n, 0, "the rolled-back event was never recorded");
    assert_eq!(other.count(), 0, "an endpoint not subscribed gets nothing");

    // An event without an org is recorded but delivered nowhere.
    let evt = st
        .db
        .write(|tx| outbox::emit(tx, None, "user.deleted", json!({}), st.now()))
        .unwrap();
    assert!(deliveries_of(&s, &evt).is_empty());
}

#[test]
fn gone_disables_the_endpoint() {
    let rx = Receiver::start();
    rx.status.store(410, Ordering::SeqCst);
    let mut s = TestServer::start_with(WEBHOOKS);
    let org = create_org(&mut s, "acme-corp");
    let (wh, _) = add_endpoint(&s, &org.0, &rx.url, &["*"]);
    let evt = emit(&s, &org, "org.updated", json!({}));
    rx.wait_for(1, Duration::from_secs(10));
    let del = deliveries_of(&s, &evt)[0].id.clone();
    wait_until("the delivery to fail", Duration::from_secs(5), || {
        item(&s, &del).status == "failed"
    });
    assert_eq!(item(&s, &del).last_status_code, Some(410));
    let ep = s
        .state()
        .db
        .read(|c| latchkey::db::webhooks::get(c, &org.0.as_str().into(), &wh))
        .unwrap()
        .unwrap();
    assert!(!ep.is_active);
    assert!(ep.disabled_reason.unwrap().contains("410"));
    // A disabled endpoint gets no new deliveries.
    let evt2 = emit(&s, &org, "org.updated", json!({}));
    assert!(deliveries_of(&s, &evt2).is_empty());
}

#[test]
fn retries_run_out_then_the_operator_lists_and_retries() {
    let rx = Receiver::start();
    rx.status.store(503, Ordering::SeqCst);
    let mut s = TestServer::start_with(WEBHOOKS);
    let org = create_org(&mut s, "acme-corp");
    add_endpoint(&s, &org.0, &rx.url, &["user.login"]);
    let evt = emit(&s, &org, "user.login", json!({}));
    let del = {
        rx.wait_for(1, Duration::from_secs(10));
        deliveries_of(&s, &evt)[0].id.clone()
    };
    // Schedule ["1s","2s"]: three attempts in all, then failed.
    for n in 1..=3 {
        wait_until("an attempt", Duration::from_secs(10), || {
            item(&s, &del).attempts == n
        });
        skip_ahead(&s, 3);
    }
    wait_until("failed", Duration::from_secs(5), || {
        item(&s, &del).status == "failed"
    });
    assert_eq!(rx.count(), 3);
    assert_eq!(item(&s, &del).last_error.as_deref(), Some("HTTP 503"));

    let list = s.admin_get("/api/v1/admin/outbox?status=failed").data();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], del.as_str());
    assert_eq!(items[0]["event"], "user.login");
    assert_eq!(items[0]["eventId"], evt.as_str());
    assert_eq!(items[0]["attempts"], 3);
    assert_eq!(items[0]["lastStatusCode"], 503);
    assert_eq!(items[0]["nextAttemptAt"], Value::Null);
    assert!(
        s.admin_get("/api/v1/admin/outbox?status=pending").data()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    s.admin_get("/api/v1/admin/outbox?status=bogus")
        .assert_error(400, "invalid_request");
    s.get("/api/v1/admin/outbox")
        .assert_error(401, "unauthenticated");

    rx.status.store(204, Ordering::SeqCst);
    let r = s.admin_send("POST", &format!("/api/v1/admin/outbox/{del}/retry"), None);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    rx.wait_for(4, Duration::from_secs(10));
    wait_until("succeeded", Duration::from_secs(5), || {
        item(&s, &del).status == "succeeded"
    });
    assert_eq!(rx.all()[3].header("X-Delivery-Id"), del);
    s.admin_send("POST", "/api/v1/admin/outbox/del_nope/retry", None)
        .assert_error(404, "not_found");

    // Pagination: newest first, with a cursor.
    for _ in 0..3 {
        emit(&s, &org, "user.login", json!({}));
    }
    rx.wait_for(7, Duration::from_secs(10));
    let p1 = s.admin_get("/api/v1/admin/outbox?limit=2").data();
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let c = p1["nextCursor"].as_str().unwrap().to_string();
    let p2 = s
        .admin_get(&format!("/api/v1/admin/outbox?limit=2&cursor={c}"))
        .data();
    assert_eq!(p2["items"].as_array().unwrap().len(), 2);
    assert_eq!(p2["nextCursor"], Value::Null);
    let ids: HashSet<String> = p1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["items"].as_array().unwrap())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 4);
    s.admin_get("/api/v1/admin/outbox?cursor=forged")
        .assert_error(400, "invalid_request");

    wait_until("the backlog to drain", Duration::from_secs(5), || {
        s.state().db.read(store::backlog).unwrap().0 == 0
    });
    let ready = s.get("/readyz").data();
    assert_eq!(ready["outbox"]["pending"], 0);
    assert_eq!(ready["outbox"]["oldestPendingAgeMs"], 0);
}

#[test]
fn private_addresses_are_refused_unless_allowed() {
    let rx = Receiver::start();
    let mut s =
        TestServer::start_with("[webhooks]\nallow_http = true\nretry_schedule = [\"1s\"]\n");
    let org = create_org(&mut s, "acme-corp");
    add_endpoint(&s, &org.0, &rx.url, &["*"]);
    let evt = emit(&s, &org, "org.updated", json!({}));
    let del = deliveries_of(&s, &evt)[0].id.clone();
    wait_until("the attempt", Duration::from_secs(10), || {
        item(&s, &del).attempts == 1
    });
    let it = item(&s, &del);
    let err = it.last_error.unwrap();
    assert!(
        err.contains("127.0.0.1")
            && err.contains("loopback")
            && err.contains("allow_private_addresses"),
        "{err}"
    );
    assert!(!err.contains("/hook"), "no URL path in errors: {err}");
    assert_eq!(it.last_status_code, None);
    assert_eq!(rx.count(), 0, "nothing reached the private address");
}

#[test]
fn a_slow_receiver_does_not_hold_up_other_endpoints() {
    let slow = Receiver::start();
    slow.delay_ms.store(2000, Ordering::SeqCst);
    let fast = Receiver::start();
    let mut s = TestServer::start_with(WEBHOOKS);
    let org = create_org(&mut s, "acme-corp");
    add_endpoint(&s, &org.0, &slow.url, &["*"]);
    add_endpoint(&s, &org.0, &fast.url, &["*"]);
    let started = Instant::now();
    for i in 0..5 {
        emit(&s, &org, "user.updated", json!({ "i": i }));
    }
    fast.wait_for(5, Duration::from_secs(10));
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "the fast endpoint waited {took:?} behind the slow one"
    );
    assert!(
        slow.count() <= 2,
        "the slow endpoint gets one request at a time"
    );
}

#[test]
fn a_restart_mid_backlog_delivers_every_event() {
    let rx = Receiver::start();
    rx.delay_ms.store(20, Ordering::SeqCst);
    let mut s = TestServer::start_with(WEBHOOKS);
    let org = create_org(&mut s, "acme-corp");
    add_endpoint(&s, &org.0, &rx.url, &["*"]);
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(emit(&s, &org, "user.updated", json!({ "i": i })));
    }
    rx.wait_for(3, Duration::from_secs(10));
    s.stop();
    let before = rx.count();
    assert!(
        before < 50,
        "the stop came before the backlog was done ({before})"
    );

    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let text = common::base_config(dir.path(), WEBHOOKS);
    let s2 = TestServer::start_in(dir, text);
    s2.state().outbox.notify();
    wait_until("every event to arrive", Duration::from_secs(30), || {
        let seen: HashSet<String> = rx
            .all()
            .iter()
            .map(|g| g.json()["id"].as_str().unwrap().to_string())
            .collect();
        ids.iter().all(|id| seen.contains(id))
    });
    wait_until("the backlog to drain", Duration::from_secs(5), || {
        s2.state().db.read(store::backlog).unwrap().0 == 0
    });
}

// ------------------------------------------------------------------------------------------
// Email through a minimal SMTP sink
// ------------------------------------------------------------------------------------------

/// (MAIL FROM, RCPT TOs, DATA) of one message.
type Envelope = (String, Vec<String>, String);

#[derive(Clone, Default)]
struct Sink {
    messages: Arc<Mutex<Vec<Envelope>>>,
}

impl Sink {
    fn start() -> (Sink, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = Sink::default();
        let s2 = sink.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let sink = s2.clone();
                std::thread::spawn(move || sink.serve(conn));
            }
        });
        (sink, port)
    }

    fn serve(&self, conn: TcpStream) {
        let mut w = conn.try_clone().unwrap();
        let mut rd = BufReader::new(conn);
        let mut say = |s: &str| w.write_all(format!("{s}\r\n").as_bytes()).is_ok();
        say("220 sink ESMTP");
        let (mut from, mut rcpt) = (String::new(), Vec::new());
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let cmd = line.trim_end().to_string();
            let upper = cmd.to_ascii_uppercase();
            if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                say("250 sink");
            } else if upper.starts_with("MAIL FROM:") {
                from = cmd[10..].to_string();
                say("250 OK");
            } else if upper.starts_with("RCPT TO:") {
                rcpt.push(cmd[8..].to_string());
                say("250 OK");
            } else if upper == "DATA" {
                say("354 go ahead");
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if rd.read_line(&mut l).unwrap_or(0) == 0 {
                        return;
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    data.push_str(&l);
                }
                self.messages
                    .lock()
                    .unwrap()
                    .push((from.clone(), rcpt.clone(), data));
                say("250 queued");
            } else if upper == "QUIT" {
                say("221 bye");
                return;
            } else {
                say("250 OK");
            }
        }
    }
}

#[test]
fn email_goes_out_over_smtp() {
    let (sink, port) = Sink::start();
    let s = TestServer::start_with(&format!(
        "[email]\ntransport = \"smtp\"\nfrom = \"Latchkey <no-reply@example.com>\"\n\
         [email.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"off\"\ntimeout = \"5s\"\n"
    ));
    let st = s.state();
    let id = st
        .db
        .write(|tx| {
            outbox::enqueue_email(
                tx,
                &st.mail_key,
                None,
                "ann@example.com",
                "Reset your password",
                "Reset: http://127.0.0.1/reset?token=abc123",
                "<p><a href=\"http://127.0.0.1/reset?token=abc123\">Reset</a></p>",
                st.now(),
            )
        })
        .unwrap();
    assert!(id.starts_with("msg_"));
    st.outbox.notify();
    wait_until("the mail to arrive", Duration::from_secs(10), || {
        !sink.messages.lock().unwrap().is_empty()
    });
    let (from, rcpt, data) = sink.messages.lock().unwrap()[0].clone();
    assert!(from.contains("no-reply@example.com"), "{from}");
    assert_eq!(rcpt.len(), 1);
    assert!(rcpt[0].contains("ann@example.com"));
    assert!(data.contains("Subject: Reset your password"), "{data}");
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(
        data.contains("text/plain") && data.contains("text/html"),
        "{data}"
    );
    assert!(data.contains("?token=abc123"), "{data}");
    assert!(
        data.contains(&format!("Message-ID: <{id}@latchkey>")),
        "{data}"
    );
    wait_until("sent recorded", Duration::from_secs(5), || {
        item(&s, &id).status == "succeeded"
    });

    // The operator sees recipient and subject, never the body.
    let mut s = s;
    let list = s.admin_get("/api/v1/admin/outbox?kind=email").data();
    let it = &list["items"][0];
    assert_eq!(it["to"], "ann@example.com");
    assert_eq!(it["subject"], "Reset your password");
    assert!(!list.to_string().contains("abc123"));
}

#[test]
fn email_to_a_dead_smtp_server_is_retried() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = TestServer::start_with(&format!(
        "[email]\ntransport = \"smtp\"\n[email.smtp]\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"off\"\ntimeout = \"2s\"\n{WEBHOOKS}"
    ));
    let st = s.state();
    let id = st
        .db
        .write(|tx| {
            outbox::enqueue_email(
                tx,
                &st.mail_key,
                None,
                "a@example.com",
                "S",
                "t",
                "<p>t</p>",
                st.now(),
            )
        })
        .unwrap();
    st.outbox.notify();
    wait_until("the failed attempt", Duration::from_secs(10), || {
        item(&s, &id).attempts == 1
    });
    let it = item(&s, &id);
    assert_eq!(it.status, "pending");
    assert!(it.last_error.is_some());
}

#[test]
fn a_delivery_claimed_by_a_worker_that_died_is_retried_after_its_lease() {
    use latchkey::clock::Clock;
    let rx = Receiver::start();
    let mut s = TestServer::start_with(WEBHOOKS);
    let org = create_org(&mut s, "acme-corp");
    let (wh, _) = add_endpoint(&s, &org.0, &rx.url, &["*"]);
    s.stop();

    // As if a worker claimed the row (lease: 40 s) and the process was killed mid-request.
    let db = latchkey::db::Db::open(&s.db_path(), Duration::from_secs(5)).unwrap();
    let now = s.clock.now_ms();
    let del = db
        .write(|tx| {
            outbox::emit(
                tx,
                Some((&org.0.as_str().into(), &org.1)),
                "org.updated",
                json!({}),
                now,
            )?;
            let c = store::claim_next(tx, Some(&wh), now, now + 40_000)?.unwrap();
            Ok::<_, latchkey::db::Error>(c.id)
        })
        .unwrap();
    drop(db);

    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let text = common::base_config(dir.path(), WEBHOOKS);
    let s2 = TestServer::start_in(dir, text);
    s2.state().outbox.notify();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.count(), 0, "not before the lease runs out");
    skip_ahead(&s2, 60);
    let got = rx.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].header("X-Delivery-Id"), del, "the same delivery id");
    wait_until("succeeded", Duration::from_secs(5), || {
        item(&s2, &del).status == "succeeded"
    });
}

#[test]
fn a_test_event_goes_to_one_endpoint_whatever_it_subscribes_to() {
    let rx = Receiver::start();
    let other = Receiver::start();
    let mut s = TestServer::start_with(WEBHOOKS);
    let org = create_org(&mut s, "acme-corp");
    let (wh, _) = add_endpoint(&s, &org.0, &rx.url, &["org.deleted"]);
    add_endpoint(&s, &org.0, &other.url, &["*"]);
    let st = s.state();
    let (evt, del) = st
        .db
        .write(|tx| {
            outbox::emit_to(
                tx,
                (&org.0.as_str().into(), &org.1),
                &wh,
                "webhook.test",
                json!({}),
                st.now(),
            )
        })
        .unwrap();
    st.outbox.notify();
    let got = rx.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].header("X-Delivery-Id"), del);
    assert_eq!(got[0].header("X-Webhook-Event"), "webhook.test");
    assert_eq!(got[0].json()["id"], evt);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(other.count(), 0);
}

#[test]
fn the_sweep_deletes_finished_items_and_events_past_retention() {
    let rx = Receiver::start();
    let mut s = TestServer::start_with(WEBHOOKS);
    let org = create_org(&mut s, "acme-corp");
    add_endpoint(&s, &org.0, &rx.url, &["*"]);
    let done = emit(&s, &org, "org.updated", json!({}));
    rx.wait_for(1, Duration::from_secs(10));
    let del = deliveries_of(&s, &done)[0].id.clone();
    wait_until("succeeded", Duration::from_secs(5), || {
        item(&s, &del).status == "succeeded"
    });
    s.stop();
    let db = latchkey::db::Db::open(&s.db_path(), Duration::from_secs(5)).unwrap();
    let count = |sql: &str| -> i64 {
        db.read(|c| Ok::<_, latchkey::db::Error>(c.query_row(sql, [], |r| r.get(0))?))
            .unwrap()
    };
    // A pending email of the same age stays.
    let now = latchkey::clock::Clock::now_ms(&*s.clock);
    let key = outbox::MailKey::derive(common::SECRET);
    db.write(|tx| outbox::enqueue_email(tx, &key, None, "a@example.com", "S", "t", "h", now))
        .unwrap();
    let retention = Duration::from_secs(30 * 86_400);
    assert_eq!(
        outbox::sweep(&db, now, retention).unwrap(),
        0,
        "nothing is old yet"
    );
    let later = now + 31 * 86_400_000;
    assert_eq!(outbox::sweep(&db, later, retention).unwrap(), 2);
    assert_eq!(
        count("SELECT COUNT(*) FROM outbox WHERE status = 'succeeded'"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM outbox WHERE status = 'pending'"),
        1
    );
    assert_eq!(count("SELECT COUNT(*) FROM events"), 0);
}
