//! `POST /public/invitations` on top of the shared invitation logic of `invites.rs`.

use crate::change::Change;
use crate::db::orgs::Org;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::flows::invite;
use crate::state::AppState;
use serde_json::{Value, json};

pub fn already_member() -> ApiError {
    ApiError::of(ErrorCode::AlreadyMember)
}

/// Who sent an invitation (an API key here).
pub struct Inviter<'a> {
    pub id: &'a str,
    pub email: Option<&'a str>,
    pub kind: &'a str,
}

/// `POST /public/invitations` shares `/org/members/invite`'s rules, email and event: 409
/// `already_member` / `invitation_pending`, token stored only as its hash, 7-day expiry. The
/// API key is named as the inviter in the answer. Returns the answer (`token`/`acceptUrl` only
/// when the app delivers the invitation).
#[allow(clippy::too_many_arguments)]
pub fn create(
    tx: &Change,
    state: &AppState,
    org: &Org,
    email: &str,
    role: &str,
    by: &Inviter<'_>,
    delivery: invite::Delivery,
    now: i64,
) -> ApiResult<Value> {
    let (inv, token) = invite::create(tx, state, org, None, email, role, 7, delivery, now)?;
    let mut view = invite::invite_view(tx, &inv, now)?;
    view["invitedBy"] = json!({ "id": by.id, "email": by.email, "type": by.kind });
    Ok(invite::answer(state, view, &token, delivery))
}
