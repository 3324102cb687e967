//! SQLite storage: connections with their pragmas, a small connection pool, read and write
//! transactions (`BEGIN IMMEDIATE`), schema migrations with a snapshot first, and backups.
//! SQL lives only under `db/`, and so does the driver: callers get a [`Tx`] in the closures of
//! [`Db::read`] / [`Db::write`], pass it to functions here, and see failures as [`Error`]
//! (a unique-constraint refusal as [`Error::Conflict`]).

pub mod admin_keys;
pub mod api_keys;
pub mod audit;
pub mod batch;
pub mod browser_sessions;
pub mod email_tokens;
mod ids;
pub mod invitations;
pub mod members;
pub mod meta;
pub mod oauth;
pub mod orgs;
pub mod outbox;
pub mod sessions;
pub mod signing_keys;
pub mod two_factor;
pub mod users;
pub mod webhooks;
pub mod workos;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The version 1 schema; applied to an empty database (version 0 → 1).
pub const SCHEMA: &str = include_str!("../../schema.sql");

/// Migration steps: `MIGRATIONS[i]` takes the database from version `i` to `i + 1`.
/// Each step runs in its own transaction. Never edit a released step; append a new one.
const MIGRATIONS: &[&str] = &[
    SCHEMA,
    include_str!("../../migrations/002_identity_hardening.sql"),
    include_str!("../../migrations/003_browser_sessions.sql"),
    include_str!("../../migrations/004_upkeep.sql"),
    include_str!("../../migrations/005_signing_keys_per_alg.sql"),
    include_str!("../../migrations/006_oauth.sql"),
    include_str!("../../migrations/007_workos.sql"),
    include_str!("../../migrations/008_refresh_chain.sql"),
];

/// The schema version this binary writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The handle a closure of [`Db::read`] or [`Db::write`] gets (inside `write`, the open
/// transaction). Only `db/` runs statements on it; everything else passes it on.
pub type Tx = Connection;

/// What the storage layer reports. Nothing outside `db/` sees the driver's error type.
#[derive(Debug)]
pub enum Error {
    /// A UNIQUE or primary-key constraint refused the write: such a row exists.
    Conflict(rusqlite::Error),
    /// Anything else the database reported.
    Sqlite(rusqlite::Error),
    /// The database was written by a newer Latchkey.
    TooNew {
        found: i64,
        supported: i64,
    },
    Io(String),
    /// A value could not be stored (a caller's precondition, such as a missing key).
    Invalid(String),
}

impl Error {
    /// True when a UNIQUE or primary-key constraint refused the write.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Conflict(e) | Error::Sqlite(e) => write!(f, "database error: {e}"),
            Error::TooNew { found, supported } => write!(
                f,
                "the database has schema version {found}, newer than this binary supports ({supported}); \
                 run a newer latchkey or restore a backup"
            ),
            Error::Io(e) | Error::Invalid(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if is_unique_violation(&e) {
            Error::Conflict(e)
        } else {
            Error::Sqlite(e)
        }
    }
}

/// The storage layer's result; `E` defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Creates `path` (which must not exist) readable and writable by its owner only (0600),
/// whatever the umask: files holding secrets — the config `init` writes, the database, its
/// WAL and shared-memory files, backups and migration snapshots — are made with this.
pub fn create_owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    // The umask can only take bits away from `mode`; set exactly 0600 on the open file.
    set_owner_only(&file)?;
    Ok(file)
}

