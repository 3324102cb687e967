//! Sessions as the auth flows see them: starting one (session row + refresh token + access
//! token), and refresh-token rotation with reuse detection and the grace window of API.md §2.

pub mod login;

use crate::crypto;
use crate::db::Tx;
use crate::db::orgs;
use crate::db::orgs::Org;
use crate::db::sessions::{self, Session};
use crate::db::users::{self, Membership, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::status::UserStatus;
use crate::tokens::AccessClaims;

/// What a successful login, refresh or switch hands the client.
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub session_id: crate::ids::SessionId,
}

/// Where a session is started from (for the session list and the audit trail).
pub struct Origin<'a> {
    pub ip: &'a str,
    pub user_agent: Option<&'a str>,
}

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis() as i64
}

/// Signs an access token for this user, org, membership and session.
pub fn access_token(
    state: &AppState,
    user: &User,
    org: &Org,
    membership: &Membership,
    session: &Session,
    now: i64,
) -> ApiResult<String> {
    let iat = now.div_euclid(1000);
    let claims = AccessClaims {
        iss: state.config.server.public_url.clone(),
        sub: user.id.clone(),
        aud: state.config.tokens.audience.clone(),
        iat,
        exp: iat + state.config.tokens.access_ttl.as_secs() as i64,
        jti: crate::ids::new_id("jti", now),
        sid: session.id.clone(),
        org_id: org.id.clone(),
        org_slug: org.slug.clone(),
        org_role: membership.role.clone(),
        email: user.email.clone(),
        email_verified: user.email_verified,
        amr: session.auth_methods.clone(),
    };
    state
        .keys
        .sign(&claims)
        .map_err(|e| ApiError::internal(format!("signing: {e}")))
}

fn seal_key(state: &AppState) -> [u8; 32] {
    crypto::derive_key(state.secret(), "refresh-successor")
}

/// A new session's row: its idle and absolute lifetimes from `[tokens]`.
fn new_session(
    state: &AppState,
    org_id: crate::ids::OrgId,
    user: &User,
    auth_methods: Vec<String>,
    origin: &Origin<'_>,
    client_id: Option<String>,
    now: i64,
) -> Session {
    let t = &state.config.tokens;
    Session {
        id: crate::ids::SessionId::fresh(now),
        org_id,
        user_id: user.id.clone(),
        auth_methods,
        ip_address: Some(origin.ip.to_string()),
        user_agent: origin.user_agent.map(str::to_string),
        created_at: now,
        last_seen_at: now,
        idle_expires_at: now + ms(t.refresh_ttl).min(ms(t.session_max_age)),
        expires_at: now + ms(t.session_max_age),
        revoked_at: None,
        client_id,
    }
}

/// Starts a session with no org for OAuth client `client_id` (a WorkOS sign-in of a user with
/// no organization): its refresh token rotates like any other; no org-scoped check passes it.
pub fn start_orgless(
    tx: &Tx,
    state: &AppState,
    user: &User,
    amr: &[String],
    origin: &Origin<'_>,
    client_id: &str,
    now: i64,
) -> ApiResult<(crate::ids::SessionId, String)> {
    let session = new_session(
        state,
        crate::ids::OrgId::from_wire(NO_ORG),
        user,
        amr.to_vec(),
        origin,
        Some(client_id.to_string()),
        now,
    );
    sessions::insert(tx, &session)?;
    sessions::set_client(tx, &session.id, client_id)?;
    let refresh = sessions::start_chain(tx, &session.id, &session.org_id, now)?;
    users::set_last_login(tx, &user.id, now)?;
    Ok((session.id, refresh))
}

/// Starts a session inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub fn start(
    tx: &Tx,
    state: &AppState,
    user: &User,
    org: &Org,
    membership: &Membership,
    amr: &[&str],
    origin: &Origin<'_>,
    now: i64,
) -> ApiResult<Issued> {
    let session = new_session(
        state,
        org.id.clone(),
        user,
        amr.iter().map(|s| s.to_string()).collect(),
        origin,
        None,
        now,
    );
    sessions::insert(tx, &session)?;
    let refresh = sessions::start_chain(tx, &session.id, &org.id, now)?;
    users::set_last_login(tx, &user.id, now)?;
    Ok(Issued {
        access_token: access_token(state, user, org, membership, &session, now)?,
        refresh_token: refresh,
        session_id: session.id,
    })
}

pub enum Refreshed {
    /// The successor refresh token (new, or within the grace window the same one again) and
    /// what the access token is signed from — signed by [`Rotated::issue`] after the commit,
    /// so the signature is not computed while holding the write lock.
    Ok(Box<Rotated>),
    /// An already-rotated token outside the grace window: the session was revoked.
    Reused { session: Box<Session> },
}

