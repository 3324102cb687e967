//! The maintenance thread (`latchkey-maint`): WAL checkpoints every second, batched API-key
//! `lastUsedAt` writes, signing-key reloads, and the sweep that deletes what has outlived its
//! use in every table with a lifetime (the outbox and its events excepted: the outbox worker
//! sweeps those). Also the liveness of both background threads, which `/readyz` reads.
//!
//! What the sweep deletes, and when (times from `state.clock`; see docs/operations.md):
//!
//! | rows | deleted | why kept until then |
//! |---|---|---|
//! | `audit_log` | `audit.retention` after the entry (default 365 d) | the audit trail |
//! | a refresh token's sealed successor | as soon as its grace window (`tokens.refresh_grace`) is over | answers a second refresh within the window |
//! | `sessions` and their `refresh_tokens` | [`SESSION_RETENTION_MS`] after the session ended (expired, idle-expired or revoked) | `/public/verify` and the guards tell `session_expired` from `session_revoked`; the session's IP and user agent beside its audit entries |
//! | `partial_tokens`, `email_tokens` | [`TOKEN_RETENTION_MS`] after they expire, used or not | nothing reads an expired token: it answers `invalid_token` whether kept or not |
//! | `workos_pending`, `workos_codes` | [`TOKEN_RETENTION_MS`] after they expire | as partial and email tokens |
//! | `idempotency_keys` | [`IDEMPOTENCY_MS`] after the request | a retried POST within the day gets the first answer |
//! | `oauth_codes`, `oauth_device_codes` | [`TOKEN_RETENTION_MS`] after they expire (60 s; 10 min) | a replayed code within the day still revokes what its first use produced |
//! | `invitations` | [`INVITATION_RETENTION_MS`] after they closed (expired while pending, or accepted, declined, revoked) | the org's invitation list shows them (`state=expired` and the others), and an expired one can still be resent |
//!
//! Each table is swept in batches of [`BATCH`] rows, one write transaction each, so no
//! writer waits long; a pass does at most [`PASS_BUDGET`] of work and, if rows remain, the next
//! pass runs a second later, between checkpoints.

use crate::db;
use crate::state::AppState;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const DAY_MS: i64 = 86_400_000;
/// Ended sessions (and their refresh tokens) are kept this long.
pub const SESSION_RETENTION_MS: i64 = 30 * DAY_MS;
/// Expired partial (2FA-step) and email (reset, verification, magic-link) tokens are kept
/// this long.
pub const TOKEN_RETENTION_MS: i64 = DAY_MS;
/// How long the answer to an `Idempotency-Key` is kept (and honoured): a day.
pub const IDEMPOTENCY_MS: i64 = DAY_MS;
/// Closed invitations are kept this long.
pub const INVITATION_RETENTION_MS: i64 = 30 * DAY_MS;
/// A sweep pass runs this often (and the first this long after start).
pub const SWEEP_EVERY_MS: i64 = 60_000;
/// Rows per write transaction.
const BATCH: i64 = 500;
/// Sessions per write transaction: each takes its refresh tokens along (one per rotation).
const SESSION_BATCH: i64 = 25;
/// Most work one pass does before giving the thread back to its other chores.
const PASS_BUDGET: Duration = Duration::from_secs(2);
/// The pause after each batch that changed rows: as long as the batch took, within these.
const SWEEP_PAUSE_MIN: Duration = Duration::from_millis(1);
const SWEEP_PAUSE_MAX: Duration = Duration::from_millis(50);
/// A background thread whose heartbeat is older than this is taken for stalled.
pub const STALE_AFTER_MS: i64 = 60_000;

/// Milliseconds on a monotonic clock (since the first call in the process). Heartbeats use it,
/// not `state.clock`: whether a thread is alive is a matter of real elapsed time, which
/// neither a test clock nor a wall-clock step should change.
pub fn monotonic_ms() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as i64
}

/// A background thread's liveness: its last heartbeat ([`monotonic_ms`]) and whether it has
/// ended (returned or panicked).
#[derive(Debug)]
pub struct Liveness {
    heartbeat: AtomicI64,
    exited: AtomicBool,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            heartbeat: AtomicI64::new(monotonic_ms()),
            exited: AtomicBool::new(false),
        }
    }
}