#[cfg(unix)]
fn set_owner_only(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_owner_only(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// `path` with `suffix` appended to its file name (`latchkey.db` → `latchkey.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens one connection with the pragmas every connection needs.
pub fn open_connection(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The server checkpoints from its maintenance thread ([`Db::checkpoint`]); a short-lived
    // process (the CLI) checkpoints when its last connection closes.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // After a WAL restart, a WAL file grown past this is truncated back to it.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    conn.set_prepared_statement_cache_capacity(64);
    // One plan per statement, whatever the bound values (the query planner stability
    // guarantee). Without it, a statement that the planner checked against a partial index
    // (`sessions_browser`, `users_external_id`, …) is marked "reprepare on bind" and parsed
    // and planned again on every execution with new values: 45 % of `GET /auth/me`'s CPU
    // (perf, docs/benchmarks.md "Performance: issue 17").
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

/// Bytes a WAL file is truncated back to when it restarts (`journal_size_limit`).
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// [`Db::checkpoint`]: at most this many unlocked passes, stopping once a pass found fewer
/// than `SMALL_DELTA_FRAMES` new frames.
const MAX_PASSIVE_PASSES: usize = 6;
const SMALL_DELTA_FRAMES: i64 = 256;
/// A WAL of more frames than this (32 MiB of 4 KiB pages) is restarted by the checkpoint: a
/// restart stalls the writers for a moment, and a WAL file of up to `WAL_SIZE_LIMIT` is
/// overwritten in place, without allocating.
const RESTART_FRAMES: i64 = 8192;

/// What one [`Db::checkpoint`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointOutcome {
    /// The WAL held no frames.
    Empty,
    /// Frames were copied back; the WAL was not due to restart.
    Copied,
    /// Every frame was copied back and the WAL starts over.
    Restarted,
    /// A reader on an older snapshot kept the WAL from restarting (tried again later).
    Busy,
}

/// A pool of connections to one database file. Readers run concurrently (WAL); writers
/// serialize on SQLite's write lock, taken up front with `BEGIN IMMEDIATE`.
pub struct Db {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    /// Serializes this process's writers before `BEGIN IMMEDIATE`, and holds the one
    /// connection they write on. SQLite admits one writer at a time anyway; waiting here is a
    /// wake-up on unlock, whereas waiting in SQLite's busy handler sleeps in steps of 1–100 ms
    /// (measured: refresh/s limited by those sleeps). One connection for every write keeps
    /// its page cache: in WAL mode a connection drops its whole cache when it finds the
    /// database changed by another connection, so writes spread over the pool re-read every
    /// page they touch (measured: 12 % of a refresh's CPU in `readDbPage`).
    /// Another process (the CLI) still meets SQLite's own lock and `busy_timeout`.
    writer: Mutex<Option<Connection>>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

/// Connections kept idle in the pool; more may be open at once under load.
const MAX_IDLE: usize = 32;

impl Db {
    /// Opens the database, creating the file if needed. Does not migrate.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Db> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display())))?;
        }
        // Create the file owner-only before SQLite opens it: SQLite gives its -wal and -shm
        // files the database file's mode. A database that exists keeps the mode it has.
        let created = match create_owner_only(path) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                return Err(Error::Io(format!("cannot create {}: {e}", path.display())));
            }
        };
        let conn = open_connection(path, busy_timeout)?;
        if created {
            for side in ["-wal", "-shm"] {
                let side = with_suffix(path, side);
                if let Ok(f) = std::fs::File::open(&side) {
                    set_owner_only(&f).map_err(|e| {
                        Error::Io(format!("cannot restrict {}: {e}", side.display()))
                    })?;
                }
            }
        }
        Ok(Db {
            path: path.to_path_buf(),
            busy_timeout,
            idle: Mutex::new(vec![conn]),
            writer: Mutex::new(None),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn take(&self) -> rusqlite::Result<Connection> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        open_connection(&self.path, self.busy_timeout)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Runs `f` on a pooled connection (reads, or single statements).
    pub fn read<T, E: From<Error>>(&self, f: impl FnOnce(&Tx) -> Result<T, E>) -> Result<T, E> {
        let conn = self.take().map_err(Error::from)?;
        let out = f(&conn);
        self.give_back(conn);
        out
    }

    /// Runs `f` on a pooled connection inside one read transaction: its statements see one
    /// snapshot, and the WAL read lock is taken and released once. Each statement run by
    /// [`Db::read`] is its own transaction, and beginning and ending one (`walTryBeginRead`,
    /// its shared-memory lock, an `fcntl`) was 13 % of `/auth/me`'s CPU for its two statements
    /// (docs/benchmarks.md, step 12). For reads only: a write in `f` would upgrade the
    /// transaction outside the writer's lock.
    pub fn read_snapshot<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        let conn = self.take().map_err(Error::from)?;
        conn.prepare_cached("BEGIN")
            .and_then(|mut s| s.execute([]))
            .map_err(Error::from)?;
        let out = f(&conn);
        debug_assert!(
            !matches!(
                conn.transaction_state(None::<&str>),
                Ok(rusqlite::TransactionState::Write)
            ),
            "read_snapshot is for reads: a write belongs in Db::write"
        );
        // A read-only transaction's end cannot conflict; if it still failed, the connection
        // is not pooled in the middle of a transaction (dropping it ends that).
        let ended = conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .is_ok();
        if ended && conn.is_autocommit() {
            self.give_back(conn);
        }
        out
    }

    /// Runs `f` inside a `BEGIN IMMEDIATE` transaction; commits on `Ok`, rolls back on `Err`.
    /// Writers are serialized (one writer lock, and SQLite's own single writer): read-then-write
    /// rules such as the last-owner check and pending-before-insert checks rely on it — each
    /// such place says so; a second backend must lock what they read.
    pub fn write<T, E: From<Error>>(&self, f: impl FnOnce(&Tx) -> Result<T, E>) -> Result<T, E> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let conn = match writer.take() {
            Some(c) => c,
            None => open_connection(&self.path, self.busy_timeout).map_err(Error::from)?,
        };
        let conn = writer.insert(conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::from)?;
        let v = f(&tx)?;
        tx.commit().map_err(Error::from)?;
        Ok(v)
    }

    pub fn version(&self) -> Result<i64> {
        self.read(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
    }

    /// Brings the database to [`SCHEMA_VERSION`]. Before changing a database that already
    /// holds data it writes a snapshot beside the file; returns the snapshot's path if any.
    /// A database newer than this binary is refused untouched.
    pub fn migrate(&self, now_ms: i64) -> Result<Option<PathBuf>> {
        let found = self.version()?;
        if found > SCHEMA_VERSION {
            return Err(Error::TooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok(None);
        }
        let has_tables: bool = self.read(|c| {
            Ok::<_, Error>(c.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table')",
                [],
                |r| r.get(0),
            )?)
        })?;
        let snapshot = if has_tables {
            let snap = self.snapshot_path(found, now_ms);
            self.backup_to(&snap)?;
            Some(snap)
        } else {
            None
        };
        let mut conn = self.take()?;
        let result = (|| -> Result<()> {
            for (i, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute_batch(step)?;
                tx.pragma_update(None, "user_version", (i + 1) as i64)?;
                tx.commit()?;
            }
            Ok(())
        })();
        self.give_back(conn);
        result.map(|_| snapshot)
    }

    fn snapshot_path(&self, version: i64, now_ms: i64) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "latchkey.db".into());
        self.path
            .with_file_name(format!("{name}.v{version}-{}.bak", now_ms / 1000))
    }

    /// Writes a consistent copy of the live database to `dest` (refuses to overwrite), readable
    /// by its owner only.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let dest_str = dest
            .to_str()
            .ok_or_else(|| Error::Io("backup path is not valid UTF-8".into()))?;
        // `VACUUM INTO` fills an empty file and keeps its mode, so create it 0600 first.
        create_owner_only(dest).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Io(format!(
                    "{} already exists; refusing to overwrite it",
                    dest.display()
                ))
            } else {
                Error::Io(format!("cannot create {}: {e}", dest.display()))
            }
        })?;
        let result = self.read(|c| Ok::<_, Error>(c.execute("VACUUM INTO ?1", [dest_str])?));
        if result.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        result.map(|_| ())
    }

    /// Copies committed WAL pages into the database file, and now and then starts the WAL
    /// over; called every turn (200 ms) of the server's maintenance thread.
    ///
    /// `PASSIVE` alone never lets the WAL restart under steady writes: a restart needs every
    /// frame copied back at the moment a writer begins, and with writes arriving faster than
    /// the checkpoint copies there is always a newer frame (measured: a 2 GB WAL after a
    /// minute of refreshes). So the frames are copied `PASSIVE` (readers and writers go on),
    /// in passes until one finds only a moment's new frames; then, if the WAL holds more
    /// than [`RESTART_FRAMES`] (32 MiB), a `RESTART` — holding this process's writer lock, so no
    /// frame is appended meanwhile — copies the frames written since and makes the next
    /// writer start the WAL from its beginning; `journal_size_limit` truncates the file.
    /// That locked part stalls every writer while it copies and fsyncs (measured under
    /// steady refreshes: 10-15 ms a turn). Restarting less often was slower still: with a
    /// restart at most every 2 s, refreshes fell from ~10,000/s to ~6,200/s and their p99
    /// rose to 100 ms (appending to a growing WAL file allocates blocks; overwriting a
    /// restarted one does not). Readers are never blocked; a reader still on an old
    /// snapshot makes the `RESTART` give up after 20 ms (`Busy`), and the next turn tries
    /// again.
    pub fn checkpoint(&self) -> Result<CheckpointOutcome> {
        let conn = self.take()?;
        let out = self.checkpoint_on(&conn);
        self.give_back(conn);
        out
    }

    fn checkpoint_on(&self, conn: &Connection) -> Result<CheckpointOutcome> {
        let mut frames = 0i64;
        for _ in 0..MAX_PASSIVE_PASSES {
            let before = frames;
            frames = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))?;
            if frames - before < SMALL_DELTA_FRAMES {
                break;
            }
        }
        if frames <= 0 {
            return Ok(CheckpointOutcome::Empty);
        }
        if frames <= RESTART_FRAMES {
            return Ok(CheckpointOutcome::Copied);
        }
        // The `RESTART` fsyncs the WAL before copying: flush what was written during the
        // passes now, while writers go on, so that fsync has only the last moment's frames.
        if let Ok(wal) = std::fs::File::open(with_suffix(&self.path, "-wal")) {
            let _ = wal.sync_data();
        }
        // And copy what was written meanwhile, so the locked copy (and the database fsync
        // after it) is only of the last moment's frames.
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // Readers finish in microseconds, but SQLite's busy handler sleeps 1, 2, 5, 10 ms
        // between its tries: try every 100 µs instead, for at most 20 ms — longer (a backup
        // reading the whole file) is not worth holding every writer for.
        conn.busy_timeout(Duration::ZERO)?;
        let deadline = std::time::Instant::now() + Duration::from_millis(20);
        let restart = loop {
            let busy: rusqlite::Result<i64> =
                conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get(0));
            match busy {
                Ok(0) => break Ok(0),
                Ok(_) | Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(100));
                }
                other => break other,
            }
        };
        conn.busy_timeout(self.busy_timeout)?;
        Ok(match restart? {
            0 => CheckpointOutcome::Restarted,
            _ => CheckpointOutcome::Busy,
        })
    }

    /// A write probe, what `/readyz` asks: a `BEGIN IMMEDIATE` transaction that upserts a row
    /// of `meta` and commits, so the file, its WAL and the write lock all work. Not an
    /// integrity check: `PRAGMA quick_check` reads the whole file (seconds on a large
    /// database), too slow for a probe that runs every few seconds.
    pub fn ready(&self) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('ready_probe', '1')
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [],
            )?;
            Ok::<_, Error>(())
        })
    }
}

