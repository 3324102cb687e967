//! Users (deployment-wide accounts) and their memberships in orgs.

use crate::db::Result;
use crate::ids::{OrgId, UserId};
use crate::status::UserStatus;
use rusqlite::{Connection, OptionalExtension, Row, params};

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub email_verified: bool,
    pub password_hash: Option<String>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub avatar_url: Option<String>,
    pub phone_number: Option<String>,
    pub role: String,
    pub status: crate::status::UserStatus,
    pub two_factor_enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
}

impl User {
    /// A new active platform `user` with this email and nothing else set yet.
    pub fn new(email: String, now: i64) -> User {
        User {
            id: UserId::fresh(now),
            email,
            email_verified: false,
            password_hash: None,
            name: None,
            first_name: None,
            last_name: None,
            avatar_url: None,
            phone_number: None,
            role: "user".into(),
            status: UserStatus::Active,
            two_factor_enabled: false,
            created_at: now,
            updated_at: now,
            last_login_at: None,
        }
    }
}

pub(crate) const COLS: &str = "u.id, u.email, u.email_verified, u.password_hash, u.name, u.first_name, \
     u.last_name, u.avatar_url, u.phone_number, u.role, u.status, \
     EXISTS (SELECT 1 FROM totp_secrets t WHERE t.user_id = u.id AND t.enabled_at IS NOT NULL), \
     u.created_at, u.updated_at, u.last_login_at";

/// How many columns `COLS` has: where the next table's columns start in a join.
pub(crate) const COLS_LEN: usize = 15;

fn from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    user_at(r, 0)
}

/// A user read from columns `COLS` starting at index `o`.
pub(crate) fn user_at(r: &Row<'_>, o: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(o)?,
        email: r.get(o + 1)?,
        email_verified: r.get(o + 2)?,
        password_hash: r.get(o + 3)?,
        name: r.get(o + 4)?,
        first_name: r.get(o + 5)?,
        last_name: r.get(o + 6)?,
        avatar_url: r.get(o + 7)?,
        phone_number: r.get(o + 8)?,
        role: r.get(o + 9)?,
        status: r.get(o + 10)?,
        two_factor_enabled: r.get(o + 11)?,
        created_at: r.get(o + 12)?,
        updated_at: r.get(o + 13)?,
        last_login_at: r.get(o + 14)?,
    })
}

pub fn insert(conn: &Connection, u: &User) -> Result<()> {
    conn.execute(
        "INSERT INTO users (id, email, email_verified, password_hash, name, first_name, last_name,
                            avatar_url, phone_number, role, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            u.id,
            u.email,
            u.email_verified,
            u.password_hash,
            u.name,
            u.first_name,
            u.last_name,
            u.avatar_url,
            u.phone_number,
            u.role,
            u.status,
            u.created_at,
            u.updated_at
        ],
    )?;
    Ok(())
}

pub fn find_by_id(conn: &Connection, id: &UserId) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM users u WHERE u.id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

pub fn find_by_email(conn: &Connection, email: &str) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM users u WHERE u.email = ?1"))?
        .query_row([email], from_row)
        .optional()?)
}

#[derive(Debug, Clone, Copy)]
pub enum SortField {
    CreatedAt,
    Email,
    Name,
}

/// The GoAuth-shaped admin listing: a page by offset, and the total matching `query`.
pub fn search(
    conn: &Connection,
    query: Option<&str>,
    sort: SortField,
    descending: bool,
    offset: i64,
    limit: i64,
) -> Result<(Vec<User>, i64)> {
    let pattern = query.map(|q| {
        let escaped = q
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let filter = "(?1 IS NULL OR u.email LIKE ?1 ESCAPE '\\' OR u.name LIKE ?1 ESCAPE '\\')";
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM users u WHERE {filter}"),
        params![pattern],
        |r| r.get(0),
    )?;
    let col = match sort {
        SortField::CreatedAt => "u.created_at",
        SortField::Email => "u.email",
        SortField::Name => "COALESCE(u.name, '')",
    };
    let dir = if descending { "DESC" } else { "ASC" };
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM users u WHERE {filter} ORDER BY {col} {dir}, u.id {dir} LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = st
        .query_map(params![pattern, limit, offset], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows, total))
}

#[derive(Debug, Clone)]
pub struct Membership {
    pub id: String,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub role: String,
    pub status: crate::status::MemberStatus,
    pub metadata: serde_json::Value,
    pub joined_at: i64,
}

/// A membership's columns, the table aliased `m`; read with [`membership_at`].
pub(crate) const M_COLS: &str =
    "m.id, m.org_id, m.user_id, m.role, m.status, m.metadata, m.joined_at";
/// How many columns `M_COLS` has.
pub(crate) const M_COLS_LEN: usize = 7;

fn membership_from_row(r: &Row<'_>) -> rusqlite::Result<Membership> {
    membership_at(r, 0)
}

/// A membership read from columns `M_COLS` starting at index `o`.
pub(crate) fn membership_at(r: &Row<'_>, o: usize) -> rusqlite::Result<Membership> {
    let meta: String = r.get(o + 5)?;
    Ok(Membership {
        id: r.get(o)?,
        org_id: r.get(o + 1)?,
        user_id: r.get(o + 2)?,
        role: r.get(o + 3)?,
        status: r.get(o + 4)?,
        metadata: serde_json::from_str(&meta).unwrap_or_else(|_| serde_json::json!({})),
        joined_at: r.get(o + 6)?,
    })
}

