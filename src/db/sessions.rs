//! Sessions (one per login, scoped to an org) and their rotating refresh tokens.

use crate::db::Result;
use crate::ids::{OrgId, SessionId, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params};

#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub auth_methods: Vec<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_expires_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// Set for a session made for an OAuth client (`oauth_sessions` has its scope): its
    /// tokens are that app's, not Latchkey's `/api/v1` credentials.
    pub client_id: Option<String>,
}

impl Session {
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.idle_expires_at && now < self.expires_at
    }
}

const COLS: &str = "id, org_id, user_id, auth_methods, ip_address, user_agent, created_at, \
                    last_seen_at, idle_expires_at, expires_at, revoked_at, client_id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Session> {
    session_at(r, 0)
}

/// How many columns `COLS` has (the session's part of a joined row).
const COLS_LEN: usize = 12;

/// A session read from `COLS` starting at index `o`.
pub(crate) fn session_at(r: &Row<'_>, o: usize) -> rusqlite::Result<Session> {
    let amr: String = r.get(o + 3)?;
    Ok(Session {
        id: r.get(o)?,
        org_id: r.get(o + 1)?,
        user_id: r.get(o + 2)?,
        auth_methods: serde_json::from_str(&amr).unwrap_or_default(),
        ip_address: r.get(o + 4)?,
        user_agent: r.get(o + 5)?,
        created_at: r.get(o + 6)?,
        last_seen_at: r.get(o + 7)?,
        idle_expires_at: r.get(o + 8)?,
        expires_at: r.get(o + 9)?,
        revoked_at: r.get(o + 10)?,
        client_id: r.get(o + 11)?,
    })
}

pub fn insert(conn: &Connection, s: &Session) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sessions (id, org_id, user_id, auth_methods, ip_address, user_agent,
                               created_at, last_seen_at, idle_expires_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        s.id,
        s.org_id,
        s.user_id,
        serde_json::to_string(&s.auth_methods).unwrap_or_else(|_| "[]".into()),
        s.ip_address,
        s.user_agent,
        s.created_at,
        s.last_seen_at,
        s.idle_expires_at,
        s.expires_at
    ])?;
    Ok(())
}

/// A session of `org_id` by id (tenant first).
pub fn find(conn: &Connection, org_id: &OrgId, id: &SessionId) -> Result<Option<Session>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM sessions WHERE org_id = ?1 AND id = ?2"
        ))?
        .query_row(params![org_id, id], from_row)
        .optional()?)
}

/// A user's own session by id, whatever its org.
pub fn find_for_user(
    conn: &Connection,
    user_id: &UserId,
    id: &SessionId,
) -> Result<Option<Session>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM sessions WHERE user_id = ?1 AND id = ?2"
        ))?
        .query_row(params![user_id, id], from_row)
        .optional()?)
}

/// The user's live sessions (all orgs), newest first.
pub fn list_live_for_user(
    conn: &Connection,
    user_id: &UserId,
    now: i64,
) -> Result<Vec<(Session, String)>> {
    let mut st = conn.prepare_cached(
        "SELECT s.id, s.org_id, s.user_id, s.auth_methods, s.ip_address, s.user_agent,
                s.created_at, s.last_seen_at, s.idle_expires_at, s.expires_at, s.revoked_at,
                s.client_id, o.slug
         FROM sessions s JOIN orgs o ON o.id = s.org_id
         WHERE s.user_id = ?1 AND s.revoked_at IS NULL
           AND s.idle_expires_at > ?2 AND s.expires_at > ?2 AND o.deleted_at IS NULL
         ORDER BY s.created_at DESC, s.id DESC LIMIT 500",
    )?;
    let rows = st.query_map(params![user_id, now], |r| {
        Ok((from_row(r)?, r.get(COLS_LEN)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Sessions neither revoked nor expired (idle or absolute) at `now`; a metrics gauge.
pub fn count_live(conn: &Connection, now: i64) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND idle_expires_at > ?1 AND expires_at > ?1",
        [now],
        |r| r.get(0),
    )?)
}

/// A session by id alone, whichever org it is in (the WorkOS session endpoints, which name a
/// session without its org; the caller checks it is its client's).
pub fn find_for_any(conn: &Connection, id: &SessionId) -> Result<Option<Session>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM sessions WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// Marks a session as made for OAuth client `client_id`.
pub fn set_client(conn: &Connection, id: &SessionId, client_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET client_id = ?2 WHERE id = ?1",
        params![id, client_id],
    )?;
    Ok(())
}

/// Revokes one session; true if it was live.
pub fn revoke(conn: &Connection, id: &SessionId, reason: &str, now: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now, reason],
    )?;
    Ok(n > 0)
}

