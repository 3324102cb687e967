//! Password hashing: argon2id PHC strings, a dummy verify for unknown accounts, and a gate
//! that bounds how many hashes run at once (each holds `memory_kib` of RAM) and how many
//! callers may wait, so a login flood gets 503s instead of exhausting memory. Hashing uses
//! the RustCrypto `argon2` crate: same PHC strings as rust-argon2 (each verifies the other's),
//! measured faster at equal strength — figures in docs/benchmarks.md (`bench/argon2.sh`).
//!
//! Hashes run on `max_concurrent_hashes` dedicated threads, not on the HTTP workers: the
//! allocator keeps a memory pool per thread, and an argon2 block (`memory_kib`, 19 MiB by
//! default) allocated on every worker stayed resident per worker (measured: 16 workers →
//! 318 MB after a login burst). On a few dedicated threads it stays bounded by their count.

use crate::config::Argon2Config;
use crate::error::ApiError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that run hash jobs; they end when the pool is dropped.
struct Pool {
    jobs: Mutex<Sender<Job>>,
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("latchkey-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            // Without threads the jobs run on the caller (see `run`).
            if spawned.is_err() {
                break;
            }
        }
        Pool {
            jobs: Mutex::new(tx),
        }
    }

    /// Runs `f` on a pool thread and waits for it (on the caller if the pool is gone).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::sync_channel(1);
        let f = Arc::new(Mutex::new(Some(f)));
        let job_f = f.clone();
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Box::new(move || {
                if let Some(f) = job_f.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    let _ = tx.send(f());
                }
            }));
        if sent.is_ok()
            && let Ok(v) = rx.recv()
        {
            return v;
        }
        let f = f
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .expect("a job that did not run is still here");
        f()
    }
}

/// Bounds concurrent hashing: `running ≤ max`, `waiting ≤ queue`; past the queue → overloaded.
pub struct Hasher {
    params: Argon2Config,
    pool: Pool,
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
        let max = max_concurrent.max(1);
        let mut h = Hasher {
            pool: Pool::new(max),
            params,
            max,
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

    /// The RustCrypto argon2id context for the configured parameters. `Params::new` only
    /// refuses values that config validation already refuses.
    fn argon2(&self) -> Argon2<'static> {
        let params = Params::new(
            self.params.memory_kib,
            self.params.iterations,
            self.params.parallelism,
            Some(HASH_LEN),
        )
        .expect("argon2 parameters are validated at config load");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    fn raw_hash(&self, password: &str) -> String {
        hash_with(&self.argon2(), password)
    }

    /// A PHC string for `password`, through the gate, on a hashing thread.
    pub fn hash(&self, password: &str) -> Result<String, ApiError> {
        let _p = self.acquire()?;
        let argon2 = self.argon2();
        let password = password.to_string();
        Ok(self.pool.run(move || hash_with(&argon2, &password)))
    }

    /// Checks `password` against `phc`; with `None` (unknown account) it verifies against a
    /// dummy hash so the answer takes as long. A stored string that does not parse as a PHC
    /// hash is also answered after a dummy verify, and never matches. The hash's own
    /// parameters (m, t, p, variant, version, length) drive the check, so strings written by
    /// rust-argon2 or under older settings still verify. Returns (matches, needs_rehash).
    pub fn verify(&self, phc: Option<&str>, password: &str) -> Result<(bool, bool), ApiError> {
        let _p = self.acquire()?;
        let parsed = phc.filter(|s| PasswordHash::new(s).is_ok());
        let outdated =
            parsed.is_some_and(|s| PasswordHash::new(s).is_ok_and(|h| self.outdated(&h)));
        let target = parsed.unwrap_or(&self.dummy_hash).to_string();
        let real = parsed.is_some();
        let password = password.to_string();
        let ok = self
            .pool
            .run(move || PasswordHash::new(&target).is_ok_and(|h| verify_phc(&h, &password)));
        // The dummy never matches, even if someone typed its password.
        let ok = ok && real;
        Ok((ok, ok && outdated))
    }

    /// True when the stored hash was not made with exactly the configured argon2id settings.
    fn outdated(&self, hash: &PasswordHash<'_>) -> bool {
        let same_params = Params::try_from(hash).is_ok_and(|p| {
            p.m_cost() == self.params.memory_kib
                && p.t_cost() == self.params.iterations
                && p.p_cost() == self.params.parallelism
                && p.keyid().is_empty()
                && p.data().is_empty()
        });
        let same_output = hash.hash.is_some_and(|h| h.len() == HASH_LEN);
        !(hash.algorithm == Algorithm::Argon2id.ident()
            && hash.version == Some(Version::V0x13.into())
            && same_params
            && same_output)
    }
}

fn hash_with(argon2: &Argon2<'static>, password: &str) -> String {
    let salt = SaltString::encode_b64(&crate::crypto::random_bytes(16))
        .expect("16 bytes is a valid salt length");
    argon2
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 parameters are validated at config load")
        .to_string()
}

/// Output length of the hashes this server writes (the argon2 and rust-argon2 default).
const HASH_LEN: usize = 32;

/// Verifies with the algorithm and parameters recorded in `hash` itself, in constant time.
/// Any argon2 variant is accepted here; `outdated` flags a non-argon2id hash for upgrade.
fn verify_phc(hash: &PasswordHash<'_>, password: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// The 10,000 most common passwords (zxcvbn's ranked list; see data/README.md), lower-case.
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

fn common_set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// Whether `password` is on the common-passwords list, compared case-insensitively (the list
/// is lower-case, so `Password` and `PASSWORD` are as common as `password`).
pub fn is_common(password: &str) -> bool {
    common_set().contains(password.to_lowercase().as_str())
}

/// Policy for a new password: length within the config's bounds (the minimum raised by the
/// org's), and, with `password.reject_common`, not one of the 10,000 most common passwords. Failures
/// are 400 `weak_password` naming `field`.
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
    if cfg.reject_common && is_common(password) {
        return Err(ApiError::field("weak_password", field, "is too common"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
