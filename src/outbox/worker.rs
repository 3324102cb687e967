//! The outbox worker. A scheduler thread (`latchkey-outbox`) finds *lanes* with due rows — one
//! lane per webhook endpoint, one for email — and hands them to a fixed pool of [`LANES`]
//! delivery threads. A lane delivers its rows one at a time, so one endpoint never has two
//! requests in flight, while a slow endpoint holds up only its own lane: other endpoints go on
//! in parallel.
//!
//! An attempt first *claims* its row in a write transaction, moving `next_attempt_at` to a
//! lease deadline; its result is written in the transaction that claims the lane's next rows.
//! A crash mid-attempt leaves the row pending with the lease as its due time: it is retried
//! after restart, with the same `del_…` id (at-least-once). A graceful stop finishes the
//! attempts in flight, records them, and gives back claimed rows not yet attempted.
//! Lanes with a fast receiver claim growing batches (up to [`MAX_BATCH`] rows, each row's lease
//! covering the attempts before it), which keeps write transactions few under load.

use super::at_rest;
use super::email::{self, Mail, Mailer};
use super::webhook::{self, Delivery, Sender};
use super::{Notifier, open_secret, sweep};
use crate::db::outbox::{self as store, Attempt, Claimed, KIND_EMAIL, KIND_WEBHOOK};
use crate::db::webhooks::{self, Endpoint};
use crate::db::{self, Tx};
use crate::state::AppState;
use rand::RngExt;
use serde_json::json;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Delivery threads: at most this many endpoints (or the mail lane) are served at once.
pub const LANES: usize = 8;
/// Attempts a lane makes before it goes back in line (fairness when lanes are scarce).
const PER_RUN: usize = 100;
/// Longest the scheduler sleeps: rows written by another process (the CLI) are found this soon.
const IDLE_CAP: Duration = Duration::from_secs(5);
/// Added to the attempts' own timeouts to form a lease.
const LEASE_MARGIN_MS: i64 = 30_000;
/// Rows a lane claims at once at most, when its receiver is fast.
const MAX_BATCH: usize = 32;
/// What counts as fast: a receiver answering within this gets growing batches.
const FAST_ATTEMPT: Duration = Duration::from_millis(50);
const SWEEP_EVERY_MS: i64 = 3_600_000;
/// Longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 300;

/// `None` is the email lane; `Some(endpoint id)` a webhook endpoint's.
type Lane = Option<String>;

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Lane>,
    busy: HashSet<Lane>,
    stop: bool,
}

struct Worker {
    state: Arc<AppState>,
    sender: Sender,
    mailer: Mailer,
    pool: Mutex<PoolState>,
    pool_cv: Condvar,
    /// Serializes the lanes' write transactions (see [`Worker::write`]).
    writes: Mutex<()>,
}

/// Starts the worker; `state.outbox.shutdown()` stops it, and joining the handle waits for the
/// attempts in flight.
pub fn spawn(state: Arc<AppState>) -> std::io::Result<JoinHandle<()>> {
    let worker = Arc::new(Worker {
        sender: Sender::new(&state.config.webhooks),
        mailer: Mailer::new(&state.config.email),
        state,
        pool: Mutex::new(PoolState::default()),
        pool_cv: Condvar::new(),
        writes: Mutex::new(()),
    });
    let mut lanes = Vec::with_capacity(LANES);
    for i in 0..LANES {
        let w = worker.clone();
        lanes.push(
            std::thread::Builder::new()
                .name(format!("latchkey-outbox-{i}"))
                .spawn(move || w.lane_thread())?,
        );
    }
    std::thread::Builder::new()
        .name("latchkey-outbox".into())
        .spawn(move || {
            worker.scheduler();
            worker.lock().stop = true;
            worker.pool_cv.notify_all();
            for t in lanes {
                let _ = t.join();
            }
        })
}

impl Worker {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn signal(&self) -> &Notifier {
        &self.state.outbox
    }

    fn scheduler(&self) {
        let n = self.signal();
        // Marks the worker ended however the scheduler leaves (stop, or a panic).
        let _exit = n.liveness.exit_guard();
        // The first sweep runs a minute after start, then hourly.
        let mut last_sweep = self.state.now() - SWEEP_EVERY_MS + 60_000;
        loop {
            n.clear_wake();
            if n.is_stopping() {
                return;
            }
            let now = self.state.now();
            n.beat();
            let sleep = match self.schedule(now) {
                Ok(d) => d,
                Err(e) => {
                    self.state.log.error(
                        "outbox scheduling failed",
                        &[("error", json!(e.to_string()))],
                    );
                    Duration::from_secs(1)
                }
            };
            if now - last_sweep >= SWEEP_EVERY_MS {
                last_sweep = now;
                let retention = self.state.config.webhooks.retention;
                match sweep(&self.state.db, now, retention) {
                    Ok(0) => {}
                    Ok(n) => self
                        .state
                        .log
                        .info("outbox sweep", &[("deleted", json!(n))]),
                    Err(e) => self
                        .state
                        .log
                        .error("outbox sweep failed", &[("error", json!(e.to_string()))]),
                }
            }
            if n.wait(sleep) {
                return;
            }
        }
    }

