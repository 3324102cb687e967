//! Known answers made by other implementations (Python's `bcrypt`, passlib, hashlib,
//! argon2-cffi; Firebase's own C utility), so a bug shared by our hashing and verifying code
//! cannot pass unnoticed. tests/hash_import.rs runs the same formats through real sign-ins.

use super::*;

const PW: &str = "hunter2 old password";

/// (declared type, hash of `PW`), each from an implementation other than the crates used here.
const VECTORS: &[(&str, &str)] = &[
    // Python bcrypt 5.0.
    (
        "bcrypt",
        "$2b$04$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu",
    ),
    (
        "bcrypt",
        "$2a$05$COMyEPO6cfqMid6tsVEjUubkrYDVhuJ3vEMUrxK5AR45jAx0IMNyK",
    ),
    // PHP's $2y$ is the same algorithm as $2b$ (the first vector, relabelled).
    (
        "bcrypt",
        "$2y$04$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu",
    ),
    // passlib 1.7.4 (ab64: `.` for `+`, bare rounds).
    (
        "pbkdf2",
        "$pbkdf2-sha256$1000$dY6xViqlVCrlXKu1NkaoVQ$IOIK891DAnHWIOb3dTSA3vreyhSJIhzL.LM5yu6YRP4",
    ),
    (
        "pbkdf2",
        "$pbkdf2-sha512$1000$vBfiHKMUwnjPGYMQojQGQA$QKOsvFzUB3yDQNGIzaWCLihvDhzmYewLmrUHqMAzUU.b2jKrQw42DPiIAi2cXw5RK9OfeFvzlcFoZLjpQS6bbQ",
    ),
    (
        "pbkdf2",
        "$pbkdf2$1000$C0GIEQJAKOUcA2DMmTPGOA$zlMGKrEeYVeNRJL1G.KwvUzDV48",
    ),
    // hashlib.pbkdf2_hmac, written as the PHC strings of the `pbkdf2` crate.
    (
        "pbkdf2",
        "$pbkdf2-sha256$i=1000,l=32$R2a5pF9Mf1QMnqVRHj6a4g$Y8zkNApowue8TAvFxze6FVALuiWyz2uOI9VVeEvMSDA",
    ),
    (
        "pbkdf2",
        "$pbkdf2-sha512$i=1000,l=64$R2a5pF9Mf1QMnqVRHj6a4g$MS8wM4DBwDtF9JXJLuVeGtd4XHaZmBLucm4q5otRZcTxqOvN9SCeSOc8pGSD/PDpIHfIq1lVH7tIsHBw37Mahg",
    ),
    // Django's layout (salt as text), made with hashlib.
    (
        "pbkdf2",
        "pbkdf2_sha256$1000$Xq9vKp2mWz7L$GGZ6mdeLo1gsM8rUQtGLNlXMQD7rGNTaykjnC0l1QW0=",
    ),
    // passlib scrypt; hashlib.scrypt with p=2 as a PHC string.
    (
        "scrypt",
        "$scrypt$ln=10,r=8,p=1$d865NyZk7P2fE2IMoRTivA$5yzmU43dGJBOMZ2ut59TW5+u5s8m5ys1LwI7o5tqYH0",
    ),
    (
        "scrypt",
        "$scrypt$ln=10,r=8,p=2$R2a5pF9Mf1QMnqVRHj6a4g$qhkkRd+BcRdCs2ElPkxoZ/+VOfVUpf5nLIJNK1JIR5k",
    ),
    // passlib ldap_salted_sha1 / sha256 / sha512.
    ("ssha", "{SSHA}vYfBuctbcps9HfN9IBhkc+lFCgb6X4uR"),
    (
        "ssha",
        "{SSHA256}AkQuseNJBXWRvsV1TkvwXxhDN8/+cop9NpHI3f7qyNPw/n+Pce7duw==",
    ),
    (
        "ssha",
        "{SSHA512}0OT5AgqFEFvYVtMSz7cCkPvvDxtqXHEbz82EqlYxjKUQn1I+IbHp47Iva+4xYSk6i1f0OX1Lsqa6Odqn1hKBOcB4D4Hw3puz",
    ),
];

/// firebase/scrypt's README: its utility's output for `user1password` under the sample
/// project parameters, in WorkOS's `$firebase-scrypt$` encoding.
pub(crate) const FIREBASE_README: &str = "$firebase-scrypt$hash=lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==$salt=42xEC+ixf3L2lw==$sk=jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==$ss=Bw==$r=8$m=14";

