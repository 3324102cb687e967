//! One-time tokens sent by email (password reset, email verification, magic link), stored
//! only as hashes, single use.

use crate::db::Result;
use crate::ids::{OrgId, UserId};
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, Clone)]
pub struct EmailToken {
    pub token_hash: String,
    pub purpose: String,
    pub user_id: UserId,
    pub org_id: Option<OrgId>,
    pub email: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[allow(clippy::too_many_arguments)]
pub fn insert(
    conn: &Connection,
    token_hash: &str,
    purpose: &str,
    user_id: &UserId,
    org_id: Option<&OrgId>,
    email: &str,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO email_tokens (token_hash, purpose, user_id, org_id, email, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![token_hash, purpose, user_id, org_id, email, now, expires_at],
    )?;
    Ok(())
}

/// A usable token of `purpose` (unused, unexpired).
pub fn find_usable(
    conn: &Connection,
    token_hash: &str,
    purpose: &str,
    now: i64,
) -> Result<Option<EmailToken>> {
    Ok(conn.prepare_cached(
        "SELECT token_hash, purpose, user_id, org_id, email, expires_at, used_at FROM email_tokens
         WHERE token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3",
    )?
    .query_row(params![token_hash, purpose, now], |r| {
        Ok(EmailToken {
            token_hash: r.get(0)?,
            purpose: r.get(1)?,
            user_id: r.get(2)?,
            org_id: r.get(3)?,
            email: r.get(4)?,
            expires_at: r.get(5)?,
            used_at: r.get(6)?,
        })
    })
    .optional()?)
}

/// Marks it used; false if it was already (a concurrent use won).
pub fn use_token(conn: &Connection, token_hash: &str, now: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE email_tokens SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL",
        params![token_hash, now],
    )?;
    Ok(n == 1)
}

/// Kills every other unused token of this purpose for the user (after a reset, say).
pub fn burn_all(conn: &Connection, user_id: &UserId, purpose: &str, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE email_tokens SET used_at = ?3 WHERE user_id = ?1 AND purpose = ?2 AND used_at IS NULL",
        params![user_id, purpose, now],
    )?;
    Ok(())
}

/// Deletes up to `limit` tokens that expired before `before` (used or not); returns how many.
pub fn sweep_expired(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM email_tokens WHERE token_hash IN (
             SELECT token_hash FROM email_tokens WHERE expires_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit])?)
}
