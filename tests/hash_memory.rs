//! Memory after hashing from many connections (issue 13, defect 2): a real `latchkey serve`
//! process hashes and verifies passwords for users made by the operator, sign-ups, logins
//! (right and wrong passwords) and unknown accounts (the dummy verify), from 16 connections at
//! once; its resident size afterwards must stay within the argon2 memory of its hashing
//! threads (`max_concurrent_hashes × memory_kib`) plus a margin. Before the fix every hash
//! allocated and freed its block, and the allocator kept the freed blocks resident.

#![cfg(target_os = "linux")]

mod common;
use serde_json::json;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// argon2 memory per hash in the test: big enough that the allocator treats it as a large
/// block (as it does the 19 MiB default), small enough to hash fast in a debug build.
const MEMORY_KIB: u64 = 8192;
const HASH_THREADS: u64 = 2;

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).unwrap();
        common::read_response(&mut s).status
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &std::path::Path) -> (Server, std::path::PathBuf) {
    let port = free_port();
    let cfg = dir.join("latchkey.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[server]
bind = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
threads = 8
# Every request must be served (no 503 shedding on a busy machine): 16 clients, 8 workers.
queue_timeout = "60s"

[database]
path = "{db}"

[security]
secret_key = "{secret}"
max_concurrent_hashes = {HASH_THREADS}
hash_queue = 1000
login_ip_per_minute = 1000000
login_max_failures = 1000000
account_max_failures = 1000000

[cookies]
secure = false

[argon2]
memory_kib = {MEMORY_KIB}
iterations = 1
parallelism = 1

[log]
level = "error"
"#,
            db = dir.join("latchkey.db").display(),
            secret = common::SECRET,
        ),
    )
    .unwrap();
    let child = Command::new(common::bin())
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        || server.send("GET", "/healthz", &[], "") != 200
    {
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, cfg)
}

#[test]
fn hashing_from_many_connections_keeps_memory_to_the_hashing_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (server, cfg) = start(dir.path());
    std::thread::sleep(Duration::from_millis(500));
    let idle = server.rss_kib();

    let out = Command::new(common::bin())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "admin-key",
            "create",
            "--name",
            "t",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let admin = format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim());
    let auth = [("Authorization", admin.as_str())];
    let org = json!({ "slug": "acme", "name": "Acme", "settings": { "signupMode": "open" } });
    assert_eq!(
        server.send("POST", "/api/v1/admin/orgs", &auth, &org.to_string()),
        201
    );

    // 16 connections at once, 12 rounds each: an operator-made user (a hash) seated in the
    // org, its login (a verify), a wrong password (a verify), an unknown account (the dummy
    // verify), and every third round a sign-up (a hash).
    std::thread::scope(|s| {
        for c in 0..16 {
            let (server, auth) = (&server, &auth);
            s.spawn(move || {
                for i in 0..12 {
                    let email = format!("u{c}-{i}@acme.test");
                    let user = json!({ "email": email, "password": common::PASSWORD, "isEmailVerified": true });
                    let mut st = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
                    let body = user.to_string();
                    let req = format!(
                        "POST /api/v1/admin/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        auth[0].1,
                        body.len()
                    );
                    st.write_all(req.as_bytes()).unwrap();
                    let r = common::read_response(&mut st);
                    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
                    let id = r.json()["data"]["user"]["id"].as_str().unwrap().to_string();
                    let seat = json!({ "userId": id, "role": "member" }).to_string();
                    assert_eq!(
                        server.send("POST", "/api/v1/admin/orgs/acme/members", auth, &seat),
                        201
                    );
                    let org = [("X-Org-Slug", "acme")];
                    let login = |email: &str, password: &str| {
                        let b = json!({ "email": email, "password": password }).to_string();
                        server.send("POST", "/api/v1/auth/login", &org, &b)
                    };
                    assert_eq!(login(&email, common::PASSWORD), 200);
                    assert_eq!(login(&email, "not the password at all"), 401);
                    assert_eq!(login(&format!("nobody{c}-{i}@acme.test"), "whatever it is"), 401);
                    if i % 3 == 0 {
                        let b = json!({ "email": format!("new{c}-{i}@acme.test"), "password": common::PASSWORD });
                        assert_eq!(
                            server.send("POST", "/api/v1/auth/signup", &org, &b.to_string()),
                            201
                        );
                    }
                }
            });
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let after = server.rss_kib();
    // The hashing threads' argon2 memory, plus a margin for everything else a few hundred
    // requests leave behind (connections, SQLite caches, allocator slack) in a debug build.
    let bound = idle + HASH_THREADS * MEMORY_KIB + 24 * 1024;
    assert!(
        after <= bound,
        "VmRSS {after} KiB after {} hashes and verifies (idle {idle} KiB); bound {bound} KiB = idle + {HASH_THREADS} hashing threads × {MEMORY_KIB} KiB + 24 MiB",
        16 * 12 * 4 + 16 * 4
    );
    // Idle: after 5 s without a hash each hashing thread gives its block back, so the server
    // holds no argon2 memory; the next login hashes in a fresh one.
    let deadline = Instant::now() + Duration::from_secs(12);
    let released = loop {
        let rss = server.rss_kib();
        if rss + HASH_THREADS * MEMORY_KIB * 3 / 4 <= after || Instant::now() > deadline {
            break rss;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        released + HASH_THREADS * MEMORY_KIB * 3 / 4 <= after,
        "idle hashing threads keep their blocks: {after} KiB after the hashing, {released} KiB 12 s later"
    );
    let b = json!({ "email": "new0-0@acme.test", "password": common::PASSWORD }).to_string();
    assert_eq!(
        server.send("POST", "/api/v1/auth/login", &[("X-Org-Slug", "acme")], &b),
        200
    );
}
