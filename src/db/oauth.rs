//! The OAuth provider's rows (API.md §13): clients (secrets as hashes), single-use
//! authorization codes and device codes (as hashes), consents, and the OAuth facts of an org
//! session. Codes and device codes are looked up by the hash of what the client presents.

use crate::db::Result;
use crate::ids::{OrgId, SessionId, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params};

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    /// Set for an org-owned client: only that org's members, tokens only for that org.
    pub org_id: Option<OrgId>,
    pub name: String,
    /// None for a public client (PKCE only, no secret).
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub first_party: bool,
    pub profile: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// The origins of the registered redirect URIs: what a browser-based client calls the
    /// token endpoint from (CORS).
    pub fn origins(&self) -> Vec<String> {
        self.redirect_uris
            .iter()
            .filter_map(|u| url::Url::parse(u).ok())
            .map(|u| u.origin().ascii_serialization())
            .filter(|o| o != "null")
            .collect()
    }
}

const CLIENT_COLS: &str = "id, org_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, \
     first_party, profile, created_at, updated_at";

fn json_list(s: String) -> Vec<String> {
    serde_json::from_str(&s).unwrap_or_default()
}

fn client_from(r: &Row<'_>) -> rusqlite::Result<Client> {
    Ok(Client {
        id: r.get(0)?,
        org_id: r.get(1)?,
        name: r.get(2)?,
        secret_hash: r.get(3)?,
        redirect_uris: json_list(r.get(4)?),
        post_logout_redirect_uris: json_list(r.get(5)?),
        first_party: r.get::<_, i64>(6)? != 0,
        profile: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub fn insert_client(conn: &Connection, c: &Client) -> Result<()> {
    conn.execute(
        &format!("INSERT INTO oauth_clients ({CLIENT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            c.id,
            c.org_id,
            c.name,
            c.secret_hash,
            to_json(&c.redirect_uris),
            to_json(&c.post_logout_redirect_uris),
            c.first_party as i64,
            c.profile,
            c.created_at,
            c.updated_at
        ],
    )?;
    Ok(())
}

/// Writes what may change (never the id, the org or the secret).
pub fn update_client(conn: &Connection, c: &Client) -> Result<()> {
    conn.execute(
        "UPDATE oauth_clients SET name = ?2, redirect_uris = ?3, post_logout_redirect_uris = ?4,
                first_party = ?5, profile = ?6, updated_at = ?7 WHERE id = ?1",
        params![
            c.id,
            c.name,
            to_json(&c.redirect_uris),
            to_json(&c.post_logout_redirect_uris),
            c.first_party as i64,
            c.profile,
            c.updated_at
        ],
    )?;
    Ok(())
}

/// Any client by id (the OAuth endpoints: a client may belong to any org or none).
pub fn find_client(conn: &Connection, id: &str) -> Result<Option<Client>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CLIENT_COLS} FROM oauth_clients WHERE id = ?1"
        ))?
        .query_row([id], client_from)
        .optional()?)
}

/// A client of `org_id` (None: a deployment app) by id — the tenant-scoped lookup of the
/// management APIs.
pub fn find_client_of(
    conn: &Connection,
    org_id: Option<&OrgId>,
    id: &str,
) -> Result<Option<Client>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CLIENT_COLS} FROM oauth_clients WHERE id = ?1 AND org_id IS ?2"
        ))?
        .query_row(params![id, org_id], client_from)
        .optional()?)
}

