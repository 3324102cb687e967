//! Guards: the first line of a handler, returning a typed context or the right 401/403.

use crate::api::Ctx;
use crate::crypto;
use crate::db::admin_keys;
use crate::db::orgs::{self, Org};
use crate::db::sessions::{self, Session};
use crate::db::users::{Membership, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::cookies;
use crate::http::input::{bearer, cookie};
use crate::state::AppState;
use crate::status::{MemberStatus, UserStatus};
use crate::tokens::{AccessClaims, TokenError};
use rouille::Request;

pub const ADMIN_KEY_PREFIX: &str = "sk_admin_";

/// An authenticated operator request.
pub struct AdminCtx {
    pub key_id: String,
}

/// Requires `Authorization: Bearer sk_admin_<64 hex>` naming a live admin key.
pub fn admin(state: &AppState, req: &Request) -> ApiResult<AdminCtx> {
    let unauth = || {
        ApiError::unauthenticated(
            "A valid admin key is required (Authorization: Bearer sk_admin_…)",
        )
        .with_header("WWW-Authenticate", "Bearer")
    };
    let key = bearer(req).ok_or_else(unauth)?;
    let well_formed = key
        .strip_prefix(ADMIN_KEY_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(unauth());
    }
    let hash = crypto::token_hash(key);
    let found = state
        .db
        .read(|c| admin_keys::find_live(c, &hash))?
        .filter(|(_, stored)| crypto::ct_eq(stored.as_bytes(), hash.as_bytes()));
    match found {
        Some((key_id, _)) => Ok(AdminCtx { key_id }),
        None => Err(unauth()),
    }
}

/// The org named by `X-Org-Slug`: missing → 400, unknown or deleted → 404 `org_not_found`.
pub fn org(state: &AppState, req: &Request) -> ApiResult<Org> {
    let slug = org_slug(req)?;
    state
        .db
        .read(|c| orgs::find_by_slug(c, slug))?
        .ok_or_else(ApiError::org_not_found)
}

/// The slug of `X-Org-Slug`, checked as [`org`] checks it, for a caller that looks the org
/// up itself (a refresh does, inside its write transaction).
pub fn org_slug(req: &Request) -> ApiResult<&str> {
    let slug = req
        .header("X-Org-Slug")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::field(
                ErrorCode::InvalidRequest,
                "X-Org-Slug",
                "header is required",
            )
        })?;
    if slug.len() > 64 {
        return Err(ApiError::org_not_found());
    }
    Ok(slug)
}

/// An authenticated end user acting in the org of `X-Org-Slug`.
pub struct UserCtx {
    pub org: Org,
    pub user: User,
    pub membership: Membership,
    pub session: Session,
    pub claims: AccessClaims,
    /// Authenticated by the `access_token` cookie (so the CSRF rule applied).
    pub via_cookie: bool,
}

/// The access token of a request: `Authorization: Bearer`, else the `access_token` cookie.
pub fn access_token(req: &Request) -> Option<(&str, bool)> {
    if let Some(t) = bearer(req) {
        return Some((t, false));
    }
    cookie(req, cookies::ACCESS)
        .filter(|t| !t.is_empty())
        .map(|t| (t, true))
}

/// Whether a membership lets its user in: the one test every gate below uses.
pub fn is_active(m: &Membership) -> bool {
    m.status == MemberStatus::Active
}

/// The one membership rule of every way into an org (an access token, a login, a magic link,
/// switching orgs; `/public/authenticate` reports the same code as its reason): the membership
/// exists and is active, else 403 `not_a_member` / `membership_inactive`.
pub fn active_membership(found: Option<Membership>) -> ApiResult<Membership> {
    match found {
        None => Err(ApiError::of(ErrorCode::NotAMember)),
        Some(m) if !is_active(&m) => Err(ApiError::of(ErrorCode::MembershipInactive)),
        Some(m) => Ok(m),
    }
}

