//! Password hashes brought from another system (API.md §14, docs/api.md "Importing password
//! hashes"): bcrypt, PBKDF2, scrypt, Firebase's modified scrypt, LDAP SSHA, and argon2 made
//! elsewhere. They are stored in `users.password_hash` as given — every format names itself by
//! its prefix — and checked here, on the hashing pool (`Hasher::verify`), until the first
//! successful sign-in rewrites them as argon2id with the configured parameters.
//!
//! An imported hash carries its own cost, so a hostile or careless import could make one
//! verify take minutes or gigabytes. Every cost is bounded when the hash is accepted
//! ([`validate_import`]) and again when a stored one is read ([`Imported::parse`]): bcrypt cost
//! ≤ 14, PBKDF2 ≤ 10 M iterations, scrypt (and Firebase's) 128·r·N ≤ 64 MiB and ≤ 256 MiB of
//! work over `p`, argon2 m ≤ 64 MiB, t ≤ 10, p ≤ 16. Digests are compared in constant time.

use crate::error::{ApiError, ErrorCode};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use pbkdf2::sha2::{Sha256, Sha512};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// bcrypt's cost is a power of two: 14 is 16,384 rounds of its key schedule, about a second.
pub const BCRYPT_MAX_COST: u32 = 14;
/// PBKDF2 iterations (OWASP asks 600,000 for SHA-256, 1,300,000 for SHA-1).
pub const PBKDF2_MAX_ITERATIONS: u32 = 10_000_000;
/// scrypt's memory, 128·r·N bytes, for `$scrypt$` and Firebase's scrypt.
pub const SCRYPT_MAX_MEMORY: u64 = 64 << 20;
/// scrypt's work, 128·r·N·p: `p` runs the memory-hard loop `p` times.
pub const SCRYPT_MAX_WORK: u64 = 256 << 20;
/// argon2 made elsewhere: memory (KiB), passes and lanes.
pub const ARGON2_MAX_MEMORY_KIB: u32 = 64 * 1024;
pub const ARGON2_MAX_ITERATIONS: u32 = 10;
pub const ARGON2_MAX_PARALLELISM: u32 = 16;
/// Longest hash string accepted (a Firebase hash with its 64-byte signer key is ~250).
pub const MAX_HASH_CHARS: usize = 1024;

/// The `password_hash_type` words, exactly WorkOS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashType {
    Bcrypt,
    FirebaseScrypt,
    Ssha,
    Scrypt,
    Pbkdf2,
    Argon2,
}

impl HashType {
    pub const ALL: [HashType; 6] = [
        HashType::Bcrypt,
        HashType::FirebaseScrypt,
        HashType::Ssha,
        HashType::Scrypt,
        HashType::Pbkdf2,
        HashType::Argon2,
    ];

    pub fn parse(s: &str) -> Option<HashType> {
        HashType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HashType::Bcrypt => "bcrypt",
            HashType::FirebaseScrypt => "firebase-scrypt",
            HashType::Ssha => "ssha",
            HashType::Scrypt => "scrypt",
            HashType::Pbkdf2 => "pbkdf2",
            HashType::Argon2 => "argon2",
        }
    }

    /// What a hash of this type looks like, for a 400's message.
    fn expected(self) -> &'static str {
        match self {
            HashType::Bcrypt => "$2a$, $2b$ or $2y$ followed by a two-digit cost and 53 characters",
            HashType::FirebaseScrypt => {
                "$firebase-scrypt$hash=…$salt=…$sk=…$ss=…$r=…$m=… (base64 values)"
            }
            HashType::Ssha => "{SSHA}, {SSHA256} or {SSHA512} followed by base64(digest ‖ salt)",
            HashType::Scrypt => "$scrypt$ln=…,r=…,p=…$salt$hash (PHC string)",
            HashType::Pbkdf2 => {
                "$pbkdf2-sha256$i=…$salt$hash (PHC, also -sha512 and sha1's $pbkdf2$), passlib's \
                 $pbkdf2-sha256$rounds$salt$hash or Django's pbkdf2_sha256$rounds$salt$hash"
            }
            HashType::Argon2 => "$argon2id$, $argon2i$ or $argon2d$ PHC string",
        }
    }
}

