//! TOTP secrets (sealed), backup codes (hashed) and partial tokens (hashed) of the 2FA step.

use crate::db::Result;
use crate::ids::{OrgId, UserId};
use rusqlite::{Connection, OptionalExtension, params};

pub struct TotpRow {
    pub secret_enc: Vec<u8>,
    pub enabled_at: Option<i64>,
    pub last_used_step: Option<i64>,
}

pub fn totp(conn: &Connection, user_id: &UserId) -> Result<Option<TotpRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT secret_enc, enabled_at, last_used_step FROM totp_secrets WHERE user_id = ?1",
        )?
        .query_row([user_id], |r| {
            Ok(TotpRow {
                secret_enc: r.get(0)?,
                enabled_at: r.get(1)?,
                last_used_step: r.get(2)?,
            })
        })
        .optional()?)
}

/// Stores a pending (not yet enabled) secret, replacing any earlier pending one.
pub fn put_pending(conn: &Connection, user_id: &UserId, secret_enc: &[u8], now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO totp_secrets (user_id, secret_enc, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id) DO UPDATE SET secret_enc = excluded.secret_enc,
             created_at = excluded.created_at, enabled_at = NULL, last_used_step = NULL
         WHERE totp_secrets.enabled_at IS NULL",
        params![user_id, secret_enc, now],
    )?;
    Ok(())
}

pub fn enable(conn: &Connection, user_id: &UserId, step: i64, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE totp_secrets SET enabled_at = ?2, last_used_step = ?3 WHERE user_id = ?1",
        params![user_id, now, step],
    )?;
    Ok(())
}

/// Records an accepted step; false if a concurrent request already used it (replay).
pub fn use_step(conn: &Connection, user_id: &UserId, step: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE totp_secrets SET last_used_step = ?2
         WHERE user_id = ?1 AND (last_used_step IS NULL OR last_used_step < ?2)",
        params![user_id, step],
    )?;
    Ok(n == 1)
}

/// Removes the secret and every backup code.
pub fn disable(conn: &Connection, user_id: &UserId) -> Result<()> {
    conn.execute("DELETE FROM totp_secrets WHERE user_id = ?1", [user_id])?;
    conn.execute("DELETE FROM backup_codes WHERE user_id = ?1", [user_id])?;
    Ok(())
}

/// Replaces the user's backup codes with these hashes.
pub fn replace_backup_codes(
    conn: &Connection,
    user_id: &UserId,
    hashes: &[String],
    now: i64,
) -> Result<()> {
    conn.execute("DELETE FROM backup_codes WHERE user_id = ?1", [user_id])?;
    let mut st = conn.prepare_cached(
        "INSERT INTO backup_codes (user_id, code_hash, created_at) VALUES (?1, ?2, ?3)",
    )?;
    for h in hashes {
        st.execute(params![user_id, h, now])?;
    }
    Ok(())
}

/// Marks an unused backup code used; true if there was one.
pub fn use_backup_code(conn: &Connection, user_id: &UserId, hash: &str, now: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE backup_codes SET used_at = ?3
         WHERE id = (SELECT id FROM backup_codes WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL LIMIT 1)",
        params![user_id, hash, now],
    )?;
    Ok(n == 1)
}

pub fn backup_codes_remaining(conn: &Connection, user_id: &UserId) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM backup_codes WHERE user_id = ?1 AND used_at IS NULL",
        [user_id],
        |r| r.get(0),
    )?)
}

#[derive(Debug, Clone)]
pub struct Partial {
    pub token_hash: String,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub purpose: String,
    pub auth_methods: Vec<String>,
    pub failed_attempts: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// An invitation the completed login accepts (the membership is made then).
    pub invitation_id: Option<String>,
}

impl Partial {
    pub fn is_usable(&self, now: i64) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }
}

#[allow(clippy::too_many_arguments)]
pub fn insert_partial(
    conn: &Connection,
    token_hash: &str,
    org_id: &OrgId,
    user_id: &UserId,
    purpose: &str,
    auth_methods: &[&str],
    invitation_id: Option<&str>,
    ip: &str,
    user_agent: Option<&str>,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO partial_tokens (token_hash, org_id, user_id, purpose, auth_methods, ip_address,
                                     user_agent, created_at, expires_at, invitation_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            token_hash,
            org_id,
            user_id,
            purpose,
            serde_json::to_string(auth_methods).unwrap_or_else(|_| "[]".into()),
            ip,
            user_agent,
            now,
            expires_at,
            invitation_id
        ],
    )?;
    Ok(())
}

pub fn find_partial(conn: &Connection, token_hash: &str) -> Result<Option<Partial>> {
    Ok(conn.prepare_cached(
        "SELECT token_hash, org_id, user_id, purpose, auth_methods, failed_attempts, expires_at, used_at,
                invitation_id
         FROM partial_tokens WHERE token_hash = ?1",
    )?
    .query_row([token_hash], |r| {
        let amr: String = r.get(4)?;
        Ok(Partial {
            token_hash: r.get(0)?,
            org_id: r.get(1)?,
            user_id: r.get(2)?,
            purpose: r.get(3)?,
            auth_methods: serde_json::from_str(&amr).unwrap_or_default(),
            failed_attempts: r.get(5)?,
            expires_at: r.get(6)?,
            used_at: r.get(7)?,
            invitation_id: r.get(8)?,
        })
    })
    .optional()?)
}

/// Counts a wrong code; returns the new count.
pub fn fail_partial(conn: &Connection, token_hash: &str) -> Result<i64> {
    Ok(conn.query_row(
        "UPDATE partial_tokens SET failed_attempts = failed_attempts + 1 WHERE token_hash = ?1
         RETURNING failed_attempts",
        [token_hash],
        |r| r.get(0),
    )?)
}

pub fn use_partial(conn: &Connection, token_hash: &str, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE partial_tokens SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL",
        params![token_hash, now],
    )?;
    Ok(())
}

/// Spends every unused partial token of the user (a reset, a claimed email, a new password:
/// a login half-done with the old credentials must not complete).
pub fn burn_partials(conn: &Connection, user_id: &UserId, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE partial_tokens SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL",
        params![user_id, now],
    )?;
    Ok(())
}

/// Deletes up to `limit` partial tokens that expired before `before` (used or not); returns
/// how many.
pub fn sweep_partials(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM partial_tokens WHERE token_hash IN (
             SELECT token_hash FROM partial_tokens WHERE expires_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit])?)
}