pub struct Rotated {
    pub refresh_token: String,
    pub session: Session,
    pub user: User,
    pub org: Org,
    pub membership: Membership,
}

impl Rotated {
    /// The token pair, with a freshly signed access token.
    pub fn issue(&self, state: &AppState, now: i64) -> ApiResult<Issued> {
        Ok(Issued {
            access_token: access_token(
                state,
                &self.user,
                &self.org,
                &self.membership,
                &self.session,
                now,
            )?,
            refresh_token: self.refresh_token.clone(),
            session_id: self.session.id.clone(),
        })
    }
}

/// Everything a refresh needs: read inside the refresh's job on the write connection
/// ([`RefreshJob`]), or, for the OAuth and WorkOS token endpoints, on a reader before the
/// write lock is taken (so the locked part is only the writes).
pub struct Prepared {
    row: sessions::RefreshRow,
    session: Session,
    user: User,
    membership: Membership,
    pub org: Org,
}

impl Prepared {
    /// The session the refresh token belongs to.
    pub fn session_id(&self) -> &crate::ids::SessionId {
        &self.session.id
    }

    /// The OAuth client the session was made for, if any.
    pub fn client_id(&self) -> Option<&str> {
        self.session.client_id.as_deref()
    }
}

fn invalid() -> ApiError {
    ApiError::of(ErrorCode::InvalidRefreshToken)
}

/// Looks up a refresh token and its live session, active user, active membership and org.
/// The org id of a session that has none (a WorkOS sign-in before any organization; see
/// migrations/007_workos.sql): a deleted, suspended row no lookup finds.
pub const NO_ORG: &str = "org_none";

/// Whether a session is one of those.
pub fn is_orgless(org_id: &crate::ids::OrgId) -> bool {
    org_id.as_str() == NO_ORG
}

/// The stand-in org and membership an org-less session refreshes with (never stored, never
/// shown: its tokens carry no org).
fn no_org(user: &User) -> (Org, Membership) {
    let id = crate::ids::OrgId::from_wire(NO_ORG);
    (
        Org {
            id: id.clone(),
            slug: String::new(),
            name: String::new(),
            plan: "free".into(),
            status: crate::status::OrgStatus::Suspended,
            app_url: None,
            app_url_by_operator: false,
            logo_url: None,
            settings: Default::default(),
            created_at: 0,
            updated_at: 0,
        },
        Membership {
            id: String::new(),
            org_id: id,
            user_id: user.id.clone(),
            role: "member".into(),
            status: crate::status::MemberStatus::Active,
            metadata: serde_json::json!({}),
            joined_at: 0,
        },
    )
}

pub fn prepare_refresh(conn: &Tx, token: &str, now: i64) -> ApiResult<Prepared> {
    prepare_refresh_knowing(conn, token, now, None)
}

/// [`prepare_refresh`], with an org the caller has read already (that of `X-Org-Slug`):
/// when it is the session's, it is not read again.
fn prepare_refresh_knowing(
    conn: &Tx,
    token: &str,
    now: i64,
    known: Option<Org>,
) -> ApiResult<Prepared> {
    let row = sessions::find_refresh(conn, token)?.ok_or_else(invalid)?;
    if is_orgless(&row.org_id) {
        let session = sessions::find_for_any(conn, &row.session_id)?.ok_or_else(invalid)?;
        let user = users::find_by_id(conn, &session.user_id)?.ok_or_else(invalid)?;
        // Only an OAuth client's (WorkOS) session can be org-less.
        if !session.is_live(now) || user.status != UserStatus::Active || session.client_id.is_none()
        {
            return Err(invalid());
        }
        let (org, membership) = no_org(&user);
        return Ok(Prepared {
            row,
            session,
            user,
            membership,
            org,
        });
    }
    let (session, user, membership) =
        sessions::with_user(conn, &row.org_id, &row.session_id)?.ok_or_else(invalid)?;
    if !session.is_live(now) || user.status != UserStatus::Active {
        return Err(invalid());
    }
    let membership = membership
        .filter(crate::api::guard::is_active)
        .ok_or_else(invalid)?;
    let org = match known.filter(|o| o.id == session.org_id) {
        Some(o) => o,
        None => orgs::find_by_id(conn, &session.org_id)?.ok_or_else(invalid)?,
    };
    Ok(Prepared {
        row,
        session,
        user,
        membership,
        org,
    })
}

/// The live session behind a current (never rotated) refresh token, with its active user
/// and org, without rotating it: the proof of a session for switching orgs. 401
/// `invalid_token` for anything else.
pub fn current_by_refresh(conn: &Tx, token: &str, now: i64) -> ApiResult<(Session, User, Org)> {
    if token.len() > 512 {
        return Err(invalid());
    }
    let p = prepare_refresh(conn, token, now)?;
    if p.row.rotated_at.is_some() || p.client_id().is_some() {
        return Err(invalid());
    }
    Ok((p.session, p.user, p.org))
}