    /// Starts idle lanes with due rows; returns how long to sleep.
    fn schedule(&self, now: i64) -> db::Result<Duration> {
        let busy: HashSet<Lane> = self.lock().busy.clone();
        let free = LANES.saturating_sub(busy.len());
        if free > 0 {
            let due = self
                .state
                .db
                .read(|c| store::due_lanes(c, now, busy.len() + free))?;
            let start: Vec<Lane> = due
                .into_iter()
                .filter(|l| !busy.contains(l))
                .take(free)
                .collect();
            if !start.is_empty() {
                let mut p = self.lock();
                for lane in start {
                    if p.busy.insert(lane.clone()) {
                        p.queue.push_back(lane);
                    }
                }
                drop(p);
                self.pool_cv.notify_all();
            }
        }
        let next = self.state.db.read(store::next_due)?;
        Ok(match next {
            Some(t) if t > now => Duration::from_millis((t - now) as u64).min(IDLE_CAP),
            // Due rows left are in busy lanes (or lanes are all taken): a lane that finishes
            // wakes us.
            _ => IDLE_CAP,
        })
    }

    fn lane_thread(&self) {
        loop {
            let lane = {
                let mut p = self.lock();
                loop {
                    if p.stop {
                        return;
                    }
                    if let Some(l) = p.queue.pop_front() {
                        break l;
                    }
                    p = self.pool_cv.wait(p).unwrap_or_else(|e| e.into_inner());
                }
            };
            self.run_lane(&lane);
            self.lock().busy.remove(&lane);
            self.signal().notify();
        }
    }

    /// Delivers a lane's due rows one after another. Rows are claimed in small batches and
    /// the results of one batch are written in the transaction that claims the next, so a
    /// fast receiver costs few write transactions. A slow or failing receiver is served one
    /// row at a time, so its results are recorded promptly and its leases stay short.
    fn run_lane(&self, lane: &Lane) {
        let mut done: Vec<Finished> = Vec::new();
        let mut batch = 1usize;
        let mut made = 0usize;
        let per_attempt = self.attempt_ms(lane);
        while made < PER_RUN && !self.signal().is_stopping() {
            let now = self.state.now();
            let prev = std::mem::take(&mut done);
            let claimed = self.write(|tx| {
                for f in &prev {
                    f.write(tx)?;
                }
                let mut jobs = Vec::with_capacity(batch);
                for i in 0..batch {
                    // The i-th row waits for i attempts before its own: its lease covers them.
                    let lease_until = now + per_attempt * (i as i64 + 1) + LEASE_MARGIN_MS;
                    let Some(c) = store::claim_next(tx, lane.as_deref(), now, lease_until)? else {
                        break;
                    };
                    let endpoint = match &c.endpoint_id {
                        Some(id) => webhooks::get_any(tx, id)?,
                        None => None,
                    };
                    let event = match &c.event_id {
                        Some(id) => store::event_name(tx, id)?,
                        None => None,
                    };
                    jobs.push((c, endpoint, event));
                }
                Ok::<_, db::Error>(jobs)
            });
            let jobs = match claimed {
                Ok(jobs) => {
                    prev.iter().for_each(|f| self.count(f));
                    jobs
                }
                Err(e) => {
                    // The claim and the previous results rolled back: those rows keep their
                    // leases and are attempted again when the leases run out.
                    self.state
                        .log
                        .error("outbox claim failed", &[("error", json!(e.to_string()))]);
                    std::thread::sleep(Duration::from_millis(200));
                    return;
                }
            };
            if jobs.is_empty() {
                return;
            }
            let started = Instant::now();
            let n = jobs.len();
            let mut unattempted = Vec::new();
            for (c, endpoint, event) in jobs {
                if self.signal().is_stopping() {
                    unattempted.push(c.id);
                } else {
                    done.push(self.attempt(&c, endpoint.as_ref(), event.as_deref()));
                }
            }
            if !unattempted.is_empty() {
                self.flush(&done, &unattempted);
                return;
            }
            made += n;
            batch = if started.elapsed() < FAST_ATTEMPT * n as u32 {
                (batch * 2).min(MAX_BATCH)
            } else {
                1
            };
        }
        self.flush(&done, &[]);
    }

