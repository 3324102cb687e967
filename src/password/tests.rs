use super::*;
use crate::config::PasswordConfig;
use argon2::PasswordHasher;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Small parameters keep the tests fast; the algorithm is the same at any size.
fn small(m: u32, t: u32, p: u32) -> Argon2Config {
    Argon2Config {
        memory_kib: m,
        iterations: t,
        parallelism: p,
    }
}

fn hasher(max: usize, queue: usize) -> Hasher {
    Hasher::new(small(64, 1, 1), max, queue)
}

fn rust_argon2_config(
    variant: rust_argon2::Variant,
    m: u32,
    t: u32,
    p: u32,
) -> rust_argon2::Config<'static> {
    rust_argon2::Config {
        variant,
        version: rust_argon2::Version::Version13,
        mem_cost: m,
        time_cost: t,
        lanes: p,
        secret: &[],
        ad: &[],
        hash_length: 32,
        thread_mode: rust_argon2::ThreadMode::Sequential,
    }
}

#[test]
fn hash_is_argon2id_phc_with_configured_parameters() {
    let h = Hasher::new(small(128, 3, 2), 1, 0);
    let phc = h.hash("correct horse").unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=128,t=3,p=2$"), "{phc}");
    assert_eq!(
        h.verify(Some(&phc), "correct horse").unwrap(),
        (true, false)
    );
    assert_eq!(
        h.verify(Some(&phc), "correct horsE").unwrap(),
        (false, false)
    );
    // Fresh salt every time.
    assert_ne!(phc, h.hash("correct horse").unwrap());
}

#[test]
fn unknown_or_unparseable_hash_never_matches() {
    let h = hasher(1, 0);
    assert_eq!(
        h.verify(None, "latchkey-dummy-password").unwrap(),
        (false, false)
    );
    assert_eq!(h.verify(None, "anything").unwrap(), (false, false));
    assert_eq!(
        h.verify(Some("not a phc"), "anything").unwrap(),
        (false, false)
    );
    assert_eq!(h.verify(Some(""), "").unwrap(), (false, false));
}

#[test]
fn same_phc_as_rust_argon2_and_each_verifies_the_other() {
    let (m, t, p) = (256, 2, 1);
    let salt = b"0123456789abcdef";
    let password = "Tr0ub4dor&3";

    let theirs = rust_argon2::hash_encoded(
        password.as_bytes(),
        salt,
        &rust_argon2_config(rust_argon2::Variant::Argon2id, m, t, p),
    )
    .unwrap();
    let ours = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(m, t, p, Some(HASH_LEN)).unwrap(),
    )
    .hash_password_with_salt(password.as_bytes(), salt)
    .unwrap()
    .to_string();
    assert_eq!(
        ours, theirs,
        "identical PHC string for the same salt and parameters"
    );

    // rust-argon2's string verifies here, ours verifies there.
    let h = Hasher::new(small(m, t, p), 1, 0);
    assert_eq!(h.verify(Some(&theirs), password).unwrap(), (true, false));
    assert_eq!(h.verify(Some(&theirs), "wrong").unwrap(), (false, false));
    let fresh = h.hash(password).unwrap();
    assert!(rust_argon2::verify_encoded(&fresh, password.as_bytes()).unwrap());
    assert!(!rust_argon2::verify_encoded(&fresh, b"wrong").unwrap());
}

#[test]
fn rehash_when_parameters_or_variant_differ() {
    let h = Hasher::new(small(128, 2, 1), 1, 0);
    let cases = [
        Hasher::new(small(64, 2, 1), 1, 0)
            .hash("pw-old-params")
            .unwrap(),
        Hasher::new(small(128, 1, 1), 1, 0)
            .hash("pw-old-params")
            .unwrap(),
        Hasher::new(small(128, 2, 2), 1, 0)
            .hash("pw-old-params")
            .unwrap(),
        rust_argon2::hash_encoded(
            b"pw-old-params",
            b"saltsaltsaltsalt",
            &rust_argon2_config(rust_argon2::Variant::Argon2i, 128, 2, 1),
        )
        .unwrap(),
        rust_argon2::hash_encoded(
            b"pw-old-params",
            b"saltsaltsaltsalt",
            &rust_argon2_config(rust_argon2::Variant::Argon2d, 128, 2, 1),
        )
        .unwrap(),
    ];
    for phc in &cases {
        assert_eq!(
            h.verify(Some(phc), "pw-old-params").unwrap(),
            (true, true),
            "{phc}"
        );
        // Only a successful login upgrades.
        assert_eq!(
            h.verify(Some(phc), "wrong").unwrap(),
            (false, false),
            "{phc}"
        );
    }
    // A current hash made by rust-argon2 needs nothing.
    let current = rust_argon2::hash_encoded(
        b"pw",
        b"saltsaltsaltsalt",
        &rust_argon2_config(rust_argon2::Variant::Argon2id, 128, 2, 1),
    )
    .unwrap();
    assert_eq!(h.verify(Some(&current), "pw").unwrap(), (true, false));
}

