//! In-memory abuse limits (API.md §10): sliding-window counters keyed by (action, ip | email),
//! failure counters that lock a key for a while (an account from one IP, a whole account, a
//! user's second factor, an API key's logins), and the fixed-window quotas of `/public/*`.
//! Kept in memory on purpose: they are hot-path checks, and a restart clearing them is
//! acceptable. Login keys use the email as typed (normalised), whether or not an account
//! exists, so a lockout never reveals one.
//!
//! Every entry remembers its own window, so pruning one limit's keys never uses another
//! limit's window; and each map is bounded ([`MAX_KEYS`]): past the bound, expired entries go
//! first, then entries that hold nobody back, then (a flood of fresh keys) the older half.

use std::collections::HashMap;
use std::sync::Mutex;

/// The most keys one map holds; see the module docs for what goes past it.
pub const MAX_KEYS: usize = 100_000;

/// What pruning needs to know of an entry.
trait Entry {
    /// Nothing left to remember.
    fn expired(&self, now: i64) -> bool;
    /// Currently refusing its key (kept as long as anything can be).
    fn limiting(&self, now: i64) -> bool;
    /// When it last changed.
    fn age(&self) -> i64;
    /// How much it remembers (evicted last when the map is full).
    fn weight(&self) -> u32;
}

/// Two fixed windows blended into a sliding estimate (the classic approximation).
#[derive(Clone, Copy)]
struct Window {
    window_ms: i64,
    limit: u32,
    start: i64,
    current: u32,
    previous: u32,
}

impl Entry for Window {
    fn expired(&self, now: i64) -> bool {
        now - self.start >= 2 * self.window_ms
    }
    fn limiting(&self, _now: i64) -> bool {
        self.current >= self.limit
    }
    fn age(&self) -> i64 {
        self.start
    }
    fn weight(&self) -> u32 {
        self.current + self.previous
    }
}

#[derive(Clone, Copy)]
struct Failures {
    window_ms: i64,
    window_start: i64,
    count: u32,
    locked_until: i64,
    /// Attempts begun and not yet ended ([`Limiter::attempt`]).
    inflight: u32,
}

impl Entry for Failures {
    fn expired(&self, now: i64) -> bool {
        self.locked_until <= now && now - self.window_start >= self.window_ms
    }
    fn limiting(&self, now: i64) -> bool {
        self.locked_until > now || self.inflight > 0
    }
    fn age(&self) -> i64 {
        self.window_start.max(self.locked_until)
    }
    fn weight(&self) -> u32 {
        self.count
    }
}

#[derive(Clone, Copy)]
struct Fixed {
    window_ms: i64,
    start: i64,
    count: u32,
}

impl Entry for Fixed {
    fn expired(&self, now: i64) -> bool {
        now - self.start >= self.window_ms
    }
    fn limiting(&self, _now: i64) -> bool {
        false
    }
    fn age(&self) -> i64 {
        self.start
    }
    fn weight(&self) -> u32 {
        self.count
    }
}

/// Makes room for one more key when `map` holds `cap`.
fn make_room<E: Entry>(map: &mut HashMap<String, E>, now: i64, cap: usize) {
    if map.len() < cap {
        return;
    }
    map.retain(|_, e| !e.expired(now));
    if map.len() < cap {
        return;
    }
    // Still full of live entries (a flood of fresh keys): keep those that limit someone now,
    // then the heavier (a counter at 99 of 100 outlives a thousand single failures), then the
    // newer — dropping half, so this sort runs once per `cap / 2` new keys.
    let mut ranked: Vec<(bool, u32, i64, String)> = map
        .iter()
        .map(|(k, e)| (e.limiting(now), e.weight(), e.age(), k.clone()))
        .collect();
    ranked.sort_unstable();
    for (_, _, _, k) in ranked.into_iter().take(map.len() - cap / 2) {
        map.remove(&k);
    }
}

/// One limit an [`Attempt`] draws on: `max` failures of `key` within `window_ms` lock it for
/// `lockout_ms`.
pub struct Budget {
    pub key: String,
    pub max: u32,
    pub window_ms: i64,
    pub lockout_ms: i64,
}

/// An attempt in flight on one or more budgets (a password or code being checked). While it
/// runs it counts against every budget, so N concurrent guesses cannot pass a budget of M < N
/// failures; [`Attempt::failed`] turns it into a failure, dropping it (a success) frees it.
pub struct Attempt<'a> {
    limiter: &'a Limiter,
    budgets: Vec<Budget>,
    done: bool,
}

impl Attempt<'_> {
    /// The attempt failed: it counts against every budget; for each (in order), whether
    /// this failure locked it.
    pub fn failed(mut self, now: i64) -> Vec<bool> {
        self.done = true;
        self.budgets
            .iter()
            .map(|b| self.limiter.end(b, true, now))
            .collect()
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            for b in &self.budgets {
                self.limiter.end(b, false, 0);
            }
        }
    }
}

