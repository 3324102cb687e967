//! The `events` log and the `outbox` (webhook deliveries and emails). Rows are written in the
//! transaction of their cause; the worker claims due rows with a lease (a future
//! `next_attempt_at`), so a delivery in flight when the process dies is simply due again later.

use crate::db::Result;
use crate::ids::OrgId;
use rusqlite::{Connection, OptionalExtension, Row, params};

pub const KIND_WEBHOOK: &str = "webhook";
pub const KIND_EMAIL: &str = "email";

pub fn insert_event(
    conn: &Connection,
    id: &str,
    org_id: Option<&OrgId>,
    event: &str,
    payload: &str,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (id, org_id, event, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, org_id, event, payload, now])?;
    Ok(())
}

/// A new outbox row, due at once.
pub struct NewRow<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub org_id: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub endpoint_id: Option<&'a str>,
    pub payload: &'a str,
}

pub fn insert(conn: &Connection, r: &NewRow<'_>, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (id, kind, org_id, event_id, endpoint_id, payload, status, attempts,
                             next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7)",
    )?
    .execute(params![
        r.id,
        r.kind,
        r.org_id,
        r.event_id,
        r.endpoint_id,
        r.payload,
        now
    ])?;
    Ok(())
}

/// Lanes with due rows, most overdue first: `Some(endpoint id)` for webhooks, `None` for email.
pub fn due_lanes(conn: &Connection, now: i64, limit: usize) -> Result<Vec<Option<String>>> {
    let mut st = conn.prepare_cached(
        "SELECT endpoint_id, MIN(next_attempt_at) AS due FROM outbox
         WHERE status = 'pending' AND next_attempt_at <= ?1
         GROUP BY endpoint_id ORDER BY due LIMIT ?2",
    )?;
    let rows = st.query_map(params![now, limit as i64], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The earliest `next_attempt_at` of any pending row.
pub fn next_due(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'")?
        .query_row([], |r| r.get(0))?)
}

/// A row claimed for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub org_id: Option<OrgId>,
    pub event_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// Claims the most overdue row of a lane (`endpoint` `None` = email) by moving its
/// `next_attempt_at` to `lease_until`: if the process dies mid-attempt, the row is due again
/// then (at-least-once).
pub fn claim_next(
    conn: &Connection,
    endpoint: Option<&str>,
    now: i64,
    lease_until: i64,
) -> Result<Option<Claimed>> {
    let sql = if endpoint.is_some() {
        "UPDATE outbox SET next_attempt_at = ?3
         WHERE id = (SELECT id FROM outbox
                     WHERE status = 'pending' AND next_attempt_at <= ?2 AND endpoint_id = ?1
                     ORDER BY next_attempt_at, id LIMIT 1)
         RETURNING id, kind, org_id, event_id, endpoint_id, payload, attempts"
    } else {
        "UPDATE outbox SET next_attempt_at = ?3
         WHERE id = (SELECT id FROM outbox
                     WHERE status = 'pending' AND next_attempt_at <= ?2 AND endpoint_id IS NULL
                       AND ?1 IS NULL
                     ORDER BY next_attempt_at, id LIMIT 1)
         RETURNING id, kind, org_id, event_id, endpoint_id, payload, attempts"
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params![endpoint, now, lease_until], |r| {
            Ok(Claimed {
                id: r.get(0)?,
                kind: r.get(1)?,
                org_id: r.get(2)?,
                event_id: r.get(3)?,
                endpoint_id: r.get(4)?,
                payload: r.get(5)?,
                attempts: r.get(6)?,
            })
        })
        .optional()?)
}

/// Gives back a claimed row that was never attempted: due again now.
pub fn release(conn: &Connection, id: &str, now: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1 AND status = 'pending'",
    )?
    .execute(params![id, now])?;
    Ok(())
}

pub fn event_name(conn: &Connection, event_id: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT event FROM events WHERE id = ?1")?
        .query_row(params![event_id], |r| r.get(0))
        .optional()?)
}

/// The result of one attempt, as written back.
pub struct Attempt<'a> {
    /// `succeeded`, `failed` (no more tries) or `pending` (retry at `next_attempt_at`).
    pub status: &'a str,
    /// Attempts made, this one included.
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub status_code: Option<i64>,
    pub error: Option<&'a str>,
    pub delivered_at: Option<i64>,
}

pub fn record(conn: &Connection, id: &str, a: &Attempt<'_>) -> Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET status = ?2, attempts = ?3,
                next_attempt_at = COALESCE(?4, next_attempt_at),
                last_status_code = ?5, last_error = ?6,
                delivered_at = COALESCE(?7, delivered_at)
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        a.status,
        a.attempts,
        a.next_attempt_at,
        a.status_code,
        a.error,
        a.delivered_at
    ])?;
    Ok(())
}

/// Pending rows and the creation time of the oldest one.
pub fn backlog(conn: &Connection) -> Result<(i64, Option<i64>)> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// Rows with `status` (`succeeded`, `failed`); a metrics gauge.
pub fn count_with_status(conn: &Connection, status: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM outbox WHERE status = ?1")?
        .query_row([status], |r| r.get(0))?)
}