/// Checks an imported `hash` declared as `hash_type` and returns the form to store in
/// `users.password_hash`; a 400 `invalid_request` names `passwordHashType` or `passwordHash`.
/// The field names of the camelCase API; [`validate_import_as`] takes others.
pub fn validate_import(hash: &str, hash_type: &str) -> Result<String, ApiError> {
    validate_import_as(hash, hash_type, "passwordHash", "passwordHashType")
}

/// [`validate_import`] naming the caller's own fields in its 400s (`password_hash` and
/// `password_hash_type` on the WorkOS-shaped API, `users[3].passwordHash` on the bulk import).
/// Parses only: no password is hashed, so it is cheap to run before a write transaction.
pub fn validate_import_as(
    hash: &str,
    hash_type: &str,
    hash_field: &str,
    type_field: &str,
) -> Result<String, ApiError> {
    let Some(declared) = HashType::parse(hash_type) else {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            type_field,
            "must be one of bcrypt, firebase-scrypt, ssha, scrypt, pbkdf2, argon2",
        ));
    };
    let bad = |msg: String| ApiError::field(ErrorCode::InvalidRequest, hash_field, msg);
    let hash = hash.trim();
    if hash.is_empty() {
        return Err(bad("must not be empty".into()));
    }
    if hash.len() > MAX_HASH_CHARS {
        return Err(bad(format!("must be at most {MAX_HASH_CHARS} characters")));
    }
    let found = if declared == HashType::Argon2 {
        argon2_kind(hash).map_err(bad)?
    } else {
        Imported::parse(hash).map_err(bad)?.map(|i| i.kind())
    };
    match found {
        Some(t) if t == declared => Ok(hash.to_string()),
        Some(t) => Err(bad(format!(
            "is a {} hash, not {}",
            t.as_str(),
            declared.as_str()
        ))),
        None => Err(bad(format!(
            "is not a {} hash; expected {}",
            declared.as_str(),
            declared.expected()
        ))),
    }
}

/// `Some(Argon2)` for an argon2 PHC string within the bounds (verified later by the
/// `Hasher`'s own argon2 path), `Err` for one beyond them or malformed, `None` otherwise.
fn argon2_kind(hash: &str) -> Result<Option<HashType>, String> {
    use argon2::password_hash::phc::PasswordHash;
    use argon2::{Algorithm, Params, Version};
    if !["$argon2id$", "$argon2i$", "$argon2d$"]
        .iter()
        .any(|p| hash.starts_with(p))
    {
        return Ok(Imported::parse(hash)?.map(|i| i.kind()));
    }
    let parsed =
        PasswordHash::new(hash).map_err(|e| format!("is not a valid argon2 PHC string ({e})"))?;
    Algorithm::new(parsed.algorithm).map_err(|_| "names an unknown argon2 variant")?;
    if let Some(v) = parsed.version {
        Version::try_from(v).map_err(|_| "names an unknown argon2 version")?;
    }
    let params =
        Params::try_from(&parsed).map_err(|e| format!("has invalid argon2 parameters ({e})"))?;
    // The salt is decoded (base64 of 8-48 bytes) by PasswordHash::new.
    let (Some(_), Some(out)) = (parsed.salt, parsed.hash) else {
        return Err("must include a salt and a hash".into());
    };
    if out.len() < 4 || out.len() > 64 {
        return Err("must have a 4-64 byte hash".into());
    }
    if params.m_cost() > ARGON2_MAX_MEMORY_KIB {
        return Err(format!("m must be at most {ARGON2_MAX_MEMORY_KIB} (KiB)"));
    }
    if params.t_cost() > ARGON2_MAX_ITERATIONS {
        return Err(format!("t must be at most {ARGON2_MAX_ITERATIONS}"));
    }
    if params.p_cost() > ARGON2_MAX_PARALLELISM {
        return Err(format!("p must be at most {ARGON2_MAX_PARALLELISM}"));
    }
    Ok(Some(HashType::Argon2))
}

