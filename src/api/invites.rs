//! Invitations (API.md §4, §5): inviting by email, listing, revoking, resending, and the
//! public accept/decline by token. Tokens are single-use and stored only as hashes.

use crate::api::auth::{self, finish_login};
use crate::api::guard::{self, UserCtx};
use crate::api::{Ctx, links, views};
use crate::app::AppState;
use crate::change::Change;
use crate::crypto;
use crate::db::Tx;
use crate::db::audit::Entry;
use crate::db::invitations::{self, Invitation};
use crate::db::orgs::{self, Org};
use crate::db::users::{self, Membership, User};
use crate::db::{self, members};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events::{Email, html_escape};
use crate::http::input;
use crate::http::respond;
use crate::password;
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

const DAY_MS: i64 = 86_400_000;

pub fn invite_view(conn: &Tx, inv: &Invitation, now: i64) -> db::Result<Value> {
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

/// Where the invitee goes: Latchkey's own invitation page (`/invitations/accept` at the
/// deployment's link base), never an org's host.
pub fn accept_url(state: &AppState, token: &str) -> String {
    format!(
        "{}/invitations/accept?token={token}",
        state.config.email_link_base().trim_end_matches('/')
    )
}

fn invitation_email(
    state: &AppState,
    org: &Org,
    to: &str,
    url: &str,
    inviter: Option<&User>,
) -> Email {
    let lang = crate::ui::templates::request_lang();
    let by = inviter
        .map(|u| u.name.clone().unwrap_or_else(|| u.email.clone()))
        .unwrap_or_else(|| state.ui.text(lang, "email.invitation.someone"));
    let vars = json!({
        "inviter": by,
        "app_url": links::trusted_app_url(state, org),
        "logo_url": org.logo_url,
    });
    match state.ui.email("invitation", lang, &org.name, url, vars) {
        Ok(m) => Email::rendered(to, m),
        Err(_) => Email {
            to: to.to_string(),
            subject: format!("You're invited to join {}", org.name),
            text: format!("Accept the invitation: {url}\n"),
            html: format!(
                "<p><a href=\"{}\">Accept the invitation</a></p>",
                html_escape(url)
            ),
        },
    }
}

/// How the invitation's token reaches the invitee: Latchkey emails it (the default; only the
/// mailbox sees it), or the app delivers it itself (`sendEmail:false`: the answer carries it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Email,
    App,
}

impl Delivery {
    pub fn from_send_email(send_email: Option<bool>) -> Delivery {
        if send_email.unwrap_or(true) {
            Delivery::Email
        } else {
            Delivery::App
        }
    }
    fn of(inv: &Invitation) -> Delivery {
        if inv.delivery == "app" {
            Delivery::App
        } else {
            Delivery::Email
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Delivery::Email => "email",
            Delivery::App => "app",
        }
    }
}

/// The invite answer: the token and its link only when the app delivers it (with an emailed
/// invitation nobody but the mailbox sees the token).
pub fn answer(state: &AppState, view: Value, token: &str, delivery: Delivery) -> Value {
    match delivery {
        Delivery::App => {
            json!({ "invite": view, "token": token, "acceptUrl": accept_url(state, token) })
        }
        Delivery::Email => json!({ "invite": view }),
    }
}