/// Waits (bounded) until `cond` holds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn is_overloaded(r: &Result<String, ApiError>) -> bool {
    matches!(r, Err(e) if e.status() == 503 && e.code == "overloaded" && e.retry_after.is_some())
}

/// max=1, queue=1, three hashes at once: one runs, one waits, one is refused with 503. The
/// running one is a permit held by the test, so the outcome does not depend on timing.
#[test]
fn gate_admits_max_queues_up_to_queue_and_refuses_the_rest() {
    let h = hasher(1, 1);
    let running = h.acquire().expect("the gate starts empty");
    assert_eq!(h.depth(), (1, 0));

    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..2 {
            let tx = tx.clone();
            let h = &h;
            s.spawn(move || tx.send(h.hash("through the gate")).unwrap());
        }
        // While the first hash runs, one caller queues and the other is turned away at once.
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(is_overloaded(&first), "{first:?}");
        wait_for("one queued caller", || h.depth() == (1, 1));
        assert!(
            rx.try_recv().is_err(),
            "the queued caller must still be waiting"
        );

        drop(running);
        let second = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let phc = second.expect("the queued caller runs once the permit is free");
        assert!(phc.starts_with("$argon2id$"));
    });
    assert_eq!(h.depth(), (0, 0));
}

#[test]
fn gate_with_no_queue_refuses_while_busy_and_recovers() {
    let h = hasher(1, 0);
    let running = h.acquire().unwrap();
    assert!(is_overloaded(&h.hash("x")));
    assert!(matches!(h.verify(None, "x"), Err(e) if e.code == "overloaded"));
    drop(running);
    assert!(h.hash("x").is_ok());
    assert_eq!(h.depth(), (0, 0));
}

#[test]
fn gate_runs_up_to_max_at_once() {
    let h = hasher(2, 0);
    let a = h.acquire().unwrap();
    let b = h.acquire().unwrap();
    assert_eq!(h.depth(), (2, 0));
    assert!(h.acquire().is_err());
    drop(a);
    let _c = h.acquire().unwrap();
    drop(b);
    assert_eq!(h.depth(), (1, 0));
}

/// Real hashes on threads against a small gate: every call either hashes or gets 503,
/// nothing deadlocks, and the gate drains.
#[test]
fn gate_under_concurrent_hashing() {
    let h = Hasher::new(small(2048, 2, 1), 1, 1);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| h.hash("flood"))).collect();
        handles.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(results.iter().all(|r| r.is_ok() || is_overloaded(r)));
    assert!(results.iter().any(|r| r.is_ok()));
    assert_eq!(h.depth(), (0, 0));
}

fn policy(reject_common: bool) -> PasswordConfig {
    PasswordConfig {
        min_length: 8,
        max_length: 128,
        reject_common,
    }
}

fn refused(r: Result<(), ApiError>) -> String {
    let e = r.expect_err("should be refused");
    assert_eq!((e.status(), e.code.as_str()), (400, "weak_password"));
    assert_eq!(e.errors.len(), 1);
    assert_eq!(e.errors[0].field, "newPassword");
    e.errors[0].message.clone()
}

#[test]
fn common_list_is_the_top_ten_thousand() {
    let lines: Vec<&str> = COMMON_PASSWORDS.lines().collect();
    assert_eq!(lines.len(), 10_000);
    assert_eq!(common_set().len(), 10_000, "no duplicates or blank lines");
    assert_eq!(&lines[..3], ["123456", "password", "12345678"]);
    assert!(
        lines
            .iter()
            .all(|l| *l == l.to_lowercase() && *l == l.trim())
    );
}

#[test]
fn is_common_ignores_case() {
    for pw in [
        "password",
        "PASSWORD",
        "Password1",
        "qwerty123",
        "iloveyou",
        "Dragon",
    ] {
        assert!(is_common(pw), "{pw}");
    }
    for pw in [
        "",
        "correct horse battery staple",
        "vX9#mQ2!rT",
        "password-latchkey",
    ] {
        assert!(!is_common(pw), "{pw}");
    }
}

