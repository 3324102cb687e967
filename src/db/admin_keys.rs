//! Operator keys (`sk_admin_…`), stored only as SHA-256 hashes.

use crate::db::Result;
use rusqlite::{Connection, OptionalExtension, params};

pub fn insert(
    conn: &Connection,
    id: &str,
    name: &str,
    key_hash: &str,
    prefix: &str,
    now: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO admin_keys (id, name, key_hash, prefix, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, name, key_hash, prefix, now],
    )?;
    Ok(())
}

/// The id and stored hash of the live key with this hash.
pub fn find_live(conn: &Connection, key_hash: &str) -> Result<Option<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, key_hash FROM admin_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
        )?
        .query_row([key_hash], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}
