//! The audit log: one row per security-relevant action.

use rusqlite::{Connection, params};

pub struct Entry<'a> {
    pub org_id: Option<&'a str>,
    pub actor_type: &'a str,
    pub actor_id: Option<&'a str>,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub metadata: serde_json::Value,
}

pub fn insert(conn: &Connection, id: &str, e: &Entry<'_>, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (id, org_id, actor_type, actor_id, action, target_type, target_id,
                                ip_address, user_agent, metadata, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        id,
        e.org_id,
        e.actor_type,
        e.actor_id,
        e.action,
        e.target_type,
        e.target_id,
        e.ip,
        e.user_agent,
        e.metadata.to_string(),
        now
    ])?;
    Ok(())
}
