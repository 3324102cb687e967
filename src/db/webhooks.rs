//! Webhook endpoints of an org. The secret is stored sealed (see `outbox::seal_secret`); the
//! HTTP CRUD (`/org/webhooks`) builds on these functions.

use crate::db::Result;
use crate::ids::OrgId;
use rusqlite::{Connection, OptionalExtension, Row, params};

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub org_id: OrgId,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub secret_enc: Vec<u8>,
    pub is_active: bool,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What [`insert_endpoint`] writes; the secret is already sealed.
pub struct NewEndpoint<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub url: &'a str,
    pub events: &'a [String],
    pub description: Option<&'a str>,
    pub secret_enc: &'a [u8],
}

const COLS: &str = "id, org_id, url, events, description, secret_enc, is_active, disabled_reason,
                    created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Endpoint> {
    let events: String = r.get(3)?;
    Ok(Endpoint {
        id: r.get(0)?,
        org_id: r.get(1)?,
        url: r.get(2)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        description: r.get(4)?,
        secret_enc: r.get(5)?,
        is_active: r.get::<_, i64>(6)? != 0,
        disabled_reason: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

pub fn insert_endpoint(conn: &Connection, e: &NewEndpoint<'_>, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO webhook_endpoints (id, org_id, url, events, description, secret_enc,
                                        is_active, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)",
    )?
    .execute(params![
        e.id,
        e.org_id,
        e.url,
        serde_json::to_string(e.events).unwrap_or_else(|_| "[]".into()),
        e.description,
        e.secret_enc,
        now
    ])?;
    Ok(())
}

/// One endpoint of one org (tenant isolation: the org id is part of the lookup).
pub fn get(conn: &Connection, org_id: &OrgId, id: &str) -> Result<Option<Endpoint>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM webhook_endpoints WHERE org_id = ?1 AND id = ?2"
        ))?
        .query_row(params![org_id, id], from_row)
        .optional()?)
}

/// Any endpoint by id: for the delivery worker, which acts on behalf of every org.
pub fn get_any(conn: &Connection, id: &str) -> Result<Option<Endpoint>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM webhook_endpoints WHERE id = ?1"
        ))?
        .query_row(params![id], from_row)
        .optional()?)
}

/// Ids of the org's active endpoints subscribed to `event` (by name or `"*"`).
pub fn subscribed(conn: &Connection, org_id: &OrgId, event: &str) -> Result<Vec<String>> {
    let mut st = conn.prepare_cached(
        "SELECT id FROM webhook_endpoints
         WHERE org_id = ?1 AND is_active = 1
           AND EXISTS (SELECT 1 FROM json_each(webhook_endpoints.events)
                       WHERE json_each.value = ?2 OR json_each.value = '*')
         ORDER BY id",
    )?;
    let rows = st.query_map(params![org_id, event], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Turns an endpoint off (e.g. after `410 Gone`); deliveries to it stop.
pub fn disable(conn: &Connection, id: &str, reason: &str, now: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE webhook_endpoints SET is_active = 0, disabled_reason = ?2, updated_at = ?3
         WHERE id = ?1",
    )?
    .execute(params![id, reason, now])?;
    Ok(())
}

/// The org's endpoints, newest first.
pub fn list(conn: &Connection, org_id: &OrgId) -> Result<Vec<Endpoint>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM webhook_endpoints WHERE org_id = ?1 ORDER BY created_at DESC, id DESC LIMIT 500"
    ))?;
    let rows = st.query_map([org_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Writes url, events, description and the active flag (re-enabling clears the reason).
pub fn update(conn: &Connection, org_id: &OrgId, e: &Endpoint, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE webhook_endpoints SET url = ?3, events = ?4, description = ?5, is_active = ?6,
                disabled_reason = CASE WHEN ?6 = 1 THEN NULL ELSE disabled_reason END, updated_at = ?7
         WHERE org_id = ?1 AND id = ?2",
        params![
            org_id,
            e.id,
            e.url,
            serde_json::to_string(&e.events).unwrap_or_else(|_| "[]".into()),
            e.description,
            e.is_active,
            now
        ],
    )?;
    Ok(())
}

pub fn set_secret(
    conn: &Connection,
    org_id: &OrgId,
    id: &str,
    secret_enc: &[u8],
    now: i64,
) -> Result<()> {
    conn.execute(
        "UPDATE webhook_endpoints SET secret_enc = ?3, updated_at = ?4 WHERE org_id = ?1 AND id = ?2",
        params![org_id, id, secret_enc, now],
    )?;
    Ok(())
}

/// Deletes the endpoint; its pending deliveries go with it (cascade).
pub fn delete(conn: &Connection, org_id: &OrgId, id: &str) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM webhook_endpoints WHERE org_id = ?1 AND id = ?2",
        params![org_id, id],
    )? == 1)
}
