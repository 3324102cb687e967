//! What the WorkOS-compatible API (API.md §14) reads and writes beyond Latchkey's own rows:
//! external ids and metadata of users and orgs, org domains, memberships by their own id, and
//! the id-cursor lists WorkOS pages with (`before`/`after` are object ids; ids are ULIDs, so
//! their order is creation order).

use crate::db::Result;
use crate::db::orgs::{self, O_COLS, Org};
use crate::db::users::{self, COLS, M_COLS, M_COLS_LEN, Membership, User, membership_at, user_at};
use crate::ids::{OrgId, UserId};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// A page of an id-ordered list: `after` (the next page) / `before` (the previous one) are
/// ids; `desc` newest first (WorkOS's default `order`).
#[derive(Clone, Copy)]
pub struct Page<'a> {
    pub after: Option<&'a str>,
    pub before: Option<&'a str>,
    pub desc: bool,
    pub limit: i64,
}

impl Page<'_> {
    /// The conditions and ORDER BY of this page on column `col`, with their bind values. A
    /// `before` page reads backwards from its cursor (nearest first); the caller turns those
    /// rows around ([`Page::reversed`]).
    fn clause(&self, col: &str) -> (String, Vec<String>) {
        let (sql, binds) = match (self.after, self.before) {
            (Some(a), _) => (
                format!(" AND {col} {} ?", if self.desc { "<" } else { ">" }),
                vec![a.to_string()],
            ),
            (None, Some(b)) => (
                format!(" AND {col} {} ?", if self.desc { ">" } else { "<" }),
                vec![b.to_string()],
            ),
            (None, None) => (String::new(), Vec::new()),
        };
        let descending = self.desc != self.reversed();
        let dir = if descending { "DESC" } else { "ASC" };
        (
            format!("{sql} ORDER BY {col} {dir} LIMIT {}", self.limit + 1),
            binds,
        )
    }

    /// Whether the rows came back reversed (a `before` page) and must be turned around.
    pub fn reversed(&self) -> bool {
        self.before.is_some() && self.after.is_none()
    }
}

fn bind_all<'a>(
    fixed: Vec<Box<dyn rusqlite::ToSql + 'a>>,
    extra: &'a [String],
) -> Vec<Box<dyn rusqlite::ToSql + 'a>> {
    let mut v = fixed;
    for e in extra {
        v.push(Box::new(e.as_str()));
    }
    v
}

// ---- Users ----------------------------------------------------------------------------------

/// A user's external id and metadata.
pub fn user_extras(conn: &Connection, id: &UserId) -> Result<(Option<String>, Value)> {
    Ok(conn
        .prepare_cached("SELECT external_id, metadata FROM users WHERE id = ?1")?
        .query_row([id], |r| {
            let m: String = r.get(1)?;
            Ok((
                r.get(0)?,
                serde_json::from_str(&m).unwrap_or(Value::Object(Default::default())),
            ))
        })
        .optional()?
        .unwrap_or((None, Value::Object(Default::default()))))
}

pub fn set_user_extras(
    conn: &Connection,
    id: &UserId,
    external_id: Option<&str>,
    metadata: &Value,
) -> Result<()> {
    conn.execute(
        "UPDATE users SET external_id = ?2, metadata = ?3 WHERE id = ?1",
        params![id, external_id, metadata.to_string()],
    )?;
    Ok(())
}

pub fn user_by_external_id(conn: &Connection, eid: &str) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM users u WHERE u.external_id = ?1"
        ))?
        .query_row([eid], |r| user_at(r, 0))
        .optional()?)
}