/// Creates an invitation (and, when emailed, its email; and the `member.invited` event)
/// inside `tx`. `inviter` is None when a backend (API key) invites. Returns (invitation,
/// token).
#[allow(clippy::too_many_arguments)]
pub fn create(
    tx: &Change,
    state: &AppState,
    org: &Org,
    inviter: Option<&User>,
    email: &str,
    role: &str,
    days: i64,
    delivery: Delivery,
    now: i64,
) -> ApiResult<(Invitation, String)> {
    // Check-then-insert: no constraint forbids a second pending invitation for one address (or
    // an invitation for a member), so these checks hold only because SQLite admits one writer
    // at a time and `tx` is a `BEGIN IMMEDIATE` transaction. A backend with concurrent writers
    // must lock here (the org row, or a unique index on pending (org_id, email)).
    if members::find_by_email(tx, &org.id, email)?.is_some() {
        return Err(
            ApiError::of(ErrorCode::AlreadyMember).with_message("This person is already a member")
        );
    }
    if invitations::find_open_for_email(tx, &org.id, email, now)?.is_some() {
        return Err(ApiError::of(ErrorCode::InvitationPending));
    }
    let token = crypto::random_token(32);
    let inv = Invitation {
        id: crate::ids::new_id("inv", now),
        org_id: org.id.clone(),
        email: email.to_string(),
        role: role.to_string(),
        state: "pending".into(),
        invited_by: inviter.map(|u| u.id.clone()),
        created_at: now,
        expires_at: now + days * DAY_MS,
        responded_at: None,
        delivery: delivery.as_str().into(),
    };
    invitations::insert(tx, &inv, &crypto::token_hash(&token))?;
    if delivery == Delivery::Email {
        let url = accept_url(state, &token);
        tx.email(
            Some(&org.id),
            &invitation_email(state, org, email, &url, inviter),
        )?;
    }
    tx.emit(
        Some(org),
        "member.invited",
        json!({
            "inviteId": inv.id,
            "email": inv.email,
            "role": inv.role,
            "invitedBy": inviter.map(|u| json!({ "id": u.id, "email": u.email })),
            "expiresAt": crate::clock::rfc3339(inv.expires_at),
        }),
    )?;
    Ok((inv, token))
}

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
    if let Some(s) = &st
        && !["pending", "accepted", "declined", "revoked", "expired"].contains(&s.as_str())
    {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "state",
            "must be pending, accepted, declined, revoked or expired",
        ));
    }
    let limit = input::query_int(req, "limit", 100, 1, 100)?;
    let views = state.db.read(|c| {
        let rows = invitations::list(c, &me.org.id, st.as_deref(), ctx.now, limit)?;
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
        invitations::respond(tx, &me.org.id, &inv.id, "revoked", None, ctx.now)?;
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

/// The open invitation behind a token, and its org; 400 `invalid_token` otherwise. An
/// `X-Org-Slug` naming another org → 403 `org_mismatch`.
fn by_token(conn: &Tx, req: &Request, token: &str, now: i64) -> ApiResult<(Invitation, Org)> {
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
        return Err(ApiError::of(ErrorCode::OrgMismatch)
            .with_message("The invitation belongs to another organization"));
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

/// The open invitation behind a token and its org, read only (a hosted page's GET).
pub fn invitation(
    state: &AppState,
    req: &Request,
    token: &str,
    now: i64,
) -> ApiResult<(Invitation, Org)> {
    state.db.read(|c| by_token(c, req, token, now))
}

/// An account that proved itself (a hosted page's signed-in user) joins the org of the
/// invitation: 403 when the invitation is addressed to another account.
pub fn join_as(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    token: &str,
    user: &User,
) -> ApiResult<(Org, Membership)> {
    state.change(ctx, req, |tx| {
        let (inv, org) = by_token(tx, req, token, ctx.now)?;
        if !inv.email.eq_ignore_ascii_case(&user.email) {
            return Err(ApiError::forbidden(
                "This invitation is addressed to another account; sign out first",
            ));
        }
        let m = join(tx, ctx, req, &inv, &org, user, false)?;
        Ok((org, m))
    })
}

/// No account has the invited email: the invitation creates it, with the password given.
/// The email counts as verified only when Latchkey emailed the token (with `sendEmail:false`
/// the inviter saw the token, which proves nothing about the mailbox).
pub fn accept_new(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    token: &str,
    name: Option<&str>,
    password: Option<&str>,
    org: &Org,
) -> ApiResult<(User, Membership)> {
    let Some(p) = password else {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "password",
            "is required to create the account",
        ));
    };
    password::check_policy(
        &state.config.password,
        org.settings.password_min_length,
        "password",
        p,
    )?;
    let name = name.map(|n| validate::name("name", n)).transpose()?;
    let hash = state.hasher.hash(p)?;
    state.change(ctx, req, |tx| {
        let (inv, org) = by_token(tx, req, token, ctx.now)?;
        // Inside the write transaction (one writer at a time); the UNIQUE email of `users` would
        // refuse a racing insert anyway.
        if users::find_by_email(tx, &inv.email)?.is_some() {
            // Someone made the account meanwhile: it must prove itself like any other.
            return Err(ApiError::unauthenticated(
                "An account with this email exists; sign in to accept the invitation",
            ));
        }
        let u = User {
            email_verified: Delivery::of(&inv) == Delivery::Email,
            password_hash: Some(hash.clone()),
            name: name.clone(),
            ..User::new(inv.email.clone(), ctx.now)
        };
        users::insert(tx, &u)?;
        tx.emit(
            Some(&org),
            "user.created",
            json!({ "user": views::user(&u) }),
        )?;
        let m = join(tx, ctx, req, &inv, &org, &u, true)?;
        Ok((u, m))
    })
}

/// The invited email has an account, which may be anyone's in any org: the token only says
/// which org to join. The account proves itself with its own access token (any org) or its
/// password — then the lockouts and 2FA apply as at login, and the membership is made when
/// the login completes.
fn accept_existing(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    body: &AcceptRequest,
    inv: Invitation,
    org: Org,
    user: User,
) -> ApiResult<Response> {
    if guard::access_token(req).is_some() {
        // The access token proves who accepts, but never mints a session in another org
        // (API.md §3: resource servers see access tokens). The membership is made; the
        // client switches to the org with its own refresh token (`/auth/switch-org`).
        let (_, me) = guard::account(state, ctx, req)?;
        if me.id != user.id {
            return Err(ApiError::forbidden(
                "This invitation is addressed to another account; sign out first",
            ));
        }
        let (_, membership) = join_as(state, ctx, req, &body.token, &me)?;
        return Ok(respond::ok(json!({
            "isNewUser": false,
            "user": views::user(&me),
            "membership": views::membership(&membership),
            "org": views::org(&org),
        })));
    }
    let (user, amr) = if let Some(p) = &body.password {
        let (me, rehash) = auth::check_password(state, ctx, req, Some(&org), &inv.email, p)?;
        if rehash {
            let h = state.hasher.hash(p)?;
            state
                .db
                .write(|tx| users::set_password_hash(tx, &me.id, &h, ctx.now))?;
        }
        (me, vec!["pwd".to_string()])
    } else {
        return Err(ApiError::unauthenticated(
            "An account with this email exists: accept with its access token or its password",
        ));
    };
    if user.status != "active" {
        return Err(auth::invalid_credentials());
    }
    let amr: Vec<&str> = amr.iter().map(String::as_str).collect();
    let extra = [("isNewUser", json!(false))];
    if state
        .db
        .read(|c| users::find_membership(c, &org.id, &user.id))?
        .is_some()
    {
        return Err(ApiError::of(ErrorCode::AlreadyMember)
            .with_message("You are already a member of this organization"));
    }
    if let Some(step) = auth::second_factor_due(&user, &org, &amr) {
        return auth::partial_response(
            state,
            ctx,
            req,
            &user,
            &org,
            &amr,
            step,
            Some(&inv.id),
            &extra,
        );
    }
    let membership = state.change(ctx, req, |tx| {
        let (inv, org) = by_token(tx, req, &body.token, ctx.now)?;
        join(tx, ctx, req, &inv, &org, &user, false)
    })?;
    finish_login(state, ctx, req, &user, &org, &membership, &amr, &extra)
}

/// The membership an accepted invitation makes, inside `tx`: the invitation is marked
/// accepted, `member.joined` is emitted and audited. 409 when already a member. An emailed
/// invitation accepted by the account it names also proves the address.
fn join(
    tx: &Change,
    ctx: &Ctx,
    _req: &Request,
    inv: &Invitation,
    org: &Org,
    user: &User,
    is_new: bool,
) -> ApiResult<Membership> {
    if users::find_membership(tx, &org.id, &user.id)?.is_some() {
        return Err(ApiError::of(ErrorCode::AlreadyMember)
            .with_message("You are already a member of this organization"));
    }
    let m = Membership {
        id: crate::ids::new_id("mem", ctx.now),
        org_id: org.id.clone(),
        user_id: user.id.clone(),
        role: inv.role.clone(),
        status: "active".into(),
        metadata: json!({}),
        joined_at: ctx.now,
    };
    users::insert_membership(tx, &m)?;
    if !is_new && !user.email_verified && Delivery::of(inv) == Delivery::Email {
        users::set_email_verified(tx, &user.id, ctx.now)?;
    }
    invitations::respond(tx, &org.id, &inv.id, "accepted", Some(&user.id), ctx.now)?;
    tx.emit(Some(org), "member.joined", json!({
            "user": { "id": user.id, "name": user.name, "email": user.email },
            "membership": { "role": m.role, "status": m.status, "joinedAt": crate::clock::rfc3339(m.joined_at) },
        }))?;
    tx.audit(
        Entry::new(
            Some(&org.id),
            "user",
            Some(&user.id),
            "member.joined",
            Some("invitation"),
            Some(&inv.id),
        )
        .with_metadata(json!({ "role": m.role, "newUser": is_new })),
    )?;
    Ok(m)
}

/// Completes an invitation accepted with a password once its second factor is done (the
/// partial token carried the invitation): the membership, inside `tx`. 400 `invalid_token`
/// when the invitation was revoked, expired or used meanwhile.
pub fn join_after_login(
    tx: &Change,
    ctx: &Ctx,
    req: &Request,
    invitation_id: &str,
    org: &Org,
    user: &User,
) -> ApiResult<Membership> {
    let inv = invitations::find(tx, &org.id, invitation_id)?
        .filter(|i| i.is_open(ctx.now) && i.email.eq_ignore_ascii_case(&user.email))
        .ok_or_else(|| ApiError::invalid_token("Invalid, expired or already used invitation"))?;
    join(tx, ctx, req, &inv, org, user, false)
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
        invitations::respond(tx, &org.id, &inv.id, "declined", None, ctx.now)?;
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