/// Rotates a prepared token that was current when read, as a job of the rotations' group
/// commit (`db/batch.rs`): concurrent refreshes share one write transaction. `Ok(None)` when
/// the token was rotated meanwhile (or already was): then the caller runs [`refresh`] in a
/// change of its own, which decides between the grace window and reuse under the write lock.
pub fn rotate_batched(
    state: &AppState,
    p: Prepared,
    now: i64,
) -> ApiResult<Result<Box<Rotated>, Prepared>> {
    if p.row.rotated_at.is_some() {
        return Ok(Err(p));
    }
    let next = sessions::new_refresh_token(&p.session.id, sessions::next_generation(&p.row));
    let job = sessions::RotateJob {
        successor_enc: crypto::seal(
            &seal_key(state),
            next.as_bytes(),
            p.row.token_hash.as_bytes(),
        ),
        next: next.clone(),
        row: p.row.clone(),
        now,
        idle_expires_at: now + ms(state.config.tokens.refresh_ttl),
    };
    match state.rotations.submit(&state.db, job)? {
        sessions::Rotation::Rotated => Ok(Ok(Box::new(Rotated {
            refresh_token: next,
            session: p.session,
            user: p.user,
            org: p.org,
            membership: p.membership,
        }))),
        sessions::Rotation::SessionEnded => Err(invalid()),
        sessions::Rotation::AlreadyRotated => Ok(Err(p)),
    }
}

/// A refresh of `POST /auth/refresh` as one job of the refreshes' group commit
/// (`AppState::refreshes`): the token is looked up and rotated on the write connection, in one
/// job. That connection's page cache stays warm, whereas a pooled reader drops its whole cache
/// whenever the database changed since its last read (in WAL mode), which every refresh does:
/// reading the token, session, user and org on a reader re-read their pages every time
/// (measured: `readDbPage` 8 % of a refresh's CPU on an empty database, 13 % with 1 M users;
/// docs/benchmarks.md).
pub struct RefreshJob {
    pub token: String,
    /// `X-Org-Slug`, when the request named an org: the token must be of that org.
    pub org_slug: Option<String>,
    pub now: i64,
    pub idle_expires_at: i64,
    /// A session last seen less than this long ago is not written again (see [`touch_every`]).
    pub touch_every: i64,
    pub seal_key: [u8; 32],
}

/// How stale a refreshing session's `last_seen_at` (and so its idle deadline) may be before a
/// refresh writes it again: a hundredth of the idle lifetime, at most a minute. A refresh
/// otherwise writes the session's row and moves its entry in `sessions_ended` every time,
/// two of its four pages. The stored idle deadline is then at most this much earlier than
/// the last refresh's: a session can only end sooner, by under 1 % of its idle lifetime
/// (under a minute of the default 7 days), never later; `lastSeenAt` is to the minute.
pub fn touch_every(state: &AppState) -> i64 {
    (ms(state.config.tokens.refresh_ttl) / 100).min(60_000)
}

/// What a [`RefreshJob`] decided.
pub enum RefreshAnswer {
    /// Rotated: the successor is stored (the session's idle time extended when due, see
    /// [`touch_every`]).
    Rotated(Box<Rotated>),
    /// The token was already rotated: the grace window or reuse is decided by [`refresh`],
    /// in a change of its own (which announces a reuse).
    NotCurrent(Box<Prepared>),
    /// Refused, nothing written.
    Refused(ApiError),
}

impl RefreshJob {
    pub fn new(state: &AppState, token: String, org_slug: Option<String>, now: i64) -> Self {
        RefreshJob {
            token,
            org_slug,
            now,
            idle_expires_at: now + ms(state.config.tokens.refresh_ttl),
            touch_every: touch_every(state),
            seal_key: seal_key(state),
        }
    }
}