/// Revokes every live session of the user except `keep`; returns (session id, org id) of each.
/// The user's browser sessions end too, except the one `keep` was made from.
pub fn revoke_all_for_user(
    conn: &Connection,
    user_id: &UserId,
    keep: Option<&SessionId>,
    reason: &str,
    now: i64,
) -> Result<Vec<(SessionId, OrgId)>> {
    conn.prepare_cached(
        "UPDATE browser_sessions SET revoked_at = ?3
         WHERE user_id = ?1 AND revoked_at IS NULL
           AND id IS NOT (SELECT browser_session_id FROM sessions WHERE id = ?2)",
    )?
    .execute(params![user_id, keep, now])?;
    let mut st = conn.prepare_cached(
        "UPDATE sessions SET revoked_at = ?3, revoked_reason = ?4
         WHERE user_id = ?1 AND revoked_at IS NULL AND id IS NOT ?2 RETURNING id, org_id",
    )?;
    let rows = st.query_map(params![user_id, keep, now, reason], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revokes the user's live sessions in one org; returns the revoked ids.
pub fn revoke_in_org(
    conn: &Connection,
    org_id: &OrgId,
    user_id: &UserId,
    reason: &str,
    now: i64,
) -> Result<Vec<SessionId>> {
    let mut st = conn.prepare_cached(
        "UPDATE sessions SET revoked_at = ?3, revoked_reason = ?4
         WHERE org_id = ?1 AND user_id = ?2 AND revoked_at IS NULL RETURNING id",
    )?;
    let rows = st.query_map(params![org_id, user_id, now, reason], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// After a refresh: the session was seen now and its idle deadline moves (never past the
/// absolute one) — only for a session still unrevoked and within its absolute lifetime;
/// false otherwise (a revocation won the race).
pub fn touch_live(
    conn: &Connection,
    id: &SessionId,
    now: i64,
    idle_expires_at: i64,
) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE sessions SET last_seen_at = ?2, idle_expires_at = MIN(?3, expires_at)
             WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
        )?
        .execute(params![id, now, idle_expires_at])?;
    Ok(n == 1)
}

/// Where a refresh token's row is: tokens issued since schema version 8 name their session
/// and generation (`refresh_chain`); older ones are found by their hash (`refresh_tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshKey {
    /// `refresh_chain` row `(row.session_id, generation)`.
    Chain {
        generation: i64,
    },
    Legacy,
}

/// A refresh token's row, found by [`find_refresh`].
#[derive(Debug, Clone)]
pub struct RefreshRow {
    pub key: RefreshKey,
    /// The SHA-256 (hex) of the token as presented: the sealed successor's associated data.
    pub token_hash: String,
    pub session_id: SessionId,
    pub org_id: OrgId,
    pub rotated_at: Option<i64>,
    pub successor_enc: Option<Vec<u8>>,
}

/// The longest generation a token may name (a session rotating every second for 30 years
/// stays far below it): longer numbers are not looked up.
const MAX_GENERATION_DIGITS: usize = 12;

/// A new refresh token of `session_id` at `generation`: `<session id>-<generation>-<secret>`,
/// the secret 256 random bits (base64url). Opaque to clients (API.md §2); the server reads
/// the first two parts only to find the row, and the whole token's hash must then match.
/// Dashes, not dots: a token with two dots reads as a JWT to introspection (and to relying
/// parties that guess a token's kind by its shape).
pub fn new_refresh_token(session_id: &SessionId, generation: i64) -> String {
    format!(
        "{session_id}-{generation}-{}",
        crate::crypto::random_token(32)
    )
}

/// The session and generation a token names, if it has this version's shape (canonical
/// decimal generation, a session id with its prefix); `None` for anything else, legacy tokens
/// included.
fn chain_key(token: &str) -> Option<(&str, i64)> {
    let mut parts = token.splitn(3, '-');
    let (session, generation, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let prefixed = session
        .strip_prefix(SessionId::PREFIX)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|ulid| ulid.len() == 26 && ulid.bytes().all(|b| b.is_ascii_alphanumeric()));
    let canonical = !generation.is_empty()
        && generation.len() <= MAX_GENERATION_DIGITS
        && generation.bytes().all(|b| b.is_ascii_digit())
        && (generation == "0" || !generation.starts_with('0'));
    if !prefixed || !canonical || secret.is_empty() {
        return None;
    }
    Some((session, generation.parse().ok()?))
}

/// Whether `token` has the shape of a refresh token this server ever issued: this version's
/// (see [`chain_key`]), or an older version's, 32 random bytes in unpadded base64url (43
/// characters). Anything else cannot be found, so it is refused before any lookup (and a
/// refresh of it never takes a turn on the write connection).
pub fn may_be_refresh_token(token: &str) -> bool {
    let legacy = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    legacy || chain_key(token).is_some()
}

/// Issues and stores the first refresh token of a new session (generation 0; see
/// [`new_refresh_token`]); returns the token.
pub fn start_chain(
    conn: &Connection,
    session_id: &SessionId,
    org_id: &OrgId,
    now: i64,
) -> Result<String> {
    let token = new_refresh_token(session_id, 0);
    insert_chain(conn, &token, session_id, 0, org_id, now)?;
    Ok(token)
}

fn insert_chain(
    conn: &Connection,
    token: &str,
    session_id: &SessionId,
    generation: i64,
    org_id: &OrgId,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO refresh_chain (session_id, generation, token_hash, org_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        session_id,
        generation,
        &crate::crypto::sha256(token.as_bytes())[..],
        org_id,
        now
    ])?;
    Ok(())
}

