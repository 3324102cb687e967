//! Invitations, shared by the JSON API (`/org/members/invite`, `/invitations/accept`,
//! `/public/invitations`) and the hosted pages: creating one (token stored as its hash, the
//! email or the app's own delivery), finding one by token, and joining its org as a new
//! account or as an existing one that proved itself.

use crate::api::guard::{self};
use crate::api::{Ctx, links, views};
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
use crate::http::respond;
use crate::password;
use crate::session::login;
use crate::session::login::finish_login;
use crate::state::AppState;
use crate::status::{InvitationState, MemberStatus, UserStatus};
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) const DAY_MS: i64 = 86_400_000;

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

pub(crate) fn invitation_email(
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
    pub(crate) fn of(inv: &Invitation) -> Delivery {
        if inv.delivery == "app" {
            Delivery::App
        } else {
            Delivery::Email
        }
    }
    pub(crate) fn as_str(self) -> &'static str {
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
    // Both checks and the insert below run under SQLite's single writer, so no second pending
    // invitation for the email can slip in between; a second backend must lock the org's
    // invitations (or add a partial UNIQUE index on pending ones) to keep this rule.
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
        state: InvitationState::Pending,
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

/// The open invitation behind a token, and its org; 400 `invalid_token` otherwise. An
/// `X-Org-Slug` naming another org → 403 `org_mismatch`.
pub(crate) fn by_token(
    conn: &Tx,
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
        return Err(ApiError::of(ErrorCode::OrgMismatch)
            .with_message("The invitation belongs to another organization"));
    }
    Ok((inv, org))
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
pub(crate) fn accept_existing(
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
        let (me, rehash) = login::check_password(state, ctx, req, Some(&org), &inv.email, p)?;
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
    if user.status != UserStatus::Active {
        return Err(login::invalid_credentials());
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
    if let Some(step) = login::second_factor_due(&user, &org, &amr) {
        return login::partial_response(
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
pub(crate) fn join(
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
        status: MemberStatus::Active,
        metadata: json!({}),
        joined_at: ctx.now,
    };
    users::insert_membership(tx, &m)?;
    if !is_new && !user.email_verified && Delivery::of(inv) == Delivery::Email {
        users::set_email_verified(tx, &user.id, ctx.now)?;
    }
    invitations::respond(
        tx,
        &org.id,
        &inv.id,
        InvitationState::Accepted,
        Some(&user.id),
        ctx.now,
    )?;
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
pub struct AcceptRequest {
    pub(crate) token: String,
    pub(crate) name: Option<String>,
    pub(crate) password: Option<String>,
}