/// The PRF of a PBKDF2 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prf {
    Sha1,
    Sha256,
    Sha512,
}

/// The digest of an LDAP salted hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sha {
    Sha1,
    Sha256,
    Sha512,
}

impl Sha {
    fn len(self) -> usize {
        match self {
            Sha::Sha1 => 20,
            Sha::Sha256 => 32,
            Sha::Sha512 => 64,
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Sha::Sha1 => run::<Sha1>(parts),
            Sha::Sha256 => run::<Sha256>(parts),
            Sha::Sha512 => run::<Sha512>(parts),
        }
    }
}

/// A stored hash of a format this module verifies, parsed, with its costs within the bounds.
#[derive(Debug, Clone)]
pub(crate) enum Imported {
    /// The modular-crypt string itself (`$2b$12$…`), which the `bcrypt` crate reads.
    Bcrypt(String),
    Pbkdf2 {
        prf: Prf,
        rounds: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// Firebase's scrypt: the project's signer key encrypted under a key derived from the
    /// password. `salt` is the user's salt followed by the project's salt separator.
    FirebaseScrypt {
        mem_cost: u8,
        rounds: u32,
        salt: Vec<u8>,
        signer_key: Vec<u8>,
        hash: Vec<u8>,
    },
    Ssha {
        sha: Sha,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl Imported {
    /// `Ok(None)` when `stored` is not one of these formats (an argon2 PHC string, or
    /// anything else); `Err` with the reason when it has a format's prefix but does not parse
    /// or exceeds a bound.
    pub(crate) fn parse(stored: &str) -> Result<Option<Imported>, String> {
        let s = stored;
        if ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p)) {
            return parse_bcrypt(s).map(Some);
        }
        if let Some(rest) = s.strip_prefix("$firebase-scrypt$") {
            return parse_firebase(rest).map(Some);
        }
        if let Some(rest) = s.strip_prefix("$scrypt$") {
            return parse_scrypt(rest).map(Some);
        }
        for (prefix, prf) in [
            ("$pbkdf2$", Prf::Sha1),
            ("$pbkdf2-sha1$", Prf::Sha1),
            ("$pbkdf2-sha256$", Prf::Sha256),
            ("$pbkdf2-sha512$", Prf::Sha512),
        ] {
            if let Some(rest) = s.strip_prefix(prefix) {
                return parse_pbkdf2_phc(prf, rest).map(Some);
            }
        }
        for (prefix, prf) in [("pbkdf2_sha256$", Prf::Sha256), ("pbkdf2_sha1$", Prf::Sha1)] {
            if let Some(rest) = s.strip_prefix(prefix) {
                return parse_pbkdf2_django(prf, rest).map(Some);
            }
        }
        // LDAP scheme names are case-insensitive; the longer names first.
        let upper: String = s.chars().take(9).collect::<String>().to_ascii_uppercase();
        for (prefix, sha) in [
            ("{SSHA512}", Sha::Sha512),
            ("{SSHA256}", Sha::Sha256),
            ("{SSHA}", Sha::Sha1),
        ] {
            if upper.starts_with(prefix) {
                return parse_ssha(sha, &s[prefix.len()..]).map(Some);
            }
        }
        Ok(None)
    }

    pub(crate) fn kind(&self) -> HashType {
        match self {
            Imported::Bcrypt(_) => HashType::Bcrypt,
            Imported::Pbkdf2 { .. } => HashType::Pbkdf2,
            Imported::Scrypt { .. } => HashType::Scrypt,
            Imported::FirebaseScrypt { .. } => HashType::FirebaseScrypt,
            Imported::Ssha { .. } => HashType::Ssha,
        }
    }

    /// Whether `password` is the one this hash was made from. Costs are bounded by `parse`;
    /// the expected digest is compared in constant time.
    pub(crate) fn verify(&self, password: &str) -> bool {
        let pw = password.as_bytes();
        match self {
            // The crate compares in constant time; like every bcrypt it reads only the first
            // 72 bytes of the password, as the system that made the hash did.
            Imported::Bcrypt(s) => bcrypt::verify(pw, s).unwrap_or(false),
            Imported::Pbkdf2 {
                prf,
                rounds,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                match prf {
                    Prf::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(pw, salt, *rounds, &mut out),
                    Prf::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(pw, salt, *rounds, &mut out),
                    Prf::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(pw, salt, *rounds, &mut out),
                }
                out.ct_eq(hash).into()
            }
            Imported::Scrypt {
                log_n,
                r,
                p,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                scrypt_into(pw, salt, *log_n, *r, *p, &mut out) && bool::from(out.ct_eq(hash))
            }
            Imported::FirebaseScrypt {
                mem_cost,
                rounds,
                salt,
                signer_key,
                hash,
            } => {
                let mut key = [0u8; 32];
                if !scrypt_into(pw, salt, *mem_cost, *rounds, 1, &mut key) {
                    return false;
                }
                firebase_encrypt(&key, signer_key).ct_eq(hash).into()
            }
            Imported::Ssha { sha, salt, hash } => sha.digest(&[pw, salt]).ct_eq(hash).into(),
        }
    }
}

/// scrypt into `out`; false if the parameters are refused (they were checked by `parse`).
fn scrypt_into(pw: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32, out: &mut [u8]) -> bool {
    scrypt::Params::new(log_n, r, p)
        .is_ok_and(|params| scrypt::scrypt(pw, salt, &params, out).is_ok())
}

/// Firebase's last step (firebase/scrypt, `scryptenc_buf_saltlen`): AES-256 in CTR mode
/// under the derived key, the 128-bit counter starting at zero (nonce 0, block counter 0, big
/// endian), applied to the signer key.
fn firebase_encrypt(key: &[u8; 32], signer_key: &[u8]) -> Vec<u8> {
    use aes::cipher::{KeyIvInit, StreamCipher};
    let mut buf = signer_key.to_vec();
    let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new(key.into(), &[0u8; 16].into());
    cipher.apply_keystream(&mut buf);
    buf
}

/// Base64 as the formats write it: the standard alphabet with or without padding, also
/// URL-safe (`-_`, as Firebase's CLI sometimes exports) and passlib's "ab64" (`.` for `+`).
fn b64(s: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let normal: String = s
        .chars()
        .map(|c| match c {
            '.' | '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    LENIENT.decode(normal).ok()
}

fn b64_field(name: &str, s: &str, min: usize, max: usize) -> Result<Vec<u8>, String> {
    match b64(s) {
        Some(v) if v.len() >= min && v.len() <= max => Ok(v),
        Some(_) => Err(format!("{name} must be base64 of {min}-{max} bytes")),
        None => Err(format!("{name} is not valid base64")),
    }
}

fn parse_bcrypt(s: &str) -> Result<Imported, String> {
    let parts: bcrypt::HashParts = s.parse().map_err(|_| {
        "is not a valid bcrypt hash ($2b$ + two-digit cost + 22 salt and 31 hash characters)"
            .to_string()
    })?;
    let cost = parts.get_cost();
    if !(4..=BCRYPT_MAX_COST).contains(&cost) {
        return Err(format!(
            "bcrypt cost must be 4 to {BCRYPT_MAX_COST}, not {cost}"
        ));
    }
    Ok(Imported::Bcrypt(s.to_string()))
}

/// `i=<rounds>[,l=<len>]$<salt>$<hash>` (PHC, the `pbkdf2` crate's) or passlib's
/// `<rounds>$<salt>$<hash>`.
fn parse_pbkdf2_phc(prf: Prf, rest: &str) -> Result<Imported, String> {
    let parts: Vec<&str> = rest.split('$').collect();
    let [params, salt, hash] = parts[..] else {
        return Err("must be $pbkdf2-<digest>$i=<rounds>$<salt>$<hash>".into());
    };
    let rounds = if params.contains('=') {
        let mut rounds = None;
        let mut len = None;
        for kv in params.split(',') {
            let slot = match kv.split_once('=') {
                Some(("i", v)) => (&mut rounds, v),
                Some(("l", v)) => (&mut len, v),
                _ => return Err(format!("has an unknown PBKDF2 parameter {kv:?}")),
            };
            if slot.0.replace(slot.1).is_some() {
                return Err(format!("gives the PBKDF2 parameter in {kv:?} twice"));
            }
        }
        let rounds = rounds.ok_or("must give the rounds as i=<n>")?;
        if let Some(len) = len {
            let hash_len = b64(hash).map(|h| h.len());
            if len.parse::<usize>().ok() != hash_len {
                return Err("l must be the length of the hash in bytes".into());
            }
        }
        rounds
    } else {
        params
    };
    pbkdf2_parts(prf, rounds, b64_field("the salt", salt, 1, 256)?, hash)
}

/// Django's `pbkdf2_sha256$<rounds>$<salt>$<base64 hash>`: the salt is used as text.
fn parse_pbkdf2_django(prf: Prf, rest: &str) -> Result<Imported, String> {
    let parts: Vec<&str> = rest.split('$').collect();
    let [rounds, salt, hash] = parts[..] else {
        return Err("must be pbkdf2_sha256$<rounds>$<salt>$<hash>".into());
    };
    if salt.is_empty() || salt.len() > 256 {
        return Err("the salt must be 1-256 characters".into());
    }
    pbkdf2_parts(prf, rounds, salt.as_bytes().to_vec(), hash)
}

fn pbkdf2_parts(prf: Prf, rounds: &str, salt: Vec<u8>, hash: &str) -> Result<Imported, String> {
    let rounds: u32 = rounds
        .parse()
        .map_err(|_| "the rounds must be a positive integer")?;
    if rounds == 0 || rounds > PBKDF2_MAX_ITERATIONS {
        return Err(format!(
            "PBKDF2 rounds must be 1 to {PBKDF2_MAX_ITERATIONS}, not {rounds}"
        ));
    }
    let hash = b64_field("the hash", hash, 10, 64)?;
    Ok(Imported::Pbkdf2 {
        prf,
        rounds,
        salt,
        hash,
    })
}

/// scrypt's memory and work within the bounds.
fn scrypt_bounds(log_n: u32, r: u32, p: u32) -> Result<(), String> {
    if log_n == 0 || log_n > 40 || r == 0 || p == 0 {
        return Err("scrypt needs N = 2^ln with ln ≥ 1, r ≥ 1 and p ≥ 1".into());
    }
    let memory = 128u64
        .checked_mul(u64::from(r))
        .and_then(|m| m.checked_mul(1u64 << log_n));
    match memory {
        Some(m) if m <= SCRYPT_MAX_MEMORY => {}
        _ => {
            return Err(format!(
                "scrypt memory 128·r·N must be at most {} MiB",
                SCRYPT_MAX_MEMORY >> 20
            ));
        }
    }
    let work = memory.and_then(|m| m.checked_mul(u64::from(p)));
    match work {
        Some(w) if w <= SCRYPT_MAX_WORK => Ok(()),
        _ => Err(format!(
            "scrypt work 128·r·N·p must be at most {} MiB",
            SCRYPT_MAX_WORK >> 20
        )),
    }
}

/// `ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>` (PHC, as the `scrypt` crate and passlib write it).
fn parse_scrypt(rest: &str) -> Result<Imported, String> {
    let parts: Vec<&str> = rest.split('$').collect();
    let [params, salt, hash] = parts[..] else {
        return Err("must be $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>".into());
    };
    let (mut ln, mut r, mut p) = (None, None, None);
    for kv in params.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("has a malformed scrypt parameter {kv:?}"))?;
        let v: u32 = v
            .parse()
            .map_err(|_| format!("scrypt parameter {k} must be an integer"))?;
        let slot = match k {
            "ln" => &mut ln,
            "r" => &mut r,
            "p" => &mut p,
            _ => return Err(format!("has an unknown scrypt parameter {k:?}")),
        };
        if slot.replace(v).is_some() {
            return Err(format!("gives the scrypt parameter {k} twice"));
        }
    }
    let (Some(ln), Some(r), Some(p)) = (ln, r, p) else {
        return Err("must give ln, r and p".into());
    };
    scrypt_bounds(ln, r, p)?;
    Ok(Imported::Scrypt {
        log_n: ln as u8,
        r,
        p,
        salt: b64_field("the salt", salt, 1, 256)?,
        hash: b64_field("the hash", hash, 10, 64)?,
    })
}

/// WorkOS's encoding of a Firebase hash with its project's parameters:
/// `hash=<b64>$salt=<b64>$sk=<b64 signer key>$ss=<b64 salt separator>$r=<rounds>$m=<mem_cost>`
/// after `$firebase-scrypt$`, in any order; `,` may separate them as well as `$`.
fn parse_firebase(rest: &str) -> Result<Imported, String> {
    let (mut hash, mut salt, mut sk, mut ss, mut r, mut m) = (None, None, None, None, None, None);
    for kv in rest.split(['$', ',']).filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("has a malformed Firebase parameter {kv:?}"))?;
        let slot = match k {
            "hash" => &mut hash,
            "salt" => &mut salt,
            "sk" => &mut sk,
            "ss" => &mut ss,
            "r" => &mut r,
            "m" => &mut m,
            _ => return Err(format!("has an unknown Firebase parameter {k:?}")),
        };
        if slot.replace(v).is_some() {
            return Err(format!("gives the Firebase parameter {k} twice"));
        }
    }
    let (Some(hash), Some(salt), Some(sk), Some(ss), Some(r), Some(m)) = (hash, salt, sk, ss, r, m)
    else {
        return Err("must give hash, salt, sk, ss, r and m".into());
    };
    let rounds: u32 = r.parse().map_err(|_| "r (rounds) must be an integer")?;
    let mem_cost: u32 = m.parse().map_err(|_| "m (mem_cost) must be an integer")?;
    scrypt_bounds(mem_cost, rounds, 1)?;
    let signer_key = b64_field("sk", sk, 1, 256)?;
    let hash = b64_field("hash", hash, 1, 256)?;
    if hash.len() != signer_key.len() {
        return Err("hash must be as long as the signer key it encrypts".into());
    }
    let mut salt = b64_field("salt", salt, 1, 256)?;
    // The separator may be empty in principle; Firebase's default is "Bw==".
    salt.extend(b64(ss).ok_or("ss is not valid base64")?);
    Ok(Imported::FirebaseScrypt {
        mem_cost: mem_cost as u8,
        rounds,
        salt,
        signer_key,
        hash,
    })
}

/// `base64(digest(password ‖ salt) ‖ salt)` after the scheme name.
fn parse_ssha(sha: Sha, rest: &str) -> Result<Imported, String> {
    let raw = b64(rest).ok_or("is not valid base64 after the scheme")?;
    if raw.len() <= sha.len() || raw.len() > sha.len() + 256 {
        return Err(format!(
            "must be base64 of the {}-byte digest followed by a 1-256 byte salt",
            sha.len()
        ));
    }
    let (hash, salt) = raw.split_at(sha.len());
    Ok(Imported::Ssha {
        sha,
        salt: salt.to_vec(),
        hash: hash.to_vec(),
    })
}

#[cfg(test)]
mod tests;