/// The row of refresh token `token`, whichever version issued it. A token naming a session
/// and generation is found by that key and must then hash to the stored hash (compared in
/// constant time); a guessed secret finds nothing and changes nothing.
pub fn find_refresh(conn: &Connection, token: &str) -> Result<Option<RefreshRow>> {
    if !may_be_refresh_token(token) {
        return Ok(None);
    }
    let digest = crate::crypto::sha256(token.as_bytes());
    let token_hash = crate::crypto::hex(&digest);
    if let Some((session, generation)) = chain_key(token) {
        let row = conn
            .prepare_cached(
                "SELECT c.token_hash, c.org_id, c.rotated_at, s.sealed
                 FROM refresh_chain c LEFT JOIN refresh_successors s ON s.id = c.successor
                 WHERE c.session_id = ?1 AND c.generation = ?2",
            )?
            .query_row(params![session, generation], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, OrgId>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                ))
            })
            .optional()?;
        if let Some((stored, org_id, rotated_at, successor_enc)) = row
            && crate::crypto::ct_eq(&stored, &digest)
        {
            return Ok(Some(RefreshRow {
                key: RefreshKey::Chain { generation },
                token_hash,
                session_id: SessionId::from_wire(session),
                org_id,
                rotated_at,
                successor_enc,
            }));
        }
        // Not this version's token after all (an older random token may, very rarely, have
        // the same shape): the old table decides.
    }
    Ok(conn
        .prepare_cached(
            "SELECT session_id, org_id, rotated_at, successor_enc
             FROM refresh_tokens WHERE token_hash = ?1",
        )?
        .query_row([&token_hash], |r| {
            Ok(RefreshRow {
                key: RefreshKey::Legacy,
                token_hash: token_hash.clone(),
                session_id: r.get(0)?,
                org_id: r.get(1)?,
                rotated_at: r.get(2)?,
                successor_enc: r.get(3)?,
            })
        })
        .optional()?)
}