#[test]
fn known_answers_verify_and_wrong_passwords_do_not() {
    for (ty, hash) in VECTORS {
        let stored = validate_import(hash, ty).unwrap_or_else(|e| panic!("{hash}: {e:?}"));
        assert_eq!(&stored, hash);
        let imported = Imported::parse(hash).unwrap().unwrap();
        assert_eq!(imported.kind().as_str(), *ty, "{hash}");
        assert!(imported.verify(PW), "{hash}");
        assert!(!imported.verify("hunter2 old passworD"), "{hash}");
        assert!(!imported.verify(""), "{hash}");
    }
}

#[test]
fn firebase_scrypt_matches_the_reference_utility() {
    let imported = Imported::parse(FIREBASE_README).unwrap().unwrap();
    assert_eq!(imported.kind(), HashType::FirebaseScrypt);
    assert!(imported.verify("user1password"));
    assert!(!imported.verify("user1password "));
    // firebase/scrypt tests/02-more-values: another project key, per-user salts.
    let sk =
        "NkZlKPkYEFfnbh1nYTfLsbqQnQ6jyRV4itK7iUD+hjO96tsAYhBG40BVS3AuJyiwHinqc5RR3oA+lppOXPNRmw==";
    for (pw, hash, salt) in [
        (
            "testing123",
            "D4/67JzbolWXC6BuTdt0fRa6owx4CSEinCykFl+W02E8lpbFopre+BkWwYV9iFGhqwYiET+Hm9jT7s7LWz88bA==",
            "nwdW6iryfC10oQ==",
        ),
        (
            "two space password",
            "5RZZm9Jz7p/u+FGXMInlJtAYFmMBj6ioL1UOdWfsUknAFCnsPpnnKRLyXSUFwwKbM4lx7TdFclBsT16Z8uuumg==",
            "GGc/eCzFj6DM0g==",
        ),
    ] {
        // Comma-separated, unpadded, in another order: the same hash.
        let s = format!(
            "$firebase-scrypt$r=8,m=14,sk={},ss=Bw$salt={}$hash={}",
            sk.trim_end_matches('='),
            salt.trim_end_matches('='),
            hash.trim_end_matches('=')
        );
        let stored = validate_import(&s, "firebase-scrypt").unwrap();
        let imported = Imported::parse(&stored).unwrap().unwrap();
        assert!(imported.verify(pw), "{pw}");
        assert!(!imported.verify("testing1234"), "{pw}");
    }
}

#[test]
fn argon2_from_elsewhere_is_accepted_within_bounds() {
    // argon2-cffi 25.1: argon2id and argon2i.
    for h in [
        "$argon2id$v=19$m=1024,t=2,p=1$65sjVno/NUQNno+7rZrs0w$myL4G01PS764n18aNKHMRAW26dH8xD5d47txKYBt6wo",
        "$argon2i$v=19$m=512,t=3,p=2$SEhnj4ifsNwYYAiMtcmuzg$CLcSetihEzwx67lJOdtYz8MZRzK1XjOrTQe1h9XNKVk",
    ] {
        assert_eq!(validate_import(h, "argon2").unwrap(), h);
        // Not one of the formats this module verifies: the argon2 path does.
        assert!(Imported::parse(h).unwrap().is_none());
    }
    let big = "$argon2id$v=19$m=1048576,t=2,p=1$65sjVno/NUQNno+7rZrs0w$myL4G01PS764n18aNKHMRAW26dH8xD5d47txKYBt6wo";
    let e = validate_import(big, "argon2").unwrap_err();
    assert_eq!(e.errors[0].field, "passwordHash");
    assert!(
        e.message.contains("m must be at most 65536"),
        "{}",
        e.message
    );
    let slow = "$argon2id$v=19$m=1024,t=11,p=1$65sjVno/NUQNno+7rZrs0w$myL4G01PS764n18aNKHMRAW26dH8xD5d47txKYBt6wo";
    assert!(validate_import(slow, "argon2").is_err());
}

