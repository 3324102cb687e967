//! Password hashing: argon2id PHC strings, a dummy verify for unknown accounts, and a gate
//! that bounds how many hashes run at once (each holds `memory_kib` of RAM) and how many
//! callers may wait, so a login flood gets 503s instead of exhausting memory. Hashing uses
//! the RustCrypto `argon2` crate: same PHC strings as rust-argon2 (each verifies the other's),
//! measured faster at equal strength — figures in docs/benchmarks.md (`bench/argon2.sh`).
//!
//! Every hash and verify runs on one of `max_concurrent_hashes` dedicated threads, each with
//! its own argon2 memory (`memory_kib`, 19 MiB by default), allocated on the thread's first
//! hash and reused by every later one (`hash_password_into_with_memory`). Argon2's own
//! `hash_password` allocates and frees that block on every call, and the allocator kept the
//! freed blocks resident, fragmented, several per thread (measured: 278 MB after 24 users,
//! 24 logins and 8 sign-ups on 2 hashing threads; see docs/benchmarks.md, "Memory"). Now the
//! argon2 memory of the process is at most `max_concurrent_hashes × memory_kib`, a thread
//! idle for 5 s gives its block back (so an idle server holds none), and nothing is hashed
//! at start (the dummy hash is made of random bytes, not computed).
//!
//! Hashes imported from other systems (bcrypt, PBKDF2, scrypt, Firebase's scrypt, SSHA:
//! [`import`]) are verified on the same threads, within bounds set when they were accepted,
//! and rewritten as argon2id on their first success.

pub mod import;

use crate::config::Argon2Config;
use crate::error::{ApiError, ErrorCode};
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Argon2 working memory: a pool thread's own, reused for every job it runs.
type Memory = Vec<Block>;

/// A hashing thread idle this long frees its argon2 block: a server that is not signing
/// anyone in holds no hashing memory (measured: 54 MB resident after seeding 100 users,
/// 38 MB of it the two idle blocks). The next hash allocates it again (a few ms of page
/// faults for 19 MiB).
const IDLE_RELEASE: std::time::Duration = std::time::Duration::from_secs(5);

/// glibc serves an allocation above this (its largest dynamic mmap threshold, 32 MiB on
/// 64-bit) with a fresh mmap, and returns it to the system when it is freed. A block of the
/// default 19 MiB would instead come from the thread's arena once a first one was freed
/// (the freed mmap raises the threshold past it) and stay resident there after it is freed.
const ALWAYS_MAPPED_BYTES: usize = 32 * 1024 * 1024 + 1;

/// A block of `blocks` argon2 blocks whose allocation is always its own mapping (reserved
/// past `ALWAYS_MAPPED_BYTES`; only the `blocks` used are ever touched, so only they are
/// resident).
fn block_of(blocks: usize) -> Memory {
    let reserve = blocks.max(ALWAYS_MAPPED_BYTES.div_ceil(std::mem::size_of::<Block>()));
    let mut memory = Memory::with_capacity(reserve);
    memory.resize(blocks, Block::new());
    memory
}
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// A fixed set of threads that run hash jobs; they end when the pool is dropped.
struct Pool {
    queue: Arc<Queue>,
    threads: usize,
}