/// Requires a valid access token for the org of `X-Org-Slug`, a live session, an active
/// membership, and — for cookie-authenticated state changes — passing the CSRF rule.
pub fn user(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<UserCtx> {
    let slug = org_slug(req)?;
    // The token is checked before the org is read (in memory: the keys and the cache of
    // verified tokens), so that the org and the session are read in one transaction; its
    // verdict is still given after the org's, in the order `org` then `verified_claims`.
    let verified = verified_claims(state, ctx, req);
    let (org, found) = state.db.read_snapshot(|c| {
        let Some(org) = orgs::find_by_slug(c, slug)? else {
            return Ok::<_, ApiError>((None, None));
        };
        let found = match &verified {
            Ok((claims, _)) if claims.org_id == org.id => {
                sessions::with_user(c, &org.id, &claims.sid)?
            }
            _ => None,
        };
        Ok((Some(org), found))
    })?;
    let org = org.ok_or_else(ApiError::org_not_found)?;
    let (claims, via_cookie) = verified?;
    if claims.org_id != org.id {
        return Err(ApiError::of(ErrorCode::OrgMismatch)
            .with_message("The access token belongs to another organization"));
    }
    let found = found.filter(|(s, u, _)| {
        s.user_id == claims.sub && s.is_live(ctx.now) && u.status == UserStatus::Active
    });
    let (session, user, membership) =
        found.ok_or_else(|| ApiError::unauthenticated("Session has ended"))?;
    not_an_oauth_session(&session)?;
    let membership = active_membership(membership)?;
    Ok(UserCtx {
        org,
        user,
        membership,
        session,
        claims,
        via_cookie,
    })
}

/// The claims of the request's access token (Bearer, else cookie — then the CSRF rule),
/// checked against the published keys at `ctx.now`.
fn verified_claims(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<(AccessClaims, bool)> {
    let (token, via_cookie) =
        access_token(req).ok_or_else(|| ApiError::unauthenticated("Authentication required"))?;
    if via_cookie && !cookies::csrf_ok(&state.config, req) {
        return Err(ApiError::of(ErrorCode::CsrfFailed));
    }
    let claims = state
        .keys
        .verify(
            &state.db,
            token,
            &state.config.server.public_url,
            &state.config.tokens.audience,
            ctx.now,
        )
        .map_err(|e| match e {
            TokenError::Expired => ApiError::of(ErrorCode::TokenExpired),
            _ => ApiError::unauthenticated("Invalid access token"),
        })?;
    Ok((claims, via_cookie))
}

/// The account behind the request's access token, in whichever org its session is (a live
/// session, an active user; the membership may be anything): who the caller is, for acts
/// that are about the account rather than about that org (accepting an invitation).
pub fn account(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<(Session, User)> {
    let (claims, _) = verified_claims(state, ctx, req)?;
    state
        .db
        .read(|c| sessions::with_user(c, &claims.org_id, &claims.sid))?
        .filter(|(s, u, _)| {
            s.user_id == claims.sub && s.is_live(ctx.now) && u.status == UserStatus::Active
        })
        .map(|(s, u, _)| (s, u))
        .ok_or_else(|| ApiError::unauthenticated("Session has ended"))
        .and_then(|(s, u)| not_an_oauth_session(&s).map(|()| (s, u)))
}

/// A session made for an OAuth client carries that app's tokens (for the app and
/// `/oauth2/userinfo`), never Latchkey's own `/api/v1` credentials: a third-party app granted
/// `openid profile` must not administer the org as the person who consented.
pub fn not_an_oauth_session(s: &Session) -> ApiResult<()> {
    if s.client_id.is_some() {
        return Err(ApiError::unauthenticated(
            "This token was issued to an OAuth client; it is not valid for the Latchkey API",
        ));
    }
    Ok(())
}

impl UserCtx {
    pub fn is_admin(&self) -> bool {
        self.membership.role().is_admin()
    }
}

/// `user` plus the org_admin-or-owner role.
pub fn org_admin(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<UserCtx> {
    let u = user(state, ctx, req)?;
    if !u.is_admin() {
        return Err(ApiError::forbidden("Requires the org_admin or owner role"));
    }
    Ok(u)
}
