//! Process metrics in the Prometheus text format: requests by route template and status, a
//! latency histogram, login outcomes, and gauges read at scrape time (sessions, hashing queue,
//! outbox backlog).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<HashMap<(&'static str, u16), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    logins_ok: AtomicU64,
    logins_failed: AtomicU64,
}

/// Values read from elsewhere when scraped.
pub struct Gauges {
    pub active_sessions: i64,
    pub hash_running: usize,
    pub hash_waiting: usize,
    pub outbox_pending: i64,
    pub outbox_oldest_age_secs: f64,
    pub outbox_succeeded: i64,
    pub outbox_failed: i64,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Records one request under its route template (never the raw path: ids would explode
    /// the label set).
    pub fn observe(&self, route: &'static str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route, status))
            .or_insert(0) += 1;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn login(&self, ok: bool) {
        let c = if ok {
            &self.logins_ok
        } else {
            &self.logins_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP latchkey_http_requests_total HTTP requests by route template and status.\n",
        );
        out.push_str("# TYPE latchkey_http_requests_total counter\n");
        let mut rows: Vec<_> = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        rows.sort();
        for ((route, status), n) in rows {
            let _ = writeln!(
                out,
                "latchkey_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                route.replace('\\', "\\\\").replace('"', "\\\"")
            );
        }
        out.push_str("# HELP latchkey_http_request_duration_seconds Time from request parsed to response built.\n");
        out.push_str("# TYPE latchkey_http_request_duration_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "latchkey_http_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "latchkey_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "latchkey_http_request_duration_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "latchkey_http_request_duration_seconds_count {count}");
        out.push_str("# HELP latchkey_logins_total Completed first-factor logins by outcome.\n");
        out.push_str("# TYPE latchkey_logins_total counter\n");
        let _ = writeln!(
            out,
            "latchkey_logins_total{{result=\"success\"}} {}",
            self.logins_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "latchkey_logins_total{{result=\"failure\"}} {}",
            self.logins_failed.load(Ordering::Relaxed)
        );
        let gauge = |out: &mut String, name: &str, help: &str, v: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            &mut out,
            "latchkey_active_sessions",
            "Live (unrevoked, unexpired) sessions.",
            g.active_sessions.to_string(),
        );
        gauge(
            &mut out,
            "latchkey_password_hashes_running",
            "Argon2 computations running now.",
            g.hash_running.to_string(),
        );
        gauge(
            &mut out,
            "latchkey_password_hash_queue_depth",
            "Callers waiting for an argon2 slot.",
            g.hash_waiting.to_string(),
        );
        gauge(
            &mut out,
            "latchkey_outbox_pending",
            "Outbox rows (webhooks and emails) not yet delivered.",
            g.outbox_pending.to_string(),
        );
        gauge(
            &mut out,
            "latchkey_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered outbox row.",
            format!("{:.3}", g.outbox_oldest_age_secs),
        );
        out.push_str("# HELP latchkey_outbox_deliveries Outbox rows by final outcome (kept for the retention period).\n");
        out.push_str("# TYPE latchkey_outbox_deliveries gauge\n");
        let _ = writeln!(
            out,
            "latchkey_outbox_deliveries{{status=\"succeeded\"}} {}",
            g.outbox_succeeded
        );
        let _ = writeln!(
            out,
            "latchkey_outbox_deliveries{{status=\"failed\"}} {}",
            g.outbox_failed
        );
        out
    }
}