/// True when a driver error is a UNIQUE (or primary-key) constraint violation.
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database in a temporary directory (kept alive by the returned guard) with `schema`.
    fn with_schema(schema: &str) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), Duration::from_secs(5)).unwrap();
        db.write(|tx| {
            tx.execute_batch(schema)?;
            Ok::<_, Error>(())
        })
        .unwrap();
        (dir, db)
    }

    /// Frames in the WAL, as a passive checkpoint reports them.
    fn wal_frames(db: &Db) -> i64 {
        db.read(|c| {
            Ok::<_, Error>(c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))?)
        })
        .unwrap()
    }

    /// `commits` write transactions of 100 rows of about a page each.
    fn fill(db: &Db, commits: usize) {
        for _ in 0..commits {
            db.write(|tx| {
                for _ in 0..100 {
                    tx.execute("INSERT INTO t (v) VALUES (zeroblob(4000))", [])?;
                }
                Ok::<_, Error>(())
            })
            .unwrap();
        }
    }

    /// A snapshot's statements see one state of the database, even when a write commits in
    /// between; its transaction ends whatever `f` returns, so the pooled connection holds no
    /// read lock after (a checkpoint can then empty the WAL).
    #[test]
    fn a_read_snapshot_sees_one_state_and_ends_its_transaction() {
        let (_dir, db) =
            with_schema("CREATE TABLE t (v INTEGER NOT NULL); INSERT INTO t VALUES (1)");
        let count = |c: &Tx| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0));
        let (before, after) = db
            .read_snapshot(|c| {
                let before = count(c)?;
                db.write(|tx| {
                    tx.execute("INSERT INTO t VALUES (2)", [])?;
                    Ok::<_, Error>(())
                })?;
                Ok::<_, Error>((before, count(c)?))
            })
            .unwrap();
        assert_eq!((before, after), (1, 1), "one snapshot");
        let failed: Result<(), Error> = db.read_snapshot(|c| {
            count(c)?;
            Err(Error::Invalid("the caller's error".into()))
        });
        assert!(matches!(failed, Err(Error::Invalid(_))));
        // The pool's connection is back in autocommit mode, and sees the insert.
        db.read(|c| {
            assert!(c.is_autocommit());
            assert_eq!(count(c)?, 2);
            Ok::<_, Error>(())
        })
        .unwrap();
        // No reader holds the WAL: a checkpoint copies every frame back.
        let (busy, log, done): (i64, i64, i64) = db
            .read(|c| {
                Ok::<_, Error>(c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?)
            })
            .unwrap();
        assert_eq!((busy, log, done), (0, 0, 0));
    }

    #[test]
    fn a_checkpoint_restarts_a_large_wal_and_leaves_a_small_one() {
        let (_dir, db) = with_schema("CREATE TABLE t (v BLOB NOT NULL)");
        assert_eq!(db.checkpoint().unwrap(), CheckpointOutcome::Copied);
        // Below the threshold: copied back, not restarted.
        db.write(|tx| {
            tx.execute("INSERT INTO t (v) VALUES (zeroblob(4000))", [])?;
            Ok::<_, Error>(())
        })
        .unwrap();
        assert_eq!(db.checkpoint().unwrap(), CheckpointOutcome::Copied);
        assert!(wal_frames(&db) > 0);
        // Past it (10,000 pages in many commits): restarted, and the next write starts the
        // WAL from its beginning.
        fill(&db, 100);
        assert!(wal_frames(&db) > RESTART_FRAMES);
        assert_eq!(db.checkpoint().unwrap(), CheckpointOutcome::Restarted);
        db.write(|tx| {
            tx.execute("INSERT INTO t (v) VALUES (1)", [])?;
            Ok::<_, Error>(())
        })
        .unwrap();
        assert!(wal_frames(&db) < 10, "{}", wal_frames(&db));
        // A reader holding an old snapshot keeps it from restarting, without blocking.
        fill(&db, 100);
        let reader = open_connection(db.path(), Duration::from_secs(5)).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        db.write(|tx| {
            tx.execute("INSERT INTO t (v) VALUES (2)", [])?;
            Ok::<_, Error>(())
        })
        .unwrap();
        let started = std::time::Instant::now();
        assert_eq!(db.checkpoint().unwrap(), CheckpointOutcome::Busy);
        assert!(started.elapsed() < Duration::from_secs(1));
        reader.execute_batch("COMMIT").unwrap();
        assert_eq!(db.checkpoint().unwrap(), CheckpointOutcome::Restarted);
    }
}