/// Every client (`org_id` None) or one org's clients, oldest first.
pub fn list_clients(conn: &Connection, org_id: Option<&OrgId>) -> Result<Vec<Client>> {
    let sql = match org_id {
        Some(_) => format!(
            "SELECT {CLIENT_COLS} FROM oauth_clients WHERE org_id = ?1 ORDER BY created_at, id"
        ),
        None => format!(
            "SELECT {CLIENT_COLS} FROM oauth_clients WHERE ?1 IS NULL ORDER BY created_at, id"
        ),
    };
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params![org_id], client_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a client; its codes, consents and OAuth session rows go with it (the sessions
/// themselves are revoked by the caller first).
pub fn delete_client(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM oauth_clients WHERE id = ?1", [id])? > 0)
}

/// The live sessions a client holds (to revoke them with the client).
pub fn client_sessions(
    conn: &Connection,
    client_id: &str,
) -> Result<Vec<(SessionId, OrgId, UserId)>> {
    let mut st = conn.prepare_cached(
        "SELECT s.id, s.org_id, s.user_id FROM oauth_sessions o JOIN sessions s ON s.id = o.session_id
         WHERE o.client_id = ?1 AND s.revoked_at IS NULL",
    )?;
    let rows = st.query_map([client_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---- Authorization codes -------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Code {
    pub client_id: String,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub browser_session_id: Option<String>,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub session_id: Option<SessionId>,
}

pub fn insert_code(conn: &Connection, code_hash: &str, c: &Code) -> Result<()> {
    conn.execute(
        "INSERT INTO oauth_codes (code_hash, client_id, user_id, org_id, browser_session_id,
             redirect_uri, scope, nonce, code_challenge, auth_time, amr, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            code_hash,
            c.client_id,
            c.user_id,
            c.org_id,
            c.browser_session_id,
            c.redirect_uri,
            c.scope,
            c.nonce,
            c.code_challenge,
            c.auth_time,
            to_json(&c.amr),
            c.created_at,
            c.expires_at
        ],
    )?;
    Ok(())
}

pub fn find_code(conn: &Connection, code_hash: &str) -> Result<Option<Code>> {
    Ok(conn
        .prepare_cached(
            "SELECT client_id, user_id, org_id, browser_session_id, redirect_uri, scope, nonce,
                    code_challenge, auth_time, amr, created_at, expires_at, used_at, session_id
             FROM oauth_codes WHERE code_hash = ?1",
        )?
        .query_row([code_hash], |r| {
            Ok(Code {
                client_id: r.get(0)?,
                user_id: r.get(1)?,
                org_id: r.get(2)?,
                browser_session_id: r.get(3)?,
                redirect_uri: r.get(4)?,
                scope: r.get(5)?,
                nonce: r.get(6)?,
                code_challenge: r.get(7)?,
                auth_time: r.get(8)?,
                amr: json_list(r.get(9)?),
                created_at: r.get(10)?,
                expires_at: r.get(11)?,
                used_at: r.get(12)?,
                session_id: r.get(13)?,
            })
        })
        .optional()?)
}

/// Spends a code: true for exactly one caller (a conditional update under the single writer).
pub fn spend_code(conn: &Connection, code_hash: &str, now: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE oauth_codes SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL",
        params![code_hash, now],
    )? > 0)
}

/// Records the session the code's first use produced (a replay revokes it).
pub fn set_code_session(conn: &Connection, code_hash: &str, session_id: &SessionId) -> Result<()> {
    conn.execute(
        "UPDATE oauth_codes SET session_id = ?2 WHERE code_hash = ?1",
        params![code_hash, session_id],
    )?;
    Ok(())
}

/// Deletes codes expired before `before`, at most `limit`.
pub fn sweep_codes(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM oauth_codes WHERE code_hash IN (
             SELECT code_hash FROM oauth_codes WHERE expires_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit])?)
}

// ---- Consents ------------------------------------------------------------------------------

/// The scopes the user granted the client in the org, if any.
pub fn consent(
    conn: &Connection,
    user_id: &UserId,
    client_id: &str,
    org_id: &OrgId,
) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT scope FROM oauth_consents WHERE user_id = ?1 AND client_id = ?2 AND org_id = ?3",
        )?
        .query_row(params![user_id, client_id, org_id], |r| r.get(0))
        .optional()?)
}

pub fn put_consent(
    conn: &Connection,
    user_id: &UserId,
    client_id: &str,
    org_id: &OrgId,
    scope: &str,
    now: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO oauth_consents (user_id, client_id, org_id, scope, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user_id, client_id, org_id) DO UPDATE SET scope = excluded.scope,
             created_at = excluded.created_at",
        params![user_id, client_id, org_id, scope, now],
    )?;
    Ok(())
}

// ---- OAuth sessions ------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct OauthSession {
    pub client_id: String,
    pub scope: String,
    pub auth_time: i64,
    pub nonce: Option<String>,
}

pub fn insert_session(conn: &Connection, session_id: &SessionId, s: &OauthSession) -> Result<()> {
    conn.execute(
        "INSERT INTO oauth_sessions (session_id, client_id, scope, auth_time, nonce)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![session_id, s.client_id, s.scope, s.auth_time, s.nonce],
    )?;
    Ok(())
}