/// Runs one [`RefreshJob`] inside the group commit's transaction. The checks are those of a
/// refresh read before the lock, in the same order: the org named by `X-Org-Slug` exists,
/// the token is current, its session live, user and membership active, it is not an OAuth
/// client's, and it belongs to that org.
pub fn run_refresh_job(
    tx: &Tx,
    job: RefreshJob,
) -> crate::db::Result<crate::db::batch::Step<RefreshAnswer>> {
    use crate::db::batch::Step;
    let refuse = |e: ApiError| Ok(Step::Undo(RefreshAnswer::Refused(e)));
    let header_org = match &job.org_slug {
        Some(slug) => match orgs::find_by_slug(tx, slug)? {
            Some(org) => Some(org),
            None => return refuse(ApiError::org_not_found()),
        },
        None => None,
    };
    let header_org_id = header_org.as_ref().map(|o| o.id.clone());
    let p = match prepare_refresh_knowing(tx, &job.token, job.now, header_org) {
        Ok(p) => p,
        Err(e) => return refuse(e),
    };
    // An OAuth client's refresh token is refreshed at /oauth2/token, by that client only.
    if p.client_id().is_some() {
        return refuse(invalid());
    }
    if let Some(id) = &header_org_id
        && p.org.id != *id
    {
        return refuse(
            ApiError::of(ErrorCode::OrgMismatch)
                .with_message("The refresh token belongs to another organization"),
        );
    }
    if p.row.rotated_at.is_some() {
        return Ok(Step::Keep(RefreshAnswer::NotCurrent(Box::new(p))));
    }
    let next = sessions::new_refresh_token(&p.session.id, sessions::next_generation(&p.row));
    let sealed = crypto::seal(&job.seal_key, next.as_bytes(), p.row.token_hash.as_bytes());
    // Read on this connection inside the write transaction, the row is current: the
    // conditional mark only guards the rule.
    if !sessions::mark_rotated(tx, &p.row, &next, &sealed, job.now)? {
        return Ok(Step::Undo(RefreshAnswer::NotCurrent(Box::new(p))));
    }
    // The session was read live on this connection inside this transaction: the write only
    // moves its idle deadline, once it is `touch_every` stale, or at once when the stored one
    // is later than this refresh's (the clock stepped back, or `refresh_ttl` was lowered),
    // so the stored deadline is never later than the last refresh's.
    let stale = job.now - p.session.last_seen_at >= job.touch_every;
    let later = p.session.idle_expires_at > job.idle_expires_at;
    if (stale || later) && !sessions::touch_live(tx, &p.session.id, job.now, job.idle_expires_at)? {
        return refuse(invalid());
    }
    let Prepared {
        session,
        user,
        membership,
        org,
        ..
    } = p;
    Ok(Step::Keep(RefreshAnswer::Rotated(Box::new(Rotated {
        refresh_token: next,
        session,
        user,
        org,
        membership,
    }))))
}

/// [`rotate_batched`], else [`refresh`] in a write transaction of its own: the token
/// endpoints of the OAuth provider and the WorkOS API, which announce nothing on reuse.
pub fn refresh_now(state: &AppState, p: Prepared, now: i64) -> ApiResult<Refreshed> {
    match rotate_batched(state, p, now)? {
        Ok(r) => Ok(Refreshed::Ok(r)),
        Err(p) => state.db.write(|tx| refresh(tx, state, p, now)),
    }
}

/// Rotates the prepared token inside the caller's (BEGIN IMMEDIATE) transaction. Rotation is
/// a conditional update, so of concurrent refreshes of one token exactly one rotates; the
/// others find it rotated within the grace window and get the same successor. A session
/// revoked between the read and the lock is caught by the conditional `touch_live`.
pub fn refresh(tx: &Tx, state: &AppState, p: Prepared, now: i64) -> ApiResult<Refreshed> {
    let grace = ms(state.config.tokens.refresh_grace);
    let key = seal_key(state);
    let Prepared {
        row,
        session,
        user,
        membership,
        org,
    } = p;
    let rotated = |refresh_token: String, session: Session| {
        Ok(Refreshed::Ok(Box::new(Rotated {
            refresh_token,
            session,
            user,
            org,
            membership,
        })))
    };
    let (mut rotated_at, mut successor_enc) = (row.rotated_at, row.successor_enc.clone());
    if rotated_at.is_none() {
        let next = sessions::new_refresh_token(&session.id, sessions::next_generation(&row));
        let sealed = crypto::seal(&key, next.as_bytes(), row.token_hash.as_bytes());
        if sessions::mark_rotated(tx, &row, &next, &sealed, now)? {
            let idle = now + ms(state.config.tokens.refresh_ttl);
            if !sessions::touch_live(tx, &session.id, now, idle)? {
                return Err(invalid());
            }
            return rotated(next, session);
        }
        // Another request rotated it since we read it: continue with the row as it is now.
        let fresh = sessions::find_refresh_again(tx, &row)?.ok_or_else(invalid)?;
        rotated_at = fresh.rotated_at;
        successor_enc = fresh.successor_enc;
    }
    let live = sessions::find(tx, &session.org_id, &session.id)?
        .filter(|s| s.is_live(now))
        .ok_or_else(invalid)?;
    match rotated_at {
        Some(at) if now - at <= grace => {
            let sealed = successor_enc.as_deref().ok_or_else(invalid)?;
            let bytes =
                crypto::open(&key, sealed, row.token_hash.as_bytes()).ok_or_else(invalid)?;
            rotated(String::from_utf8(bytes).map_err(|_| invalid())?, live)
        }
        _ => {
            sessions::revoke(tx, &live.id, "refresh_token_reused", now)?;
            Ok(Refreshed::Reused {
                session: Box::new(live),
            })
        }
    }
}
