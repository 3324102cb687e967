//! Org API keys (`pk_live_…`), stored only as SHA-256 hashes. Every query names the org first,
//! except the lookup by hash, which is how a request finds its org in the first place.

use crate::db::Result;
use crate::ids::{OrgId, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params};

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub org_id: OrgId,
    pub name: String,
    pub key_hash: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_by: Option<UserId>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl ApiKey {
    /// Not revoked and not past its expiry.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

const COLS: &str = "id, org_id, name, key_hash, prefix, scopes, created_by, created_at, \
                    expires_at, revoked_at, last_used_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let scopes: String = r.get(5)?;
    Ok(ApiKey {
        id: r.get(0)?,
        org_id: r.get(1)?,
        name: r.get(2)?,
        key_hash: r.get(3)?,
        prefix: r.get(4)?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        revoked_at: r.get(9)?,
        last_used_at: r.get(10)?,
    })
}

pub fn insert(conn: &Connection, k: &ApiKey) -> Result<()> {
    conn.execute(
        "INSERT INTO api_keys (id, org_id, name, key_hash, prefix, scopes, created_by, created_at,
                               expires_at, revoked_at, last_used_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            k.id,
            k.org_id,
            k.name,
            k.key_hash,
            k.prefix,
            serde_json::to_string(&k.scopes).unwrap_or_else(|_| "[]".into()),
            k.created_by,
            k.created_at,
            k.expires_at,
            k.revoked_at,
            k.last_used_at
        ],
    )?;
    Ok(())
}

/// Every key of the org (revoked and expired ones too), newest first.
pub fn list(conn: &Connection, org_id: &OrgId) -> Result<Vec<ApiKey>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM api_keys WHERE org_id = ?1 ORDER BY created_at DESC, id DESC LIMIT 1000"
    ))?;
    let rows = st.query_map([org_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One key of the org by id.
pub fn find(conn: &Connection, org_id: &OrgId, id: &str) -> Result<Option<ApiKey>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM api_keys WHERE org_id = ?1 AND id = ?2"
        ))?
        .query_row(params![org_id, id], from_row)
        .optional()?)
}

/// The unrevoked key with this hash (the caller checks expiry against its clock).
pub fn find_live_by_hash(conn: &Connection, key_hash: &str) -> Result<Option<ApiKey>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL"
        ))?
        .query_row([key_hash], from_row)
        .optional()?)
}

/// Revokes one key of the org; true if it was unrevoked.
pub fn revoke(conn: &Connection, org_id: &OrgId, id: &str, now: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE api_keys SET revoked_at = ?3 WHERE org_id = ?1 AND id = ?2 AND revoked_at IS NULL",
        params![org_id, id, now],
    )?;
    Ok(n > 0)
}

/// Records last uses gathered in memory: `(org_id, key_id, at)`. Never moves a time back.
pub fn touch_last_used(conn: &Connection, uses: &[(OrgId, String, i64)]) -> Result<()> {
    let mut st = conn.prepare_cached(
        "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?3)
         WHERE org_id = ?1 AND id = ?2",
    )?;
    for (org_id, id, at) in uses {
        st.execute(params![org_id, id, at])?;
    }
    Ok(())
}