/// Users, optionally with this email or members of this org.
pub fn list_users(
    conn: &Connection,
    email: Option<&str>,
    org_id: Option<&OrgId>,
    page: &Page<'_>,
) -> Result<Vec<User>> {
    let (tail, binds) = page.clause("u.id");
    let sql = format!(
        "SELECT {COLS} FROM users u WHERE (?1 IS NULL OR u.email = ?1)
           AND (?2 IS NULL OR EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id AND m.org_id = ?2)){tail}"
    );
    let mut st = conn.prepare(&sql)?;
    let args = bind_all(vec![Box::new(email), Box::new(org_id)], &binds);
    let rows = st.query_map(
        rusqlite::params_from_iter(args.iter().map(|b| b.as_ref())),
        |r| user_at(r, 0),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---- Organizations --------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Domain {
    pub id: String,
    pub org_id: OrgId,
    pub domain: String,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn org_extras(conn: &Connection, id: &OrgId) -> Result<(Option<String>, Value)> {
    Ok(conn
        .prepare_cached("SELECT external_id, metadata FROM orgs WHERE id = ?1")?
        .query_row([id], |r| {
            let m: String = r.get(1)?;
            Ok((
                r.get(0)?,
                serde_json::from_str(&m).unwrap_or(Value::Object(Default::default())),
            ))
        })
        .optional()?
        .unwrap_or((None, Value::Object(Default::default()))))
}

pub fn set_org_extras(
    conn: &Connection,
    id: &OrgId,
    external_id: Option<&str>,
    metadata: &Value,
) -> Result<()> {
    conn.execute(
        "UPDATE orgs SET external_id = ?2, metadata = ?3 WHERE id = ?1",
        params![id, external_id, metadata.to_string()],
    )?;
    Ok(())
}

pub fn org_by_external_id(conn: &Connection, eid: &str) -> Result<Option<Org>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {O_COLS} FROM orgs o WHERE o.external_id = ?1 AND o.deleted_at IS NULL"
        ))?
        .query_row([eid], |r| orgs::org_at(r, 0))
        .optional()?)
}