    /// Writes results, and makes claimed rows that were never attempted (stopping) due now.
    fn flush(&self, done: &[Finished], unattempted: &[String]) {
        if done.is_empty() && unattempted.is_empty() {
            return;
        }
        let now = self.state.now();
        let r = self.write(|tx| {
            for f in done {
                f.write(tx)?;
            }
            for id in unattempted {
                store::release(tx, id, now)?;
            }
            Ok::<_, db::Error>(())
        });
        match r {
            Ok(()) => done.iter().for_each(|f| self.count(f)),
            Err(e) => self.state.log.error(
                "outbox results not recorded; those attempts will be repeated",
                &[("error", json!(e.to_string()))],
            ),
        }
    }

    /// A write transaction of a lane. Lanes queue on an in-process lock rather than on
    /// SQLite's busy handler, whose back-off sleeps would add latency.
    fn write<T>(&self, f: impl FnOnce(&Tx) -> db::Result<T>) -> db::Result<T> {
        let _turn = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        self.state.db.write(f)
    }

    fn count(&self, f: &Finished) {
        let c = if f.status == "succeeded" {
            &self.signal().delivered
        } else {
            &self.signal().failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The longest one attempt of this lane can take.
    fn attempt_ms(&self, lane: &Lane) -> i64 {
        let t = match lane {
            Some(_) => self.state.config.webhooks.timeout,
            // An SMTP exchange is several round trips, each with its own timeout.
            None => self.state.config.email.smtp.timeout * 6,
        };
        t.as_millis() as i64
    }

    fn attempt(&self, c: &Claimed, endpoint: Option<&Endpoint>, event: Option<&str>) -> Finished {
        match c.kind.as_str() {
            KIND_WEBHOOK => self.attempt_webhook(c, endpoint, event),
            KIND_EMAIL => self.attempt_email(c),
            other => self.finish(c, Result::Permanent(None, format!("unknown kind {other}"))),
        }
    }

    fn attempt_webhook(
        &self,
        c: &Claimed,
        endpoint: Option<&Endpoint>,
        event: Option<&str>,
    ) -> Finished {
        let Some(ep) = endpoint else {
            return self.finish(
                c,
                Result::Permanent(None, "endpoint no longer exists".into()),
            );
        };
        if !ep.is_active {
            return self.finish(c, Result::Permanent(None, "endpoint is disabled".into()));
        }
        let Some(secret) = open_secret(self.state.secret(), &ep.id, &ep.secret_enc) else {
            return self.finish(
                c,
                Result::Retry(
                    None,
                    "cannot open the endpoint secret (was security.secret_key changed?)".into(),
                ),
            );
        };
        let event = event
            .map(str::to_owned)
            .or_else(|| event_of(&c.payload))
            .unwrap_or_default();
        let outcome = self.sender.send(&Delivery {
            url: &ep.url,
            secret: &secret,
            delivery_id: &c.id,
            event: &event,
            body: c.payload.as_bytes(),
            timestamp: self.state.clock.now_secs(),
        });
        let r = match outcome {
            webhook::Outcome::Delivered { code } => Result::Ok(Some(code)),
            webhook::Outcome::Gone => Result::Gone,
            webhook::Outcome::Failed { code, error } => Result::Retry(code, error),
        };
        let mut f = self.finish(c, r);
        if f.disable_endpoint {
            f.endpoint_id = Some(ep.id.clone());
        }
        f
    }

    /// Opens the sealed message just before sending it; once the transport took it, the row
    /// is redacted in the transaction that records the result.
    fn attempt_email(&self, c: &Claimed) -> Finished {
        let mail: Mail = match at_rest::open(&self.state.mail_key, &c.id, &c.payload) {
            Ok(m) => m,
            Err(at_rest::OpenError::Redacted) => {
                return self.finish(
                    c,
                    Result::Permanent(
                        None,
                        "already sent; its content was erased after delivery (ask for a new link)"
                            .into(),
                    ),
                );
            }
            Err(at_rest::OpenError::Unreadable) => {
                return self.finish(
                    c,
                    Result::Retry(
                        None,
                        "cannot open the sealed email (was security.secret_key changed?)".into(),
                    ),
                );
            }
            Err(at_rest::OpenError::Malformed) => {
                return self.finish(c, Result::Permanent(None, "malformed email payload".into()));
            }
        };
        let r = match self.mailer.send(&self.state.log, &c.id, &mail) {
            email::Outcome::Sent => Result::Ok(None),
            email::Outcome::Failed(e) => Result::Retry(None, e),
            email::Outcome::Permanent(e) => Result::Permanent(None, e),
        };
        let mut f = self.finish(c, r);
        if f.status == "succeeded" {
            f.payload = Some(at_rest::redact(&c.payload));
        }
        f
    }

    /// Turns an attempt's result into the row update, and logs it.
    fn finish(&self, c: &Claimed, r: Result) -> Finished {
        let now = self.state.now();
        let attempts = c.attempts + 1;
        let schedule = &self.state.config.webhooks.retry_schedule;
        let mut f = Finished {
            id: c.id.clone(),
            status: "failed",
            attempts,
            next_attempt_at: None,
            status_code: None,
            error: None,
            delivered_at: None,
            disable_endpoint: false,
            endpoint_id: None,
            payload: None,
            at: now,
        };
        let log = &self.state.log;
        let fields = |extra: &[(&'static str, serde_json::Value)]| {
            let mut v = vec![
                ("id", json!(c.id)),
                ("kind", json!(c.kind)),
                ("endpoint", json!(c.endpoint_id)),
                ("attempt", json!(attempts)),
            ];
            v.extend_from_slice(extra);
            v
        };
        match r {
            Result::Ok(code) => {
                f.status = "succeeded";
                f.status_code = code.map(i64::from);
                f.delivered_at = Some(now);
                log.debug("outbox delivered", &fields(&[("code", json!(code))]));
            }
            Result::Gone => {
                f.status_code = Some(410);
                f.error = Some("HTTP 410 Gone: endpoint disabled".into());
                f.disable_endpoint = true;
                log.warn("webhook endpoint answered 410 Gone; disabled", &fields(&[]));
            }
            Result::Permanent(code, e) => {
                f.status_code = code.map(i64::from);
                log.warn(
                    "outbox delivery failed permanently",
                    &fields(&[("error", json!(e))]),
                );
                f.error = Some(clip(e));
            }
            Result::Retry(code, e) => {
                f.status_code = code.map(i64::from);
                match schedule.get((attempts - 1) as usize) {
                    Some(delay) => {
                        let next = now + jittered(*delay);
                        f.status = "pending";
                        f.next_attempt_at = Some(next);
                        log.info(
                            "outbox attempt failed; will retry",
                            &fields(&[
                                ("code", json!(code)),
                                ("error", json!(e)),
                                ("retry_in_ms", json!(next - now)),
                            ]),
                        );
                    }
                    None => log.warn(
                        "outbox delivery failed; retries exhausted",
                        &fields(&[("code", json!(code)), ("error", json!(e))]),
                    ),
                }
                f.error = Some(clip(e));
            }
        }
        f
    }
}

/// What an attempt came to, before it is written.
enum Result {
    Ok(Option<u16>),
    Gone,
    Retry(Option<u16>, String),
    Permanent(Option<u16>, String),
}

/// The row update an attempt produced.
struct Finished {
    id: String,
    status: &'static str,
    attempts: i64,
    next_attempt_at: Option<i64>,
    status_code: Option<i64>,
    error: Option<String>,
    delivered_at: Option<i64>,
    disable_endpoint: bool,
    endpoint_id: Option<String>,
    /// A new payload for the row (a sent email, redacted).
    payload: Option<String>,
    /// When the attempt ended.
    at: i64,
}

impl Finished {
    fn write(&self, tx: &Tx) -> db::Result<()> {
        store::record(
            tx,
            &self.id,
            &Attempt {
                status: self.status,
                attempts: self.attempts,
                next_attempt_at: self.next_attempt_at,
                status_code: self.status_code,
                error: self.error.as_deref(),
                delivered_at: self.delivered_at,
            },
        )?;
        if let Some(p) = &self.payload {
            store::set_payload(tx, &self.id, p)?;
        }
        if let (true, Some(ep)) = (self.disable_endpoint, &self.endpoint_id) {
            webhooks::disable(tx, ep, "the endpoint answered 410 Gone", self.at)?;
        }
        Ok(())
    }
}

/// `delay` ± 10 %, in milliseconds.
fn jittered(delay: Duration) -> i64 {
    let ms = delay.as_millis().min(i64::MAX as u128 / 2) as i64;
    let spread = ms / 10;
    if spread == 0 {
        return ms;
    }
    ms + rand::rng().random_range(-spread..=spread)
}

fn clip(s: String) -> String {
    if s.chars().count() <= MAX_ERROR_CHARS {
        s
    } else {
        s.chars().take(MAX_ERROR_CHARS).collect()
    }
}

fn event_of(payload: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()?
        .get("event")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let j = jittered(Duration::from_secs(60));
            assert!((54_000..=66_000).contains(&j), "{j}");
        }
        assert_eq!(jittered(Duration::from_millis(5)), 5);
    }
}