#[test]
fn policy_length_org_minimum_and_common() {
    let cfg = policy(true);
    assert!(check_policy(&cfg, None, "newPassword", "vX9#mQ2!rT").is_ok());
    assert_eq!(
        refused(check_policy(&cfg, None, "newPassword", "short")),
        "must be at least 8 characters"
    );
    assert_eq!(
        refused(check_policy(&cfg, Some(12), "newPassword", "vX9#mQ2!rT")),
        "must be at least 12 characters"
    );
    // An org minimum below the config's never lowers it.
    assert!(check_policy(&cfg, Some(4), "newPassword", "short").is_err());
    assert_eq!(
        refused(check_policy(&cfg, None, "newPassword", &"a".repeat(129))),
        "must be at most 128 characters"
    );
    // Length counts characters, not bytes.
    assert!(check_policy(&cfg, None, "newPassword", &"é".repeat(128)).is_ok());
    assert_eq!(
        refused(check_policy(&cfg, None, "newPassword", "Password1")),
        "is too common"
    );
    assert!(check_policy(&policy(false), None, "newPassword", "Password1").is_ok());
}

/// A hash made under bigger parameters than the configured ones (the operator lowered
/// `memory_kib`) still verifies, in a block of its own, and is flagged for a rehash; the
/// thread's kept block then still serves the configured size.
#[test]
fn hashes_bigger_than_the_configured_memory_still_verify() {
    let big = Hasher::new(small(512, 1, 1), 1, 0).hash("pw-big").unwrap();
    let h = Hasher::new(small(64, 1, 1), 1, 0);
    assert_eq!(h.verify(Some(&big), "pw-big").unwrap(), (true, true));
    assert_eq!(h.verify(Some(&big), "wrong").unwrap(), (false, false));
    let mine = h.hash("pw-small").unwrap();
    assert_eq!(h.verify(Some(&mine), "pw-small").unwrap(), (true, false));
    assert_eq!(h.verify(Some(&big), "pw-big").unwrap(), (true, true));
}

/// The dummy hash is not computed (a start hashes nothing) but has the configured
/// parameters, so a verify against it costs what a real one does.
#[test]
fn the_dummy_hash_has_the_configured_parameters() {
    let h = Hasher::new(small(128, 3, 2), 1, 0);
    assert!(
        h.dummy_hash.starts_with("$argon2id$v=19$m=128,t=3,p=2$"),
        "{}",
        h.dummy_hash
    );
    let parsed = PasswordHash::new(&h.dummy_hash).unwrap();
    assert!(!h.outdated(&parsed));
    assert_ne!(h.dummy_hash, Hasher::new(small(128, 3, 2), 1, 0).dummy_hash);
}

/// A hash written by an earlier build (argon2 0.5) verifies and is current: stored hashes stay
/// valid across upgrades of the argon2 crate.
#[test]
fn a_hash_from_an_earlier_build_verifies() {
    let h = Hasher::new(small(128, 3, 2), 1, 0);
    let stored = "$argon2id$v=19$m=128,t=3,p=2$qIVb1+uJEUpYJ/ArqWDJTg$\
                  ZTnl6NtUZlQNrYxB5J4IO/ALGGIeAg8zPgY2soRH5Mw";
    assert_eq!(
        h.verify(Some(stored), "correct horse battery staple")
            .unwrap(),
        (true, false)
    );
    assert_eq!(h.verify(Some(stored), "wrong").unwrap(), (false, false));
    assert!(rust_argon2::verify_encoded(stored, b"correct horse battery staple").unwrap());
}

/// The PHC string's shape: `$argon2id$v=19$m=…,t=…,p=…$<22 chars salt>$<43 chars hash>`,
/// unpadded standard base64.
#[test]
fn phc_string_shape() {
    let phc = Hasher::new(small(128, 3, 2), 1, 0).hash("pw").unwrap();
    let parts: Vec<&str> = phc.split('$').collect();
    assert_eq!(
        parts[..4],
        ["", "argon2id", "v=19", "m=128,t=3,p=2"],
        "{phc}"
    );
    assert_eq!(parts.len(), 6, "{phc}");
    let b64 = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    };
    assert!(parts[4].len() == 22 && b64(parts[4]), "{phc}");
    assert!(parts[5].len() == 43 && b64(parts[5]), "{phc}");
}
