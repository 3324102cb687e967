//! Invitation rows for `POST /public/invitations`, with the semantics of
//! `/org/members/invite` (API.md §5). Self-contained so that the shared invitations module,
//! when it lands, can replace [`create`] without touching the handler.

use crate::app::AppState;
use crate::clock::rfc3339;
use crate::crypto;
use crate::db::invitations::{self, Invitation};
use crate::db::orgs::Org;
use crate::db::{self, users};
use crate::error::{ApiError, ApiResult};
use crate::events;
use serde_json::{Value, json};

pub fn already_member() -> ApiError {
    ApiError::new(
        409,
        "already_member",
        "This user is already a member of the organization",
    )
}

/// How long an invitation stays valid (the `/org/members/invite` default).
const INVITE_TTL_MS: i64 = 7 * 86_400_000;

/// Who sent an invitation, as the invite and its event show it.
pub struct Inviter<'a> {
    pub id: &'a str,
    pub email: Option<&'a str>,
    pub kind: &'a str,
}

/// Inserts a pending invitation with the semantics of `/org/members/invite` (409
/// `already_member` / `invitation_pending`, token stored only as its hash, 7-day expiry),
/// emits `member.invited` and queues the email, all in `tx`. Returns the invite's wire
/// shape, the token and the accept URL. Kept apart so the shared invitations module can
/// replace it.
pub fn create(
    tx: &rusqlite::Connection,
    state: &AppState,
    org: &Org,
    email: &str,
    role: &str,
    by: &Inviter<'_>,
    now: i64,
) -> ApiResult<(Value, String, String)> {
    if let Some(u) = users::find_by_email(tx, email)?
        && users::find_membership(tx, &org.id, &u.id)?.is_some()
    {
        return Err(already_member());
    }
    if invitations::find_pending(tx, &org.id, email, now)?.is_some() {
        return Err(ApiError::new(
            409,
            "invitation_pending",
            "A pending invitation for this email already exists",
        ));
    }
    let token = crypto::random_token(32);
    let inv = Invitation {
        id: db::new_id("inv", now),
        org_id: org.id.clone(),
        email: email.to_string(),
        role: role.to_string(),
        token_hash: crypto::token_hash(&token),
        state: "pending".into(),
        invited_by: Some(by.id.to_string()),
        created_at: now,
        expires_at: now + INVITE_TTL_MS,
    };
    invitations::insert(tx, &inv)?;
    let base = org
        .app_url
        .as_deref()
        .unwrap_or(&state.config.server.public_url)
        .trim_end_matches('/');
    let accept_url = format!("{base}/invitations/accept?token={token}");
    let invited_by = json!({ "id": by.id, "email": by.email, "type": by.kind });
    events::emit(
        tx,
        Some(org),
        "member.invited",
        json!({
            "inviteId": inv.id,
            "email": inv.email,
            "role": inv.role,
            "invitedBy": invited_by,
            "expiresAt": rfc3339(inv.expires_at),
        }),
        now,
    )?;
    events::email(
        tx,
        Some(&org.id),
        &events::Email {
            to: &inv.email,
            subject: format!("You are invited to join {}", org.name),
            text: format!(
                "You have been invited to join {} as {}.\n\nAccept the invitation: {accept_url}\n\n\
                 The link expires on {}.\n",
                org.name,
                inv.role,
                rfc3339(inv.expires_at)
            ),
            html: format!(
                "<p>You have been invited to join {} as {}.</p>\
                 <p><a href=\"{url}\">Accept the invitation</a></p>\
                 <p>The link expires on {}.</p>",
                events::html_escape(&org.name),
                events::html_escape(&inv.role),
                rfc3339(inv.expires_at),
                url = events::html_escape(&accept_url),
            ),
        },
        now,
    )?;
    let view = json!({
        "id": inv.id,
        "email": inv.email,
        "role": inv.role,
        "state": inv.state,
        "expiresAt": rfc3339(inv.expires_at),
        "createdAt": rfc3339(inv.created_at),
        "invitedBy": invited_by,
    });
    Ok((view, token, accept_url))
}