/// An outbox row as the operator sees it (never the email body).
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub kind: String,
    pub org_id: Option<OrgId>,
    pub event_id: Option<String>,
    pub event: Option<String>,
    pub endpoint_id: Option<String>,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

const ITEM_COLS: &str = "o.id, o.kind, o.org_id, o.event_id, e.event, o.endpoint_id, o.payload,
     o.status, o.attempts, o.next_attempt_at, o.last_status_code, o.last_error, o.created_at,
     o.delivered_at";

fn item_from_row(r: &Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: r.get(0)?,
        kind: r.get(1)?,
        org_id: r.get(2)?,
        event_id: r.get(3)?,
        event: r.get(4)?,
        endpoint_id: r.get(5)?,
        payload: r.get(6)?,
        status: r.get(7)?,
        attempts: r.get(8)?,
        next_attempt_at: r.get(9)?,
        last_status_code: r.get(10)?,
        last_error: r.get(11)?,
        created_at: r.get(12)?,
        delivered_at: r.get(13)?,
    })
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Item>> {
    Ok(conn.prepare_cached(&format!(
        "SELECT {ITEM_COLS} FROM outbox o LEFT JOIN events e ON e.id = o.event_id WHERE o.id = ?1"
    ))?
    .query_row(params![id], item_from_row)
    .optional()?)
}

/// Filters of [`list`]; `None` means any.
#[derive(Default)]
pub struct ListFilter<'a> {
    pub status: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub endpoint_id: Option<&'a str>,
    pub org_id: Option<&'a str>,
}

/// Newest first, keyset-paginated on `(created_at, id)`.
pub fn list(
    conn: &Connection,
    f: &ListFilter<'_>,
    after: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<Item>> {
    let (at, id) = after.unwrap_or((i64::MAX, ""));
    let mut st = conn.prepare_cached(&format!(
        "SELECT {ITEM_COLS} FROM outbox o LEFT JOIN events e ON e.id = o.event_id
         WHERE (?1 IS NULL OR o.status = ?1) AND (?2 IS NULL OR o.kind = ?2)
           AND (?3 IS NULL OR o.endpoint_id = ?3) AND (?4 IS NULL OR o.org_id = ?4)
           AND (o.created_at < ?5 OR (o.created_at = ?5 AND (?6 = '' OR o.id < ?6)))
         ORDER BY o.created_at DESC, o.id DESC LIMIT ?7"
    ))?;
    let rows = st.query_map(
        params![f.status, f.kind, f.endpoint_id, f.org_id, at, id, limit],
        item_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Up to `limit` email rows whose payload has no `format` marker (plain text, written by an
/// older Latchkey): `(id, status, payload)`.
pub fn plain_emails(conn: &Connection, limit: i64) -> Result<Vec<(String, String, String)>> {
    let mut st = conn.prepare_cached(
        "SELECT id, status, payload FROM outbox
         WHERE kind = 'email'
           AND CASE WHEN json_valid(payload) THEN json_type(payload, '$.format') IS NULL ELSE 1 END
         ORDER BY id LIMIT ?1",
    )?;
    let rows = st.query_map(params![limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Sets `PRAGMA secure_delete` on this connection (1: overwrite deleted content); returns the
/// value it had.
pub fn set_secure_delete(conn: &Connection, on: i64) -> Result<i64> {
    let was: i64 = conn.pragma_query_value(None, "secure_delete", |r| r.get(0))?;
    conn.pragma_update(None, "secure_delete", on)?;
    Ok(was)
}

/// Replaces a row's payload (sealing or redacting an email).
pub fn set_payload(conn: &Connection, id: &str, payload: &str) -> Result<()> {
    conn.prepare_cached("UPDATE outbox SET payload = ?2 WHERE id = ?1")?
        .execute(params![id, payload])?;
    Ok(())
}

/// Makes a row due now (manual retry). False if there is no such row.
pub fn retry_now(conn: &Connection, id: &str, now: i64) -> Result<bool> {
    let n = conn
        .prepare_cached("UPDATE outbox SET status = 'pending', next_attempt_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(n > 0)
}

/// Deletes up to `batch` finished rows created before `cutoff`; returns how many.
pub fn sweep_rows(conn: &Connection, cutoff: i64, batch: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox
             WHERE status IN ('succeeded', 'failed') AND created_at < ?1 LIMIT ?2)",
        )?
        .execute(params![cutoff, batch])?)
}

/// Deletes up to `batch` events created before `cutoff` that no remaining outbox row refers to.
pub fn sweep_events(conn: &Connection, cutoff: i64, batch: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM events WHERE id IN (
             SELECT ev.id FROM events ev
             WHERE ev.created_at < ?1
               AND ev.id NOT IN (SELECT o.event_id FROM outbox o
                                 WHERE o.event_id IS NOT NULL AND o.created_at < ?1)
             LIMIT ?2)",
        )?
        .execute(params![cutoff, batch])?)
}