pub struct Limiter {
    cap: usize,
    windows: Mutex<HashMap<String, Window>>,
    failures: Mutex<HashMap<String, Failures>>,
    quotas: Mutex<HashMap<String, Fixed>>,
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

/// The client a per-IP limit counts: an IPv4 address as is, an IPv6 address by its /64 (one
/// subscriber's network: a single host can pick any address in it, so counting each /128
/// alone would give it unlimited budgets). An IPv4-mapped IPv6 address counts as its IPv4.
pub fn client_key(ip: &std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// How long to wait, in whole seconds (at least 1).
pub type RetryAfter = u64;

fn secs_until(now: i64, until: i64) -> u64 {
    ((until - now).max(0) as u64).div_ceil(1000).max(1)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    pub fn new() -> Limiter {
        Self::with_capacity(MAX_KEYS)
    }

    /// A limiter whose maps hold at most `cap` keys each (tests use a small one).
    pub fn with_capacity(cap: usize) -> Limiter {
        Limiter {
            cap: cap.max(2),
            windows: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            quotas: Mutex::new(HashMap::new()),
        }
    }

    /// Keys held, over all maps (for tests and metrics).
    pub fn len(&self) -> usize {
        lock(&self.windows).len() + lock(&self.failures).len() + lock(&self.quotas).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts one request on `key` in a fixed window of `window_ms` aligned to the epoch (a
    /// minute window resets on the minute), reporting what is left. Simpler to reason about
    /// than [`Limiter::hit`]'s sliding estimate, which is what rate-limit headers need: the
    /// remaining count and the reset time are exact.
    pub fn quota(&self, key: &str, limit: u32, window_ms: i64, now: i64) -> Quota {
        let start = now - now.rem_euclid(window_ms);
        let reset_at = start + window_ms;
        let mut map = lock(&self.quotas);
        // No allocation for a key already known: this runs on every /public request.
        if !map.contains_key(key) {
            make_room(&mut map, now, self.cap);
            map.insert(
                key.to_string(),
                Fixed {
                    window_ms,
                    start,
                    count: 0,
                },
            );
        }
        let entry = map.get_mut(key).expect("present: inserted above");
        if entry.start != start || entry.window_ms != window_ms {
            *entry = Fixed {
                window_ms,
                start,
                count: 0,
            };
        }
        if entry.count >= limit {
            return Quota {
                limit,
                remaining: 0,
                reset_at,
                exceeded: Some(secs_until(now, reset_at)),
            };
        }
        entry.count += 1;
        Quota {
            limit,
            remaining: limit - entry.count,
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
        let mut map = lock(&self.windows);
        if !map.contains_key(key) {
            make_room(&mut map, now, self.cap);
        }
        let fresh = Window {
            window_ms,
            limit,
            start: now,
            current: 0,
            previous: 0,
        };
        let w = map.entry(key.to_string()).or_insert(fresh);
        w.limit = limit;
        let elapsed = now - w.start;
        if elapsed >= 2 * window_ms || w.window_ms != window_ms {
            *w = fresh;
        } else if elapsed >= window_ms {
            *w = Window {
                start: w.start + window_ms,
                current: 0,
                previous: w.current,
                ..*w
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

    /// `Err(retry_after)` while `key` is locked.
    pub fn locked(&self, key: &str, now: i64) -> Result<(), RetryAfter> {
        match lock(&self.failures).get(key) {
            Some(f) if f.locked_until > now => Err(secs_until(now, f.locked_until)),
            _ => Ok(()),
        }
    }

    /// Records a failure on `key`; returns true when this failure locked it (for
    /// `lockout_ms`): `max` failures within `window_ms` lock it.
    pub fn fail(&self, key: &str, max: u32, window_ms: i64, lockout_ms: i64, now: i64) -> bool {
        let mut map = lock(&self.failures);
        if !map.contains_key(key) {
            make_room(&mut map, now, self.cap);
        }
        let f = map.entry(key.to_string()).or_insert(Failures {
            window_ms,
            window_start: now,
            count: 0,
            locked_until: 0,
            inflight: 0,
        });
        f.window_ms = window_ms;
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

    /// Begins an attempt on `budgets` (all or none): `Err(retry_after)` while one is locked, or
    /// while its failures plus the attempts in flight already reach its `max`.
    pub fn attempt(&self, budgets: Vec<Budget>, now: i64) -> Result<Attempt<'_>, RetryAfter> {
        let mut map = lock(&self.failures);
        for b in &budgets {
            if let Some(f) = map.get(&b.key) {
                if f.locked_until > now {
                    return Err(secs_until(now, f.locked_until));
                }
                let fresh = now - f.window_start >= b.window_ms;
                let count = if fresh { 0 } else { f.count };
                if b.max > 0 && count + f.inflight >= b.max {
                    // Others are being checked right now; their outcome decides.
                    return Err(1);
                }
            }
        }
        for b in &budgets {
            if !map.contains_key(&b.key) {
                make_room(&mut map, now, self.cap);
            }
            let f = map.entry(b.key.clone()).or_insert(Failures {
                window_ms: b.window_ms,
                window_start: now,
                count: 0,
                locked_until: 0,
                inflight: 0,
            });
            f.inflight += 1;
        }
        Ok(Attempt {
            limiter: self,
            budgets,
            done: false,
        })
    }

    /// Ends one attempt on `b`; a failure counts and may lock (true).
    fn end(&self, b: &Budget, failed: bool, now: i64) -> bool {
        let mut map = lock(&self.failures);
        let Some(f) = map.get_mut(&b.key) else {
            return false;
        };
        f.inflight = f.inflight.saturating_sub(1);
        if !failed {
            return false;
        }
        f.window_ms = b.window_ms;
        if now - f.window_start >= b.window_ms {
            f.window_start = now;
            f.count = 0;
        }
        f.count += 1;
        if b.max > 0 && f.count >= b.max {
            f.locked_until = now + b.lockout_ms;
            f.count = 0;
            f.window_start = now;
            return true;
        }
        false
    }

    /// Forgets failures and any lock on `key`.
    pub fn clear(&self, key: &str) {
        lock(&self.failures).remove(key);
    }

    /// Forgets failures and locks on `key` and on every key that starts with `key` + `|`
    /// (an account and all of its per-IP pairs).
    pub fn clear_family(&self, key: &str) {
        let prefix = format!("{key}|");
        lock(&self.failures).retain(|k, _| k != key && !k.starts_with(&prefix));
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

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(&a), client_key(&b));
        assert_ne!(client_key(&a), client_key(&c));
        let m: std::net::IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(&m), "192.0.2.7");
        assert_eq!(client_key(&"192.0.2.7".parse().unwrap()), "192.0.2.7");
    }

    #[test]
    fn clear_family_forgets_the_account_and_its_pairs_only() {
        let l = Limiter::new();
        for key in [
            "login:a@x",
            "login:a@x|ip:1.2.3.4",
            "login:a@x.org|ip:1.2.3.4",
        ] {
            l.fail(key, 1, 60_000, 60_000, 0);
        }
        l.clear_family("login:a@x");
        assert!(l.locked("login:a@x", 1).is_ok());
        assert!(l.locked("login:a@x|ip:1.2.3.4", 1).is_ok());
        assert!(l.locked("login:a@x.org|ip:1.2.3.4", 1).is_err());
    }

    /// A flood of one action's keys, pruned at the cap, never forgets another action's live
    /// entries by judging them with the flooding action's (shorter) window.
    #[test]
    fn pruning_uses_each_entry_own_window() {
        let l = Limiter::with_capacity(100);
        // An hour-long limit, used up.
        for _ in 0..3 {
            l.hit("forgot:email:a@x", 3, 3_600_000, 0).unwrap();
        }
        // Two minutes later, a flood of one-second keys fills the map many times over.
        for i in 0..1_000 {
            let _ = l.hit(&format!("flood:{i}"), 5, 1_000, 120_000 + i);
        }
        assert!(
            l.hit("forgot:email:a@x", 3, 3_600_000, 121_500).is_err(),
            "the hour-long limit still holds"
        );
        assert!(l.len() <= 100, "bounded: {}", l.len());
    }

    /// A flood of fresh single failures does not evict a counter close to its lock.
    #[test]
    fn a_flood_keeps_the_heavier_counters() {
        let l = Limiter::with_capacity(1_000);
        for i in 0..99 {
            l.fail("login:ann@x", 100, 3_600_000, 900_000, i);
        }
        for i in 0..50_000 {
            l.fail(
                &format!("login:spray{i}@x"),
                100,
                3_600_000,
                900_000,
                1_000 + i,
            );
        }
        assert!(
            l.fail("login:ann@x", 100, 3_600_000, 900_000, 60_000),
            "the 100th failure still locks"
        );
    }

    #[test]
    fn attempts_in_flight_count_against_the_budget() {
        let l = Limiter::new();
        let b = || Budget {
            key: "k".into(),
            max: 2,
            window_ms: 60_000,
            lockout_ms: 60_000,
        };
        let a1 = l.attempt(vec![b()], 0).unwrap();
        let a2 = l.attempt(vec![b()], 0).unwrap();
        assert!(l.attempt(vec![b()], 0).is_err(), "two in flight of two");
        drop(a1); // a success frees its place
        let a3 = l.attempt(vec![b()], 0).unwrap();
        assert_eq!(a2.failed(1), vec![false]);
        assert_eq!(a3.failed(2), vec![true], "the second failure locks");
        assert!(l.attempt(vec![b()], 3).is_err());
        assert!(l.attempt(vec![b()], 60_003).is_ok());
    }

    #[test]
    fn failure_map_is_bounded_and_keeps_live_locks() {
        let l = Limiter::with_capacity(50);
        assert!(l.fail("victim|ip:1", 1, 900_000, 900_000, 0));
        for i in 0..10_000 {
            l.fail(&format!("spray:{i}"), 5, 900_000, 900_000, 1 + i);
        }
        assert!(l.len() <= 50);
        assert!(
            l.locked("victim|ip:1", 20_000).is_err(),
            "a lock outlives a spray of single failures"
        );
    }
}
