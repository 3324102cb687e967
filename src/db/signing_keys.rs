//! JWT signing keys: one active key per algorithm and the retired ones still published.

use crate::db::Result;
use rusqlite::{Connection, OptionalExtension, params};

pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub private_enc: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// The active keys and every retired key still published at `now`, newest first.
pub fn published(conn: &Connection, now: i64) -> Result<Vec<KeyRow>> {
    let mut st = conn.prepare_cached(
        "SELECT kid, alg, public_jwk, private_enc, created_at, retired_at FROM signing_keys
         WHERE retired_at IS NULL OR publish_until > ?1 ORDER BY created_at DESC, rowid DESC",
    )?;
    let rows = st.query_map([now], |r| {
        Ok(KeyRow {
            kid: r.get(0)?,
            alg: r.get(1)?,
            public_jwk: r.get(2)?,
            private_enc: r.get(3)?,
            created_at: r.get(4)?,
            retired_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The kid of the active key of `alg`, if there is one.
pub fn active_kid(conn: &Connection, alg: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT kid FROM signing_keys WHERE alg = ?1 AND retired_at IS NULL",
            [alg],
            |r| r.get(0),
        )
        .optional()?)
}

/// Retires the active key of `alg`, if any (published until `publish_until`), and makes a new
/// key of that algorithm active. Keys of other algorithms are untouched.
pub fn rotate_in(
    conn: &Connection,
    kid: &str,
    alg: &str,
    public_jwk: &str,
    private_enc: &[u8],
    now: i64,
    publish_until: i64,
) -> Result<()> {
    conn.execute(
        "UPDATE signing_keys SET retired_at = ?1, publish_until = ?2
         WHERE retired_at IS NULL AND alg = ?3",
        params![now, publish_until, alg],
    )?;
    conn.execute(
        "INSERT INTO signing_keys (kid, alg, public_jwk, private_enc, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![kid, alg, public_jwk, private_enc, now],
    )?;
    Ok(())
}

/// Retires one active key (an algorithm no longer in use), published until `publish_until`.
pub fn retire(conn: &Connection, kid: &str, now: i64, publish_until: i64) -> Result<()> {
    conn.execute(
        "UPDATE signing_keys SET retired_at = ?2, publish_until = ?3
         WHERE kid = ?1 AND retired_at IS NULL",
        params![kid, now, publish_until],
    )?;
    Ok(())
}

/// Replaces a key's stored public JWK (the same key with more members: an `x5c` added to an
/// RSA key made before certificates were published).
pub fn set_public_jwk(conn: &Connection, kid: &str, public_jwk: &str) -> Result<()> {
    conn.execute(
        "UPDATE signing_keys SET public_jwk = ?2 WHERE kid = ?1",
        params![kid, public_jwk],
    )?;
    Ok(())
}
