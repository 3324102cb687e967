//! The "Low" findings of security review issue 12, each attacked over real HTTP (or through a
//! real `latchkey` process) next to the legitimate use it must not break: impossible dates,
//! forged tokens on logout, log injection, file modes and the example's placeholder secret.

mod common;
use common::{Resp, SECRET, TestServer};
use latchkey::config::Algorithm;
use latchkey::crypto::b64url;
use latchkey::tokens::AccessClaims;
use serde_json::{Value, json};

/// Org `acme` with an org_admin; returns the server and the admin's access token.
fn acme_admin() -> (TestServer, String) {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s.user("admin@acme.test", Some(("acme", "org_admin")));
    let token = s.login_ok("acme", "admin@acme.test")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    (s, token)
}

// --- 16: dates that do not exist -------------------------------------------------------------

#[test]
fn api_key_expiry_must_be_a_date_that_exists() {
    let (s, t) = acme_admin();
    let create = |at: &str| {
        s.as_user(
            "POST",
            "/api/v1/org/api-keys",
            "acme",
            &t,
            Some(json!({ "name": "k", "expiresAt": at })),
        )
    };
    for at in [
        "2099-02-30T00:00:00Z",
        "2099-02-29T00:00:00Z",
        "2099-04-31T00:00:00Z",
        "2099-01-01T00:00:00+25:00",
        "2099-01-01T00:00:00-24:00",
        "2099-01-01T00:00:00+01:60",
    ] {
        let r = create(at);
        let j = r.assert_error(400, "invalid_request");
        assert_eq!(j["errors"][0]["field"], "expiresAt", "{at}: {j}");
    }
    // Real dates, the last days of months and the widest offsets, are accepted.
    for (at, utc) in [
        ("2096-02-29T00:00:00Z", "2096-02-29T00:00:00.000Z"),
        ("2099-04-30T12:00:00Z", "2099-04-30T12:00:00.000Z"),
        ("2099-01-01T23:59:00+23:59", "2099-01-01T00:00:00.000Z"),
        ("2098-12-31T00:01:00-23:59", "2099-01-01T00:00:00.000Z"),
    ] {
        let r = create(at);
        assert_eq!(r.status, 201, "{at}: {:?}", r.json());
        assert_eq!(r.data()["apiKey"]["expiresAt"], utc, "{at}");
    }
}

// --- 12: logout must not take a time from an unverified token --------------------------------

/// The kids of the published access-token (EdDSA) keys; the RS256 id_token key beside them is
/// not rotated here.
fn kids(s: &TestServer) -> Vec<String> {
    let r = s.get("/.well-known/jwks.json");
    assert_eq!(r.status, 200);
    r.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "EdDSA")
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// A token with these claims, an unknown kid and a signature of zeros.
fn forged(kid: &str, claims: Value) -> String {
    let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid });
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(&[0u8; 64])
    )
}

fn logout(s: &TestServer, bearer: &str) -> Resp {
    let auth = format!("Bearer {bearer}");
    s.send(
        "POST",
        "/api/v1/auth/logout",
        &[("X-Org-Slug", "acme"), ("Authorization", &auth)],
        None,
    )
}

fn refresh(s: &TestServer, token: &str) -> Resp {
    s.send(
        "POST",
        "/api/v1/auth/refresh",
        &[],
        Some(json!({ "refreshToken": token })),
    )
}

/// What `latchkey keys rotate` does, against the live database; returns the new kid.
fn rotate(s: &TestServer) -> String {
    let st = s.state();
    latchkey::keys::rotate(
        &st.db,
        SECRET,
        Algorithm::EdDSA,
        st.now(),
        st.key_publish_ms(),
    )
    .unwrap()
}

/// Claims for a token the test signs itself; `exp` from now.
fn claims(s: &TestServer, exp_in_secs: i64) -> AccessClaims {
    let now = s.state().now() / 1000;
    AccessClaims {
        iss: s.state().config.server.public_url.clone(),
        sub: "usr_1".into(),
        aud: "latchkey".into(),
        iat: now,
        exp: now + exp_in_secs,
        jti: "jti_1".into(),
        sid: "ses_1".into(),
        org_id: "org_1".into(),
        org_slug: "acme".into(),
        org_role: "member".into(),
        email: "a@example.com".into(),
        email_verified: true,
        amr: vec!["pwd".into()],
    }
}

