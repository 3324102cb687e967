//! In-memory abuse limits (API.md §10): sliding-window counters keyed by (action, ip | email),
//! and per-account lockout after repeated failed logins. Kept in memory on purpose: they are
//! hot-path checks, and a restart clearing them is acceptable. Lockout is keyed by the email as
//! typed (normalised), whether or not an account exists, so a lockout never reveals one.

use std::collections::HashMap;
use std::sync::Mutex;

/// Two fixed windows blended into a sliding estimate (the classic approximation).
#[derive(Clone, Copy)]
struct Window {
    start: i64,
    current: u32,
    previous: u32,
}

pub struct Limiter {
    windows: Mutex<HashMap<String, Window>>,
    lockouts: Mutex<HashMap<String, Failures>>,
    quotas: Mutex<HashMap<String, (i64, u32)>>,
}

/// The state of a fixed-window quota after one request: what the `X-RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    /// Requests left in this window after this one.
    pub remaining: u32,
    /// When the window ends (ms since the epoch).
    pub reset_at: i64,
    /// `Some(retry_after)` when this request is over the limit (and was not counted).
    pub exceeded: Option<RetryAfter>,
}

#[derive(Clone, Copy)]
struct Failures {
    window_start: i64,
    count: u32,
    locked_until: i64,
}

/// How long to wait, in whole seconds (at least 1).
pub type RetryAfter = u64;

fn secs_until(now: i64, until: i64) -> u64 {
    ((until - now).max(0) as u64).div_ceil(1000).max(1)
}

const PRUNE_AT: usize = 100_000;

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    pub fn new() -> Limiter {
        Limiter {
            windows: Mutex::new(HashMap::new()),
            lockouts: Mutex::new(HashMap::new()),
            quotas: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request on `key` in a fixed window of `window_ms` aligned to the epoch (a
    /// minute window resets on the minute), reporting what is left. Simpler to reason about
    /// than [`Limiter::hit`]'s sliding estimate, which is what rate-limit headers need: the
    /// remaining count and the reset time are exact.
    pub fn quota(&self, key: &str, limit: u32, window_ms: i64, now: i64) -> Quota {
        let start = now - now.rem_euclid(window_ms);
        let reset_at = start + window_ms;
        let mut map = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_AT {
            map.retain(|_, (s, _)| *s >= start);
        }
        // No allocation for a key already known: this runs on every /public request.
        if !map.contains_key(key) {
            map.insert(key.to_string(), (start, 0));
        }
        let entry = map.get_mut(key).expect("present: inserted above");
        if entry.0 != start {
            *entry = (start, 0);
        }
        if entry.1 >= limit {
            return Quota {
                limit,
                remaining: 0,
                reset_at,
                exceeded: Some(secs_until(now, reset_at)),
            };
        }
        entry.1 += 1;
        Quota {
            limit,
            remaining: limit - entry.1,
            reset_at,
            exceeded: None,
        }
    }

    /// Counts one hit on `key`; `Err(retry_after)` when `limit` hits within `window_ms` are
    /// already used up (the hit is then not counted).
    pub fn hit(&self, key: &str, limit: u32, window_ms: i64, now: i64) -> Result<(), RetryAfter> {
        if limit == 0 {
            return Ok(());
        }
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_AT {
            map.retain(|_, w| now - w.start < 2 * window_ms);
        }
        let w = map.entry(key.to_string()).or_insert(Window {
            start: now,
            current: 0,
            previous: 0,
        });
        let elapsed = now - w.start;
        if elapsed >= 2 * window_ms {
            *w = Window {
                start: now,
                current: 0,
                previous: 0,
            };
        } else if elapsed >= window_ms {
            *w = Window {
                start: w.start + window_ms,
                current: 0,
                previous: w.current,
            };
        }
        let into = (now - w.start) as f64 / window_ms as f64;
        let estimate = w.previous as f64 * (1.0 - into) + w.current as f64;
        if estimate + 1.0 > limit as f64 {
            // When enough of the previous window has slid out to admit one more.
            let wait = if w.current >= limit {
                w.start + window_ms - now
            } else {
                let need = (estimate + 1.0 - limit as f64) / w.previous.max(1) as f64;
                (need * window_ms as f64).ceil() as i64
            };
            return Err(secs_until(now, now + wait.max(1)));
        }
        w.current += 1;
        Ok(())
    }

    /// `Err(retry_after)` while `account` is locked.
    pub fn locked(&self, account: &str, now: i64) -> Result<(), RetryAfter> {
        let map = self.lockouts.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(account) {
            Some(f) if f.locked_until > now => Err(secs_until(now, f.locked_until)),
            _ => Ok(()),
        }
    }

    /// Records a failed login; returns true when this failure locked the account.
    pub fn fail(&self, account: &str, max: u32, window_ms: i64, lockout_ms: i64, now: i64) -> bool {
        let mut map = self.lockouts.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_AT {
            map.retain(|_, f| f.locked_until > now || now - f.window_start < window_ms);
        }
        let f = map.entry(account.to_string()).or_insert(Failures {
            window_start: now,
            count: 0,
            locked_until: 0,
        });
        if now - f.window_start >= window_ms {
            f.window_start = now;
            f.count = 0;
        }
        f.count += 1;
        if max > 0 && f.count >= max {
            f.locked_until = now + lockout_ms;
            f.count = 0;
            f.window_start = now;
            return true;
        }
        false
    }

    /// Forgets failures and any lock (after a successful login, or an operator's unlock).
    pub fn clear(&self, account: &str) {
        self.lockouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_limits_and_recovers() {
        let l = Limiter::new();
        for _ in 0..5 {
            assert!(l.hit("k", 5, 60_000, 0).is_ok());
        }
        let wait = l.hit("k", 5, 60_000, 10).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(l.hit("other", 5, 60_000, 10).is_ok());
        assert!(
            l.hit("k", 5, 60_000, 130_000).is_ok(),
            "two windows later all is forgotten"
        );
    }

    #[test]
    fn quota_counts_down_and_resets_on_the_window() {
        let l = Limiter::new();
        let q = l.quota("k", 3, 60_000, 120_500);
        assert_eq!((q.remaining, q.reset_at, q.exceeded), (2, 180_000, None));
        l.quota("k", 3, 60_000, 121_000);
        let q = l.quota("k", 3, 60_000, 122_000);
        assert_eq!((q.remaining, q.exceeded), (0, None));
        let q = l.quota("k", 3, 60_000, 170_000);
        assert_eq!((q.remaining, q.exceeded), (0, Some(10)));
        assert_eq!(l.quota("other", 3, 60_000, 170_000).remaining, 2);
        let q = l.quota("k", 3, 60_000, 180_000);
        assert_eq!((q.remaining, q.reset_at, q.exceeded), (2, 240_000, None));
    }

    #[test]
    fn lockout_after_max_failures_then_expires() {
        let l = Limiter::new();
        for i in 0..4 {
            assert!(!l.fail("a@x", 5, 900_000, 900_000, i));
        }
        assert!(l.locked("a@x", 10).is_ok());
        assert!(l.fail("a@x", 5, 900_000, 900_000, 10));
        assert_eq!(l.locked("a@x", 10), Err(900));
        assert!(l.locked("a@x", 900_011).is_ok());
        l.fail("a@x", 5, 900_000, 900_000, 900_020);
        l.clear("a@x");
        assert!(l.locked("a@x", 900_020).is_ok());
    }
}