/// Live orgs, optionally having one of `domains`, or whose name contains `search`.
pub fn list_orgs(
    conn: &Connection,
    domains: &[String],
    search: Option<&str>,
    page: &Page<'_>,
) -> Result<Vec<Org>> {
    let (tail, binds) = page.clause("o.id");
    let domains_json = serde_json::to_string(domains).unwrap_or_else(|_| "[]".into());
    let sql = format!(
        "SELECT {O_COLS} FROM orgs o WHERE o.deleted_at IS NULL
           AND (?1 = '[]' OR EXISTS (SELECT 1 FROM org_domains d, json_each(?1) j
                                     WHERE d.org_id = o.id AND d.domain = j.value COLLATE NOCASE))
           AND (?2 IS NULL OR instr(lower(o.name), lower(?2)) > 0){tail}"
    );
    let mut st = conn.prepare(&sql)?;
    let args = bind_all(vec![Box::new(domains_json), Box::new(search)], &binds);
    let rows = st.query_map(
        rusqlite::params_from_iter(args.iter().map(|b| b.as_ref())),
        |r| orgs::org_at(r, 0),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn domains_of(conn: &Connection, org_id: &OrgId) -> Result<Vec<Domain>> {
    let mut st = conn.prepare_cached(
        "SELECT id, org_id, domain, state, created_at, updated_at FROM org_domains
         WHERE org_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = st.query_map([org_id], |r| {
        Ok(Domain {
            id: r.get(0)?,
            org_id: r.get(1)?,
            domain: r.get(2)?,
            state: r.get(3)?,
            created_at: r.get(4)?,
            updated_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Replaces an org's domains with `domains` ((domain, state) pairs), keeping the ids of those
/// that stay.
pub fn set_domains(
    conn: &Connection,
    org_id: &OrgId,
    domains: &[(String, String)],
    now: i64,
) -> Result<()> {
    let old = domains_of(conn, org_id)?;
    for d in &old {
        if !domains
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(&d.domain))
        {
            conn.execute("DELETE FROM org_domains WHERE id = ?1", [&d.id])?;
        }
    }
    for (name, state) in domains {
        match old.iter().find(|d| d.domain.eq_ignore_ascii_case(name)) {
            Some(d) => {
                conn.execute(
                    "UPDATE org_domains SET state = ?2, updated_at = ?3 WHERE id = ?1",
                    params![d.id, state, now],
                )?;
            }
            None => {
                conn.execute(
                    "INSERT INTO org_domains (id, org_id, domain, state, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    params![
                        crate::ids::new_id("org_domain", now),
                        org_id,
                        name,
                        state,
                        now
                    ],
                )?;
            }
        }
    }
    Ok(())
}

// ---- Memberships ----------------------------------------------------------------------------

pub fn membership_by_id(conn: &Connection, id: &str) -> Result<Option<(Membership, User, Org)>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {M_COLS}, {COLS}, {O_COLS} FROM memberships m
             JOIN users u ON u.id = m.user_id JOIN orgs o ON o.id = m.org_id
             WHERE m.id = ?1 AND o.deleted_at IS NULL"
        ))?
        .query_row([id], |r| {
            Ok((
                membership_at(r, 0)?,
                user_at(r, M_COLS_LEN)?,
                orgs::org_at(r, M_COLS_LEN + users::COLS_LEN)?,
            ))
        })
        .optional()?)
}

/// Memberships of a user and/or an org, optionally with one of `statuses` (Latchkey's words).
pub fn list_memberships(
    conn: &Connection,
    user_id: Option<&UserId>,
    org_id: Option<&OrgId>,
    statuses: &[String],
    page: &Page<'_>,
) -> Result<Vec<(Membership, User, Org)>> {
    let (tail, binds) = page.clause("m.id");
    let statuses_json = serde_json::to_string(statuses).unwrap_or_else(|_| "[]".into());
    let sql = format!(
        "SELECT {M_COLS}, {COLS}, {O_COLS} FROM memberships m
         JOIN users u ON u.id = m.user_id JOIN orgs o ON o.id = m.org_id
         WHERE o.deleted_at IS NULL AND (?1 IS NULL OR m.user_id = ?1) AND (?2 IS NULL OR m.org_id = ?2)
           AND (?3 = '[]' OR m.status IN (SELECT value FROM json_each(?3))){tail}"
    );
    let mut st = conn.prepare(&sql)?;
    let args = bind_all(
        vec![Box::new(user_id), Box::new(org_id), Box::new(statuses_json)],
        &binds,
    );
    let rows = st.query_map(
        rusqlite::params_from_iter(args.iter().map(|b| b.as_ref())),
        |r| {
            Ok((
                membership_at(r, 0)?,
                user_at(r, M_COLS_LEN)?,
                orgs::org_at(r, M_COLS_LEN + users::COLS_LEN)?,
            ))
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---- Sessions of a user ---------------------------------------------------------------------

/// A user's sessions (any state), newest first, with the client they were made for.
pub fn user_sessions(
    conn: &Connection,
    user_id: &UserId,
    page: &Page<'_>,
) -> Result<Vec<crate::db::sessions::Session>> {
    let (tail, binds) = page.clause("s.id");
    let sql = format!(
        "SELECT s.id, s.org_id, s.user_id, s.auth_methods, s.ip_address, s.user_agent, s.created_at,
                s.last_seen_at, s.idle_expires_at, s.expires_at, s.revoked_at, s.client_id
         FROM sessions s WHERE s.user_id = ?1{tail}"
    );
    let mut st = conn.prepare(&sql)?;
    let args = bind_all(vec![Box::new(user_id)], &binds);
    let rows = st.query_map(
        rusqlite::params_from_iter(args.iter().map(|b| b.as_ref())),
        |r| crate::db::sessions::session_at(r, 0),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---- Idempotency ----------------------------------------------------------------------------

/// The stored answer to `key` of this client, if any: (request hash, status, body).
pub fn idempotent(
    conn: &Connection,
    client_id: &str,
    key: &str,
    since: i64,
) -> Result<Option<(String, u16, Vec<u8>)>> {
    Ok(conn
        .prepare_cached(
            "SELECT request_hash, status, body FROM idempotency_keys
             WHERE client_id = ?1 AND key = ?2 AND created_at >= ?3",
        )?
        .query_row(params![client_id, key, since], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u16, r.get(2)?))
        })
        .optional()?)
}

pub fn remember(
    conn: &Connection,
    client_id: &str,
    key: &str,
    request_hash: &str,
    status: u16,
    body: &[u8],
    now: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO idempotency_keys (client_id, key, request_hash, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (client_id, key) DO UPDATE SET request_hash = excluded.request_hash,
             status = excluded.status, body = excluded.body, created_at = excluded.created_at",
        params![client_id, key, request_hash, status as i64, body, now],
    )?;
    Ok(())
}

pub fn sweep_idempotency(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE rowid IN (
             SELECT rowid FROM idempotency_keys WHERE created_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit])?)
}

/// The OAuth client whose secret hashes to `hash` (a WorkOS API key).
pub fn client_by_secret_hash(conn: &Connection, hash: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT id FROM oauth_clients WHERE secret_hash = ?1")?
        .query_row([hash], |r| r.get(0))
        .optional()?)
}

// ---- Pending sign-ins -----------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Pending {
    pub client_id: String,
    pub user_id: UserId,
    pub org_id: Option<OrgId>,
    pub auth_methods: Vec<String>,
    pub failed_attempts: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[allow(clippy::too_many_arguments)]
pub fn insert_pending(
    conn: &Connection,
    token_hash: &str,
    client_id: &str,
    user_id: &UserId,
    org_id: Option<&OrgId>,
    amr: &[String],
    now: i64,
    expires_at: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO workos_pending (token_hash, client_id, user_id, org_id, auth_methods, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            token_hash,
            client_id,
            user_id,
            org_id,
            serde_json::to_string(amr).unwrap_or_else(|_| "[]".into()),
            now,
            expires_at
        ],
    )?;
    Ok(())
}

