//! The signing-key store: loads the active key and the retired keys still published from the
//! database, creates the first key on first start, rotates, and reloads when another process
//! (`latchkey keys rotate`) changed them. Private halves are sealed with a key derived from
//! `security.secret_key`, bound to the key's kid.

use crate::config::Algorithm;
use crate::crypto;
use crate::db::{self, Db, signing_keys};
use crate::tokens::{self, AccessClaims, Expiry, SigningKey, TokenError, VerifyingKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

struct Loaded {
    active: Arc<SigningKey>,
    verifiers: Vec<VerifyingKey>,
}

pub struct KeyStore {
    seal_key: [u8; 32],
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

/// Makes a new key active, retiring the current one; the retired public key stays in the
/// JWKS for `publish_for_ms` (the access-token lifetime plus a margin). Returns the new kid.
pub fn rotate(
    db: &Db,
    secret: &str,
    alg: Algorithm,
    now: i64,
    publish_for_ms: i64,
) -> Result<String, KeyError> {
    let key = SigningKey::generate(alg);
    let sealed = crypto::seal(
        &seal_key(secret),
        &key.private_bytes(),
        key.kid().as_bytes(),
    );
    let jwk = key.public_jwk().to_string();
    db.write(|tx| {
        signing_keys::rotate_in(
            tx,
            key.kid(),
            alg.as_str(),
            &jwk,
            &sealed,
            now,
            now + publish_for_ms,
        )
    })?;
    Ok(key.kid().to_string())
}

impl KeyStore {
    /// Loads the keys; creates the first one (or rotates to `alg` when the configured
    /// algorithm changed).
    pub fn open(
        db: &Db,
        secret: &str,
        alg: Algorithm,
        now: i64,
        publish_for_ms: i64,
    ) -> Result<KeyStore, KeyError> {
        let seal_key = seal_key(secret);
        let rows = db.read(|c| signing_keys::published(c, now))?;
        let active_alg = rows
            .iter()
            .find(|r| r.retired_at.is_none())
            .map(|r| r.alg.clone());
        if active_alg.as_deref() != Some(alg.as_str()) {
            rotate(db, secret, alg, now, publish_for_ms)?;
        }
        let loaded = Self::load(db, &seal_key, now)?;
        Ok(KeyStore {
            seal_key,
            loaded: RwLock::new(loaded),
            last_reload: AtomicI64::new(now),
            verified: VerifiedCache::new(),
        })
    }

    fn load(db: &Db, seal_key: &[u8; 32], now: i64) -> Result<Loaded, KeyError> {
        let rows = db.read(|c| signing_keys::published(c, now))?;
        let mut active = None;
        let mut verifiers = Vec::new();
        for row in rows {
            let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk)
                .map_err(|e| KeyError::Key(format!("{}: {e}", row.kid)))?;
            let vk = VerifyingKey::from_jwk(&jwk).map_err(|e| KeyError::Key(e.to_string()))?;
            verifiers.push(vk);
            if row.retired_at.is_none() {
                let alg = Algorithm::parse(&row.alg)
                    .ok_or_else(|| KeyError::Key(format!("unknown algorithm {}", row.alg)))?;
                let bytes = crypto::open(seal_key, &row.private_enc, row.kid.as_bytes())
                    .ok_or_else(|| KeyError::Unseal(row.kid.clone()))?;
                let sk = SigningKey::from_private_bytes(alg, &bytes)
                    .map_err(|e| KeyError::Key(e.to_string()))?;
                active = Some(Arc::new(sk));
            }
        }
        let active = active.ok_or_else(|| KeyError::Key("no active signing key".into()))?;
        Ok(Loaded { active, verifiers })
    }

    /// Re-reads the keys from the database (after a rotation by another process, and to drop
    /// retired keys whose publication ended).
    pub fn reload(&self, db: &Db, now: i64) -> Result<(), KeyError> {
        let loaded = Self::load(db, &self.seal_key, now)?;
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        self.last_reload.store(now, Ordering::Relaxed);
        Ok(())
    }

    pub fn active_kid(&self) -> String {
        let l = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        l.active.kid().to_string()
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

    /// The JWKS document, read fresh from the database so a rotation shows at once.
    pub fn jwks(&self, db: &Db, now: i64) -> Result<serde_json::Value, KeyError> {
        let rows = db.read(|c| signing_keys::published(c, now))?;
        let mut keys = Vec::new();
        for row in rows {
            let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk)
                .map_err(|e| KeyError::Key(format!("{}: {e}", row.kid)))?;
            keys.push(VerifyingKey::from_jwk(&jwk).map_err(|e| KeyError::Key(e.to_string()))?);
        }
        Ok(tokens::jwks(&keys))
    }
}
