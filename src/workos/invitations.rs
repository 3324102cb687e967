//! `/user_management/invitations…`: a WorkOS invitation is a Latchkey invitation to an org,
//! delivered by the app (its token is in the answer, so accepting it vouches for no mailbox —
//! the rule of API.md §4 for `sendEmail: false`).

use super::{WError, WResult, body, list, ok, role_of_slug, role_slug, run, ts};
use crate::api::Ctx;
use crate::crypto;
use crate::db::Tx;
use crate::db::invitations;
use crate::db::orgs;
use crate::db::users;
use crate::db::workos::{self as store, WInvitation};
use crate::error::ApiResult;
use crate::flows::invite::{self, Delivery};
use crate::ids::{OrgId, UserId};
use crate::state::AppState;
use crate::status::InvitationState;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

fn token_key(state: &AppState) -> [u8; 32] {
    crypto::derive_key(state.secret(), "workos-invitation")
}

fn view(state: &AppState, w: &WInvitation, now: i64) -> Value {
    let inv = &w.inv;
    let token = w
        .token_enc
        .as_deref()
        .and_then(|s| crypto::open(&token_key(state), s, inv.id.as_bytes()))
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let state_word = match inv.effective_state(now) {
        InvitationState::Pending => "pending",
        InvitationState::Accepted => "accepted",
        InvitationState::Revoked => "revoked",
        // WorkOS has no `declined`: a declined invitation is over, like an expired one.
        InvitationState::Expired | InvitationState::Declined => "expired",
    };
    let closed = inv.responded_at.map(ts);
    json!({
        "object": "invitation",
        "id": inv.id,
        "email": inv.email,
        "state": state_word,
        "accepted_at": if inv.state == InvitationState::Accepted { closed.clone() } else { None },
        "revoked_at": if inv.state == InvitationState::Revoked { closed } else { None },
        "expires_at": ts(inv.expires_at),
        "organization_id": inv.org_id,
        "inviter_user_id": inv.invited_by,
        "accepted_user_id": w.accepted_by,
        "role_slug": role_slug(&inv.role),
        "token": token,
        "accept_invitation_url": if token.is_empty() { String::new() } else { invite::accept_url(state, &token) },
        "created_at": ts(inv.created_at),
        "updated_at": ts(inv.responded_at.unwrap_or(inv.created_at)),
    })
}

fn find(conn: &Tx, id: &str) -> WResult<WInvitation> {
    store::invitation(conn, id)?.ok_or_else(|| WError::not_found("Invitation", id))
}

#[derive(Deserialize)]
pub struct SendBody {
    email: String,
    organization_id: Option<String>,
    role_slug: Option<String>,
    expires_in_days: Option<i64>,
    inviter_user_id: Option<String>,
}

pub fn send(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let b: SendBody = body(state, req)?;
        let email = crate::validate::email(&b.email)?;
        let org_id = b
            .organization_id
            .as_deref()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| {
                WError::invalid("organization_id", "Latchkey invites to an organization")
            })?;
        let role = match &b.role_slug {
            Some(s) => role_of_slug(s)?,
            None => crate::role::Role::Member,
        };
        let days = b.expires_in_days.unwrap_or(7);
        if !(1..=30).contains(&days) {
            return Err(WError::invalid("expires_in_days", "1 to 30"));
        }
        let (org, inviter) = state.db.read(|c| {
            let o = orgs::find_by_id(c, &OrgId::from_wire(org_id))?
                .ok_or_else(|| WError::not_found("Organization", org_id))?;
            let i = match &b.inviter_user_id {
                Some(u) => Some(
                    users::find_by_id(c, &UserId::from_wire(u.as_str()))?
                        .ok_or_else(|| WError::not_found("User", u))?,
                ),
                None => None,
            };
            Ok::<_, WError>((o, i))
        })?;
        let key = token_key(state);
        let id = state.change(ctx, req, |tx| {
            let (inv, token) = invite::create(
                tx,
                state,
                &org,
                inviter.as_ref(),
                &email,
                role.as_str(),
                days,
                Delivery::App,
                ctx.now,
            )?;
            store::set_invitation_token(
                tx,
                &inv.id,
                &crypto::seal(&key, token.as_bytes(), inv.id.as_bytes()),
            )?;
            Ok(inv.id)
        })?;
        let w = state.db.read(|c| find(c, &id))?;
        Ok(ok(&view(state, &w, ctx.now)))
    })
}