/// `row` read again (inside the write lock, after another request rotated it first).
pub fn find_refresh_again(conn: &Connection, row: &RefreshRow) -> Result<Option<RefreshRow>> {
    let found = match &row.key {
        RefreshKey::Chain { generation } => conn
            .prepare_cached(
                "SELECT c.rotated_at, s.sealed
                 FROM refresh_chain c LEFT JOIN refresh_successors s ON s.id = c.successor
                 WHERE c.session_id = ?1 AND c.generation = ?2",
            )?
            .query_row(params![row.session_id, generation], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?,
        RefreshKey::Legacy => conn
            .prepare_cached(
                "SELECT rotated_at, successor_enc FROM refresh_tokens WHERE token_hash = ?1",
            )?
            .query_row([&row.token_hash], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    };
    Ok(found.map(|(rotated_at, successor_enc)| RefreshRow {
        rotated_at,
        successor_enc,
        ..row.clone()
    }))
}

/// The refresh token of `row` rotated `now`: marks it rotated, keeping the sealed successor
/// for the grace window, and stores the successor `next` at the next generation. Only
/// succeeds once per token (the `rotated_at IS NULL` guard); false, with nothing written,
/// when it was rotated already.
pub fn mark_rotated(
    conn: &Connection,
    row: &RefreshRow,
    next: &str,
    successor_enc: &[u8],
    now: i64,
) -> Result<bool> {
    let n = match &row.key {
        RefreshKey::Chain { generation } => {
            // The sealed copy first (its id goes into the chain row); taken back at once when
            // the token turns out to be rotated already.
            conn.prepare_cached(
                "INSERT INTO refresh_successors (rotated_at, sealed) VALUES (?1, ?2)",
            )?
            .execute(params![now, successor_enc])?;
            let sealed_id = conn.last_insert_rowid();
            let n = conn
                .prepare_cached(
                    "UPDATE refresh_chain SET rotated_at = ?3, successor = ?4
                     WHERE session_id = ?1 AND generation = ?2 AND rotated_at IS NULL",
                )?
                .execute(params![row.session_id, generation, now, sealed_id])?;
            if n != 1 {
                conn.prepare_cached("DELETE FROM refresh_successors WHERE id = ?1")?
                    .execute([sealed_id])?;
            }
            n
        }
        // The successor of a token from before version 8 starts the session's chain.
        RefreshKey::Legacy => conn
            .prepare_cached(
                "UPDATE refresh_tokens SET rotated_at = ?2, successor_hash = ?3, successor_enc = ?4
                 WHERE token_hash = ?1 AND rotated_at IS NULL",
            )?
            .execute(params![
                row.token_hash,
                now,
                crate::crypto::token_hash(next),
                successor_enc
            ])?,
    };
    if n != 1 {
        return Ok(false);
    }
    insert_chain(
        conn,
        next,
        &row.session_id,
        next_generation(row),
        &row.org_id,
        now,
    )?;
    Ok(true)
}

/// One refresh token's rotation, as the group commit runs it (see [`rotate`]).
pub struct RotateJob {
    pub row: RefreshRow,
    /// The successor token (from [`new_refresh_token`] at the row's next generation).
    pub next: String,
    pub successor_enc: Vec<u8>,
    pub now: i64,
    pub idle_expires_at: i64,
}

/// What a [`RotateJob`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Rotated: the successor is stored and the session's idle time extended.
    Rotated,
    /// Another request rotated the token first (nothing written): the caller decides between
    /// the grace window and reuse, under the write lock.
    AlreadyRotated,
    /// The session was revoked or expired since it was read (nothing kept).
    SessionEnded,
}

/// A rotation: the conditional mark and the successor's row (so of concurrent refreshes of
/// one token exactly one rotates), and the conditional touch of a still-live session — the
/// writes `session::refresh` makes under the write lock, for `db::batch::GroupCommit`.
pub fn rotate(tx: &Connection, job: RotateJob) -> Result<super::batch::Step<Rotation>> {
    use super::batch::Step;
    if !mark_rotated(tx, &job.row, &job.next, &job.successor_enc, job.now)? {
        return Ok(Step::Keep(Rotation::AlreadyRotated));
    }
    if !touch_live(tx, &job.row.session_id, job.now, job.idle_expires_at)? {
        return Ok(Step::Undo(Rotation::SessionEnded));
    }
    Ok(Step::Keep(Rotation::Rotated))
}

/// The generation a successor of `row` gets: the next one in its chain (1 for a token from
/// before version 8, whose session has no chain yet).
pub fn next_generation(row: &RefreshRow) -> i64 {
    match row.key {
        RefreshKey::Chain { generation, .. } => generation + 1,
        RefreshKey::Legacy => 1,
    }
}

/// Forgets up to `limit` sealed successors of tokens rotated before `before` (the grace
/// window is over: they are never needed again), in both token tables; returns how many.
pub fn forget_old_successors(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    // Rotation order is id order: the oldest `limit` rows, those of them past the window.
    // A chain row keeps the id of its forgotten successor, but is only ever followed to it
    // within the grace window (`session::refresh`), while the row still exists.
    let chain = conn
        .prepare_cached(
            "DELETE FROM refresh_successors WHERE id IN (
             SELECT id FROM (SELECT id, rotated_at FROM refresh_successors ORDER BY id LIMIT ?2)
             WHERE rotated_at < ?1)",
        )?
        .execute(params![before, limit])?;
    let legacy = conn
        .prepare_cached(
            "UPDATE refresh_tokens SET successor_enc = NULL WHERE rowid IN (
             SELECT rowid FROM refresh_tokens
             WHERE successor_enc IS NOT NULL AND rotated_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit - chain as i64])?;
    Ok(chain + legacy)
}

