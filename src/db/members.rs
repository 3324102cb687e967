//! An org's members: listing with filters, role/metadata/status changes, removal. Every query
//! takes the org id first.

use crate::db::Result;
use crate::db::users::{self, COLS, M_COLS, M_COLS_LEN, Membership, User, membership_at, user_at};
use crate::ids::{OrgId, UserId};
use crate::status::MemberStatus;
use rusqlite::{Connection, OptionalExtension, params};

pub struct ListFilter<'a> {
    pub status: Option<MemberStatus>,
    pub role: Option<&'a str>,
    /// Substring of the name or email.
    pub q: Option<&'a str>,
}

fn like(q: &str) -> String {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Members of `org_id`, newest first (joined_at, id), after the cursor position.
pub fn list(
    conn: &Connection,
    org_id: &OrgId,
    f: &ListFilter<'_>,
    after: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<(Membership, User)>> {
    let (at, id) = after.unwrap_or((i64::MAX, "~"));
    let mut st = conn.prepare_cached(&format!(
        "SELECT {M_COLS}, {COLS} FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.org_id = ?1
           AND (?2 IS NULL OR m.status = ?2)
           AND (?3 IS NULL OR m.role = ?3)
           AND (?4 IS NULL OR u.email LIKE ?4 ESCAPE '\\' OR u.name LIKE ?4 ESCAPE '\\')
           AND (m.joined_at < ?5 OR (m.joined_at = ?5 AND m.id < ?6))
         ORDER BY m.joined_at DESC, m.id DESC LIMIT ?7"
    ))?;
    let rows = st.query_map(
        params![org_id, f.status, f.role, f.q.map(like), at, id, limit],
        |r| Ok((membership_at(r, 0)?, user_at(r, M_COLS_LEN)?)),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Active owners of the org.
pub fn active_owner_count(conn: &Connection, org_id: &OrgId) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM memberships WHERE org_id = ?1 AND role = 'owner' AND status = 'active'",
        [org_id],
        |r| r.get(0),
    )?)
}

pub fn update(conn: &Connection, org_id: &OrgId, m: &Membership, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE memberships SET role = ?3, status = ?4, metadata = ?5, updated_at = ?6
         WHERE org_id = ?1 AND id = ?2",
        params![org_id, m.id, m.role, m.status, m.metadata.to_string(), now],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, org_id: &OrgId, user_id: &UserId) -> Result<bool> {
    let n = conn.execute(
        "DELETE FROM memberships WHERE org_id = ?1 AND user_id = ?2",
        params![org_id, user_id],
    )?;
    Ok(n > 0)
}

/// The membership of the user with this email in the org, if any.
pub fn find_by_email(conn: &Connection, org_id: &OrgId, email: &str) -> Result<Option<Membership>> {
    let user_id: Option<UserId> = conn
        .query_row("SELECT id FROM users WHERE email = ?1", [email], |r| {
            r.get(0)
        })
        .optional()?;
    match user_id {
        Some(uid) => users::find_membership(conn, org_id, &uid),
        None => Ok(None),
    }
}
