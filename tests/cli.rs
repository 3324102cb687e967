//! The command line (API.md §11): help texts, config validation, init, keys, users, orgs,
//! and a real `serve` process stopping gracefully on SIGTERM.

mod common;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::bin())
        .args(args)
        .env_remove("LATCHKEY_CONFIG")
        .env_remove("LATCHKEY_SECRET_KEY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn help_explains_every_command() {
    let (ok, out, _) = run(&["--help"]);
    assert!(ok);
    for cmd in [
        "serve",
        "init",
        "check-config",
        "config",
        "migrate",
        "admin-key",
        "org",
        "user",
        "keys",
        "backup",
    ] {
        assert!(out.contains(cmd), "--help lacks {cmd}");
    }
    for args in [
        vec!["serve", "--help"],
        vec!["init", "--help"],
        vec!["check-config", "--help"],
        vec!["config", "example", "--help"],
        vec!["migrate", "--help"],
        vec!["admin-key", "create", "--help"],
        vec!["org", "create", "--help"],
        vec!["user", "create", "--help"],
        vec!["keys", "rotate", "--help"],
        vec!["client", "create", "--help"],
        vec!["backup", "--help"],
    ] {
        let (ok, out, _) = run(&args);
        assert!(
            ok && out.lines().next().is_some_and(|l| l.len() > 10),
            "{args:?}: {out}"
        );
    }
}

#[test]
fn the_example_config_is_accepted_once_its_secret_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, example, _) = run(&["config", "example"]);
    assert!(ok && example.contains("[server]") && example.contains("secret_key"));
    // As it stands its placeholder secret is refused (tests/hardening_low.rs); nothing else.
    let path = dir.path().join("example.toml");
    let secret = "s".repeat(40);
    let edited = example.replace(latchkey::config::SECRET_PLACEHOLDER, &secret);
    assert_ne!(edited, example);
    std::fs::write(&path, &edited).unwrap();
    let (ok, _, err) = run(&["--config", path.to_str().unwrap(), "check-config"]);
    assert!(ok, "{err}");
}

#[test]
fn config_errors_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let secret = "x".repeat(40);
    for (text, key) in [
        (
            format!("[server]\nbnid = \"127.0.0.1:1\"\n[security]\nsecret_key = \"{secret}\"\n"),
            "server.bnid",
        ),
        (
            format!("[server]\nthreads = \"many\"\n[security]\nsecret_key = \"{secret}\"\n"),
            "server.threads",
        ),
        (
            format!(
                "[tokens]\naccess_ttl = \"15 parsecs\"\n[security]\nsecret_key = \"{secret}\"\n"
            ),
            "tokens.access_ttl",
        ),
        (
            "[security]\nsecret_key = \"short\"\n".to_string(),
            "security.secret_key",
        ),
        (
            "[server]\nbind = \"127.0.0.1:1\"\n".to_string(),
            "security.secret_key",
        ),
        (
            format!("[nonsense]\n[security]\nsecret_key = \"{secret}\"\n"),
            "nonsense",
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        let (ok, _, err) = run(&["--config", path.to_str().unwrap(), "check-config"]);
        assert!(!ok, "{text} accepted");
        assert!(err.contains(key), "error for {key} does not name it: {err}");
        assert!(
            err.contains("bad.toml"),
            "error does not name the file: {err}"
        );
    }
    let (ok, _, err) = run(&[
        "--config",
        dir.path().join("missing.toml").to_str().unwrap(),
        "check-config",
    ]);
    assert!(!ok && err.contains("missing.toml"), "{err}");
}

#[test]
fn init_writes_a_valid_config_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.toml");
    let p = path.to_str().unwrap();
    let (ok, _, err) = run(&["--config", p, "init"]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&path).unwrap();
    let (ok, _, err) = run(&["--config", p, "check-config"]);
    assert!(ok, "{err}");
    let (ok, _, _) = run(&["--config", p, "init"]);
    assert!(!ok, "init overwrote a config");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // Two inits make two different secrets.
    let other = dir.path().join("other.toml");
    run(&["--config", other.to_str().unwrap(), "init"]);
    assert_ne!(std::fs::read_to_string(&other).unwrap(), text);
}

