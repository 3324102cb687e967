//! Every finding of the fuzzers (docs/fuzzing.md) as a regular test over real HTTP, plus what
//! a handler panic looks like from outside: a 500 in the envelope with `X-Request-Id`, and
//! one log line.

mod common;

use common::TestServer;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `bytes` as they are on a fresh connection and reads the answer to the end.
fn raw(s: &TestServer, bytes: &[u8]) -> common::Resp {
    let addr = s.base.trim_start_matches("http://");
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = c.write_all(bytes);
    common::read_response(&mut c)
}

/// A request with `Connection: close` and the given extra header lines (raw bytes allowed).
fn request(method: &str, path: &str, headers: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut r =
        format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n").into_bytes();
    for h in headers {
        r.extend_from_slice(h);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    r.extend_from_slice(body);
    r
}

/// Issue 18: the black-box fuzzer's panic. `input::is_json` sliced the lossily decoded media
/// type at byte 12, inside the U+FFFD that replaced `\xff`.
#[test]
fn content_type_with_invalid_utf8_is_415_not_a_panic() {
    let mut s = TestServer::start();
    s.org("acme", serde_json::json!({}));
    let body = br#"{"email":"a@b.test","password":"x"}"#;
    for ct in [
        &b"Content-Type: application\xff\xfe/json"[..],
        b"Content-Type: applicatio\xc3\xa9/x+json",
        b"Content-Type: \xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac+json",
        b"Content-Type: \xff",
    ] {
        let r = raw(
            &s,
            &request(
                "POST",
                "/api/v1/auth/login",
                &[ct, b"X-Org-Slug: acme"],
                body,
            ),
        );
        r.assert_error(415, "unsupported_media_type");
        assert!(r.header("X-Request-Id").is_some());
    }
    // `application/<x>+json` still counts as JSON, whatever bytes `<x>` is.
    for ct in [
        &b"Content-Type: application/vnd.test+json"[..],
        b"Content-Type: application/\xff\xfe+json",
    ] {
        let r = raw(
            &s,
            &request(
                "POST",
                "/api/v1/auth/login",
                &[ct, b"X-Org-Slug: acme"],
                body,
            ),
        );
        r.assert_error(401, "invalid_credentials");
    }
    // And the server still answers.
    assert_eq!(s.get("/healthz").status, 200);
}

/// Child half of [`a_handler_panic_is_one_log_line_and_a_500_with_the_request_id`]: a
/// connection-layer server whose handler panics, run in a separate process so its stderr can
/// be read. Does nothing unless started by that test.
#[test]
fn panicking_server_child() {
    let Ok(out) = std::env::var("FUZZREG_CHILD_OUT") else {
        return;
    };
    use latchkey::http::server::{Handler, ServerOptions, serve};
    let handler: Handler = std::sync::Arc::new(|req: &rouille::Request| {
        if req.raw_url().starts_with("/boom") {
            let ct = req.header("Content-Type").unwrap_or("");
            // The shape of the issue-18 bug: a byte offset inside a character.
            return rouille::Response::text(ct[..12].to_string());
        }
        rouille::Response::text("ok")
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = serve(listener, ServerOptions::default(), handler).unwrap();
    let addr = server.local_addr();
    let send = |req: &[u8]| {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(req).unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        buf
    };
    let answers = [
        send(b"GET /boom?token=secret HTTP/1.1\r\nHost: t\r\nContent-Type: application\xff\xfe/json\r\nConnection: close\r\n\r\n"),
        send(b"GET /boom HTTP/1.1\r\nHost: t\r\nX-Request-Id: client-id-7\r\nContent-Type: application\xff\xfe/json\r\nConnection: close\r\n\r\n"),
        send(b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    ];
    server.stop();
    let text: Vec<String> = answers
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    std::fs::write(out, serde_json::to_string(&text).unwrap()).unwrap();
}

#[test]
fn a_handler_panic_is_one_log_line_and_a_500_with_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("answers.json");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "panicking_server_child", "--nocapture"])
        .env("FUZZREG_CHILD_OUT", &out_path)
        // Set machine-wide on some hosts: it must not bring back a backtrace per request.
        .env("RUST_BACKTRACE", "1")
        .env_remove("LATCHKEY_PANIC_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "child failed: {stderr}");
    let answers: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let mut ids = Vec::new();
    for a in &answers[..2] {
        let r = common::parse_response(a.as_bytes()).expect("an HTTP answer");
        r.assert_error(500, "internal_error");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        ids.push(r.header("X-Request-Id").expect("X-Request-Id").to_string());
    }
    assert!(ids[0].starts_with("req_"), "{ids:?}");
    assert_eq!(ids[1], "client-id-7", "a sane client id is kept");
    assert!(answers[2].ends_with("ok"), "{}", answers[2]);

    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("panicked") || l.contains("backtrace"))
        .collect();
    assert_eq!(lines.len(), 2, "one line per panic, nothing else: {stderr}");
    for (line, id) in lines.iter().zip(&ids) {
        assert!(line.contains(" ERROR request handler panicked "), "{line}");
        assert!(line.contains(&format!("request_id={id} ")), "{line}");
        assert!(line.contains("path=/boom "), "{line}");
        assert!(line.contains("is not a char boundary"), "{line}");
        assert!(line.contains("at=tests/fuzz_regressions.rs:"), "{line}");
        assert!(
            !line.contains("secret"),
            "the query string is not logged: {line}"
        );
    }
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}