/// The jobs waiting for a pool thread. Every idle thread waits on `ready` on its own (a
/// condition variable, not a shared receiver behind a lock), so each one's idle timer runs.
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    jobs: std::collections::VecDeque<Job>,
    closed: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                jobs: std::collections::VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
        });
        let mut spawned = 0;
        for i in 0..threads {
            let queue = queue.clone();
            let thread = std::thread::Builder::new()
                .name(format!("latchkey-hash-{i}"))
                .spawn(move || work(&queue));
            // Without threads the jobs run on the caller (see `run`).
            if thread.is_err() {
                break;
            }
            spawned += 1;
        }
        Pool {
            queue,
            threads: spawned,
        }
    }

    /// Runs `f` on a pool thread with that thread's memory and waits for it (on the caller,
    /// with memory of its own, if the pool has no thread).
    fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Memory) -> T + Send + 'static) -> T {
        if self.threads == 0 {
            return f(&mut Memory::new());
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |memory: &mut Memory| {
            let _ = tx.send(f(memory));
        });
        self.queue.lock().jobs.push_back(job);
        self.queue.ready.notify_one();
        match rx.recv() {
            Ok(v) => v,
            Err(_) => panic!("a hashing job panicked"),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

/// A pool thread: runs jobs in its own argon2 memory, allocated by the first job that needs
/// it and kept while jobs keep coming — one block per thread, never one per hash. After
/// `IDLE_RELEASE` without a job the block is given back to the system (see `block_of`).
fn work(queue: &Queue) {
    let mut memory = Memory::new();
    let mut state = queue.lock();
    loop {
        if let Some(job) = state.jobs.pop_front() {
            drop(state);
            // A job that panics ends its request (its caller's `recv` fails), not the
            // thread: the pool keeps its size.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory)));
            state = queue.lock();
            continue;
        }
        if state.closed {
            return;
        }
        let (s, waited) = queue
            .ready
            .wait_timeout(state, IDLE_RELEASE)
            .unwrap_or_else(|p| p.into_inner());
        state = s;
        if waited.timed_out() && state.jobs.is_empty() && !memory.is_empty() {
            drop(state);
            memory = Memory::new();
            state = queue.lock();
        }
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
        h.dummy_hash = h.dummy_phc();
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

    /// The configured argon2id parameters. `Params::new` only refuses values that config
    /// validation already refuses.
    fn configured(&self) -> Params {
        Params::new(
            self.params.memory_kib,
            self.params.iterations,
            self.params.parallelism,
            Some(HASH_LEN),
        )
        .expect("argon2 parameters are validated at config load")
    }

    /// A PHC string with the configured parameters, a random salt and a random "hash": a
    /// verify against it costs exactly what a real one costs, and nothing matches it. Made,
    /// not computed, so a start hashes nothing (and its memory is not touched).
    fn dummy_phc(&self) -> String {
        let params = self.configured();
        let salt =
            Salt::new(&crate::crypto::random_bytes(16)).expect("16 bytes is a valid salt length");
        let output = Output::new(&crate::crypto::random_bytes(HASH_LEN))
            .expect("32 bytes is a valid output length");
        PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).expect("validated parameters encode"),
            salt: Some(salt),
            hash: Some(output),
        }
        .to_string()
    }

    /// A PHC string for `password`, through the gate, on a hashing thread.
    pub fn hash(&self, password: &str) -> Result<String, ApiError> {
        let _p = self.acquire()?;
        let params = self.configured();
        let password = password.to_string();
        Ok(self
            .pool
            .run(move |memory| hash_with(params, &password, memory)))
    }

    /// Checks `password` against `phc`; with `None` (unknown account) it verifies against a
    /// dummy hash so the answer takes as long. A stored string that does not parse as a PHC
    /// hash is also answered after a dummy verify, and never matches. The hash's own
    /// parameters (m, t, p, variant, version, length) drive the check, so strings written by
    /// rust-argon2 or under older settings still verify. Returns (matches, needs_rehash).
    ///
    /// A hash imported from another system ([`import`]: bcrypt, PBKDF2, scrypt,
    /// Firebase's scrypt, SSHA) is checked by its own algorithm on the same threads, and always
    /// wants rehashing: a match returns (true, true), so the caller rewrites it as argon2id.
    pub fn verify(&self, phc: Option<&str>, password: &str) -> Result<(bool, bool), ApiError> {
        let _p = self.acquire()?;
        if let Some(imported) = phc.and_then(|s| import::Imported::parse(s).ok().flatten()) {
            let password = password.to_string();
            let ok = self.pool.run(move |_| imported.verify(&password));
            return Ok((ok, ok));
        }
        // Only argon2 goes down the argon2 path: another PHC string (an imported `$scrypt$`
        // beyond its bounds, say) gets the dummy verify like any unreadable hash.
        let parsed =
            phc.filter(|s| PasswordHash::new(s).is_ok_and(|h| Algorithm::new(h.algorithm).is_ok()));
        let outdated =
            parsed.is_some_and(|s| PasswordHash::new(s).is_ok_and(|h| self.outdated(&h)));
        let target = parsed.unwrap_or(&self.dummy_hash).to_string();
        let real = parsed.is_some();
        let password = password.to_string();
        let keep = self.configured().block_count();
        let ok = self.pool.run(move |memory| {
            PasswordHash::new(&target).is_ok_and(|h| verify_phc(&h, &password, memory, keep))
        });
        // The dummy never matches, even if someone typed its password.
        let ok = ok && real;
        Ok((ok, ok && outdated))
    }

    /// True when the stored hash was not made with exactly the configured argon2id settings.
    fn outdated(&self, hash: &PasswordHash) -> bool {
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

/// Runs `f` in `memory`: the pool thread's block, made `keep` blocks (the configured
/// `memory_kib`) on its first use, when the hash's `params` fit in that. A hash made under
/// larger parameters than the configured ones (the operator lowered `memory_kib`) gets a block
/// of its own for that one verify, freed afterwards, so the kept block never outgrows the
/// configuration; such a hash is rewritten at the user's next login.
fn run_in<T>(
    memory: &mut Memory,
    params: &Params,
    keep: usize,
    f: impl FnOnce(&mut [Block]) -> T,
) -> T {
    let need = params.block_count();
    if memory.len() < need && need <= keep {
        *memory = block_of(keep);
    }
    if memory.len() >= need {
        f(memory)
    } else {
        f(&mut vec![Block::new(); need])
    }
}

fn hash_with(params: Params, password: &str, memory: &mut Memory) -> String {
    let salt =
        Salt::new(&crate::crypto::random_bytes(16)).expect("16 bytes is a valid salt length");
    let keep = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; HASH_LEN];
    run_in(memory, &params, keep, |blocks| {
        argon2.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks)
    })
    .expect("argon2 parameters are validated at config load");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("validated parameters encode"),
        salt: Some(salt),
        hash: Some(Output::new(&out).expect("32 bytes is a valid output length")),
    }
    .to_string()
}

/// Output length of the hashes this server writes (the argon2 and rust-argon2 default).
const HASH_LEN: usize = 32;

/// Verifies with the algorithm and parameters recorded in `hash` itself, comparing in
/// constant time (`Output`'s equality). Any argon2 variant is accepted here; `outdated` flags
/// a non-argon2id hash for upgrade. Runs in the pool thread's `memory` (see [`run_in`]).
fn verify_phc(hash: &PasswordHash, password: &str, memory: &mut Memory, keep: usize) -> bool {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::new(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let computed = run_in(memory, &params, keep, |blocks| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
    });
    computed.is_ok() && Output::new(&out).is_ok_and(|o| o == *expected)
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
            ErrorCode::WeakPassword,
            field,
            format!("must be at least {min} characters"),
        ));
    }
    if len > cfg.max_length {
        return Err(ApiError::field(
            ErrorCode::WeakPassword,
            field,
            format!("must be at most {} characters", cfg.max_length),
        ));
    }
    if cfg.reject_common && is_common(password) {
        return Err(ApiError::field(
            ErrorCode::WeakPassword,
            field,
            "is too common",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
