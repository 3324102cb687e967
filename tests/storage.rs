//! The SQLite file: migrations with snapshots, refusal of a newer database, backups.

mod common;
use common::TestServer;
use latchkey::app::App;
use latchkey::clock::TestClock;
use latchkey::config::{Config, ConfigSource};
use latchkey::db::{Db, SCHEMA_VERSION};
use serde_json::json;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("latchkey.toml");
    std::fs::write(&path, common::base_config(dir, "")).unwrap();
    path
}

#[test]
fn a_fresh_database_gets_the_schema_version_and_pragmas() {
    let s = TestServer::start();
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // No snapshot for an empty file.
    let snaps = std::fs::read_dir(s.dir.path()).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".bak")
    });
    assert_eq!(snaps.count(), 0);
}

#[test]
fn a_newer_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("latchkey.db");
    {
        let conn = rusqlite::Connection::open(&db_path).unwrap();
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .unwrap();
    }
    let text = common::base_config(dir.path(), "");
    let config =
        Config::from_toml_str(&text, ConfigSource::File(dir.path().join("t.toml"))).unwrap();
    let err = App::build(config, Arc::new(TestClock::new()))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("newer"), "{err}");
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99);

    let cfg = config_file(dir.path());
    let out = Command::new(common::bin())
        .args(["--config", cfg.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("newer"));
}

#[test]
fn migrating_a_database_with_data_writes_a_snapshot_first() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("latchkey.db");
    {
        let conn = rusqlite::Connection::open(&db_path).unwrap();
        conn.execute_batch("CREATE TABLE legacy (x); INSERT INTO legacy VALUES (42);")
            .unwrap();
    }
    let db = Db::open(&db_path, Duration::from_secs(5)).unwrap();
    let snap = db
        .migrate(1_700_000_000_000)
        .unwrap()
        .expect("snapshot written");
    assert_eq!(db.version().unwrap(), SCHEMA_VERSION);
    let conn = rusqlite::Connection::open(&snap).unwrap();
    let x: i64 = conn
        .query_row("SELECT x FROM legacy", [], |r| r.get(0))
        .unwrap();
    assert_eq!(x, 42);
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 0, "the snapshot is the database before migration");
}

#[test]
fn backup_writes_a_consistent_copy_of_the_live_database() {
    let mut s = TestServer::start();
    for i in 0..20 {
        let r = s.admin_send(
            "POST",
            "/api/v1/admin/orgs",
            Some(json!({ "slug": format!("org-{i:02}"), "name": "O" })),
        );
        assert_eq!(r.status, 201);
    }
    let cfg = config_file(s.dir.path());
    let dest = s.dir.path().join("copy.db");
    let out = Command::new(common::bin())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "backup",
            dest.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&dest).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM orgs WHERE deleted_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 20);
    // The server still serves, and a second backup to the same file is refused.
    assert_eq!(s.get("/healthz").status, 200);
    let out = Command::new(common::bin())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "backup",
            dest.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