#[test]
fn costs_beyond_the_bounds_are_refused() {
    let field_err = |hash: &str, ty: &str| {
        let e = validate_import(hash, ty).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert_eq!(e.errors[0].field, "passwordHash");
        e.message
    };
    // bcrypt cost 31 (two billion rounds) and 15.
    let m = field_err(
        "$2b$31$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu",
        "bcrypt",
    );
    assert!(m.contains("cost must be 4 to 14"), "{m}");
    field_err(
        "$2b$15$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu",
        "bcrypt",
    );
    // scrypt N = 2^30 (128 GiB), r too large, p too large for the work bound.
    let m = field_err(
        "$scrypt$ln=30,r=8,p=1$d865NyZk7P2fE2IMoRTivA$5yzmU43dGJBOMZ2ut59TW5+u5s8m5ys1LwI7o5tqYH0",
        "scrypt",
    );
    assert!(m.contains("at most 64 MiB"), "{m}");
    field_err(
        "$scrypt$ln=10,r=100000,p=1$d865NyZk7P2fE2IMoRTivA$5yzmU43dGJBOMZ2ut59TW5+u5s8m5ys1LwI7o5tqYH0",
        "scrypt",
    );
    let m = field_err(
        "$scrypt$ln=16,r=8,p=8$d865NyZk7P2fE2IMoRTivA$5yzmU43dGJBOMZ2ut59TW5+u5s8m5ys1LwI7o5tqYH0",
        "scrypt",
    );
    assert!(m.contains("work"), "{m}");
    // 64 MiB exactly is allowed (passlib's default, ln=16 r=8 p=1).
    validate_import(
        "$scrypt$ln=16,r=8,p=1$d865NyZk7P2fE2IMoRTivA$5yzmU43dGJBOMZ2ut59TW5+u5s8m5ys1LwI7o5tqYH0",
        "scrypt",
    )
    .unwrap();
    // Firebase with mem_cost 30.
    field_err(
        &FIREBASE_README.replace("$m=14", "$m=30"),
        "firebase-scrypt",
    );
    // PBKDF2 beyond 10 M rounds, and zero.
    let m = field_err(
        "$pbkdf2-sha256$i=10000001,l=32$R2a5pF9Mf1QMnqVRHj6a4g$Y8zkNApowue8TAvFxze6FVALuiWyz2uOI9VVeEvMSDA",
        "pbkdf2",
    );
    assert!(m.contains("10000000"), "{m}");
    field_err(
        "pbkdf2_sha256$0$Xq9vKp2mWz7L$GGZ6mdeLo1gsM8rUQtGLNlXMQD7rGNTaykjnC0l1QW0=",
        "pbkdf2",
    );
    // A stored hash beyond a bound is not one this module will run.
    assert!(
        Imported::parse("$2b$31$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu").is_err()
    );
}

#[test]
fn malformed_or_mislabelled_hashes_name_the_field() {
    for (hash, ty) in [
        ("", "bcrypt"),
        ("not a hash", "bcrypt"),
        ("$2b$04$short", "bcrypt"),
        (
            "$2x$04$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu",
            "bcrypt",
        ),
        ("$scrypt$ln=10,r=8$c2FsdA$aGFzaGhhc2hoYXNo", "scrypt"),
        (
            "$scrypt$ln=10,r=8,p=1,x=2$c2FsdA$aGFzaGhhc2hoYXNo",
            "scrypt",
        ),
        ("$scrypt$ln=10,r=8,p=1$!!!$aGFzaGhhc2hoYXNo", "scrypt"),
        ("$pbkdf2-sha256$i=1000$salt", "pbkdf2"),
        (
            "$pbkdf2-sha256$i=1000,l=16$R2a5pF9Mf1QMnqVRHj6a4g$Y8zkNApowue8TAvFxze6FVALuiWyz2uOI9VVeEvMSDA",
            "pbkdf2",
        ),
        ("$pbkdf2-md5$1000$c2FsdA$aGFzaGhhc2hoYXNo", "pbkdf2"),
        ("{SSHA}dG9vc2hvcnQ=", "ssha"),
        ("{SMD5}vYfBuctbcps9HfN9IBhkc+lFCgb6X4uR", "ssha"),
        (
            "$firebase-scrypt$hash=aGFzaA$salt=c2FsdA$sk=c2s$ss=Bw$r=8",
            "firebase-scrypt",
        ),
        (
            "$firebase-scrypt$hash=aGFzaA$salt=c2FsdA$sk=c2s$ss=Bw$r=8$m=14",
            "firebase-scrypt",
        ),
        (
            "$firebase-scrypt$hash=aGFz$hash=aGFz$salt=c2FsdA$sk=c2s$ss=Bw$r=8$m=14",
            "firebase-scrypt",
        ),
        (
            "$argon2id$v=19$m=1024,t=2,p=1$65sjVno/NUQNno+7rZrs0w",
            "argon2",
        ),
        (
            "$argon2x$v=19$m=1024,t=2,p=1$65sjVno/NUQNno+7rZrs0w$myL4G01PS764n18aNKHMRAW26dH8xD5d47txKYBt6wo",
            "argon2",
        ),
        // A real hash of another type than declared.
        (
            "$2b$04$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu",
            "scrypt",
        ),
        ("{SSHA}vYfBuctbcps9HfN9IBhkc+lFCgb6X4uR", "argon2"),
        (
            "$argon2id$v=19$m=1024,t=2,p=1$65sjVno/NUQNno+7rZrs0w$myL4G01PS764n18aNKHMRAW26dH8xD5d47txKYBt6wo",
            "bcrypt",
        ),
    ] {
        let e = validate_import(hash, ty).expect_err(hash);
        assert_eq!(e.code, ErrorCode::InvalidRequest, "{hash}");
        assert_eq!(e.errors[0].field, "passwordHash", "{hash}");
    }
    // Edges that must be refused, not panic.
    for (hash, ty) in [
        ("{SSHA}", "ssha"),
        ("{ssha512}", "ssha"),
        ("{SSHÄ}vYfBuctbcps9HfN9IBhkc+lFCgb6X4uR", "ssha"),
        ("$firebase-scrypt$", "firebase-scrypt"),
        (
            "$firebase-scrypt$hash=$salt=$sk=$ss=$r=$m=",
            "firebase-scrypt",
        ),
        ("$scrypt$$$", "scrypt"),
        ("$scrypt$ln=64,r=1,p=1$c2FsdA$aGFzaGhhc2hoYXNo", "scrypt"),
        (
            "$scrypt$ln=4294967295,r=4294967295,p=4294967295$c2FsdA$aGFzaGhhc2hoYXNo",
            "scrypt",
        ),
        ("$pbkdf2$", "pbkdf2"),
        (
            "$pbkdf2-sha256$i=1000,i=2$c2FsdA$aGFzaGhhc2hoYXNo",
            "pbkdf2",
        ),
        (
            "$scrypt$ln=10,r=8,p=1,p=2$c2FsdA$aGFzaGhhc2hoYXNo",
            "scrypt",
        ),
        ("pbkdf2_sha256$$$", "pbkdf2"),
        (
            "$2b$04$ÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ",
            "bcrypt",
        ),
        ("$argon2id$", "argon2"),
    ] {
        assert!(validate_import(hash, ty).is_err(), "{hash}");
    }
    let long = format!("$2b$04${}", "a".repeat(2000));
    assert!(
        validate_import(&long, "bcrypt")
            .unwrap_err()
            .message
            .contains("1024")
    );
    let e = validate_import(
        "$2b$04$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu",
        "md5",
    )
    .unwrap_err();
    assert_eq!(e.errors[0].field, "passwordHashType");
    let e = validate_import_as("x", "Bcrypt", "password_hash", "password_hash_type").unwrap_err();
    assert_eq!(e.errors[0].field, "password_hash_type");
    let e = validate_import_as("x", "bcrypt", "password_hash", "password_hash_type").unwrap_err();
    assert_eq!(e.errors[0].field, "password_hash");
}

