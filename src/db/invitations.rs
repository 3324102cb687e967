//! Invitations to join an org, by single-use token (stored only as a hash).

use crate::db::Result;
use crate::ids::{OrgId, UserId};
use crate::status::InvitationState;
use rusqlite::{Connection, OptionalExtension, Row, params};

#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: String,
    pub org_id: OrgId,
    pub email: String,
    pub role: String,
    pub state: crate::status::InvitationState,
    pub invited_by: Option<UserId>,
    pub created_at: i64,
    pub expires_at: i64,
    pub responded_at: Option<i64>,
    /// `email` (only the mailbox saw the token) or `app` (`sendEmail:false`: the inviter saw
    /// it, so accepting it proves nothing about the mailbox).
    pub delivery: String,
}

impl Invitation {
    /// The state a reader sees: a pending invitation past its expiry is `expired`.
    pub fn effective_state(&self, now: i64) -> InvitationState {
        if self.state == InvitationState::Pending && now >= self.expires_at {
            InvitationState::Expired
        } else {
            self.state
        }
    }

    pub fn is_open(&self, now: i64) -> bool {
        self.effective_state(now) == InvitationState::Pending
    }
}

const COLS: &str =
    "id, org_id, email, role, state, invited_by, created_at, expires_at, responded_at, delivery";

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Invitation> {
    Ok(Invitation {
        id: r.get(0)?,
        org_id: r.get(1)?,
        email: r.get(2)?,
        role: r.get(3)?,
        state: r.get(4)?,
        invited_by: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        responded_at: r.get(8)?,
        delivery: r.get(9)?,
    })
}

pub fn insert(conn: &Connection, inv: &Invitation, token_hash: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, state, invited_by, created_at, expires_at,
                                  delivery)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8, ?9)",
        params![
            inv.id,
            inv.org_id,
            inv.email,
            inv.role,
            token_hash,
            inv.invited_by,
            inv.created_at,
            inv.expires_at,
            inv.delivery
        ],
    )?;
    Ok(())
}

pub fn find(conn: &Connection, org_id: &OrgId, id: &str) -> Result<Option<Invitation>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM invitations WHERE org_id = ?1 AND id = ?2"
        ))?
        .query_row(params![org_id, id], from_row)
        .optional()?)
}

pub fn find_by_token(conn: &Connection, token_hash: &str) -> Result<Option<Invitation>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM invitations WHERE token_hash = ?1"
        ))?
        .query_row([token_hash], from_row)
        .optional()?)
}

/// An open (pending, unexpired) invitation for this email in the org.
pub fn find_open_for_email(
    conn: &Connection,
    org_id: &OrgId,
    email: &str,
    now: i64,
) -> Result<Option<Invitation>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM invitations WHERE org_id = ?1 AND email = ?2
           AND state = 'pending' AND expires_at > ?3 LIMIT 1"
        ))?
        .query_row(params![org_id, email, now], from_row)
        .optional()?)
}

/// The org's invitations, newest first; `state` filters on the effective state.
pub fn list(
    conn: &Connection,
    org_id: &OrgId,
    state: Option<InvitationState>,
    now: i64,
    limit: i64,
) -> Result<Vec<Invitation>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM invitations WHERE org_id = ?1
           AND (?2 IS NULL
                OR (?2 = 'expired' AND state = 'pending' AND expires_at <= ?3)
                OR (?2 = 'pending' AND state = 'pending' AND expires_at > ?3)
                OR (?2 NOT IN ('expired', 'pending') AND state = ?2))
         ORDER BY created_at DESC, id DESC LIMIT ?4"
    ))?;
    let rows = st.query_map(params![org_id, state, now, limit], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Open invitations addressed to `email`, across orgs (live orgs only).
pub fn open_for_email(conn: &Connection, email: &str, now: i64) -> Result<Vec<Invitation>> {
    let mut st = conn.prepare_cached(
        "SELECT i.id, i.org_id, i.email, i.role, i.state, i.invited_by, i.created_at, i.expires_at, i.responded_at,
                i.delivery
         FROM invitations i JOIN orgs o ON o.id = i.org_id
         WHERE i.email = ?1 AND i.state = 'pending' AND i.expires_at > ?2 AND o.deleted_at IS NULL
         ORDER BY i.created_at DESC LIMIT 100",
    )?;
    let rows = st.query_map(params![email, now], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Moves a pending invitation to `state`; true if it was pending.
pub fn respond(
    conn: &Connection,
    org_id: &OrgId,
    id: &str,
    state: InvitationState,
    accepted_by: Option<&UserId>,
    now: i64,
) -> Result<bool> {
    let n = conn.execute(
        "UPDATE invitations SET state = ?3, responded_at = ?4, accepted_by = ?5
         WHERE org_id = ?1 AND id = ?2 AND state = 'pending'",
        params![org_id, id, state, now, accepted_by],
    )?;
    Ok(n == 1)
}

/// A new token and expiry for a pending invitation (the old token dies).
pub fn renew(
    conn: &Connection,
    org_id: &OrgId,
    id: &str,
    token_hash: &str,
    expires_at: i64,
) -> Result<bool> {
    let n = conn.execute(
        "UPDATE invitations SET token_hash = ?3, expires_at = ?4
         WHERE org_id = ?1 AND id = ?2 AND state = 'pending'",
        params![org_id, id, token_hash, expires_at],
    )?;
    Ok(n == 1)
}

/// When an invitation closed: its expiry while pending (a resend moves it), else when it was
/// answered or revoked. The expression of the `invitations_closed` index
/// (migrations/003_upkeep.sql).
const CLOSED: &str =
    "CASE state WHEN 'pending' THEN expires_at ELSE COALESCE(responded_at, expires_at) END";

/// Deletes up to `limit` invitations that closed before `before` (expired, accepted,
/// declined or revoked); returns how many.
pub fn sweep_closed(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    Ok(conn.prepare_cached(&format!(
        "DELETE FROM invitations WHERE id IN (SELECT id FROM invitations WHERE {CLOSED} < ?1 LIMIT ?2)"
    ))?
    .execute(params![before, limit])?)
}
