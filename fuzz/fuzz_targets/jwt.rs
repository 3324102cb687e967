//! Access tokens (`tokens.rs`): parsing and verifying any string is an error, never a panic
//! and never a success without our signature; what we sign verifies to the same claims; an
//! edited token either fails or verifies to the claims that were signed; any JSON as a JWK
//! is a key or an error, and a key's published JWK reads back as the same key.
#![no_main]

use latchkey::crypto::b64url;
use latchkey::tokens::{self, AccessClaims, Algorithm, SigningKey, VerifyingKey};
use latchkey_fuzz::{fields, seed_and_rest};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

const ISS: &str = "https://auth.example.test";
const AUD: &str = "latchkey";
const NOW: i64 = 1_800_000_000;

static KEYS: LazyLock<Vec<SigningKey>> = LazyLock::new(|| {
    [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256]
        .into_iter()
        .map(SigningKey::generate)
        .collect()
});
static PUBLIC: LazyLock<Vec<VerifyingKey>> =
    LazyLock::new(|| KEYS.iter().map(SigningKey::verifying_key).collect());
/// One genuine token per key (ES256 and RS256 signing is too slow to do per input).
static SIGNED: LazyLock<Vec<(AccessClaims, String)>> = LazyLock::new(|| {
    let c = claims(
        &[
            b"usr_1",
            b"jti_1",
            b"ses_1",
            b"org_1",
            b"acme",
            b"member",
            b"a@b.test",
            b"pwd",
        ],
        7,
    );
    KEYS.iter()
        .map(|k| (c.clone(), k.sign(&c).unwrap()))
        .collect()
});

/// One edit of `token` chosen by `seed`, with `with` as the new bytes.
fn edit(token: &str, seed: u64, with: &[u8]) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let replacement = b64url(with);
    match seed % 5 {
        0 => format!("{replacement}.{}.{}", parts[1], parts[2]),
        1 => format!("{}.{replacement}.{}", parts[0], parts[2]),
        2 => format!("{}.{}.{replacement}", parts[0], parts[1]),
        3 => {
            let mut b = token.as_bytes().to_vec();
            let i = (seed >> 8) as usize % b.len();
            b[i] = with.first().copied().unwrap_or(b'A');
            String::from_utf8_lossy(&b).into_owned()
        }
        _ => {
            let mut b = token.as_bytes().to_vec();
            let i = (seed >> 8) as usize % (b.len() + 1);
            b.splice(i..i, with.iter().copied());
            String::from_utf8_lossy(&b).into_owned()
        }
    }
}

fn claims(f: &[&[u8]], seed: u64) -> AccessClaims {
    let s = |i: usize| String::from_utf8_lossy(f[i]).into_owned();
    AccessClaims {
        iss: ISS.into(),
        sub: s(0).into(),
        aud: AUD.into(),
        iat: NOW - (seed % 100) as i64,
        exp: NOW + 1 + (seed >> 8) as i64 % 900,
        jti: s(1),
        sid: s(2).into(),
        org_id: s(3).into(),
        org_slug: s(4),
        org_role: s(5),
        email: s(6),
        email_verified: seed & 1 == 1,
        amr: vec![s(7)],
    }
}

/// `tokens::verify`, checked against `verify_ignoring_expiry` where they must agree: on a
/// token that verifies, and on an expired one (its signature did verify).
fn verify(token: &str) -> Result<AccessClaims, tokens::TokenError> {
    let strict = tokens::verify(&PUBLIC, token, ISS, AUD, NOW);
    match &strict {
        Ok(c) => assert_eq!(
            tokens::verify_ignoring_expiry(&PUBLIC, token, ISS, AUD, NOW).as_ref(),
            Ok(c)
        ),
        Err(tokens::TokenError::Expired) => {
            let lax = tokens::verify_ignoring_expiry(&PUBLIC, token, ISS, AUD, NOW);
            assert!(lax.is_ok_and(|c| c.exp <= NOW), "expired, then not genuine");
        }
        Err(_) => {}
    }
    strict
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let (seed, rest) = seed_and_rest(data);
    match mode % 5 {
        // Any string as a token: never accepted (the keys are made at start, so no input
        // can carry a genuine signature).
        0 => {
            let token = String::from_utf8_lossy(data);
            assert!(verify(&token).is_err(), "accepted a token we did not sign");
        }
        // Claims of the input's choosing, signed (EdDSA, fast) and read back, then edited.
        1 => {
            let f = fields(rest, 0, 9);
            let c = claims(&f, seed);
            let Ok(token) = KEYS[0].sign(&c) else {
                return;
            };
            assert_eq!(verify(&token), Ok(c.clone()), "our own token");
            if let Ok(got) = verify(&edit(&token, seed >> 24, f[8])) {
                assert_eq!(got, c, "an edited token verified to other claims");
            }
        }
        // A genuine token of each algorithm, edited.
        2 => {
            let (c, token) = &SIGNED[(seed >> 60) as usize % SIGNED.len()];
            if let Ok(got) = verify(&edit(token, seed, rest)) {
                assert_eq!(&got, c, "an edited token verified to other claims");
            }
        }
        // A header of the input's choosing on a genuine payload and signature.
        3 => {
            let (c, token) = &SIGNED[seed as usize % SIGNED.len()];
            let (_, tail) = token.split_once('.').unwrap();
            let forged = format!("{}.{tail}", b64url(rest));
            if let Ok(got) = verify(&forged) {
                assert_eq!(&got, c);
            }
        }
        // Any JSON as a public JWK.
        _ => {
            let Ok(jwk) = serde_json::from_slice::<serde_json::Value>(data) else {
                return;
            };
            if let Ok(k) = VerifyingKey::from_jwk(&jwk) {
                let again = VerifyingKey::from_jwk(&k.public_jwk()).expect("our own JWK");
                assert_eq!((again.kid(), again.alg()), (k.kid(), k.alg()));
                let _ = tokens::verify(&[k], "a.b.c", ISS, AUD, NOW);
            }
        }
    }
});
