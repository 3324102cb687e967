//! Org API keys outside the handlers: their prefix and scopes, and `KeyUsage`, which keeps
//! `lastUsedAt` in memory and writes it to SQLite in batches rather than on every `/public/*`
//! request (the request path notes a use; the maintenance loop flushes).

use crate::db::api_keys::{self, ApiKey};
use crate::db::{self, Db};
use crate::ids::OrgId;
use crate::state::AppState;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

pub const KEY_PREFIX: &str = "pk_live_";

/// What a key may do on `/public/*`; a key created without `scopes` gets all of them.
pub const SCOPES: &[&str] = &[
    "verify",
    "users:read",
    "users:write",
    "authenticate",
    "sessions:write",
    "invitations:write",
];

/// How often, at most, the request path writes gathered `lastUsedAt` values.
pub const FLUSH_EVERY_MS: i64 = 5_000;

/// Last uses of API keys not yet written: key id → (org id, when).
pub struct KeyUsage {
    pending: Mutex<HashMap<String, (OrgId, i64)>>,
    last_flush: AtomicI64,
}

impl KeyUsage {
    pub fn new(now: i64) -> KeyUsage {
        KeyUsage {
            pending: Mutex::new(HashMap::new()),
            last_flush: AtomicI64::new(now),
        }
    }

    /// Notes a use of the key (memory only).
    pub fn record(&self, org_id: &OrgId, key_id: &str, now: i64) {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(key_id) {
            Some((_, at)) => *at = (*at).max(now),
            None => {
                map.insert(key_id.to_string(), (org_id.clone(), now));
            }
        }
    }

    /// A use not yet written, if any.
    pub fn pending(&self, key_id: &str) -> Option<i64> {
        let map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key_id).map(|(_, at)| *at)
    }

    /// True for exactly one caller once [`FLUSH_EVERY_MS`] have passed since the last flush.
    fn claim_flush(&self, now: i64) -> bool {
        let last = self.last_flush.load(Ordering::Relaxed);
        now - last >= FLUSH_EVERY_MS
            && self
                .last_flush
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Writes every pending use in one transaction (outside the map's lock). On failure the
    /// uses go back into the map for the next flush.
    pub fn flush(&self, db: &Db) -> Result<usize, db::Error> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if taken.is_empty() {
            return Ok(0);
        }
        let uses: Vec<(OrgId, String, i64)> = taken
            .into_iter()
            .map(|(id, (org, at))| (org, id, at))
            .collect();
        match db.write(|tx| api_keys::touch_last_used(tx, &uses)) {
            Ok(()) => Ok(uses.len()),
            Err(e) => {
                for (org, id, at) in &uses {
                    self.record(org, id, *at);
                }
                Err(e)
            }
        }
    }
}

/// Flushes pending key uses, logging a failure (the maintenance loop's call).
pub fn flush_usage(state: &AppState) {
    if let Err(e) = state.key_usage.flush(&state.db) {
        state.log.error(
            "writing API key lastUsedAt failed",
            &[("error", json!(e.to_string()))],
        );
    }
}

/// Records a use and, at most every [`FLUSH_EVERY_MS`], flushes (the request path's call).
pub fn note_use(state: &AppState, key: &ApiKey, now: i64) {
    state.key_usage.record(&key.org_id, &key.id, now);
    if state.key_usage.claim_flush(now) {
        flush_usage(state);
    }
}
