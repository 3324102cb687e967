//! Times argon2id hashing with the two Rust crates Latchkey could use, at the server's
//! default parameters (m=19456 KiB, t=2, p=1), and checks that both write the same PHC string.
//!
//! `cargo run --release --example argon2_bench [N]` (N hashes per crate, default 20) prints
//! CPU and wall milliseconds per hash for each crate, and the speedup by CPU time (which a busy
//! machine distorts least); `bench/argon2.sh` runs it and records the figures in docs/benchmarks.md.

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, Version};
use std::time::{Duration, Instant};

const M_KIB: u32 = 19456;
const T: u32 = 2;
const P: u32 = 1;

fn rustcrypto(password: &[u8], salt: &[u8]) -> String {
    let params = Params::new(M_KIB, T, P, Some(32)).expect("valid parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(password, salt)
        .expect("hash")
        .to_string()
}

fn rust_argon2(password: &[u8], salt: &[u8]) -> String {
    let config = rust_argon2::Config {
        variant: rust_argon2::Variant::Argon2id,
        version: rust_argon2::Version::Version13,
        mem_cost: M_KIB,
        time_cost: T,
        lanes: P,
        secret: &[],
        ad: &[],
        hash_length: 32,
        thread_mode: rust_argon2::ThreadMode::Sequential,
    };
    rust_argon2::hash_encoded(password, salt, &config).expect("hash")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// This thread's time on a CPU so far (Linux: first field of /proc/thread-self/schedstat, in
/// ns). Unlike wall time it leaves out the time spent waiting for a CPU on a busy machine.
fn cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Runs `f` once; (wall time, CPU time if the platform tells it).
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, Option<Duration>) {
    let c = cpu_time();
    let t = Instant::now();
    std::hint::black_box(f());
    let wall = t.elapsed();
    let cpu = c.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    (wall, cpu)
}

fn main() {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().expect("N must be a positive integer"),
        None => 20,
    };
    assert!(n > 0, "N must be a positive integer");
    let password = b"correct horse battery staple";
    let salt = b"latchkey-bench-1";

    // Same input, same PHC string; each crate verifies the other's.
    let a = rustcrypto(password, salt);
    let b = rust_argon2(password, salt);
    assert_eq!(a, b, "the crates disagree");
    assert!(rust_argon2::verify_encoded(&a, password).expect("verify"));

    // Interleaved so that frequency scaling or a noisy neighbour hits both alike.
    let mut wall: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut cpu: [Option<Duration>; 2] = [Some(Duration::ZERO); 2];
    for i in 0..n {
        let salt = format!("latchkey-salt-{i:02}");
        let runs = [
            timed(|| rustcrypto(password, salt.as_bytes())),
            timed(|| rust_argon2(password, salt.as_bytes())),
        ];
        for (k, (w, c)) in runs.into_iter().enumerate() {
            wall[k].push(w);
            cpu[k] = cpu[k].zip(c).map(|(sum, c)| sum + c);
        }
    }

    println!("argon2id m={M_KIB} t={T} p={P}, {n} hashes per crate (identical PHC: yes)");
    println!("cpu = this thread's CPU time per hash; wall = elapsed time per hash");
    let mut cost = [0.0; 2];
    for (k, name) in ["argon2", "rust-argon2"].iter().enumerate() {
        let v = &mut wall[k];
        v.sort();
        let mean = ms(v.iter().sum::<Duration>()) / n as f64;
        let cpu_ms = cpu[k].map(|c| ms(c) / n as f64);
        cost[k] = cpu_ms.unwrap_or(mean);
        let cpu_text = match cpu_ms {
            Some(c) => format!("{c:.1}"),
            None => "n/a".to_string(),
        };
        println!(
            "{name}: cpu {cpu_text} ms/hash; wall mean {mean:.1}, median {:.1}, min {:.1}, max {:.1}",
            ms(v[n / 2]),
            ms(v[0]),
            ms(v[n - 1])
        );
    }
    println!("speedup: {:.2}x", cost[1] / cost[0]);
    two_at_once(n);
}

/// The server's hash bound on a machine of `c` cores is `c ÷ one hash`; this checks what two
/// hashes running at once (the server's two hashing threads on 2 cores) give against that:
/// `n` hashes alone on one thread, then `n` on each of two threads together, RustCrypto crate.
fn two_at_once(n: usize) {
    let run = |t: usize| {
        let salt = format!("latchkey-two-{t}");
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(rustcrypto(b"correct horse battery staple", salt.as_bytes()));
        }
        start.elapsed()
    };
    let alone = run(0);
    let together: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (1..=2).map(|t| s.spawn(move || run(t))).collect();
        hs.into_iter()
            .map(|h| h.join().expect("hash thread"))
            .collect()
    });
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let pair: f64 = together.iter().map(|d| rate(*d)).sum();
    println!(
        "two at once: {:.1} ms/hash alone, {:.1} and {:.1} ms/hash together; {pair:.1} hashes/s = {:.2} x twice one alone ({:.1}/s)",
        ms(alone) / n as f64,
        ms(together[0]) / n as f64,
        ms(together[1]) / n as f64,
        pair / (2.0 * rate(alone)),
        2.0 * rate(alone),
    );
}
