//! Invitations to join an org, by emailed token (stored only as its hash). Minimal: what
//! `POST /public/invitations` needs — inserting, and finding a pending one for an email.

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub role: String,
    pub token_hash: String,
    pub state: String,
    pub invited_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

pub fn insert(conn: &Connection, i: &Invitation) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, state, invited_by,
                                  created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            i.id,
            i.org_id,
            i.email,
            i.role,
            i.token_hash,
            i.state,
            i.invited_by,
            i.created_at,
            i.expires_at
        ],
    )?;
    Ok(())
}

/// The id of a pending, unexpired invitation of `email` to the org, if any.
pub fn find_pending(
    conn: &Connection,
    org_id: &str,
    email: &str,
    now: i64,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT id FROM invitations
         WHERE org_id = ?1 AND email = ?2 AND state = 'pending' AND expires_at > ?3
         LIMIT 1",
    )?
    .query_row(params![org_id, email, now], |r| r.get(0))
    .optional()
}