pub fn find_pending(conn: &Connection, token_hash: &str) -> Result<Option<Pending>> {
    Ok(conn
        .prepare_cached(
            "SELECT client_id, user_id, org_id, auth_methods, failed_attempts, expires_at, used_at
             FROM workos_pending WHERE token_hash = ?1",
        )?
        .query_row([token_hash], |r| {
            let amr: String = r.get(3)?;
            Ok(Pending {
                client_id: r.get(0)?,
                user_id: r.get(1)?,
                org_id: r.get(2)?,
                auth_methods: serde_json::from_str(&amr).unwrap_or_default(),
                failed_attempts: r.get(4)?,
                expires_at: r.get(5)?,
                used_at: r.get(6)?,
            })
        })
        .optional()?)
}

/// Spends a pending sign-in: true for exactly one caller.
pub fn spend_pending(conn: &Connection, token_hash: &str, now: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE workos_pending SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL",
        params![token_hash, now],
    )? > 0)
}

/// Counts a wrong code; returns the failures so far.
pub fn fail_pending(conn: &Connection, token_hash: &str) -> Result<i64> {
    Ok(conn.query_row(
        "UPDATE workos_pending SET failed_attempts = failed_attempts + 1 WHERE token_hash = ?1
         RETURNING failed_attempts",
        [token_hash],
        |r| r.get(0),
    )?)
}

pub fn sweep_pending(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM workos_pending WHERE token_hash IN (
             SELECT token_hash FROM workos_pending WHERE expires_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit])?)
}

pub fn sweep_codes(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM workos_codes WHERE id IN (
             SELECT id FROM workos_codes WHERE expires_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit])?)
}

// ---- One-time codes with ids (magic auth, email verification, password reset) --------------

#[derive(Debug, Clone)]
pub struct WCode {
    pub id: String,
    pub kind: String,
    pub user_id: UserId,
    pub email: String,
    pub code_hash: String,
    /// The code itself, sealed (row id as associated data).
    pub code_enc: Option<Vec<u8>>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

const WCODE_COLS: &str =
    "id, kind, user_id, email, code_hash, created_at, expires_at, used_at, code_enc";

fn wcode_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<WCode> {
    Ok(WCode {
        id: r.get(0)?,
        kind: r.get(1)?,
        user_id: r.get(2)?,
        email: r.get(3)?,
        code_hash: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        used_at: r.get(7)?,
        code_enc: r.get(8)?,
    })
}

pub fn insert_code(conn: &Connection, c: &WCode) -> Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO workos_codes ({WCODE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8)"
        ),
        params![
            c.id,
            c.kind,
            c.user_id,
            c.email,
            c.code_hash,
            c.created_at,
            c.expires_at,
            c.code_enc
        ],
    )?;
    Ok(())
}