#[test]
fn a_forged_token_on_logout_cannot_move_the_key_store_in_time() {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s.user("ann@acme.test", Some(("acme", "member")));
    let ann = s.login_ok("acme", "ann@acme.test");
    let old_token = ann["accessToken"].as_str().unwrap().to_string();
    let old_kid = kids(&s)[0].clone();
    let new_kid = rotate(&s);
    assert_eq!(kids(&s), vec![new_kid.clone(), old_kid.clone()]);
    let (iss, aud) = (s.state().config.server.public_url.clone(), "latchkey");

    // A forged token naming ann's real session, issued "in 2100": reload as of then would drop
    // the retired key (and stop reloads until then).
    let payload = old_token.split('.').nth(1).unwrap();
    let real: Value =
        serde_json::from_slice(&latchkey::crypto::b64url_decode(payload).unwrap()).unwrap();
    let session = |iat: i64| {
        let mut c = real.clone();
        c["iat"] = json!(iat);
        c["exp"] = json!(iat + 900);
        c
    };
    s.clock.advance_ms(1_500);
    let r = logout(&s, &forged("forged-kid", session(4_102_444_800)));
    assert_eq!(r.status, 200, "{:?}", r.json());
    // The retired key still verifies its tokens, over HTTP and in the store, and stays in the JWKS.
    assert_eq!(
        s.as_user("GET", "/api/v1/auth/me", "acme", &old_token, None)
            .status,
        200
    );
    let st = s.state();
    assert!(
        st.keys
            .verify(&st.db, &old_token, &iss, aud, st.now())
            .is_ok()
    );
    assert_eq!(kids(&s), vec![new_kid.clone(), old_kid.clone()]);
    // The store still reloads on an unknown kid: a key the CLI makes active is honoured.
    let other = latchkey::keys::KeyStore::open(
        &st.db,
        SECRET,
        Algorithm::EdDSA,
        st.now(),
        st.key_publish_ms(),
    )
    .unwrap();
    assert_eq!(other.active_kid(), new_kid);
    s.clock.advance_ms(1_500);
    let by_new_key = other.sign(&claims(&s, 900)).unwrap();
    assert!(
        st.keys
            .verify(&st.db, &by_new_key, &iss, aud, st.now())
            .is_ok()
    );
    // Nor did the forged token end ann's session.
    assert!(refresh(&s, ann["refreshToken"].as_str().unwrap()).status == 200);
}

#[test]
fn a_forged_token_on_logout_cannot_bring_back_a_key_whose_publication_ended() {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    let st = s.state();
    let (iss, aud) = (st.config.server.public_url.clone(), "latchkey");
    // A long-lived token signed by the key about to be retired (a leaked key, say).
    let long_lived = st.keys.sign(&claims(&s, 30 * 86_400)).unwrap();
    let new_kid = rotate(&s);
    s.clock.advance_ms(st.key_publish_ms() + 2_000);
    st.keys.reload(&st.db, st.now()).unwrap(); // what the maintenance thread does every 10 s
    assert_eq!(kids(&s), vec![new_kid.clone()]);
    assert!(
        st.keys
            .verify(&st.db, &long_lived, &iss, aud, st.now())
            .is_err()
    );

    // Issued "in 1970": reload as of then would publish every key ever retired.
    s.clock.advance_ms(1_500);
    let mut c = serde_json::to_value(claims(&s, 900)).unwrap();
    c["iat"] = json!(1);
    c["exp"] = json!(901);
    let r = logout(&s, &forged("forged-kid", c));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(
        st.keys
            .verify(&st.db, &long_lived, &iss, aud, st.now())
            .is_err(),
        "a key whose publication ended verifies again"
    );
    assert_eq!(kids(&s), vec![new_kid]);
}

#[test]
fn an_expired_genuine_token_still_ends_its_session_on_logout() {
    let mut s = TestServer::start();
    s.org("acme", json!({}));
    s.user("ann@acme.test", Some(("acme", "member")));
    s.user("bob@acme.test", Some(("acme", "member")));
    // Ann's token is signed by a key retired since, but still published.
    let ann = s.login_ok("acme", "ann@acme.test");
    rotate(&s);
    s.state()
        .keys
        .reload(&s.state().db, s.state().now())
        .unwrap();
    let bob = s.login_ok("acme", "bob@acme.test");
    s.clock.advance_secs(901);
    for who in [&ann, &bob] {
        let token = who["accessToken"].as_str().unwrap();
        s.as_user("GET", "/api/v1/auth/me", "acme", token, None)
            .assert_error(401, "token_expired");
        let r = logout(&s, token);
        assert_eq!(r.status, 200, "{:?}", r.json());
        refresh(&s, who["refreshToken"].as_str().unwrap()).assert_error(401, "invalid_token");
    }
}

// --- 14/15: the command line ------------------------------------------------------------------

/// Runs `latchkey` in `dir`; returns whether it succeeded, and its stderr. One still running
/// after 20 s (a `serve` that should have refused to start) is killed and counts as success.
fn latchkey(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut child = std::process::Command::new(common::bin())
        .args(args)
        .current_dir(dir)
        .env_remove("LATCHKEY_CONFIG")
        .env_remove("LATCHKEY_SECRET_KEY")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.is_none_or(|s| s.success()), err)
}

