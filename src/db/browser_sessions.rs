//! Browser sessions of the hosted pages: "this person is signed in at Latchkey" (or, in state
//! `pending_2fa`, "their password checked out and the second factor is due"). The cookie's
//! value is stored only as its hash. Org sessions made from one carry its id.

use crate::db::Result;
use crate::ids::{OrgId, SessionId, UserId};
use crate::status::BrowserState;
use rusqlite::{Connection, OptionalExtension, Row, params};

#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub id: String,
    pub user_id: UserId,
    pub state: crate::status::BrowserState,
    pub auth_methods: Vec<String>,
    pub failed_codes: i64,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl BrowserSession {
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
    pub fn is_active(&self, now: i64) -> bool {
        self.is_live(now) && self.state == BrowserState::Active
    }
}

const COLS: &str =
    "id, user_id, state, auth_methods, failed_codes, auth_time, created_at, expires_at, revoked_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<BrowserSession> {
    let amr: String = r.get(3)?;
    Ok(BrowserSession {
        id: r.get(0)?,
        user_id: r.get(1)?,
        state: r.get(2)?,
        auth_methods: serde_json::from_str(&amr).unwrap_or_default(),
        failed_codes: r.get(4)?,
        auth_time: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        revoked_at: r.get(8)?,
    })
}

#[allow(clippy::too_many_arguments)]
pub fn insert(
    conn: &Connection,
    id: &str,
    token_hash: &str,
    user_id: &UserId,
    state: BrowserState,
    amr: &[String],
    ip: &str,
    user_agent: Option<&str>,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO browser_sessions (id, token_hash, user_id, state, auth_methods, auth_time,
                                       ip_address, user_agent, created_at, last_seen_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?6, ?6, ?9)",
        params![
            id,
            token_hash,
            user_id,
            state,
            serde_json::to_string(amr).unwrap_or_else(|_| "[]".into()),
            now,
            ip,
            user_agent,
            expires_at
        ],
    )?;
    Ok(())
}

pub fn find_by_token(conn: &Connection, token_hash: &str) -> Result<Option<BrowserSession>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM browser_sessions WHERE token_hash = ?1"
        ))?
        .query_row([token_hash], from_row)
        .optional()?)
}

/// The second factor passed: the session is signed in, with `amr` and a new deadline.
pub fn activate(
    conn: &Connection,
    id: &str,
    amr: &[String],
    now: i64,
    expires_at: i64,
) -> Result<bool> {
    let n = conn.execute(
        "UPDATE browser_sessions SET state = 'active', auth_methods = ?2, auth_time = ?3,
                last_seen_at = ?3, expires_at = ?4
         WHERE id = ?1 AND state = 'pending_2fa' AND revoked_at IS NULL",
        params![
            id,
            serde_json::to_string(amr).unwrap_or_else(|_| "[]".into()),
            now,
            expires_at
        ],
    )?;
    Ok(n == 1)
}

/// Counts a wrong code on a pending session; returns the new count.
pub fn fail_code(conn: &Connection, id: &str) -> Result<i64> {
    Ok(conn.query_row(
        "UPDATE browser_sessions SET failed_codes = failed_codes + 1 WHERE id = ?1
         RETURNING failed_codes",
        [id],
        |r| r.get(0),
    )?)
}

/// Ends a browser session and every org session made from it; returns those sessions'
/// (id, org id).
pub fn revoke(
    conn: &Connection,
    id: &str,
    reason: &str,
    now: i64,
) -> Result<Vec<(SessionId, OrgId)>> {
    conn.execute(
        "UPDATE browser_sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    let mut st = conn.prepare_cached(
        "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
         WHERE browser_session_id = ?1 AND revoked_at IS NULL RETURNING id, org_id",
    )?;
    let rows = st.query_map(params![id, now, reason], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Ends every browser session of a user (a password change or reset, a claimed email).
pub fn revoke_all_for_user(
    conn: &Connection,
    user_id: &UserId,
    except: Option<&str>,
    now: i64,
) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE browser_sessions SET revoked_at = ?2
         WHERE user_id = ?1 AND revoked_at IS NULL AND (?3 IS NULL OR id != ?3)",
        params![user_id, now, except],
    )?)
}

/// Marks an org session as made from browser session `bs_id`.
pub fn link_session(conn: &Connection, session_id: &SessionId, bs_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET browser_session_id = ?2 WHERE id = ?1",
        params![session_id, bs_id],
    )?;
    Ok(())
}

/// A second factor enrolled during the sign-in: the session's methods grow.
pub fn set_auth_methods(
    conn: &Connection,
    id: &str,
    amr: &[String],
    now: i64,
    expires_at: i64,
) -> Result<()> {
    conn.execute(
        "UPDATE browser_sessions SET auth_methods = ?2, last_seen_at = ?3, expires_at = ?4
         WHERE id = ?1 AND revoked_at IS NULL",
        params![
            id,
            serde_json::to_string(amr).unwrap_or_else(|_| "[]".into()),
            now,
            expires_at
        ],
    )?;
    Ok(())
}

/// Ids of the org sessions made from browser session `bs_id`, revoked ones included.
pub fn org_sessions(conn: &Connection, bs_id: &str) -> Result<Vec<SessionId>> {
    Ok(conn
        .prepare("SELECT id FROM sessions WHERE browser_session_id = ?1")?
        .query_map([bs_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The browser session an org session was made from, if any.
pub fn of_session(conn: &Connection, session_id: &SessionId) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT browser_session_id FROM sessions WHERE id = ?1",
            [session_id],
            |r| r.get(0),
        )
        .optional()
        .map(Option::flatten)?)
}

/// Deletes up to `limit` browser sessions that ended (expired or revoked) before `before`;
/// the org sessions made from them keep their own lifetimes. Returns how many.
pub fn sweep_ended(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM browser_sessions WHERE id IN (
             SELECT id FROM browser_sessions
             WHERE expires_at < ?1 OR (revoked_at IS NOT NULL AND revoked_at < ?1) LIMIT ?2)",
        )?
        .execute(params![before, limit])?)
}
