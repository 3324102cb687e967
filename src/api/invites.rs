//! Invitations (API.md §4, §5): inviting by email, listing, revoking, resending, and the
//! public accept/decline by token. Tokens are single-use and stored only as hashes.

use crate::api::Ctx;
use crate::api::guard::{self, UserCtx};
use crate::crypto;
use crate::db::audit::Entry;
use crate::db::invitations::{self};
use crate::db::orgs::{self};
use crate::db::users::{self};
use crate::db::{self};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::flows::invite::AcceptRequest;
use crate::flows::invite::{
    DAY_MS, Delivery, accept_existing, accept_new, accept_url, answer, by_token, create,
    invitation_email, invite_view,
};
use crate::http::input;
use crate::http::respond;
use crate::session::login::finish_login;
use crate::state::AppState;
use crate::status::InvitationState;
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteRequest {
    email: String,
    role: Option<String>,
    expires_in_days: Option<i64>,
    send_email: Option<bool>,
}

fn act<'a>(me: &'a UserCtx, action: &'a str, id: &'a str) -> Entry<'a> {
    Entry::new(
        Some(&me.org.id),
        "user",
        Some(&me.user.id),
        action,
        Some("invitation"),
        Some(id),
    )
}

pub fn invite(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let body: InviteRequest = input::json(req, state.config.server.max_body_bytes)?;
    let email = validate::email(&body.email)?;
    let role = body.role.unwrap_or_else(|| "member".into());
    validate::org_role("role", &role)?;
    let to = crate::role::Role::parse(&role).unwrap_or(crate::role::Role::Member);
    if !me.membership.role().may_set(None, to) {
        return Err(ApiError::forbidden("Only an owner may invite an owner"));
    }
    let days = body.expires_in_days.unwrap_or(7);
    if !(1..=30).contains(&days) {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "expiresInDays",
            "must be from 1 to 30",
        ));
    }
    let delivery = Delivery::from_send_email(body.send_email);
    let (view, token) = state.change(ctx, req, |tx| {
        let (inv, token) = create(
            tx,
            state,
            &me.org,
            Some(&me.user),
            &email,
            &role,
            days,
            delivery,
            ctx.now,
        )?;
        let mut e = act(&me, "member.invited", &inv.id);
        e.metadata = json!({ "delivery": delivery.as_str() });
        tx.audit(e)?;
        Ok((invite_view(tx, &inv, ctx.now)?, token))
    })?;
    Ok(respond::created(answer(state, view, &token, delivery)))
}

pub fn list(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let st = input::query(req, "state").filter(|s| !s.is_empty());
    let st = st.as_deref().map(InvitationState::parse);
    if st == Some(None) {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "state",
            "must be pending, accepted, declined, revoked or expired",
        ));
    }
    let limit = input::query_int(req, "limit", 100, 1, 100)?;
    let views = state.db.read(|c| {
        let rows = invitations::list(c, &me.org.id, st.flatten(), ctx.now, limit)?;
        rows.iter()
            .map(|i| invite_view(c, i, ctx.now))
            .collect::<db::Result<Vec<_>>>()
    })?;
    Ok(respond::ok(json!({ "invites": views })))
}

pub fn revoke(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let id = ctx.param("id").to_string();
    state.change(ctx, req, |tx| {
        let inv = invitations::find(tx, &me.org.id, &id)?
            .ok_or_else(|| ApiError::not_found("Invitation not found"))?;
        if !inv.is_open(ctx.now) {
            return Err(ApiError::invalid_request(format!(
                "The invitation is {}, not pending",
                inv.effective_state(ctx.now)
            )));
        }
        invitations::respond(tx, &me.org.id, &inv.id, InvitationState::Revoked, None, ctx.now)?;
        tx.emit(Some(&me.org), "invite.revoked", json!({ "inviteId": inv.id, "email": inv.email, "revokedBy": { "id": me.user.id, "email": me.user.email } }))?;
        tx.audit(act(&me, "invite.revoked", &inv.id))?;
        Ok(())
    })?;
    Ok(respond::ok(json!({ "message": "Invitation revoked" })))
}

