//! The signing-key store: one active key per algorithm in use — the configured
//! `tokens.algorithm` (access tokens) and RS256 (id_tokens; one key when the configured
//! algorithm is RS256) — and the retired keys still published. It creates missing keys on
//! start, rotates per algorithm, and reloads when another process (`latchkey keys rotate`)
//! changed them. Private halves are sealed with a key derived from `security.secret_key`,
//! bound to the key's kid.

use crate::config::Algorithm;
use crate::crypto;
use crate::db::{self, Db, signing_keys};
use crate::tokens::{self, AccessClaims, Expiry, SigningKey, TokenError, VerifyingKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

struct Loaded {
    /// The active key of the configured algorithm: signs access tokens.
    active: Arc<SigningKey>,
    /// The active RS256 key (the same key as `active` when the configured algorithm is RS256).
    rs256: Arc<SigningKey>,
    verifiers: Vec<VerifyingKey>,
}

pub struct KeyStore {
    seal_key: [u8; 32],
    /// The configured `tokens.algorithm`.
    primary: Algorithm,
    loaded: RwLock<Loaded>,
    last_reload: AtomicI64,
    verified: VerifiedCache,
}

/// Tokens whose signature already checked out, by SHA-256 of the token, so a token used for
/// many requests costs one signature check (≈50 µs) instead of one per request. Expiry, issuer
/// and audience are still checked on every hit; a different token (edited, forged) misses.
struct VerifiedCache {
    shards: Vec<Mutex<HashMap<[u8; 32], AccessClaims>>>,
}

const CACHE_SHARDS: usize = 16;
/// Entries per shard before the shard is emptied (bounded memory, no LRU bookkeeping).
const CACHE_PER_SHARD: usize = 4096;

impl VerifiedCache {
    fn new() -> Self {
        VerifiedCache {
            shards: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], AccessClaims>> {
        self.shards[key[0] as usize % CACHE_SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &[u8; 32]) -> Option<AccessClaims> {
        self.shard(key).get(key).cloned()
    }

    fn put(&self, key: [u8; 32], claims: AccessClaims) {
        let mut shard = self.shard(&key);
        if shard.len() >= CACHE_PER_SHARD {
            shard.clear();
        }
        shard.insert(key, claims);
    }
}

#[derive(Debug)]
pub enum KeyError {
    Db(db::Error),
    /// A stored private key could not be opened: the secret key changed, or the row was edited.
    Unseal(String),
    Key(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Db(e) => write!(f, "{e}"),
            KeyError::Unseal(kid) => write!(
                f,
                "signing key {kid} cannot be decrypted: security.secret_key differs from the one it was sealed with"
            ),
            KeyError::Key(e) => write!(f, "signing key: {e}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl From<db::Error> for KeyError {
    fn from(e: db::Error) -> Self {
        KeyError::Db(e)
    }
}

fn seal_key(secret: &str) -> [u8; 32] {
    crypto::derive_key(secret, "signing-key-seal")
}

/// A fresh key of `alg`, sealed, with the public JWK to store (RS256: with `x5c`).
struct NewKey {
    kid: String,
    alg: Algorithm,
    jwk: String,
    sealed: Vec<u8>,
}

fn new_key(secret: &str, alg: Algorithm, now: i64) -> Result<NewKey, KeyError> {
    let key = SigningKey::generate(alg);
    let jwk = key
        .publishable_jwk(now)
        .map_err(|e| KeyError::Key(e.to_string()))?;
    let sealed = crypto::seal(
        &seal_key(secret),
        &key.private_bytes(),
        key.kid().as_bytes(),
    );
    Ok(NewKey {
        kid: key.kid().to_string(),
        alg,
        jwk: jwk.to_string(),
        sealed,
    })
}

/// The algorithms that have an active key when `primary` is configured.
fn algorithms_in_use(primary: Algorithm) -> Vec<Algorithm> {
    if primary == Algorithm::RS256 {
        vec![Algorithm::RS256]
    } else {
        vec![primary, Algorithm::RS256]
    }
}

/// Makes a new key of `alg` active, retiring the active key of that algorithm (keys of other
/// algorithms are untouched); the retired public key stays in the JWKS for `publish_for_ms`
/// (the access-token lifetime plus a margin). Returns the new kid. `alg` is the configured
/// `tokens.algorithm` or RS256 (`latchkey keys rotate [--alg RS256]`).
pub fn rotate(
    db: &Db,
    secret: &str,
    alg: Algorithm,
    now: i64,
    publish_for_ms: i64,
) -> Result<String, KeyError> {
    let key = new_key(secret, alg, now)?;
    db.write(|tx| {
        signing_keys::rotate_in(
            tx,
            &key.kid,
            key.alg.as_str(),
            &key.jwk,
            &key.sealed,
            now,
            now + publish_for_ms,
        )
    })?;
    Ok(key.kid)
}

/// Brings the stored keys to what `primary` needs: an active key for each algorithm in use
/// (created if missing), no active key of another algorithm (retired: a changed
/// `tokens.algorithm`), and an `x5c` on the active RS256 key (added to one made before
/// certificates were published).
fn prepare(
    db: &Db,
    secret: &str,
    primary: Algorithm,
    now: i64,
    publish_for_ms: i64,
) -> Result<(), KeyError> {
    let rows = db.read(|c| signing_keys::published(c, now))?;
    let active: Vec<&signing_keys::KeyRow> =
        rows.iter().filter(|r| r.retired_at.is_none()).collect();
    let in_use = algorithms_in_use(primary);
    // Generated outside the write transaction (RSA takes a while).
    let mut missing = Vec::new();
    for alg in &in_use {
        if !active.iter().any(|r| r.alg == alg.as_str()) {
            missing.push(new_key(secret, *alg, now)?);
        }
    }
    let mut certified = Vec::new();
    for row in active.iter().filter(|r| r.alg == Algorithm::RS256.as_str()) {
        let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk)
            .map_err(|e| KeyError::Key(format!("{}: {e}", row.kid)))?;
        let vk = VerifyingKey::from_jwk(&jwk).map_err(|e| KeyError::Key(e.to_string()))?;
        if !vk.has_certificate() {
            let key = unseal(&seal_key(secret), row, Algorithm::RS256)?;
            let jwk = key
                .publishable_jwk(row.created_at)
                .map_err(|e| KeyError::Key(e.to_string()))?;
            certified.push((row.kid.clone(), jwk.to_string()));
        }
    }
    let retire: Vec<String> = active
        .iter()
        .filter(|r| !in_use.iter().any(|a| a.as_str() == r.alg))
        .map(|r| r.kid.clone())
        .collect();
    if missing.is_empty() && certified.is_empty() && retire.is_empty() {
        return Ok(());
    }
    db.write(|tx| {
        for key in &missing {
            // Another process starting at the same time may have made one meanwhile.
            if signing_keys::active_kid(tx, key.alg.as_str())?.is_none() {
                signing_keys::rotate_in(
                    tx,
                    &key.kid,
                    key.alg.as_str(),
                    &key.jwk,
                    &key.sealed,
                    now,
                    now + publish_for_ms,
                )?;
            }
        }
        for kid in &retire {
            signing_keys::retire(tx, kid, now, now + publish_for_ms)?;
        }
        for (kid, jwk) in &certified {
            signing_keys::set_public_jwk(tx, kid, jwk)?;
        }
        Ok::<_, KeyError>(())
    })
}

fn unseal(
    seal_key: &[u8; 32],
    row: &signing_keys::KeyRow,
    alg: Algorithm,
) -> Result<SigningKey, KeyError> {
    let bytes = crypto::open(seal_key, &row.private_enc, row.kid.as_bytes())
        .ok_or_else(|| KeyError::Unseal(row.kid.clone()))?;
    let key =
        SigningKey::from_private_bytes(alg, &bytes).map_err(|e| KeyError::Key(e.to_string()))?;
    if key.kid() != row.kid {
        return Err(KeyError::Key(format!(
            "signing key {}: the private key does not match its kid",
            row.kid
        )));
    }
    Ok(key)
}

impl KeyStore {
    /// Loads the keys of the configured algorithm `alg` and RS256; creates what is missing
    /// (on first start, and the RS256 key of a database from before id_tokens), and retires
    /// the active key of an algorithm no longer configured.
    pub fn open(
        db: &Db,
        secret: &str,
        alg: Algorithm,
        now: i64,
        publish_for_ms: i64,
    ) -> Result<KeyStore, KeyError> {
        let seal_key = seal_key(secret);
        prepare(db, secret, alg, now, publish_for_ms)?;
        let loaded = Self::load(db, &seal_key, alg, now)?;
        Ok(KeyStore {
            seal_key,
            primary: alg,
            loaded: RwLock::new(loaded),
            last_reload: AtomicI64::new(now),
            verified: VerifiedCache::new(),
        })
    }

    fn load(
        db: &Db,
        seal_key: &[u8; 32],
        primary: Algorithm,
        now: i64,
    ) -> Result<Loaded, KeyError> {
        let rows = db.read(|c| signing_keys::published(c, now))?;
        let mut active = None;
        let mut rs256 = None;
        let mut verifiers = Vec::new();
        for row in rows {
            let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk)
                .map_err(|e| KeyError::Key(format!("{}: {e}", row.kid)))?;
            let vk = VerifyingKey::from_jwk(&jwk).map_err(|e| KeyError::Key(e.to_string()))?;
            let alg = vk.alg();
            if alg.as_str() != row.alg {
                return Err(KeyError::Key(format!(
                    "signing key {}: stored as {} but its JWK is {alg}",
                    row.kid, row.alg
                )));
            }
            verifiers.push(vk);
            // Only the keys that sign are unsealed (an active key of another algorithm, left
            // by a process with another configuration, is only published).
            if row.retired_at.is_none() && (alg == primary || alg == Algorithm::RS256) {
                let sk = Arc::new(unseal(seal_key, &row, alg)?);
                if alg == Algorithm::RS256 {
                    rs256 = Some(sk.clone());
                }
                if alg == primary {
                    active = Some(sk);
                }
            }
        }
        let missing = |alg: Algorithm| KeyError::Key(format!("no active {alg} signing key"));
        Ok(Loaded {
            active: active.ok_or_else(|| missing(primary))?,
            rs256: rs256.ok_or_else(|| missing(Algorithm::RS256))?,
            verifiers,
        })
    }

    /// Re-reads the keys from the database (after a rotation by another process, and to drop
    /// retired keys whose publication ended).
    pub fn reload(&self, db: &Db, now: i64) -> Result<(), KeyError> {
        let loaded = Self::load(db, &self.seal_key, self.primary, now)?;
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        self.last_reload.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// The kid of the key that signs access tokens (the configured algorithm).
    pub fn active_kid(&self) -> String {
        let l = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        l.active.kid().to_string()
    }

    /// The kid of the active RS256 key (what [`KeyStore::sign_rs256`] puts in the header).
    pub fn rs256_kid(&self) -> String {
        let l = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        l.rs256.kid().to_string()
    }

    /// Signs any JSON object (an id_token's claims) as a compact JWS with the active RS256 key:
    /// header `{"alg":"RS256","typ":"JWT","kid"}`, the claims exactly as given (the caller
    /// sets `iss`, `aud`, `iat`, `exp`, … from `state.clock`). Signed by `ring`.
    pub fn sign_rs256(&self, claims: &serde_json::Value) -> Result<String, KeyError> {
        let key = self
            .loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .rs256
            .clone();
        key.sign_json(claims)
            .map_err(|e| KeyError::Key(format!("RS256 signing: {e}")))
    }

    /// The claims of `token` if it is an RS256 JWS whose signature checks against a published
    /// RS256 key (active or retired), else `None`. Nothing else is checked — not `exp`, nor
    /// `iss`, `aud` or `iat`: the caller checks the claims it relies on (for `id_token_hint`,
    /// at least `iss` and `aud`; an RS256 access token, when `tokens.algorithm` is RS256,
    /// passes here too). No reload is attempted for an unknown kid: this server signed with a
    /// key it had loaded.
    pub fn verify_rs256_ignoring_expiry(&self, token: &str) -> Option<serde_json::Value> {
        let l = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        let rs: Vec<VerifyingKey> = l
            .verifiers
            .iter()
            .filter(|k| k.alg() == Algorithm::RS256)
            .cloned()
            .collect();
        drop(l);
        tokens::verify_signature_only(&rs, token).ok()
    }

    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let active = self
            .loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .active
            .clone();
        active.sign(claims)
    }

    /// Verifies an access token; an unknown kid triggers one reload (at most once a second),
    /// so a key rotated by the CLI is honoured at once.
    pub fn verify(
        &self,
        db: &Db,
        token: &str,
        issuer: &str,
        audience: &str,
        now_ms: i64,
    ) -> Result<AccessClaims, TokenError> {
        self.verify_with(db, token, issuer, audience, now_ms, Expiry::Enforce)
    }

    /// Like [`KeyStore::verify`], but a token past its `exp` is accepted (logout ends the
    /// session of an expired but genuine token). The signature is checked against the keys
    /// published at `now_ms` (the server's clock): nothing from the unverified token decides
    /// which keys are loaded or when the store reloads.
    pub fn verify_ignoring_expiry(
        &self,
        db: &Db,
        token: &str,
        issuer: &str,
        audience: &str,
        now_ms: i64,
    ) -> Result<AccessClaims, TokenError> {
        self.verify_with(db, token, issuer, audience, now_ms, Expiry::Ignore)
    }

    fn verify_with(
        &self,
        db: &Db,
        token: &str,
        issuer: &str,
        audience: &str,
        now_ms: i64,
        expiry: Expiry,
    ) -> Result<AccessClaims, TokenError> {
        let now_secs = now_ms.div_euclid(1000);
        let key = crypto::sha256(token.as_bytes());
        if let Some(c) = self.verified.get(&key) {
            return if expiry == Expiry::Enforce && c.exp <= now_secs {
                Err(TokenError::Expired)
            } else if c.iat > now_secs + tokens::FUTURE_SKEW_SECS {
                Err(TokenError::NotYetValid)
            } else if c.iss != issuer {
                Err(TokenError::WrongIssuer)
            } else if c.aud != audience {
                Err(TokenError::WrongAudience)
            } else {
                Ok(c)
            };
        }
        let result = self.verify_uncached(db, token, issuer, audience, now_ms, expiry);
        if let Ok(c) = &result {
            self.verified.put(key, c.clone());
        }
        result
    }

    fn verify_uncached(
        &self,
        db: &Db,
        token: &str,
        issuer: &str,
        audience: &str,
        now_ms: i64,
        expiry: Expiry,
    ) -> Result<AccessClaims, TokenError> {
        let now_secs = now_ms.div_euclid(1000);
        let check = |keys: &[VerifyingKey]| match expiry {
            Expiry::Enforce => tokens::verify(keys, token, issuer, audience, now_secs),
            Expiry::Ignore => {
                tokens::verify_ignoring_expiry(keys, token, issuer, audience, now_secs)
            }
        };
        let first = {
            let l = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            check(&l.verifiers)
        };
        match first {
            Err(TokenError::UnknownKey)
                if now_ms - self.last_reload.load(Ordering::Relaxed) >= 1000 =>
            {
                if self.reload(db, now_ms).is_err() {
                    return Err(TokenError::UnknownKey);
                }
                let l = self.loaded.read().unwrap_or_else(|p| p.into_inner());
                check(&l.verifiers)
            }
            other => other,
        }
    }

    /// The JWKS document, read fresh from the database so a rotation shows at once: the
    /// active keys first (the configured algorithm's, then RS256), then the retired keys
    /// still published (again the configured algorithm's first); newest first within each.
    pub fn jwks(&self, db: &Db, now: i64) -> Result<serde_json::Value, KeyError> {
        self.jwks_for(db, now, false)
    }

    /// [`KeyStore::jwks`], or with `only_rs256` its RS256 keys alone (a JWKS for clients
    /// that only take RS256).
    pub fn jwks_for(
        &self,
        db: &Db,
        now: i64,
        only_rs256: bool,
    ) -> Result<serde_json::Value, KeyError> {
        let mut rows = db.read(|c| signing_keys::published(c, now))?;
        // Stable: within each group the database's order (newest first) is kept.
        rows.sort_by_key(|r| (r.retired_at.is_some(), r.alg != self.primary.as_str()));
        let mut keys = Vec::new();
        for row in rows {
            if only_rs256 && row.alg != Algorithm::RS256.as_str() {
                continue;
            }
            let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk)
                .map_err(|e| KeyError::Key(format!("{}: {e}", row.kid)))?;
            keys.push(VerifyingKey::from_jwk(&jwk).map_err(|e| KeyError::Key(e.to_string()))?);
        }
        Ok(tokens::jwks(&keys))
    }
}