pub fn insert_membership(conn: &Connection, m: &Membership) -> Result<()> {
    conn.execute(
        "INSERT INTO memberships (id, org_id, user_id, role, status, metadata, joined_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            m.id,
            m.org_id,
            m.user_id,
            m.role,
            m.status,
            m.metadata.to_string(),
            m.joined_at
        ],
    )?;
    Ok(())
}

/// The membership of `user_id` in `org_id` (tenant first, by construction).
pub fn find_membership(
    conn: &Connection,
    org_id: &OrgId,
    user_id: &UserId,
) -> Result<Option<Membership>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, org_id, user_id, role, status, metadata, joined_at FROM memberships
         WHERE org_id = ?1 AND user_id = ?2",
        )?
        .query_row(params![org_id, user_id], membership_from_row)
        .optional()?)
}

/// Removes the password (the account then signs in by magic link until it sets one).
pub fn clear_password(conn: &Connection, id: &UserId, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE users SET password_hash = NULL, updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

pub fn set_password_hash(conn: &Connection, id: &UserId, hash: &str, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, hash, now],
    )?;
    Ok(())
}

pub fn set_last_login(conn: &Connection, id: &UserId, now: i64) -> Result<()> {
    conn.prepare_cached("UPDATE users SET last_login_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

/// Writes the profile fields of `u` (name, first/last name, avatar, phone).
pub fn update_profile(conn: &Connection, u: &User) -> Result<()> {
    conn.execute(
        "UPDATE users SET name = ?2, first_name = ?3, last_name = ?4, avatar_url = ?5,
                phone_number = ?6, updated_at = ?7 WHERE id = ?1",
        params![
            u.id,
            u.name,
            u.first_name,
            u.last_name,
            u.avatar_url,
            u.phone_number,
            u.updated_at
        ],
    )?;
    Ok(())
}

/// The user's memberships in live orgs, with the org, oldest first.
pub fn memberships_of(
    conn: &Connection,
    user_id: &UserId,
) -> Result<Vec<(Membership, crate::db::orgs::Org)>> {
    use crate::db::orgs::{O_COLS, org_at};
    let mut st = conn.prepare_cached(&format!(
        "SELECT {M_COLS}, {O_COLS} FROM memberships m JOIN orgs o ON o.id = m.org_id
         WHERE m.user_id = ?1 AND o.deleted_at IS NULL ORDER BY m.joined_at, m.id"
    ))?;
    let rows = st.query_map([user_id], |r| {
        Ok((membership_at(r, 0)?, org_at(r, M_COLS_LEN)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn set_email_verified(conn: &Connection, id: &UserId, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Writes the fields an operator may change (email, names, verification, role, status).
pub fn update_admin(conn: &Connection, u: &User) -> Result<()> {
    conn.execute(
        "UPDATE users SET email = ?2, name = ?3, first_name = ?4, last_name = ?5,
                email_verified = ?6, role = ?7, status = ?8, updated_at = ?9 WHERE id = ?1",
        params![
            u.id,
            u.email,
            u.name,
            u.first_name,
            u.last_name,
            u.email_verified,
            u.role,
            u.status,
            u.updated_at
        ],
    )?;
    Ok(())
}

/// Deletes the user; memberships, sessions, tokens and 2FA rows go with it (cascade).
pub fn delete(conn: &Connection, id: &UserId) -> Result<bool> {
    Ok(conn.execute("DELETE FROM users WHERE id = ?1", [id])? == 1)
}

/// Members of the org with their accounts, newest membership first, after the
/// (joined_at, membership id) cursor position if given; `email` narrows to one address.
pub fn list_members(
    conn: &Connection,
    org_id: &OrgId,
    email: Option<&str>,
    after: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<(Membership, User)>> {
    let (at, id) = after.unwrap_or((i64::MAX, "~"));
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS}, m.id, m.org_id, m.user_id, m.role, m.status, m.metadata, m.joined_at
         FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.org_id = ?1 AND (?2 IS NULL OR u.email = ?2)
           AND (m.joined_at < ?3 OR (m.joined_at = ?3 AND m.id < ?4))
         ORDER BY m.joined_at DESC, m.id DESC LIMIT ?5"
    ))?;
    let rows = st.query_map(params![org_id, email, at, id, limit], |r| {
        let meta: String = r.get(20)?;
        let m = Membership {
            id: r.get(15)?,
            org_id: r.get(16)?,
            user_id: r.get(17)?,
            role: r.get(18)?,
            status: r.get(19)?,
            metadata: serde_json::from_str(&meta).unwrap_or_else(|_| serde_json::json!({})),
            joined_at: r.get(21)?,
        };
        Ok((m, from_row(r)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Joins read the next table's columns at `COLS_LEN` / `M_COLS_LEN`: keep them true.
    #[test]
    fn column_counts_match_the_column_lists() {
        assert_eq!(COLS.split(',').count(), COLS_LEN);
        assert_eq!(M_COLS.split(',').count(), M_COLS_LEN);
    }
}