pub fn resend(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let id = ctx.param("id").to_string();
    let view = state.change(ctx, req, |tx| {
        let inv = invitations::find(tx, &me.org.id, &id)?
            .ok_or_else(|| ApiError::not_found("Invitation not found"))?;
        if inv.state != InvitationState::Pending {
            return Err(ApiError::invalid_request(format!(
                "The invitation is {}",
                inv.state
            )));
        }
        // A resend keeps the original validity period, counted from now.
        let days = ((inv.expires_at - inv.created_at) / DAY_MS).clamp(1, 30);
        let token = crypto::random_token(32);
        invitations::renew(
            tx,
            &me.org.id,
            &inv.id,
            &crypto::token_hash(&token),
            ctx.now + days * DAY_MS,
        )?;
        let inv = invitations::find(tx, &me.org.id, &id)?
            .ok_or_else(|| ApiError::not_found("Invitation not found"))?;
        let delivery = Delivery::of(&inv);
        if delivery == Delivery::Email {
            let url = accept_url(state, &token);
            tx.email(
                Some(&me.org.id),
                &invitation_email(state, &me.org, &inv.email, &url, Some(&me.user)),
            )?;
        }
        tx.audit(act(&me, "invite.resent", &inv.id))?;
        Ok((invite_view(tx, &inv, ctx.now)?, token, delivery))
    })?;
    Ok(respond::ok(answer(state, view.0, &view.1, view.2)))
}

pub fn accept(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: AcceptRequest = input::json(req, state.config.server.max_body_bytes)?;
    let (inv, org) = state.db.read(|c| by_token(c, req, &body.token, ctx.now))?;
    match state.db.read(|c| users::find_by_email(c, &inv.email))? {
        None => {
            let (user, membership) = accept_new(
                state,
                ctx,
                req,
                &body.token,
                body.name.as_deref(),
                body.password.as_deref(),
                &org,
            )?;
            finish_login(
                state,
                ctx,
                req,
                &user,
                &org,
                &membership,
                &["pwd"],
                &[("isNewUser", json!(true))],
            )
        }
        Some(user) => accept_existing(state, ctx, req, &body, inv, org, user),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeclineRequest {
    token: String,
}

pub fn decline(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: DeclineRequest = input::json(req, state.config.server.max_body_bytes)?;
    state.change(ctx, req, |tx| {
        let (inv, org) = by_token(tx, req, &body.token, ctx.now)?;
        invitations::respond(
            tx,
            &org.id,
            &inv.id,
            InvitationState::Declined,
            None,
            ctx.now,
        )?;
        tx.emit(
            Some(&org),
            "invite.declined",
            json!({ "inviteId": inv.id, "email": inv.email }),
        )?;
        tx.audit(Entry::new(
            Some(&org.id),
            "anonymous",
            None,
            "invite.declined",
            Some("invitation"),
            Some(&inv.id),
        ))?;
        Ok(())
    })?;
    Ok(respond::ok(json!({ "message": "Invitation declined" })))
}

/// Pending invitations addressed to the caller's (verified) email, across orgs.
pub fn mine(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::user(state, ctx, req)?;
    if !me.user.email_verified {
        return Ok(respond::ok(json!({ "invitations": [] })));
    }
    let list = state.db.read(|c| {
        let mut out = Vec::new();
        for inv in invitations::open_for_email(c, &me.user.email, ctx.now)? {
            if let Some(org) = orgs::find_by_id(c, &inv.org_id)? {
                let mut v = invite_view(c, &inv, ctx.now)?;
                v["org"] = json!({ "id": org.id, "slug": org.slug, "name": org.name });
                out.push(v);
            }
        }
        Ok::<_, ApiError>(out)
    })?;
    Ok(respond::ok(json!({ "invitations": list })))
}