impl Liveness {
    pub fn beat(&self) {
        self.heartbeat.store(monotonic_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the last heartbeat.
    pub fn age_ms(&self) -> i64 {
        monotonic_ms() - self.heartbeat.load(Ordering::Relaxed)
    }

    pub fn has_exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }

    /// Marks the thread ended when dropped: hold it for the thread's whole life, so a panic
    /// marks it too.
    pub fn exit_guard(&self) -> ExitGuard<'_> {
        ExitGuard(self)
    }

    /// Why the thread is not serving, if it is not: ended, or no heartbeat for
    /// [`STALE_AFTER_MS`].
    pub fn problem(&self) -> Option<&'static str> {
        if self.has_exited() {
            Some("has stopped")
        } else if self.age_ms() > STALE_AFTER_MS {
            Some("is stalled (no heartbeat for a minute)")
        } else {
            None
        }
    }
}

pub struct ExitGuard<'a>(&'a Liveness);

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        self.0.exited.store(true, Ordering::SeqCst);
    }
}

/// Why the server's background work is not being done, for `/readyz`: the maintenance
/// thread or the outbox worker has stopped or stalled. `None` when both are alive.
pub fn background_problem(state: &AppState) -> Option<String> {
    if let Some(p) = state.maintenance.liveness.problem() {
        return Some(format!("The maintenance thread {p}"));
    }
    if let Some(p) = state.outbox.liveness.problem() {
        return Some(format!("The outbox worker {p}"));
    }
    None
}

/// The maintenance thread's signal and state, held in `AppState`.
#[derive(Debug, Default)]
pub struct Maintenance {
    stop: Mutex<bool>,
    cv: Condvar,
    pub liveness: Liveness,
    /// `now` of the last complete sweep pass (0: none yet).
    swept_at: AtomicI64,
}

impl Maintenance {
    pub fn new() -> Maintenance {
        Maintenance::default()
    }

    /// Asks the thread to stop (it writes the last API-key uses first).
    pub fn stop(&self) {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    /// The `state.clock` time of the last complete sweep pass, 0 before the first: every row
    /// due for deletion at that time is gone.
    pub fn swept_at(&self) -> i64 {
        self.swept_at.load(Ordering::SeqCst)
    }

    /// Sleeps up to `d` unless stopped; true when stopping.
    fn wait(&self, d: Duration) -> bool {
        let stopped = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        let (stopped, _) = self
            .cv
            .wait_timeout_while(stopped, d, |s| !*s)
            .unwrap_or_else(|p| p.into_inner());
        *stopped
    }
}

/// Starts `latchkey-maint`; `state.maintenance.stop()` ends it.
pub fn spawn(state: Arc<AppState>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("latchkey-maint".into())
        .spawn(move || run(&state))
}

/// The maintenance thread's turn: a WAL checkpoint each turn; API-key uses and signing
/// keys every 10 s. Short turns keep each checkpoint small: a checkpoint's `fsync` stalls
/// the WAL writes of every request meanwhile (ext4's journal), for as long as it has dirty
/// pages to flush (measured under steady refreshes: 75–95 ms stalls once a second with 1 s
/// turns; see docs/benchmarks.md).
const TICK: Duration = Duration::from_millis(200);
const TICKS_PER_SECOND: u64 = 5;

/// Consecutive busy checkpoints before the maintenance thread warns (30 s).
const WAL_BUSY_WARN_AFTER: u32 = 30 * TICKS_PER_SECOND as u32;

fn run(state: &AppState) {
    let m = &state.maintenance;
    let _exit = m.liveness.exit_guard();
    let mut tick: u64 = 0;
    let mut wal_busy: u32 = 0;
    let mut next_sweep = state.now() + SWEEP_EVERY_MS;
    loop {
        m.liveness.beat();
        // WAL checkpoints run here, every second, instead of inside whichever request's commit
        // crossed the auto-checkpoint threshold (which stalled every writer behind it).
        match state.db.checkpoint() {
            Ok(crate::db::CheckpointOutcome::Busy) => {
                wal_busy += 1;
                // A reader holding an old snapshot for this long (a backup of a large file,
                // an external `sqlite3` shell) lets the WAL grow meanwhile: say so once.
                if wal_busy == WAL_BUSY_WARN_AFTER {
                    state.log.warn(
                        "the WAL could not restart for 30 s: a reader holds an old snapshot",
                        &[],
                    );
                }
            }
            Ok(_) => wal_busy = 0,
            Err(e) => state
                .log
                .warn("WAL checkpoint failed", &[("error", json!(e.to_string()))]),
        }
        let stopping = *m.stop.lock().unwrap_or_else(|p| p.into_inner());
        if tick.is_multiple_of(10 * TICKS_PER_SECOND) || stopping {
            // Before the stop check, so the last API-key uses are also written on shutdown.
            crate::org_keys::flush_usage(state);
        }
        if stopping {
            return;
        }
        let now = state.now();
        if tick.is_multiple_of(10 * TICKS_PER_SECOND)
            && let Err(e) = state.keys.reload(&state.db, now)
        {
            state.log.error(
                "signing key reload failed",
                &[("error", json!(e.to_string()))],
            );
        }
        if now >= next_sweep {
            next_sweep = match sweep(state, now, PASS_BUDGET) {
                Ok(swept) => {
                    if swept.total() > 0 {
                        state.log.info("maintenance sweep", &swept.fields());
                    }
                    if swept.complete {
                        m.swept_at.store(now, Ordering::SeqCst);
                        now + SWEEP_EVERY_MS
                    } else {
                        now
                    }
                }
                Err(e) => {
                    state.log.error(
                        "maintenance sweep failed",
                        &[("error", json!(e.to_string()))],
                    );
                    now + SWEEP_EVERY_MS
                }
            };
        }
        tick += 1;
        if m.wait(TICK) {
            // One more turn: the final flush above.
            continue;
        }
    }
}

/// What one pass deleted (or, for successors, erased), by table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub audit: usize,
    pub successors: usize,
    pub sessions: usize,
    pub partial_tokens: usize,
    pub email_tokens: usize,
    pub invitations: usize,
    pub browser_sessions: usize,
    pub oauth_codes: usize,
    pub device_codes: usize,
    pub workos_codes: usize,
    pub idempotency_keys: usize,
    /// False when the pass ran out of its budget with rows left.
    pub complete: bool,
}