/// When a session ended (expiry, idle expiry or revocation, whichever came first): the
/// expression of the `sessions_ended` index (migrations/003_upkeep.sql).
const ENDED: &str = "MIN(expires_at, idle_expires_at, COALESCE(revoked_at, expires_at))";

/// Deletes up to `limit` sessions that ended before `before`, with their refresh tokens
/// (`ON DELETE CASCADE`); returns the sessions deleted.
pub fn sweep_ended(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(&format!(
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE {ENDED} < ?1 LIMIT ?2)"
        ))?
        .execute(params![before, limit])?)
}

/// The session of `org_id`, its user, and the user's membership in that org, in one query: what
/// every request with an access token checks.
pub fn with_user(
    conn: &Connection,
    org_id: &OrgId,
    id: &SessionId,
) -> Result<
    Option<(
        Session,
        crate::db::users::User,
        Option<crate::db::users::Membership>,
    )>,
> {
    use crate::db::users;
    Ok(conn
        .prepare_cached(&format!(
        "SELECT s.id, s.org_id, s.user_id, s.auth_methods, s.ip_address, s.user_agent, s.created_at,
                s.last_seen_at, s.idle_expires_at, s.expires_at, s.revoked_at, s.client_id,
                {}, {}
         FROM sessions s JOIN users u ON u.id = s.user_id
         LEFT JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
         WHERE s.org_id = ?1 AND s.id = ?2",
        users::COLS,
        users::M_COLS
    ))?
        .query_row(params![org_id, id], |r| {
            let m: Option<String> = r.get(COLS_LEN + users::COLS_LEN)?;
            Ok((
                session_at(r, 0)?,
                users::user_at(r, COLS_LEN)?,
                match m {
                    Some(_) => Some(users::membership_at(r, COLS_LEN + users::COLS_LEN)?),
                    None => None,
                },
            ))
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_count_matches_the_column_list() {
        assert_eq!(COLS.split(',').count(), COLS_LEN);
    }

    #[test]
    fn only_the_shapes_this_server_issued_may_be_refresh_tokens() {
        let sid = SessionId::from_wire("ses_01M8SHP4J7K0TGHHP9W5Z1DWXC");
        assert!(may_be_refresh_token(&new_refresh_token(&sid, 0)));
        assert!(may_be_refresh_token(&new_refresh_token(&sid, 41)));
        assert!(may_be_refresh_token(&crate::crypto::random_token(32)));
        for bad in [
            "",
            "garbage",
            &"A".repeat(42),
            &"A".repeat(44),
            &format!("{}.", "A".repeat(42)),
            &format!("{}=", "A".repeat(42)),
            "ses_01M8SHP4J7K0TGHHP9W5Z1DWXC-00-secret",
            "ses_01M8SHP4J7K0TGHHP9W5Z1DWXC-0-",
        ] {
            assert!(!may_be_refresh_token(bad), "{bad}");
        }
    }
}