#[test]
fn the_example_configs_placeholder_secret_is_refused_by_check_config_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.toml");
    std::fs::write(&path, latchkey::config::EXAMPLE).unwrap();
    let p = path.to_str().unwrap();
    for cmd in ["check-config", "serve"] {
        let (ok, err) = latchkey(dir.path(), &["--config", p, cmd], &[]);
        assert!(!ok, "{cmd} accepted the placeholder secret");
        assert!(
            err.contains("security.secret_key") && err.contains("example.toml"),
            "{cmd}: the error names neither the key nor the file: {err}"
        );
        assert!(err.contains("placeholder"), "{err}");
        // Set through the environment, the placeholder is refused just the same.
        let env = [("LATCHKEY_SECRET_KEY", latchkey::config::SECRET_PLACEHOLDER)];
        let (ok, err) = latchkey(dir.path(), &["--config", p, cmd], &env);
        assert!(!ok && err.contains("security.secret_key"), "{cmd}: {err}");
    }
    assert!(
        !dir.path().join("latchkey.db").exists(),
        "serve opened a database before refusing"
    );
    // A real secret, from the environment or from `init`, passes.
    let real = "r".repeat(48);
    let (ok, err) = latchkey(
        dir.path(),
        &["--config", p, "check-config"],
        &[("LATCHKEY_SECRET_KEY", &real)],
    );
    assert!(ok, "{err}");
    let init = dir.path().join("init.toml");
    let i = init.to_str().unwrap();
    let (ok, err) = latchkey(dir.path(), &["--config", i, "init"], &[]);
    assert!(ok, "{err}");
    let (ok, err) = latchkey(dir.path(), &["--config", i, "check-config"], &[]);
    assert!(ok, "{err}");
}

