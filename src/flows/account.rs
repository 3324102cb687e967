//! Account self-service shared by the JSON API and the hosted pages: revoking one's own
//! session and ending a browser session (each org told what the API would tell it).

use crate::api::Ctx;
use crate::change::Change;
use crate::db::audit::Entry;
use crate::db::orgs::Org;
use crate::db::sessions;
use crate::db::users::{self, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events;
use crate::ids::SessionId;
use crate::password;
use crate::session::login;
use crate::state::AppState;
use rouille::Request;
use serde_json::json;

pub(crate) fn self_entry<'a>(
    org_id: Option<&'a crate::ids::OrgId>,
    user_id: &'a str,
    action: &'a str,
) -> Entry<'a> {
    Entry::new(
        org_id,
        "user",
        Some(user_id),
        action,
        Some("user"),
        Some(user_id),
    )
}

/// Ends browser session `bs_id` of `user` and every org session made from it, inside `tx`,
/// telling each org as the API would: a sign-out (`reason` "logout") is a `user.logout` with
/// its audit entry in that org, anything else a `session.revoked`.
pub fn end_browser_session(
    tx: &Change,
    ctx: &Ctx,
    _req: &Request,
    user: &User,
    bs_id: &str,
    reason: &str,
) -> ApiResult<()> {
    let ended = crate::db::browser_sessions::revoke(tx, bs_id, reason, ctx.now)?;
    if reason != "logout" {
        let who = events::who(&user.id, &user.email);
        tx.sessions_revoked(&ended, who, reason)?;
        return Ok(());
    }
    for (sid, org_id) in &ended {
        tx.emit_in(
            org_id,
            "user.logout",
            json!({ "user": { "id": user.id }, "session": { "id": sid } }),
        )?;
        let mut e = self_entry(Some(org_id), &user.id, "user.logout");
        e.target_type = Some("session");
        e.target_id = Some(sid);
        tx.audit(e)?;
    }
    Ok(())
}

/// Revokes one of `user`'s own live sessions inside `tx` (API and account page): 404 for any
/// other id. A session a hosted page made takes its browser session (and the other org
/// sessions that browser made) with it. Audited in the revoked session's own org, so another
/// org's ids never appear in the caller's org.
pub fn revoke_own_session(
    tx: &Change,
    ctx: &Ctx,
    req: &Request,
    user: &User,
    id: &SessionId,
) -> ApiResult<()> {
    let s = sessions::find_for_user(tx, &user.id, id)?
        .filter(|s| s.is_live(ctx.now))
        .ok_or_else(|| ApiError::not_found("Session not found"))?;
    sessions::revoke(tx, &s.id, "revoked_by_user", ctx.now)?;
    let revoked = [(s.id.clone(), s.org_id.clone())];
    let who = events::who(&user.id, &user.email);
    tx.sessions_revoked(&revoked, who, "revoked_by_user")?;
    if let Some(bs) = crate::db::browser_sessions::of_session(tx, &s.id)? {
        end_browser_session(tx, ctx, req, user, &bs, "revoked_by_user")?;
    }
    let mut e = self_entry(Some(&s.org_id), &user.id, "session.revoked");
    e.target_type = Some("session");
    e.target_id = Some(&s.id);
    tx.audit(e)?;
    Ok(())
}

/// Changes the password of `user` (API and hosted pages): every session but `keep` (and the
/// browser session it came from) is revoked. A wrong current password is a failed login
/// (API.md §10): the same counters and locks, so a stolen session cannot guess it. `org` is
/// where it is audited (none: deployment-wide, from the account page). Returns how many
/// sessions were revoked.
#[allow(clippy::too_many_arguments)]
pub fn change_password_for(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    user: &User,
    org: Option<&Org>,
    keep: Option<&SessionId>,
    current: &str,
    new: &str,
) -> ApiResult<usize> {
    let attempt = login::begin_password_attempt(state, ctx, &user.email)?;
    let ok = current.len() <= 4 * state.config.password.max_length
        && state
            .hasher
            .verify(user.password_hash.as_deref(), current)?
            .0;
    if !ok {
        let locked = attempt.failed(ctx.now);
        login::record_login_failure(state, ctx, req, org, user, locked)?;
        state.metrics.login(false);
        return Err(
            ApiError::of(ErrorCode::InvalidCredentials).with_message("Current password is wrong")
        );
    }
    drop(attempt);
    password::check_policy(
        &state.config.password,
        org.and_then(|o| o.settings.password_min_length),
        "newPassword",
        new,
    )?;
    if new == current {
        return Err(ApiError::field(
            ErrorCode::WeakPassword,
            "newPassword",
            "must differ from the current password",
        ));
    }
    let hash = state.hasher.hash(new)?;
    let revoked = state.change(ctx, req, |tx| {
        users::set_password_hash(tx, &user.id, &hash, ctx.now)?;
        crate::db::two_factor::burn_partials(tx, &user.id, ctx.now)?;
        let revoked =
            sessions::revoke_all_for_user(tx, &user.id, keep, "password_changed", ctx.now)?;
        let who = events::who(&user.id, &user.email);
        tx.sessions_revoked(&revoked, who.clone(), "password_changed")?;
        tx.emit(org, "user.password_changed", json!({ "user": who }))?;
        let mut e = self_entry(org.map(|o| &o.id), &user.id, "user.password_changed");
        e.metadata = json!({ "sessionsRevoked": revoked.len() });
        tx.audit(e)?;
        Ok(revoked)
    })?;
    Ok(revoked.len())
}