/// The OAuth facts of a session (None: a session of the JSON API or the hosted pages).
pub fn session(conn: &Connection, session_id: &SessionId) -> Result<Option<OauthSession>> {
    Ok(conn
        .prepare_cached(
            "SELECT client_id, scope, auth_time, nonce FROM oauth_sessions WHERE session_id = ?1",
        )?
        .query_row([session_id], |r| {
            Ok(OauthSession {
                client_id: r.get(0)?,
                scope: r.get(1)?,
                auth_time: r.get(2)?,
                nonce: r.get(3)?,
            })
        })
        .optional()?)
}

// ---- Device codes --------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct DeviceCode {
    pub device_code_hash: String,
    pub client_id: String,
    pub scope: String,
    pub state: String,
    pub user_id: Option<UserId>,
    pub org_id: Option<OrgId>,
    pub auth_time: Option<i64>,
    pub amr: Vec<String>,
    pub interval_ms: i64,
    pub last_polled_at: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

const DEVICE_COLS: &str = "device_code_hash, client_id, scope, state, user_id, org_id, auth_time, \
     amr, interval_ms, last_polled_at, created_at, expires_at";

fn device_from(r: &Row<'_>) -> rusqlite::Result<DeviceCode> {
    let amr: Option<String> = r.get(7)?;
    Ok(DeviceCode {
        device_code_hash: r.get(0)?,
        client_id: r.get(1)?,
        scope: r.get(2)?,
        state: r.get(3)?,
        user_id: r.get(4)?,
        org_id: r.get(5)?,
        auth_time: r.get(6)?,
        amr: amr.map(json_list).unwrap_or_default(),
        interval_ms: r.get(8)?,
        last_polled_at: r.get(9)?,
        created_at: r.get(10)?,
        expires_at: r.get(11)?,
    })
}

#[allow(clippy::too_many_arguments)]
pub fn insert_device_code(
    conn: &Connection,
    device_code_hash: &str,
    user_code_hash: &str,
    client_id: &str,
    scope: &str,
    interval_ms: i64,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO oauth_device_codes (device_code_hash, user_code_hash, client_id, scope,
             interval_ms, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            device_code_hash,
            user_code_hash,
            client_id,
            scope,
            interval_ms,
            now,
            expires_at
        ],
    )?;
    Ok(())
}

pub fn device_by_device_code(conn: &Connection, hash: &str) -> Result<Option<DeviceCode>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DEVICE_COLS} FROM oauth_device_codes WHERE device_code_hash = ?1"
        ))?
        .query_row([hash], device_from)
        .optional()?)
}

pub fn device_by_user_code(conn: &Connection, hash: &str) -> Result<Option<DeviceCode>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DEVICE_COLS} FROM oauth_device_codes WHERE user_code_hash = ?1"
        ))?
        .query_row([hash], device_from)
        .optional()?)
}

/// Records a poll; `interval_ms` grows when the client polled too fast (`slow_down`).
pub fn device_polled(conn: &Connection, hash: &str, now: i64, interval_ms: i64) -> Result<()> {
    conn.execute(
        "UPDATE oauth_device_codes SET last_polled_at = ?2, interval_ms = ?3
         WHERE device_code_hash = ?1",
        params![hash, now, interval_ms],
    )?;
    Ok(())
}

/// Approves (user and org set) or denies a pending device code; true if it was pending.
#[allow(clippy::too_many_arguments)]
pub fn decide_device(
    conn: &Connection,
    hash: &str,
    approve: bool,
    user_id: &UserId,
    org_id: Option<&OrgId>,
    auth_time: i64,
    amr: &[String],
    now: i64,
) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE oauth_device_codes SET state = ?2, user_id = ?3, org_id = ?4, auth_time = ?5,
             amr = ?6 WHERE device_code_hash = ?1 AND state = 'pending' AND expires_at > ?7",
        params![
            hash,
            if approve { "approved" } else { "denied" },
            user_id,
            org_id,
            auth_time,
            to_json(amr),
            now
        ],
    )? > 0)
}

/// Spends an approved device code: true for exactly one caller.
pub fn spend_device(conn: &Connection, hash: &str) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE oauth_device_codes SET state = 'used' WHERE device_code_hash = ?1 AND state = 'approved'",
        [hash],
    )? > 0)
}

pub fn sweep_device_codes(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM oauth_device_codes WHERE device_code_hash IN (
             SELECT device_code_hash FROM oauth_device_codes WHERE expires_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit])?)
}