impl Swept {
    pub fn total(&self) -> usize {
        self.audit
            + self.successors
            + self.sessions
            + self.partial_tokens
            + self.email_tokens
            + self.invitations
            + self.browser_sessions
            + self.oauth_codes
            + self.device_codes
            + self.workos_codes
            + self.idempotency_keys
    }

    fn fields(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("audit", json!(self.audit)),
            ("refresh_successors", json!(self.successors)),
            ("sessions", json!(self.sessions)),
            ("partial_tokens", json!(self.partial_tokens)),
            ("email_tokens", json!(self.email_tokens)),
            ("invitations", json!(self.invitations)),
            ("browser_sessions", json!(self.browser_sessions)),
            ("oauth_codes", json!(self.oauth_codes)),
            ("device_codes", json!(self.device_codes)),
            ("workos_codes", json!(self.workos_codes)),
            ("idempotency_keys", json!(self.idempotency_keys)),
        ]
    }
}

/// The tables a pass sweeps, in order.
#[derive(Clone, Copy, Debug)]
enum Table {
    Successors,
    Sessions,
    PartialTokens,
    EmailTokens,
    Invitations,
    BrowserSessions,
    OauthCodes,
    DeviceCodes,
    WorkosPending,
    WorkosCodes,
    Idempotency,
    Audit,
}

const TABLES: [Table; 12] = [
    Table::Successors,
    Table::Sessions,
    Table::PartialTokens,
    Table::EmailTokens,
    Table::Invitations,
    Table::BrowserSessions,
    Table::OauthCodes,
    Table::DeviceCodes,
    Table::WorkosPending,
    Table::WorkosCodes,
    Table::Idempotency,
    Table::Audit,
];

