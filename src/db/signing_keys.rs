//! JWT signing keys: the active one and the retired ones still published.

use crate::db::Result;
use rusqlite::{Connection, params};

pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub private_enc: Vec<u8>,
    pub retired_at: Option<i64>,
}

/// The active key and every retired key still published at `now`, newest first.
pub fn published(conn: &Connection, now: i64) -> Result<Vec<KeyRow>> {
    let mut st = conn.prepare_cached(
        "SELECT kid, alg, public_jwk, private_enc, retired_at FROM signing_keys
         WHERE retired_at IS NULL OR publish_until > ?1 ORDER BY created_at DESC",
    )?;
    let rows = st.query_map([now], |r| {
        Ok(KeyRow {
            kid: r.get(0)?,
            alg: r.get(1)?,
            public_jwk: r.get(2)?,
            private_enc: r.get(3)?,
            retired_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Retires the active key (published until `publish_until`) and makes a new key active.
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
        "UPDATE signing_keys SET retired_at = ?1, publish_until = ?2 WHERE retired_at IS NULL",
        params![now, publish_until],
    )?;
    conn.execute(
        "INSERT INTO signing_keys (kid, alg, public_jwk, private_enc, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![kid, alg, public_jwk, private_enc, now],
    )?;
    Ok(())
}
