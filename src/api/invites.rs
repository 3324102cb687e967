//! Invitations (API.md §4, §5): inviting by email, listing, revoking, resending, and the
//! public accept/decline by token. Tokens are single-use and stored only as hashes.

use crate::api::auth::finish_login;
use crate::api::guard::{self, UserCtx};
use crate::api::{Ctx, audit, views};
use crate::app::AppState;
use crate::crypto;
use crate::db::audit::Entry;
use crate::db::invitations::{self, Invitation};
use crate::db::orgs::{self, Org};
use crate::db::users::{self, Membership, User};
use crate::db::{self, members};
use crate::error::{ApiError, ApiResult};
use crate::events::{self, Email, html_escape};
use crate::http::input;
use crate::http::respond;
use crate::password;
use crate::validate;
use rouille::{Request, Response};
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{Value, json};

const DAY_MS: i64 = 86_400_000;

pub fn invite_view(conn: &Connection, inv: &Invitation, now: i64) -> rusqlite::Result<Value> {
    let by = match &inv.invited_by {
        Some(id) => users::find_by_id(conn, id)?.map(|u| json!({ "id": u.id, "email": u.email })),
        None => None,
    };
    Ok(json!({
        "id": inv.id,
        "email": inv.email,
        "role": inv.role,
        "state": inv.effective_state(now),
        "expiresAt": crate::clock::rfc3339(inv.expires_at),
        "createdAt": crate::clock::rfc3339(inv.created_at),
        "invitedBy": by,
    }))
}

/// Where the invitee goes: the org's app when it has one, else the deployment's link base.
pub fn accept_url(state: &AppState, org: &Org, token: &str) -> String {
    let base = org
        .app_url
        .clone()
        .unwrap_or_else(|| state.config.email_link_base().to_string());
    format!(
        "{}/invitations/accept?token={token}",
        base.trim_end_matches('/')
    )
}

fn invitation_email(org: &Org, to: &str, url: &str, inviter: Option<&User>) -> Email {
    let by = inviter
        .map(|u| u.name.clone().unwrap_or_else(|| u.email.clone()))
        .unwrap_or_else(|| "An administrator".into());
    let app = org
        .app_url
        .as_deref()
        .map(|a| format!("\n{} is at {a}.\n", org.name))
        .unwrap_or_default();
    Email {
        to: to.to_string(),
        subject: format!("You're invited to join {}", org.name),
        text: format!(
            "{by} invited you to join {org} on Latchkey.\n\nAccept the invitation: {url}\n{app}\nIf you did not expect this, ignore this email.\n",
            org = org.name
        ),
        html: format!(
            "<p>{} invited you to join <strong>{}</strong>.</p><p><a href=\"{}\">Accept the invitation</a></p>{}<p>If you did not expect this, ignore this email.</p>",
            html_escape(&by),
            html_escape(&org.name),
            html_escape(url),
            org.app_url
                .as_deref()
                .map(|a| format!(
                    "<p>{} is at <a href=\"{}\">{}</a>.</p>",
                    html_escape(&org.name),
                    html_escape(a),
                    html_escape(a)
                ))
                .unwrap_or_default()
        ),
    }
}