pub fn list_invitations(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let q = |k: &str| crate::http::input::query(req, k).filter(|v| !v.is_empty());
        let org = q("organization_id").map(OrgId::from_wire);
        let email = q("email");
        state.db.read(|c| {
            list(
                req,
                |page| {
                    Ok(store::list_invitations(
                        c,
                        org.as_ref(),
                        email.as_deref(),
                        page,
                    )?)
                },
                |w: &WInvitation| w.inv.id.clone(),
                |w| Ok(view(state, w, ctx.now)),
            )
        })
    })
}

pub fn get(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let w = state.db.read(|c| find(c, ctx.param("id")))?;
        Ok(ok(&view(state, &w, ctx.now)))
    })
}

pub fn by_token(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let t = ctx.param("token");
        let w = if t.len() > 256 {
            None
        } else {
            state
                .db
                .read(|c| store::invitation_by_token(c, &crypto::token_hash(t)))?
        };
        let w = w.ok_or_else(|| WError::not_found("Invitation", "token"))?;
        Ok(ok(&view(state, &w, ctx.now)))
    })
}

/// `POST …/{id}/accept`: the invited account joins (it must exist; the app made it).
pub fn accept(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let w = state.db.read(|c| find(c, ctx.param("id")))?;
        if !w.inv.is_open(ctx.now) {
            return Err(WError::new(
                400,
                "invite_not_pending",
                "The invitation is not pending",
            ));
        }
        let (org, user) = state.db.read(|c| {
            let o = orgs::find_by_id(c, &w.inv.org_id)?
                .ok_or_else(|| WError::not_found("Organization", w.inv.org_id.as_str()))?;
            let u = users::find_by_email(c, &w.inv.email)?;
            Ok::<_, WError>((o, u))
        })?;
        state.change(ctx, req, |tx| {
            // No account yet: the app accepts for a person who has none; one is made with no
            // password (they sign in by magic auth or set one), unverified (the app, not the
            // mailbox, saw the token).
            let (user, is_new) = match user {
                Some(u) => (u, false),
                None => {
                    let u = crate::db::users::User::new(w.inv.email.to_lowercase(), ctx.now);
                    users::insert(tx, &u)?;
                    (u, true)
                }
            };
            invite::join(tx, ctx, req, &w.inv, &org, &user, is_new)?;
            Ok(())
        })?;
        let w = state.db.read(|c| find(c, ctx.param("id")))?;
        Ok(ok(&view(state, &w, ctx.now)))
    })
}

pub fn revoke(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let w = state.db.read(|c| find(c, ctx.param("id")))?;
        let done = state.change(ctx, req, |tx| {
            Ok(invitations::respond(
                tx,
                &w.inv.org_id,
                &w.inv.id,
                InvitationState::Revoked,
                None,
                ctx.now,
            )?)
        })?;
        if !done {
            return Err(WError::new(
                400,
                "invite_not_pending",
                "The invitation is not pending",
            ));
        }
        let w = state.db.read(|c| find(c, ctx.param("id")))?;
        Ok(ok(&view(state, &w, ctx.now)))
    })
}

/// `POST …/{id}/resend`: a new token and expiry (the old token dies).
pub fn resend(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let w = state.db.read(|c| find(c, ctx.param("id")))?;
        if w.inv.state != InvitationState::Pending {
            return Err(WError::new(
                400,
                "invite_not_pending",
                "The invitation is not pending",
            ));
        }
        let token = crypto::random_token(32);
        let key = token_key(state);
        let days = ((w.inv.expires_at - w.inv.created_at) / 86_400_000).clamp(1, 30);
        state.change(ctx, req, |tx| {
            invitations::renew(
                tx,
                &w.inv.org_id,
                &w.inv.id,
                &crypto::token_hash(&token),
                ctx.now + days * 86_400_000,
            )?;
            store::set_invitation_token(
                tx,
                &w.inv.id,
                &crypto::seal(&key, token.as_bytes(), w.inv.id.as_bytes()),
            )?;
            Ok(())
        })?;
        let w = state.db.read(|c| find(c, ctx.param("id")))?;
        Ok(ok(&view(state, &w, ctx.now)))
    })
}
