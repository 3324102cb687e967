//! Cryptographic primitives: random tokens, SHA-256, HMAC, key derivation, sealed boxes
//! (AES-256-GCM) and constant-time comparison. Nothing else in the crate touches these crates.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::TryRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// `n` bytes from the operating system's CSPRNG. Panics if the OS cannot supply them (as
/// rand 0.8's `OsRng::fill_bytes` did): a token must never be made from anything weaker.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rngs::SysRng
        .try_fill_bytes(&mut v)
        .expect("the operating system's random number generator failed");
    v
}

/// Lower-case hex of `n` random bytes.
pub fn random_hex(n: usize) -> String {
    hex(&random_bytes(n))
}

/// URL-safe base64 (no padding) of `n` random bytes: used for opaque tokens.
pub fn random_token(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(n))
}

pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Hex SHA-256 of a token: how every opaque token, key and code is stored.
pub fn token_hash(token: &str) -> String {
    hex(&sha256(token.as_bytes()))
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// A 256-bit key for one purpose, derived from the deployment's secret key.
pub fn derive_key(secret: &str, purpose: &str) -> [u8; 32] {
    hmac_sha256(
        secret.as_bytes(),
        format!("latchkey/v1/{purpose}").as_bytes(),
    )
}

/// Constant-time equality of two byte strings (length may leak, content does not).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// AES-256-GCM with a random 96-bit nonce; output is `nonce || ciphertext+tag`.
/// `aad` binds the box to its context (e.g. a row id), so it cannot be moved elsewhere.
pub fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let nonce = random_bytes(12);
    let ct = cipher
        .encrypt(
            &Nonce::<Aes256Gcm>::try_from(&nonce[..]).expect("12 bytes"),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption cannot fail for in-memory buffers");
    let mut out = nonce;
    out.extend_from_slice(&ct);
    out
}

/// Opens a box made by [`seal`]; `None` when the key, context or bytes are wrong.
pub fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let cipher = Aes256Gcm::new(key.into());
    let (nonce, ct) = sealed.split_at(12);
    let nonce = Nonce::<Aes256Gcm>::try_from(nonce).ok()?;
    cipher.decrypt(&nonce, Payload { msg: ct, aad }).ok()
}

pub fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_roundtrip_and_context_binding() {
        let k = derive_key("a-secret-key-of-at-least-32-characters", "test");
        let boxed = seal(&k, b"hello", b"row-1");
        assert_eq!(open(&k, &boxed, b"row-1").as_deref(), Some(&b"hello"[..]));
        assert!(open(&k, &boxed, b"row-2").is_none());
        let k2 = derive_key("another-secret-key-of-32-characters!!", "test");
        assert!(open(&k2, &boxed, b"row-1").is_none());
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A box sealed by an earlier build (aes-gcm 0.10) still opens: sealed values in existing
    /// databases stay readable across upgrades of the AES-GCM crate.
    #[test]
    fn opens_a_box_sealed_by_an_earlier_build() {
        let k = derive_key("a-secret-key-of-at-least-32-characters", "kat");
        let boxed = unhex(
            "2e3a8e7ea118b0a4bafac50930bf358b303b26068968a01cd326e3dbbc43978d91cddbd34462c31a8f\
             7f1092995ba8a3b6d788073d",
        );
        assert_eq!(
            open(&k, &boxed, b"row-kat").as_deref(),
            Some(&b"sealed under aes-gcm 0.10"[..])
        );
        assert!(open(&k, &boxed, b"row-other").is_none());
    }

    /// The layout is plain AES-256-GCM: a 12-byte nonce, then ciphertext and 16-byte tag, with
    /// the context as associated data. Checked against another implementation (ring).
    #[test]
    fn seal_is_nonce_then_standard_aes_256_gcm() {
        use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce as RingNonce, UnboundKey};
        let k = derive_key("a-secret-key-of-at-least-32-characters", "layout");
        let boxed = seal(&k, b"plain text", b"ctx");
        assert_eq!(boxed.len(), 12 + b"plain text".len() + 16);
        let (nonce, ct) = boxed.split_at(12);
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).unwrap());
        let mut buf = ct.to_vec();
        let plain = key
            .open_in_place(
                RingNonce::try_assume_unique_for_key(nonce).unwrap(),
                Aad::from(b"ctx"),
                &mut buf,
            )
            .unwrap();
        assert_eq!(plain, b"plain text");
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn hmac_rfc4231_case2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