/// Creates an invitation (and its email and `member.invited` event) inside `tx`.
/// `inviter` is None when a backend (API key) invites. Returns (invitation, token).
#[allow(clippy::too_many_arguments)]
pub fn create(
    tx: &Connection,
    state: &AppState,
    org: &Org,
    inviter: Option<&User>,
    email: &str,
    role: &str,
    days: i64,
    now: i64,
) -> ApiResult<(Invitation, String)> {
    if members::find_by_email(tx, &org.id, email)?.is_some() {
        return Err(ApiError::new(
            409,
            "already_member",
            "This person is already a member",
        ));
    }
    if invitations::find_open_for_email(tx, &org.id, email, now)?.is_some() {
        return Err(ApiError::new(
            409,
            "invitation_pending",
            "An invitation to this email is already pending",
        ));
    }
    let token = crypto::random_token(32);
    let inv = Invitation {
        id: db::new_id("inv", now),
        org_id: org.id.clone(),
        email: email.to_string(),
        role: role.to_string(),
        state: "pending".into(),
        invited_by: inviter.map(|u| u.id.clone()),
        created_at: now,
        expires_at: now + days * DAY_MS,
        responded_at: None,
    };
    invitations::insert(tx, &inv, &crypto::token_hash(&token))?;
    let url = accept_url(state, org, &token);
    events::email(
        tx,
        Some(&org.id),
        &invitation_email(org, email, &url, inviter),
        now,
    )?;
    events::emit(
        tx,
        Some(org),
        "member.invited",
        json!({
            "inviteId": inv.id,
            "email": inv.email,
            "role": inv.role,
            "invitedBy": inviter.map(|u| json!({ "id": u.id, "email": u.email })),
            "expiresAt": crate::clock::rfc3339(inv.expires_at),
        }),
        now,
    )?;
    Ok((inv, token))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteRequest {
    email: String,
    role: Option<String>,
    expires_in_days: Option<i64>,
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
    if role == "owner" && me.membership.role != "owner" {
        return Err(ApiError::forbidden("Only an owner may invite an owner"));
    }
    let days = body.expires_in_days.unwrap_or(7);
    if !(1..=30).contains(&days) {
        return Err(ApiError::field(
            "invalid_request",
            "expiresInDays",
            "must be from 1 to 30",
        ));
    }
    let (view, token) = state.db.write(|tx| {
        let (inv, token) = create(
            tx,
            state,
            &me.org,
            Some(&me.user),
            &email,
            &role,
            days,
            ctx.now,
        )?;
        audit(tx, ctx, req, act(&me, "member.invited", &inv.id))?;
        Ok::<_, ApiError>((invite_view(tx, &inv, ctx.now)?, token))
    })?;
    let url = accept_url(state, &me.org, &token);
    Ok(respond::created(
        json!({ "invite": view, "token": token, "acceptUrl": url }),
    ))
}

pub fn list(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let st = input::query(req, "state").filter(|s| !s.is_empty());
    if let Some(s) = &st
        && !["pending", "accepted", "declined", "revoked", "expired"].contains(&s.as_str())
    {
        return Err(ApiError::field(
            "invalid_request",
            "state",
            "must be pending, accepted, declined, revoked or expired",
        ));
    }
    let limit = input::query_int(req, "limit", 100, 1, 100)?;
    let views = state.db.read(|c| {
        let rows = invitations::list(c, &me.org.id, st.as_deref(), ctx.now, limit)?;
        rows.iter()
            .map(|i| invite_view(c, i, ctx.now))
            .collect::<rusqlite::Result<Vec<_>>>()
    })?;
    Ok(respond::ok(json!({ "invites": views })))
}

pub fn revoke(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let id = ctx.param("id").to_string();
    state.db.write(|tx| {
        let inv = invitations::find(tx, &me.org.id, &id)?
            .ok_or_else(|| ApiError::not_found("Invitation not found"))?;
        if !inv.is_open(ctx.now) {
            return Err(ApiError::invalid_request(format!(
                "The invitation is {}, not pending",
                inv.effective_state(ctx.now)
            )));
        }
        invitations::respond(tx, &me.org.id, &inv.id, "revoked", None, ctx.now)?;
        events::emit(
            tx,
            Some(&me.org),
            "invite.revoked",
            json!({ "inviteId": inv.id, "email": inv.email, "revokedBy": { "id": me.user.id, "email": me.user.email } }),
            ctx.now,
        )?;
        audit(tx, ctx, req, act(&me, "invite.revoked", &inv.id))?;
        Ok::<_, ApiError>(())
    })?;
    Ok(respond::ok(json!({ "message": "Invitation revoked" })))
}

pub fn resend(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let me = guard::org_admin(state, ctx, req)?;
    let id = ctx.param("id").to_string();
    let (view, token) = state.db.write(|tx| {
        let inv = invitations::find(tx, &me.org.id, &id)?
            .ok_or_else(|| ApiError::not_found("Invitation not found"))?;
        if inv.state != "pending" {
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
        let url = accept_url(state, &me.org, &token);
        events::email(
            tx,
            Some(&me.org.id),
            &invitation_email(&me.org, &inv.email, &url, Some(&me.user)),
            ctx.now,
        )?;
        audit(tx, ctx, req, act(&me, "invite.resent", &inv.id))?;
        Ok::<_, ApiError>((invite_view(tx, &inv, ctx.now)?, token))
    })?;
    let url = accept_url(state, &me.org, &token);
    Ok(respond::ok(
        json!({ "invite": view, "token": token, "acceptUrl": url }),
    ))
}

/// The open invitation behind a token, and its org; 400 `invalid_token` otherwise. An
/// `X-Org-Slug` naming another org → 403 `org_mismatch`.
fn by_token(
    conn: &Connection,
    req: &Request,
    token: &str,
    now: i64,
) -> ApiResult<(Invitation, Org)> {
    let bad = || ApiError::invalid_token("Invalid, expired or already used invitation");
    if token.is_empty() || token.len() > 512 {
        return Err(bad());
    }
    let inv = invitations::find_by_token(conn, &crypto::token_hash(token))?
        .filter(|i| i.is_open(now))
        .ok_or_else(bad)?;
    let org = orgs::find_by_id(conn, &inv.org_id)?.ok_or_else(bad)?;
    if let Some(slug) = req.header("X-Org-Slug")
        && slug.trim() != org.slug
    {
        return Err(ApiError::new(
            403,
            "org_mismatch",
            "The invitation belongs to another organization",
        ));
    }
    Ok((inv, org))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptRequest {
    token: String,
    name: Option<String>,
    password: Option<String>,
}

pub fn accept(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: AcceptRequest = input::json(req, state.config.server.max_body_bytes)?;
    let (inv, org) = state.db.read(|c| by_token(c, req, &body.token, ctx.now))?;
    let existing = state.db.read(|c| users::find_by_email(c, &inv.email))?;
    // A new account needs a password (checked and hashed before the write lock).
    let new_hash = match (&existing, &body.password) {
        (Some(_), _) => None,
        (None, Some(p)) => {
            password::check_policy(
                &state.config.password,
                org.settings.password_min_length,
                "password",
                p,
            )?;
            Some(state.hasher.hash(p)?)
        }
        (None, None) => {
            return Err(ApiError::field(
                "invalid_request",
                "password",
                "is required to create the account",
            ));
        }
    };
    let name = body
        .name
        .as_deref()
        .map(|n| validate::name("name", n))
        .transpose()?;
    let is_new = existing.is_none();
    let (user, membership) = state.db.write(|tx| {
        let (inv, org) = by_token(tx, req, &body.token, ctx.now)?;
        let user = match users::find_by_email(tx, &inv.email)? {
            Some(u) => u,
            None => {
                let u = User {
                    email_verified: true,
                    password_hash: new_hash.clone(),
                    name: name.clone(),
                    ..User::new(inv.email.clone(), ctx.now)
                };
                users::insert(tx, &u)?;
                events::emit(tx, Some(&org), "user.created", json!({ "user": views::user(&u) }), ctx.now)?;
                u
            }
        };
        if users::find_membership(tx, &org.id, &user.id)?.is_some() {
            return Err(ApiError::new(409, "already_member", "You are already a member of this organization"));
        }
        let m = Membership {
            id: db::new_id("mem", ctx.now),
            org_id: org.id.clone(),
            user_id: user.id.clone(),
            role: inv.role.clone(),
            status: "active".into(),
            metadata: json!({}),
            joined_at: ctx.now,
        };
        users::insert_membership(tx, &m)?;
        // Receiving the token by email proves the address.
        if !user.email_verified {
            users::set_email_verified(tx, &user.id, ctx.now)?;
        }
        invitations::respond(tx, &org.id, &inv.id, "accepted", Some(&user.id), ctx.now)?;
        events::emit(
            tx,
            Some(&org),
            "member.joined",
            json!({
                "user": { "id": user.id, "name": user.name, "email": user.email },
                "membership": { "role": m.role, "status": m.status, "joinedAt": crate::clock::rfc3339(m.joined_at) },
            }),
            ctx.now,
        )?;
        audit(
            tx,
            ctx,
            req,
            Entry::new(Some(&org.id), "user", Some(&user.id), "member.joined", Some("invitation"), Some(&inv.id)).with_metadata(json!({ "role": m.role, "newUser": is_new })),
        )?;
        let mut user = user;
        user.email_verified = true;
        Ok::<_, ApiError>((user, m))
    })?;
    let amr: &[&str] = if is_new { &["pwd"] } else { &["invite"] };
    finish_login(
        state,
        ctx,
        req,
        &user,
        &org,
        &membership,
        amr,
        &[("isNewUser", json!(is_new))],
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeclineRequest {
    token: String,
}

pub fn decline(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let body: DeclineRequest = input::json(req, state.config.server.max_body_bytes)?;
    state.db.write(|tx| {
        let (inv, org) = by_token(tx, req, &body.token, ctx.now)?;
        invitations::respond(tx, &org.id, &inv.id, "declined", None, ctx.now)?;
        events::emit(
            tx,
            Some(&org),
            "invite.declined",
            json!({ "inviteId": inv.id, "email": inv.email }),
            ctx.now,
        )?;
        audit(
            tx,
            ctx,
            req,
            Entry::new(
                Some(&org.id),
                "anonymous",
                None,
                "invite.declined",
                Some("invitation"),
                Some(&inv.id),
            ),
        )?;
        Ok::<_, ApiError>(())
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
