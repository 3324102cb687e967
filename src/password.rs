//! Password hashing: argon2id PHC strings, a dummy verify for unknown accounts, and a gate
//! that bounds how many hashes run at once (each holds `memory_kib` of RAM) and how many
//! callers may wait, so a login flood gets 503s instead of exhausting memory.

use crate::config::Argon2Config;
use crate::error::ApiError;
use std::sync::{Condvar, Mutex};

/// Bounds concurrent hashing: `running ≤ max`, `waiting ≤ queue`; past the queue → overloaded.
pub struct Hasher {
    params: Argon2Config,
    max: usize,
    queue: usize,
    state: Mutex<GateState>,
    cv: Condvar,
    dummy_hash: String,
}

#[derive(Default)]
struct GateState {
    running: usize,
    waiting: usize,
}

struct Permit<'a>(&'a Hasher);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        s.running -= 1;
        drop(s);
        self.0.cv.notify_one();
    }
}

impl Hasher {
    pub fn new(params: Argon2Config, max_concurrent: usize, queue: usize) -> Hasher {
        let mut h = Hasher {
            params,
            max: max_concurrent.max(1),
            queue,
            state: Mutex::new(GateState::default()),
            cv: Condvar::new(),
            dummy_hash: String::new(),
        };
        h.dummy_hash = h.raw_hash("latchkey-dummy-password");
        h
    }

    /// Hashes currently running and callers waiting (for metrics).
    pub fn depth(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (s.running, s.waiting)
    }

    fn acquire(&self) -> Result<Permit<'_>, ApiError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.running < self.max {
            s.running += 1;
            return Ok(Permit(self));
        }
        if s.waiting >= self.queue {
            return Err(ApiError::overloaded());
        }
        s.waiting += 1;
        while s.running >= self.max {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.waiting -= 1;
        s.running += 1;
        Ok(Permit(self))
    }

    fn config(&self) -> argon2::Config<'static> {
        argon2::Config {
            variant: argon2::Variant::Argon2id,
            version: argon2::Version::Version13,
            mem_cost: self.params.memory_kib,
            time_cost: self.params.iterations,
            lanes: self.params.parallelism,
            secret: &[],
            ad: &[],
            hash_length: 32,
        }
    }

    fn raw_hash(&self, password: &str) -> String {
        let salt = crate::crypto::random_bytes(16);
        argon2::hash_encoded(password.as_bytes(), &salt, &self.config())
            .expect("argon2 parameters are validated at config load")
    }

    /// A PHC string for `password`, through the gate.
    pub fn hash(&self, password: &str) -> Result<String, ApiError> {
        let _p = self.acquire()?;
        Ok(self.raw_hash(password))
    }

    /// Checks `password` against `phc`; with `None` (unknown account) it verifies against a
    /// dummy hash so the answer takes as long. Returns (matches, needs_rehash).
    pub fn verify(&self, phc: Option<&str>, password: &str) -> Result<(bool, bool), ApiError> {
        let _p = self.acquire()?;
        let target = phc.unwrap_or(&self.dummy_hash);
        let ok = argon2::verify_encoded(target, password.as_bytes()).unwrap_or(false);
        Ok((
            ok && phc.is_some(),
            ok && phc.is_some() && self.outdated(target),
        ))
    }

    fn outdated(&self, phc: &str) -> bool {
        let want = format!(
            "$argon2id$v=19$m={},t={},p={}$",
            self.params.memory_kib, self.params.iterations, self.params.parallelism
        );
        !phc.starts_with(&want)
    }
}

/// Length rules (config, raised by the org's minimum). Common-password rejection is applied
/// on top by the callers that take new passwords.
pub fn check_policy(
    cfg: &crate::config::PasswordConfig,
    org_min: Option<u32>,
    field: &str,
    password: &str,
) -> Result<(), ApiError> {
    let len = password.chars().count();
    let min = cfg.min_length.max(org_min.unwrap_or(0) as usize);
    if len < min {
        return Err(ApiError::field(
            "weak_password",
            field,
            format!("must be at least {min} characters"),
        ));
    }
    if len > cfg.max_length {
        return Err(ApiError::field(
            "weak_password",
            field,
            format!("must be at most {} characters", cfg.max_length),
        ));
    }
    Ok(())
}