pub fn code_by_id(conn: &Connection, id: &str) -> Result<Option<WCode>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {WCODE_COLS} FROM workos_codes WHERE id = ?1"
        ))?
        .query_row([id], wcode_from)
        .optional()?)
}

/// The live (unused, unexpired) code of `kind` for `user_id` whose hash is `code_hash`.
pub fn live_code(
    conn: &Connection,
    kind: &str,
    user_id: &UserId,
    code_hash: &str,
    now: i64,
) -> Result<Option<WCode>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {WCODE_COLS} FROM workos_codes WHERE kind = ?1 AND user_id = ?2 AND code_hash = ?3
               AND used_at IS NULL AND expires_at > ?4"
        ))?
        .query_row(params![kind, user_id, code_hash, now], wcode_from)
        .optional()?)
}

/// The live code of `kind` whose hash is `code_hash`, whoever it is for (a reset token).
pub fn live_code_by_hash(
    conn: &Connection,
    kind: &str,
    code_hash: &str,
    now: i64,
) -> Result<Option<WCode>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {WCODE_COLS} FROM workos_codes WHERE kind = ?1 AND code_hash = ?2
               AND used_at IS NULL AND expires_at > ?3"
        ))?
        .query_row(params![kind, code_hash, now], wcode_from)
        .optional()?)
}

pub fn spend_code(conn: &Connection, id: &str, now: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE workos_codes SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
        params![id, now],
    )? > 0)
}

// ---- Invitations ----------------------------------------------------------------------------

/// An invitation with what WorkOS shows beyond Latchkey's row: who accepted, the sealed token.
pub struct WInvitation {
    pub inv: crate::db::invitations::Invitation,
    pub accepted_by: Option<UserId>,
    pub token_enc: Option<Vec<u8>>,
}

const INV_COLS: &str = "id, org_id, email, role, state, invited_by, created_at, expires_at, \
     responded_at, delivery, accepted_by, token_enc";

/// The columns of `INV_COLS`: an invitation as `db::invitations` reads it (the first ten),
/// then the two the WorkOS API adds.
fn winv_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<WInvitation> {
    Ok(WInvitation {
        inv: crate::db::invitations::from_row(r)?,
        accepted_by: r.get(10)?,
        token_enc: r.get(11)?,
    })
}

pub fn invitation(conn: &Connection, id: &str) -> Result<Option<WInvitation>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {INV_COLS} FROM invitations WHERE id = ?1"))?
        .query_row([id], winv_from)
        .optional()?)
}

pub fn invitation_by_token(conn: &Connection, token_hash: &str) -> Result<Option<WInvitation>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {INV_COLS} FROM invitations WHERE token_hash = ?1"
        ))?
        .query_row([token_hash], winv_from)
        .optional()?)
}

pub fn set_invitation_token(conn: &Connection, id: &str, token_enc: &[u8]) -> Result<()> {
    conn.execute(
        "UPDATE invitations SET token_enc = ?2 WHERE id = ?1",
        params![id, token_enc],
    )?;
    Ok(())
}

pub fn list_invitations(
    conn: &Connection,
    org_id: Option<&OrgId>,
    email: Option<&str>,
    page: &Page<'_>,
) -> Result<Vec<WInvitation>> {
    let (tail, binds) = page.clause("id");
    let sql = format!(
        "SELECT {INV_COLS} FROM invitations WHERE (?1 IS NULL OR org_id = ?1)
           AND (?2 IS NULL OR email = ?2 COLLATE NOCASE){tail}"
    );
    let mut st = conn.prepare(&sql)?;
    let args = bind_all(vec![Box::new(org_id), Box::new(email)], &binds);
    let rows = st.query_map(
        rusqlite::params_from_iter(args.iter().map(|b| b.as_ref())),
        winv_from,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