/// One pass at `now`: every table in batches, until done or `budget` is spent.
pub fn sweep(state: &AppState, now: i64, budget: Duration) -> Result<Swept, db::Error> {
    let started = Instant::now();
    let ms = |d: Duration| d.as_millis().min(i64::MAX as u128) as i64;
    let audit_before = now.saturating_sub(ms(state.config.audit.retention));
    let grace_before = now.saturating_sub(ms(state.config.tokens.refresh_grace));
    let mut swept = Swept {
        complete: true,
        ..Swept::default()
    };
    'tables: for table in TABLES {
        let batch = match table {
            Table::Sessions => SESSION_BATCH,
            _ => BATCH,
        };
        loop {
            if started.elapsed() >= budget {
                swept.complete = false;
                break 'tables;
            }
            let batch_started = Instant::now();
            let n = state.db.write(|tx| match table {
                Table::Successors => db::sessions::forget_old_successors(tx, grace_before, batch),
                Table::Sessions => db::sessions::sweep_ended(tx, now - SESSION_RETENTION_MS, batch),
                Table::PartialTokens => {
                    db::two_factor::sweep_partials(tx, now - TOKEN_RETENTION_MS, batch)
                }
                Table::EmailTokens => {
                    db::email_tokens::sweep_expired(tx, now - TOKEN_RETENTION_MS, batch)
                }
                Table::Invitations => {
                    db::invitations::sweep_closed(tx, now - INVITATION_RETENTION_MS, batch)
                }
                Table::BrowserSessions => {
                    db::browser_sessions::sweep_ended(tx, now - TOKEN_RETENTION_MS, batch)
                }
                Table::OauthCodes => db::oauth::sweep_codes(tx, now - TOKEN_RETENTION_MS, batch),
                Table::DeviceCodes => {
                    db::oauth::sweep_device_codes(tx, now - TOKEN_RETENTION_MS, batch)
                }
                Table::WorkosPending => {
                    db::workos::sweep_pending(tx, now - TOKEN_RETENTION_MS, batch)
                }
                Table::WorkosCodes => db::workos::sweep_codes(tx, now - TOKEN_RETENTION_MS, batch),
                Table::Idempotency => {
                    db::workos::sweep_idempotency(tx, now - IDEMPOTENCY_MS, batch)
                }
                Table::Audit => db::audit::sweep(tx, audit_before, batch),
            })?;
            *match table {
                Table::Successors => &mut swept.successors,
                Table::Sessions => &mut swept.sessions,
                Table::PartialTokens => &mut swept.partial_tokens,
                Table::EmailTokens => &mut swept.email_tokens,
                Table::Invitations => &mut swept.invitations,
                Table::BrowserSessions => &mut swept.browser_sessions,
                Table::OauthCodes => &mut swept.oauth_codes,
                Table::DeviceCodes => &mut swept.device_codes,
                Table::WorkosPending => &mut swept.partial_tokens,
                Table::WorkosCodes => &mut swept.workos_codes,
                Table::Idempotency => &mut swept.idempotency_keys,
                Table::Audit => &mut swept.audit,
            } += n;
            // Leave the write lock to requests between batches, for as long as the batch held
            // it: a pass erasing 100,000 sealed successors back to back held it for most of
            // its 2 s, and refreshes meanwhile waited behind it (measured: p99 of refresh at
            // 64 connections 52 ms during such a pass, 18-25 ms without one).
            if n > 0 {
                std::thread::sleep(
                    batch_started
                        .elapsed()
                        .clamp(SWEEP_PAUSE_MIN, SWEEP_PAUSE_MAX),
                );
            }
            if (n as i64) < batch {
                break;
            }
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_tells_alive_stalled_and_exited() {
        let l = Liveness::default();
        assert_eq!(l.problem(), None);
        // A heartbeat older than the limit: stalled.
        l.heartbeat
            .store(monotonic_ms() - STALE_AFTER_MS - 1, Ordering::Relaxed);
        assert_eq!(l.problem(), Some("is stalled (no heartbeat for a minute)"));
        l.beat();
        assert_eq!(l.problem(), None);
        {
            let _g = l.exit_guard();
        }
        assert_eq!(l.problem(), Some("has stopped"));
    }

    #[test]
    fn a_panicking_thread_is_marked_exited() {
        let l = Arc::new(Liveness::default());
        let l2 = l.clone();
        let joined = std::thread::spawn(move || {
            let _g = l2.exit_guard();
            panic!("worker died");
        })
        .join();
        assert!(joined.is_err());
        assert!(l.has_exited());
    }
}