#[test]
fn the_hash_type_words_are_workos_s() {
    let words: Vec<_> = HashType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        words,
        [
            "bcrypt",
            "firebase-scrypt",
            "ssha",
            "scrypt",
            "pbkdf2",
            "argon2"
        ]
    );
    for t in HashType::ALL {
        assert_eq!(HashType::parse(t.as_str()), Some(t));
    }
    assert_eq!(HashType::parse("BCRYPT"), None);
}

#[test]
fn the_hasher_verifies_imported_hashes_on_its_pool_and_asks_for_a_rehash() {
    let h = crate::password::Hasher::new(
        crate::config::Argon2Config {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        1,
        0,
    );
    for (_, hash) in VECTORS {
        assert_eq!(h.verify(Some(hash), PW).unwrap(), (true, true), "{hash}");
        assert_eq!(
            h.verify(Some(hash), "nope").unwrap(),
            (false, false),
            "{hash}"
        );
    }
    assert_eq!(
        h.verify(Some(FIREBASE_README), "user1password").unwrap(),
        (true, true)
    );
    // argon2 from elsewhere: the argon2 path, outdated parameters → rehash.
    let cffi = "$argon2id$v=19$m=1024,t=2,p=1$65sjVno/NUQNno+7rZrs0w$myL4G01PS764n18aNKHMRAW26dH8xD5d47txKYBt6wo";
    assert_eq!(h.verify(Some(cffi), PW).unwrap(), (true, true));
    // Beyond the bounds, or another PHC algorithm: never matches.
    let huge =
        "$scrypt$ln=30,r=8,p=1$d865NyZk7P2fE2IMoRTivA$5yzmU43dGJBOMZ2ut59TW5+u5s8m5ys1LwI7o5tqYH0";
    assert_eq!(h.verify(Some(huge), PW).unwrap(), (false, false));
    assert_eq!(
        h.verify(
            Some("$2b$31$yWbO1uzifV.65SqFwUMaduh8CDnTSJcaf0Tc19jdgFRiXdKMoqkxu"),
            PW
        )
        .unwrap(),
        (false, false)
    );
    // What the server writes is still verified as before.
    let own = h.hash(PW).unwrap();
    assert_eq!(h.verify(Some(&own), PW).unwrap(), (true, false));
}