fn project(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("latchkey.toml");
    let text = common::base_config(dir, "")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        .replace("level = \"warn\"", "level = \"info\"");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn admin_keys_orgs_users_and_key_rotation_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = project(dir.path(), free_port());
    let c = cfg.to_str().unwrap();
    let (ok, out, err) = run(&["--config", c, "admin-key", "create", "--name", "ops"]);
    assert!(ok, "{err}");
    let key = out.trim();
    assert!(
        key.starts_with("sk_admin_") && key.len() == 73 && out.lines().count() == 1,
        "{out}"
    );

    let (ok, out, err) = run(&[
        "--config", c, "org", "create", "--slug", "acme", "--name", "Acme",
    ]);
    assert!(ok, "{err}");
    let org: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(org["slug"], "acme");
    let (ok, _, err) = run(&[
        "--config", c, "org", "create", "--slug", "admin", "--name", "X",
    ]);
    assert!(!ok && err.contains("reserved"), "{err}");

    let mut child = Command::new(common::bin())
        .args([
            "--config",
            c,
            "user",
            "create",
            "--email",
            "Ann@Acme.test",
            "--password-stdin",
            "--org",
            "acme",
            "--role",
            "owner",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let u: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u["user"]["email"], "ann@acme.test");
    assert_eq!(u["membership"]["role"], "owner");

    let (ok, first, err) = run(&["--config", c, "keys", "rotate"]);
    assert!(ok, "{err}");
    let (ok, second, _) = run(&["--config", c, "keys", "rotate"]);
    assert!(ok && first != second);
    let conn = rusqlite::Connection::open(dir.path().join("latchkey.db")).unwrap();
    let active: String = conn
        .query_row(
            "SELECT kid FROM signing_keys WHERE retired_at IS NULL AND alg = 'EdDSA'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(active, second.trim());
}

fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let r = common::read_response(&mut s);
            if r.status == 200 {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server did not come up on {port}");
}

#[test]
fn serve_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = project(dir.path(), port);
    let mut child = Command::new(common::bin())
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_healthy(port);
    // A keep-alive connection that is idle when the signal arrives must not hold the stop up.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let lines: Vec<String> = stderr.lines().map_while(Result::ok).collect();
    assert!(lines.iter().any(|l| l.contains("stopped")), "{lines:?}");
}

#[test]
fn without_a_config_serve_announces_the_development_default_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::bin())
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("LATCHKEY_CONFIG")
        .env_remove("LATCHKEY_SECRET_KEY")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(first.contains("development default"), "first line: {first}");
    assert!(dir.path().join("latchkey.db").exists());
}

#[test]
fn client_create_registers_an_oauth_client_and_prints_its_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = project(dir.path(), free_port());
    let c = cfg.to_str().unwrap();
    let (ok, _, err) = run(&[
        "--config", c, "org", "create", "--slug", "acme", "--name", "Acme",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&[
        "--config",
        c,
        "client",
        "create",
        "--name",
        "Portal",
        "--redirect-uri",
        "https://portal.example/cb",
        "--redirect-uri",
        "http://localhost:3000/cb",
        "--org",
        "acme",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["client"]["orgSlug"], "acme");
    assert_eq!(v["client"]["redirectUris"].as_array().unwrap().len(), 2);
    let secret = v["clientSecret"].as_str().unwrap();
    assert!(secret.starts_with("sk_"));
    // Stored as its hash only.
    let hash = latchkey::crypto::token_hash(secret);
    let mut stored = Vec::new();
    for f in ["latchkey.db", "latchkey.db-wal"] {
        stored.extend(std::fs::read(dir.path().join(f)).unwrap_or_default());
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains(&hash) && !stored.contains(secret));
    let (ok, out, _) = run(&[
        "--config",
        c,
        "client",
        "create",
        "--name",
        "CLI",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--public",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["clientSecret"], serde_json::Value::Null);
    assert_eq!(v["client"]["public"], true);
    // Bad input names the field; an unknown org is refused.
    let (ok, _, err) = run(&[
        "--config",
        c,
        "client",
        "create",
        "--name",
        "X",
        "--redirect-uri",
        "not a uri",
    ]);
    assert!(!ok && err.contains("redirectUris"), "{err}");
    let (ok, _, err) = run(&[
        "--config",
        c,
        "client",
        "create",
        "--name",
        "X",
        "--redirect-uri",
        "https://a.example/cb",
        "--org",
        "nope",
    ]);
    assert!(!ok && err.contains("nope"), "{err}");
}