/// The permission bits of `path`.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `latchkey ARGS` under `umask 000`, so that only the modes Latchkey sets count.
fn latchkey_umask_000(dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    let mut script = "umask 000; exec \"$0\"".to_string();
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${i}\""));
    }
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(common::bin())
        .args(args)
        .current_dir(dir)
        .env_remove("LATCHKEY_CONFIG")
        .env_remove("LATCHKEY_SECRET_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn run_umask_000(dir: &std::path::Path, args: &[&str]) {
    let out = latchkey_umask_000(dir, args).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn files_holding_secrets_are_created_owner_only_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // What umask 000 gives a file nobody restricts: the control.
    let out = std::process::Command::new("sh")
        .args(["-c", "umask 000; : > control"])
        .current_dir(d)
        .status()
        .unwrap();
    assert!(out.success());
    assert_eq!(mode(&d.join("control")), 0o666);

    // init's config.
    run_umask_000(d, &["--config", "init.toml", "init"]);
    assert_eq!(mode(&d.join("init.toml")), 0o600, "init's config");

    // The database, its WAL and -shm, while a real server runs on it; a backup beside it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = d.join("latchkey.toml");
    std::fs::write(
        &cfg,
        common::base_config(d, "").replace("127.0.0.1:0", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let mut server = latchkey_umask_000(d, &["--config", c, "serve"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let db = d.join("latchkey.db");
    let (wal, shm) = (d.join("latchkey.db-wal"), d.join("latchkey.db-shm"));
    loop {
        let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if up && wal.exists() && shm.exists() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = server.kill();
            let out = server.wait_with_output().unwrap();
            panic!("server not up: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let modes = [mode(&db), mode(&wal), mode(&shm)];
    run_umask_000(d, &["--config", c, "backup", "copy.db"]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(modes, [0o600; 3], "database, -wal, -shm");
    assert_eq!(mode(&d.join("copy.db")), 0o600, "backup");
    // The backup is a real database, and one is never overwritten.
    let conn = rusqlite::Connection::open(d.join("copy.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM signing_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2, "the EdDSA key and the RS256 key");
    let out = latchkey_umask_000(d, &["--config", c, "backup", "copy.db"])
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());

    // The snapshot `migrate` writes before changing an older database.
    let old = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(old.path().join("latchkey.db")).unwrap();
    conn.execute_batch("CREATE TABLE legacy (x INTEGER); PRAGMA user_version = 0;")
        .unwrap();
    drop(conn);
    let cfg = old.path().join("latchkey.toml");
    std::fs::write(&cfg, common::base_config(old.path(), "")).unwrap();
    run_umask_000(old.path(), &["--config", cfg.to_str().unwrap(), "migrate"]);
    let snapshots: Vec<_> = std::fs::read_dir(old.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".bak"))
        .collect();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(mode(&snapshots[0]), 0o600, "migration snapshot");
}

// --- 11: log injection -----------------------------------------------------------------------

/// Paths whose decoded form holds CR, LF, other C0 controls, DEL, C1 controls and U+2028; each
/// tries to start a forged line.
const HOSTILE_PATHS: &[&str] = &[
    "/x%0a2026-01-01T00:00:00.000Z%20ERROR%20forged%20path=/admin",
    "/x%0d%0aFORGED",
    "/x%0dFORGED",
    "/x%0bFORGED%0c%09%1b[2J",
    "/x%7fFORGED",
    "/x%c2%85FORGED%c2%9b",
    "/x%e2%80%a8FORGED%e2%80%a9",
    "/api/v1/auth/me%0aFORGED",
];

/// Starts `latchkey serve` (log level info, `format`), sends every hostile path with
/// `X-Request-Id: inj-<i>` plus one legitimate request `ok-1`, stops it; returns its log lines.
fn serve_and_log(format: &str) -> Vec<String> {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("latchkey.toml");
    let text = common::base_config(dir.path(), "")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        .replace(
            "level = \"warn\"",
            &format!("level = \"info\"\nformat = \"{format}\""),
        );
    std::fs::write(&cfg, text).unwrap();
    let mut child = std::process::Command::new(common::bin())
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .env_remove("LATCHKEY_SECRET_KEY")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let send = |req: &[u8]| -> Option<u16> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(req).ok()?;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        common::parse_response(&buf).map(|r| r.status)
    };
    let get = |path: &str, id: &str| {
        send(
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while get("/healthz", "warmup") != Some(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "server did not come up"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for (i, path) in HOSTILE_PATHS.iter().enumerate() {
        let status = get(path, &format!("inj-{i}"));
        assert!(status.is_some_and(|s| s >= 400), "{path}: {status:?}");
    }
    // Raw control bytes in the request line and in a header the server reads: refused or
    // answered, never a second log line.
    for (i, raw) in [
        &b"GET /raw\x0bFORGED HTTP/1.1\r\nHost: x\r\nX-Request-Id: raw-0\r\nConnection: close\r\n\r\n"[..],
        b"GET /raw\x7fFORGED HTTP/1.1\r\nHost: x\r\nX-Request-Id: raw-1\r\nConnection: close\r\n\r\n",
        b"GET /raw\x1bFORGED HTTP/1.1\r\nHost: x\r\nX-Request-Id: raw-2\r\nConnection: close\r\n\r\n",
        b"GET /raw HTTP/1.1\r\nHost: x\r\nX-Request-Id: raw-3\x0bFORGED\r\nX-Forwarded-For: 1.2.3.4\x0bFORGED\r\nConnection: close\r\n\r\n",
    ]
    .iter()
    .enumerate()
    {
        let _ = (i, send(raw));
    }
    assert_eq!(get("/healthz", "ok-1"), Some(200));
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{err}");
    err.lines().map(str::to_string).collect()
}

fn check_one_line_per_request(format: &str, lines: &[String]) {
    let log = lines.join("\n");
    for (i, path) in HOSTILE_PATHS.iter().enumerate() {
        let id = format!("inj-{i}");
        let with_id: Vec<&String> = lines.iter().filter(|l| l.contains(&id)).collect();
        assert_eq!(
            with_id.len(),
            1,
            "{format}: {path} logged as {with_id:?}\n{log}"
        );
    }
    assert_eq!(
        lines.iter().filter(|l| l.contains("ok-1")).count(),
        1,
        "{log}"
    );
    for l in lines {
        // A forged piece never stands on a line of its own, without its request's id.
        if l.to_lowercase().contains("forged") {
            assert!(
                ["inj-", "raw-", "req_"].iter().any(|id| l.contains(id)),
                "{format}: a line without its request: {l:?}\n{log}"
            );
        }
        // Every line is a whole log line: nothing starts with forged text, and no control
        // character (nor U+2028/9) is left in it to end or rewrite it on a terminal.
        assert!(
            !l.chars()
                .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
            "{format}: {l:?}"
        );
        match format {
            "json" => {
                let v: serde_json::Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not one JSON object ({e}): {l:?}"));
                assert!(v["ts"].is_string() && v["msg"].is_string(), "{l}");
            }
            _ => assert!(
                l.len() > 24 && l.as_bytes()[4] == b'-' && l.as_bytes()[10] == b'T',
                "a line that does not start with a timestamp: {l:?}"
            ),
        }
    }
    // The decoded path is there, escaped, so the operator still sees what was asked for.
    let first = lines.iter().find(|l| l.contains("inj-0")).unwrap();
    assert!(first.contains("forged") && first.contains("\\n"), "{first}");
}

#[test]
fn control_characters_in_a_request_cannot_add_a_text_log_line() {
    let lines = serve_and_log("text");
    check_one_line_per_request("text", &lines);
}

#[test]
fn control_characters_in_a_request_cannot_add_a_json_log_line() {
    let lines = serve_and_log("json");
    check_one_line_per_request("json", &lines);
}
