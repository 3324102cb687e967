//! The sign-in, sign-up, recovery, invitation and first-run pages (docs/pages.md). Each one
//! calls the function its JSON endpoint calls (`login::check_password`,
//! `crate::flows::email::send_reset`, …), so limits, lockouts, org policy and the rules against
//! enumeration and takeover are the API's own.

use super::{Page, templates};
use crate::api::guard;
use crate::crypto;
use crate::db::browser_sessions;
use crate::db::invitations::Invitation;
use crate::db::orgs::{self, Org, SignupMode};
use crate::db::users::{self, Membership, User};
use crate::error::{ApiError, ApiResult};
use crate::flows::invite;
use crate::http::cookies;
use crate::session::login;
use crate::status::{BrowserState, MemberStatus};
use rouille::Response;
use serde_json::json;

fn amr_refs(amr: &[String]) -> Vec<&str> {
    amr.iter().map(String::as_str).collect()
}

pub fn home(p: &mut Page<'_>) -> ApiResult<Response> {
    if p.signed_in().is_some() {
        return Ok(p.redirect("/account"));
    }
    let none = p.state.db.read(|c| orgs::list(c, None, 1))?.is_empty();
    Ok(p.redirect(if none { "/setup" } else { "/login" }))
}

pub fn stylesheet(_p: &mut Page<'_>) -> ApiResult<Response> {
    Ok(
        Response::from_data("text/css; charset=utf-8", templates::STYLESHEET)
            .with_additional_header("Cache-Control", "public, max-age=3600"),
    )
}

// ---- Sign-in ------------------------------------------------------------------------------

fn signup_open(org: Option<&Org>) -> bool {
    org.is_some_and(|o| o.settings.signup_mode != SignupMode::InviteOnly)
}

fn login_page(
    p: &Page<'_>,
    status: u16,
    org: Option<&Org>,
    email: &str,
    error: Option<String>,
    notice: Option<String>,
) -> ApiResult<Response> {
    let return_to = match p.field("return_to") {
        r if !r.is_empty() => r,
        _ => p.query("return_to"),
    };
    p.render(
        status,
        "login.html",
        org,
        json!({
            "email": email,
            "error": error,
            "notice": notice,
            "return_to": (!return_to.is_empty()).then_some(return_to),
            "signup_open": signup_open(org),
        }),
    )
}

pub fn login_form(p: &mut Page<'_>) -> ApiResult<Response> {
    let org = p.org()?;
    // `prompt=login` (an OAuth client asked for a fresh sign-in): the form even when signed in.
    if p.signed_in().is_some() && p.query("prompt") != "login" {
        let (o, r) = (
            org.as_ref().map(|o| o.slug.clone()).unwrap_or_default(),
            p.query("return_to"),
        );
        p.set_next(&o, &r);
        return continue_sign_in(p, Some(o), Some(r));
    }
    login_page(p, 200, org.as_ref(), &p.query("email"), None, None)
}

pub fn login(p: &mut Page<'_>) -> ApiResult<Response> {
    let org = p.org()?;
    let email = p.field("email");
    let password = p.field("password");
    let checked = login::check_password(p.state, p.ctx, p.req, org.as_ref(), &email, &password);
    let (user, rehash) = match checked {
        Ok(u) => u,
        Err(e) if e.status() < 500 => {
            let msg = p.error_text(&e);
            let mut resp = login_page(p, e.status(), org.as_ref(), &email, Some(msg), None)?;
            super::carry_headers(&mut resp, &e);
            return Ok(resp);
        }
        Err(e) => return Err(e),
    };
    if rehash {
        let h = p.state.hasher.hash(&password)?;
        let now = p.ctx.now;
        p.state
            .db
            .write(|tx| users::set_password_hash(tx, &user.id, &h, now))?;
    }
    let org_slug = org.as_ref().map(|o| o.slug.clone()).unwrap_or_default();
    let return_to = p.field("return_to");
    p.set_next(&org_slug, &return_to);
    let amr = vec!["pwd".to_string()];
    if user.two_factor_enabled {
        p.start_browser_session(&user, &amr, true)?;
        return Ok(p.redirect("/login/2fa"));
    }
    p.start_browser_session(&user, &amr, false)?;
    continue_sign_in(p, Some(org_slug), Some(return_to))
}

pub fn login_magic_link(p: &mut Page<'_>) -> ApiResult<Response> {
    let org = p.org()?;
    let email = p.field("email");
    let sent = match crate::validate::email(&email) {
        Ok(e) => crate::flows::email::send_magic_link(p.state, p.ctx, p.req, org.as_ref(), &e),
        Err(_) => Ok(()),
    };
    match sent {
        Ok(()) => login_page(
            p,
            200,
            org.as_ref(),
            &email,
            None,
            Some(p.t("msg.magic_link_sent")),
        ),
        Err(e) if e.status() < 500 => {
            let msg = p.error_text(&e);
            login_page(p, e.status(), org.as_ref(), &email, Some(msg), None)
        }
        Err(e) => Err(e),
    }
}

/// The pending browser session (password done, second factor due), else to /login.
fn pending(p: &Page<'_>) -> Option<(crate::db::browser_sessions::BrowserSession, User)> {
    p.browser
        .as_ref()
        .filter(|b| {
            b.session.state == BrowserState::PendingSecondFactor && b.session.is_live(p.ctx.now)
        })
        .map(|b| (b.session.clone(), b.user.clone()))
}

pub fn second_factor_form(p: &mut Page<'_>) -> ApiResult<Response> {
    if pending(p).is_none() {
        return Ok(p.redirect("/login"));
    }
    let org = next_org(p)?;
    p.render(200, "login_2fa.html", org.as_ref(), json!({}))
}

/// The org the sign-in in progress names, if any (for branding its pages).
fn next_org(p: &Page<'_>) -> ApiResult<Option<Org>> {
    let (slug, _) = p.next();
    if slug.is_empty() {
        return p.org();
    }
    Ok(p.state.db.read(|c| orgs::find_by_slug(c, &slug))?)
}

/// Wrong codes a pending browser session survives; the next one ends it.
const MAX_WRONG_CODES: i64 = 5;

pub fn second_factor(p: &mut Page<'_>) -> ApiResult<Response> {
    let Some((bs, user)) = pending(p) else {
        return Ok(p.redirect("/login"));
    };
    let org = next_org(p)?;
    let code = p.field("code");
    let ok = match crate::flows::two_factor::check_sign_in_code(p.state, p.ctx, &user.id, &code) {
        Ok(ok) => ok,
        Err(e) if e.status() == 429 => {
            let msg = p.error_text(&e);
            return p.render(429, "login_2fa.html", org.as_ref(), json!({ "error": msg }));
        }
        Err(e) => return Err(e),
    };
    let now = p.ctx.now;
    if !ok {
        let n = p
            .state
            .db
            .write(|tx| browser_sessions::fail_code(tx, &bs.id))?;
        if n >= MAX_WRONG_CODES {
            let (ctx, req) = (p.ctx, p.req);
            p.state.change(ctx, req, |tx| {
                crate::flows::account::end_browser_session(
                    tx,
                    ctx,
                    req,
                    &user,
                    &bs.id,
                    "too_many_codes",
                )
            })?;
            p.set_cookie(super::SESSION_COOKIE, "", 0);
            return login_page(
                p,
                429,
                org.as_ref(),
                "",
                Some(p.t("msg.too_many_codes")),
                None,
            );
        }
        let msg = p.t("msg.invalid_code");
        return p.render(401, "login_2fa.html", org.as_ref(), json!({ "error": msg }));
    }
    let mut amr = bs.auth_methods.clone();
    amr.push("otp".into());
    let expires = now + super::session_ttl(p.state);
    if !p
        .state
        .db
        .write(|tx| browser_sessions::activate(tx, &bs.id, &amr, now, expires))?
    {
        return Ok(p.redirect("/login"));
    }
    if let Some(b) = p.browser.as_mut() {
        b.session.state = BrowserState::Active;
        b.session.auth_methods = amr;
        b.session.expires_at = expires;
    }
    continue_sign_in(p, None, None)
}

/// After every completed sign-in (password + second factor, magic link, sign-up, invitation):
/// the org (named, the only one, or picked), its policy (a `domain` org wants a verified
/// email, `require2FA` an enrolled factor), an org session made from the browser session
/// (its cookies are set, as the API's login sets them), then `return_to` if allowed, else
/// `/account`.
pub(super) fn continue_sign_in(
    p: &mut Page<'_>,
    org: Option<String>,
    return_to: Option<String>,
) -> ApiResult<Response> {
    let Some(signed) = p.signed_in() else {
        return Ok(p.redirect("/login"));
    };
    let (user, bs) = (signed.user.clone(), signed.session.clone());
    let (next_org, next_return) = p.next();
    let org_slug = org.filter(|o| !o.is_empty()).unwrap_or(next_org);
    let return_to = return_to.filter(|r| !r.is_empty()).unwrap_or(next_return);
    // Signing in for an OAuth client or a device: the provider picks the org, checks its
    // policy and makes the session itself (ui::oauth); no org session of the pages here.
    if is_provider_return(&return_to) {
        p.clear_next();
        return Ok(p.redirect(&return_to));
    }
    let active: Vec<(Membership, Org)> = p
        .state
        .db
        .read(|c| users::memberships_of(c, &user.id))?
        .into_iter()
        .filter(|(m, _)| guard::is_active(m))
        .collect();
    let target = if !org_slug.is_empty() {
        match active.iter().find(|(_, o)| o.slug == org_slug) {
            Some(t) => Some(t.clone()),
            None => {
                p.clear_next();
                let org = p.state.db.read(|c| orgs::find_by_slug(c, &org_slug))?;
                return p.message(
                    403,
                    org.as_ref(),
                    "msg.heading_forbidden",
                    "msg.not_a_member",
                    Some(("/account", "msg.to_account")),
                );
            }
        }
    } else {
        match active.len() {
            0 => None,
            1 => Some(active[0].clone()),
            _ => {
                p.set_next("", &return_to);
                return Ok(p.redirect("/login/select-org"));
            }
        }
    };
    let Some((membership, org)) = target else {
        p.clear_next();
        let to = p
            .safe_return_to(&return_to, None)
            .unwrap_or_else(|| "/account".into());
        return Ok(p.redirect(&to));
    };
    if org.settings.signup_mode == SignupMode::Domain && !user.email_verified {
        p.clear_next();
        return p.message(
            422,
            Some(&org),
            "msg.heading_verify_first",
            "msg.email_verification_required",
            None,
        );
    }
    if org.settings.require_2fa && !user.two_factor_enabled {
        p.set_next(&org.slug, &return_to);
        return Ok(p.redirect("/login/setup-2fa"));
    }
    let amr = bs.auth_methods.clone();
    let (state, ctx, req) = (p.state, p.ctx, p.req);
    let issued = state.change(ctx, req, |tx| {
        let i = login::finish_login_session(
            tx,
            state,
            ctx,
            req,
            &user,
            &org,
            &membership,
            &amr_refs(&amr),
        )?;
        browser_sessions::link_session(tx, &i.session_id, &bs.id)?;
        Ok(i)
    })?;
    p.clear_next();
    let to = p
        .safe_return_to(&return_to, Some(&org))
        .unwrap_or_else(|| "/account".into());
    let mut resp = p.redirect(&to);
    cookies::set_session(
        &mut resp,
        &state.config,
        &issued.access_token,
        &issued.refresh_token,
    );
    Ok(resp)
}

/// A `return_to` of the OAuth provider's own browser endpoints.
fn is_provider_return(r: &str) -> bool {
    (r.starts_with("/oauth2/authorize?") || r == "/device" || r.starts_with("/device?"))
        && !r.contains(['\r', '\n'])
}

pub fn continue_page(p: &mut Page<'_>) -> ApiResult<Response> {
    continue_sign_in(p, None, None)
}

pub fn select_org_form(p: &mut Page<'_>) -> ApiResult<Response> {
    let Some(signed) = p.signed_in() else {
        return Ok(p.redirect("/login"));
    };
    let uid = signed.user.id.clone();
    let orgs: Vec<_> = p
        .state
        .db
        .read(|c| users::memberships_of(c, &uid))?
        .into_iter()
        .filter(|(m, _)| guard::is_active(m))
        .map(|(_, o)| json!({ "slug": o.slug, "name": o.name, "logo_url": o.logo_url }))
        .collect();
    p.render(200, "select_org.html", None, json!({ "orgs": orgs }))
}

pub fn select_org(p: &mut Page<'_>) -> ApiResult<Response> {
    if p.signed_in().is_none() {
        return Ok(p.redirect("/login"));
    }
    let slug = p.field("org");
    let (_, return_to) = p.next();
    continue_sign_in(p, Some(slug), Some(return_to))
}

/// The org the required enrolment is for.
fn enrolment_org(p: &Page<'_>) -> ApiResult<Option<(User, Org)>> {
    let Some(signed) = p.signed_in() else {
        return Ok(None);
    };
    let user = p
        .state
        .db
        .read(|c| users::find_by_id(c, &signed.user.id))?
        .ok_or_else(|| ApiError::unauthenticated("Sign in again"))?;
    let (slug, _) = p.next();
    let org = p
        .state
        .db
        .read(|c| orgs::find_by_slug(c, &slug))?
        .filter(|o| o.settings.require_2fa);
    Ok(org.map(|o| (user, o)))
}

pub fn setup_2fa_form(p: &mut Page<'_>) -> ApiResult<Response> {
    let Some((user, org)) = enrolment_org(p)? else {
        return Ok(p.redirect("/login"));
    };
    if user.two_factor_enabled {
        return continue_sign_in(p, None, None);
    }
    let e = crate::flows::two_factor::begin_enrolment(p.state, p.ctx, &user, &org.name)?;
    p.render(
        200,
        "setup_2fa.html",
        Some(&org),
        json!({ "secret": e.secret, "otpauth_url": e.otpauth_url, "qr_svg": e.qr_svg, "action": "/login/setup-2fa" }),
    )
}

pub fn setup_2fa(p: &mut Page<'_>) -> ApiResult<Response> {
    let Some((user, org)) = enrolment_org(p)? else {
        return Ok(p.redirect("/login"));
    };
    let code = p.field("code");
    match crate::flows::two_factor::enable_with_code(
        p.state,
        p.ctx,
        p.req,
        &user,
        Some(&org),
        &code,
    ) {
        Ok(codes) => {
            // The browser session now holds the second factor too.
            if let Some(b) = p.browser.as_ref() {
                let mut amr = b.session.auth_methods.clone();
                if !amr.iter().any(|a| a == "otp") {
                    amr.push("otp".into());
                }
                let (id, now, exp) = (b.session.id.clone(), p.ctx.now, b.session.expires_at);
                p.state
                    .db
                    .write(|tx| browser_sessions::set_auth_methods(tx, &id, &amr, now, exp))?;
            }
            p.render(
                200,
                "backup_codes.html",
                Some(&org),
                json!({ "codes": codes, "continue_url": "/login/continue" }),
            )
        }
        Err(e) if e.status() < 500 => {
            let msg = p.error_text(&e);
            let en = crate::flows::two_factor::begin_enrolment(p.state, p.ctx, &user, &org.name)?;
            p.render(
                e.status(),
                "setup_2fa.html",
                Some(&org),
                json!({ "error": msg, "secret": en.secret, "otpauth_url": en.otpauth_url, "qr_svg": en.qr_svg, "action": "/login/setup-2fa" }),
            )
        }
        Err(e) => Err(e),
    }
}

// ---- Sign-up ------------------------------------------------------------------------------

pub fn signup_form(p: &mut Page<'_>) -> ApiResult<Response> {
    let org = p.org()?;
    let Some(org) = org.filter(|o| signup_open(Some(o))) else {
        return p.message(
            403,
            None,
            "msg.heading_forbidden",
            "msg.signup_closed",
            Some(("/login", "common.back_to_login")),
        );
    };
    p.render(200, "signup.html", Some(&org), json!({}))
}

pub fn signup(p: &mut Page<'_>) -> ApiResult<Response> {
    let Some(org) = p.org()? else {
        return p.message(
            404,
            None,
            "msg.heading_not_found",
            "msg.org_not_found",
            None,
        );
    };
    let (name, email, password) = (p.field("name"), p.field("email"), p.field("password"));
    let name = Some(name.as_str()).filter(|n| !n.trim().is_empty());
    match login::sign_up(p.state, p.ctx, p.req, &org, &email, &password, name) {
        Ok(done) => {
            if done.issued.is_none() && org.settings.signup_mode == SignupMode::Domain {
                return p.message(
                    201,
                    Some(&org),
                    "msg.heading_check_email",
                    "msg.verify_sent",
                    None,
                );
            }
            // Signed in at Latchkey: the sign-up's own org session is the browser's first.
            let amr = vec!["pwd".to_string()];
            let bs = p.start_browser_session(&done.user, &amr, false)?;
            if let Some(issued) = &done.issued {
                p.state
                    .db
                    .write(|tx| browser_sessions::link_session(tx, &issued.session_id, &bs.id))?;
                let mut resp = p.redirect("/account");
                cookies::set_session(
                    &mut resp,
                    &p.state.config,
                    &issued.access_token,
                    &issued.refresh_token,
                );
                return Ok(resp);
            }
            // The org requires 2FA: enrol first.
            continue_sign_in(p, Some(org.slug.clone()), Some(String::new()))
        }
        Err(e) if e.status() < 500 => {
            let msg = p.error_text(&e);
            p.render(
                e.status(),
                "signup.html",
                Some(&org),
                json!({ "error": msg, "name": name, "email": email }),
            )
        }
        Err(e) => Err(e),
    }
}

// ---- Recovery -----------------------------------------------------------------------------

pub fn forgot_form(p: &mut Page<'_>) -> ApiResult<Response> {
    let org = p.org()?;
    p.render(200, "forgot_password.html", org.as_ref(), json!({}))
}

pub fn forgot(p: &mut Page<'_>) -> ApiResult<Response> {
    let org = p.org()?;
    let email = p.field("email");
    let sent = match crate::validate::email(&email) {
        Ok(e) => crate::flows::email::send_reset(p.state, p.ctx, p.req, org.as_ref(), &e),
        Err(_) => Ok(()),
    };
    match sent {
        Ok(()) => p.message(
            200,
            org.as_ref(),
            "msg.heading_check_email",
            "msg.reset_sent",
            Some(("/login", "common.back_to_login")),
        ),
        Err(e) if e.status() < 500 => {
            let msg = p.error_text(&e);
            p.render(
                e.status(),
                "forgot_password.html",
                org.as_ref(),
                json!({ "error": msg, "email": email }),
            )
        }
        Err(e) => Err(e),
    }
}

/// A GET with a token shows its page only while the token is usable (and spends nothing).
fn token_page(p: &Page<'_>, purpose: &str, template: &str) -> ApiResult<Response> {
    let token = p.query("token");
    if !crate::flows::email::token_is_usable(p.state, &token, purpose, p.ctx.now) {
        return p.link_invalid("msg.invalid_token");
    }
    p.render(200, template, None, json!({ "token": token }))
}

pub fn reset_form(p: &mut Page<'_>) -> ApiResult<Response> {
    token_page(p, "password_reset", "reset_password.html")
}

pub fn reset(p: &mut Page<'_>) -> ApiResult<Response> {
    let (token, password) = (p.field("token"), p.field("password"));
    match crate::flows::email::reset_with_token(
        p.state, p.ctx, p.req, &token, &password, "password",
    ) {
        Ok((org, _)) => {
            let login = format!("/login?org={}", org.slug);
            p.message(
                200,
                Some(&org),
                "msg.heading_password_changed",
                "msg.password_reset",
                Some((&login, "common.back_to_login")),
            )
        }
        Err(e) if e.code == "invalid_token" => p.link_invalid("msg.invalid_token"),
        Err(e) if e.status() < 500 => {
            let msg = p.error_text(&e);
            p.render(
                e.status(),
                "reset_password.html",
                None,
                json!({ "error": msg, "token": token }),
            )
        }
        Err(e) => Err(e),
    }
}

pub fn magic_link_form(p: &mut Page<'_>) -> ApiResult<Response> {
    token_page(p, "magic_link", "magic_link.html")
}

pub fn magic_link(p: &mut Page<'_>) -> ApiResult<Response> {
    let token = p.field("token");
    match crate::flows::email::spend_magic_link(p.state, p.ctx, p.req, &token) {
        Ok((org, user, _)) => {
            p.set_next(&org.slug, "");
            let amr = vec!["email".to_string()];
            if user.two_factor_enabled {
                p.start_browser_session(&user, &amr, true)?;
                return Ok(p.redirect("/login/2fa"));
            }
            p.start_browser_session(&user, &amr, false)?;
            continue_sign_in(p, Some(org.slug.clone()), Some(String::new()))
        }
        Err(e) if e.status() < 500 && e.code == "invalid_token" => {
            p.link_invalid("msg.invalid_token")
        }
        Err(e) if e.status() < 500 => {
            let msg = p.error_text(&e);
            Err(ApiError::of(e.code).with_message(msg))
        }
        Err(e) => Err(e),
    }
}

/// Whether verifying `user` needs their password: an address never verified whose account
/// has a password may have been signed up by someone else (a squatter waiting for the owner
/// to click the genuine link), so the clicker proves they hold that password — unless this
/// browser is already signed in as the account. Whoever did not create it resets instead,
/// which claims the account.
fn verify_needs_password(p: &Page<'_>, user: &User) -> bool {
    !user.email_verified
        && user.password_hash.is_some()
        && p.signed_in().is_none_or(|s| s.user.id != user.id)
}

pub fn verify_email_form(p: &mut Page<'_>) -> ApiResult<Response> {
    let token = p.query("token");
    let Ok((org, user)) =
        crate::flows::email::token_owner(p.state, p.req, &token, "verify_email", p.ctx.now)
    else {
        return p.link_invalid("msg.invalid_token");
    };
    let needs = verify_needs_password(p, &user);
    p.render(
        200,
        "verify_email.html",
        Some(&org),
        json!({ "token": token, "needs_password": needs, "email": user.email }),
    )
}

pub fn verify_email(p: &mut Page<'_>) -> ApiResult<Response> {
    let token = p.field("token");
    let Ok((org, user)) =
        crate::flows::email::token_owner(p.state, p.req, &token, "verify_email", p.ctx.now)
    else {
        return p.link_invalid("msg.invalid_token");
    };
    if verify_needs_password(p, &user) {
        let proven = login::check_password(
            p.state,
            p.ctx,
            p.req,
            Some(&org),
            &user.email,
            &p.field("password"),
        )
        .and_then(|(u, _)| {
            if u.id == user.id {
                Ok(())
            } else {
                Err(login::invalid_credentials())
            }
        });
        if let Err(e) = proven {
            if e.status() >= 500 {
                return Err(e);
            }
            let msg = p.error_text(&e);
            let mut resp = p.render(
                e.status(),
                "verify_email.html",
                Some(&org),
                json!({
                    "token": token, "needs_password": true, "email": user.email, "error": msg,
                }),
            )?;
            super::carry_headers(&mut resp, &e);
            return Ok(resp);
        }
    }
    match crate::flows::email::confirm_email(p.state, p.ctx, p.req, &token) {
        Ok((org, _)) => {
            let after = crate::api::links::trusted_app_url(p.state, &org)
                .map(str::to_string)
                .unwrap_or_else(|| format!("/login?org={}", org.slug));
            p.message(
                200,
                Some(&org),
                "msg.heading_email_verified",
                "msg.email_verified",
                Some((&after, "common.continue")),
            )
        }
        Err(e) if e.status() < 500 => p.link_invalid("msg.invalid_token"),
        Err(e) => Err(e),
    }
}

// ---- Invitations --------------------------------------------------------------------------

/// The open invitation behind `token` and its org; None when it is unknown, expired,
/// revoked or used (the page then says the link no longer works).
fn open_invitation(p: &Page<'_>, token: &str) -> ApiResult<Option<(Invitation, Org)>> {
    match invite::invitation(p.state, p.req, token, p.ctx.now) {
        Ok(x) => Ok(Some(x)),
        Err(e) if e.status() < 500 => Ok(None),
        Err(e) => Err(e),
    }
}

fn invitation_page(
    p: &Page<'_>,
    status: u16,
    token: &str,
    error: Option<String>,
) -> ApiResult<Response> {
    let Some((inv, org)) = open_invitation(p, token)? else {
        return p.link_invalid("msg.invalid_invitation");
    };
    let existing = p.state.db.read(|c| users::find_by_email(c, &inv.email))?;
    let mode = match (&existing, p.signed_in()) {
        (None, _) => "new",
        (Some(u), Some(s)) if s.user.id == u.id => "join",
        (Some(_), Some(_)) => "other",
        (Some(_), None) => "sign_in",
    };
    let back = format!("/invitations/accept?token={token}");
    let login_url = format!(
        "/login?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &back)
            .append_pair("email", &inv.email)
            .finish()
    );
    p.render(
        status,
        "invitation.html",
        Some(&org),
        json!({
            "token": token,
            "invite": { "email": inv.email, "role": inv.role, "org_name": org.name },
            "mode": mode,
            "login_url": login_url,
            "error": error,
        }),
    )
}

pub fn invitation_form(p: &mut Page<'_>) -> ApiResult<Response> {
    let token = p.query("token");
    invitation_page(p, 200, &token, None)
}

pub fn invitation(p: &mut Page<'_>) -> ApiResult<Response> {
    let token = p.field("token");
    let Some((inv, org)) = open_invitation(p, &token)? else {
        return p.link_invalid("msg.invalid_invitation");
    };
    let existing = p.state.db.read(|c| users::find_by_email(c, &inv.email))?;
    match existing {
        None => {
            let (name, password) = (p.field("name"), p.field("password"));
            let name = Some(name.as_str()).filter(|n| !n.trim().is_empty());
            match invite::accept_new(p.state, p.ctx, p.req, &token, name, Some(&password), &org) {
                Ok((user, _)) => {
                    p.start_browser_session(&user, &["pwd".to_string()], false)?;
                    continue_sign_in(p, Some(org.slug.clone()), Some(String::new()))
                }
                Err(e) if e.status() < 500 => {
                    let msg = p.error_text(&e);
                    invitation_page(p, e.status(), &token, Some(msg))
                }
                Err(e) => Err(e),
            }
        }
        Some(u) => {
            // An existing account accepts as itself: signed in here as the invitee.
            let Some(signed) = p.signed_in().filter(|s| s.user.id == u.id) else {
                return invitation_page(p, 401, &token, Some(p.t("msg.sign_in_to_accept")));
            };
            let user = signed.user.clone();
            match invite::join_as(p.state, p.ctx, p.req, &token, &user) {
                Ok((org, _)) => continue_sign_in(p, Some(org.slug.clone()), Some(String::new())),
                Err(e) if e.status() < 500 => {
                    let msg = p.error_text(&e);
                    invitation_page(p, e.status(), &token, Some(msg))
                }
                Err(e) => Err(e),
            }
        }
    }
}

// ---- Sign-out -----------------------------------------------------------------------------

pub fn logout(p: &mut Page<'_>) -> ApiResult<Response> {
    if let Some(b) = p.browser.take() {
        let (state, ctx, req) = (p.state, p.ctx, p.req);
        state.change(ctx, req, |tx| {
            crate::flows::account::end_browser_session(
                tx,
                ctx,
                req,
                &b.user,
                &b.session.id,
                "logout",
            )
        })?;
    }
    p.set_cookie(super::SESSION_COOKIE, "", 0);
    p.clear_next();
    let mut resp = p.redirect("/login");
    cookies::clear_all(&mut resp, &p.state.config);
    Ok(resp)
}

// ---- First run ----------------------------------------------------------------------------

fn needs_token(p: &Page<'_>) -> bool {
    p.state
        .setup_token
        .lock()
        .map(|t| t.is_some())
        .unwrap_or(true)
}

fn set_up_already(p: &Page<'_>) -> ApiResult<bool> {
    Ok(!p.state.db.read(|c| orgs::list(c, None, 1))?.is_empty())
}

pub fn setup_form(p: &mut Page<'_>) -> ApiResult<Response> {
    if set_up_already(p)? {
        return Ok(p.redirect("/login"));
    }
    p.render(
        200,
        "setup.html",
        None,
        json!({ "needs_token": needs_token(p) }),
    )
}

pub fn setup(p: &mut Page<'_>) -> ApiResult<Response> {
    if set_up_already(p)? {
        return Ok(p.redirect("/login"));
    }
    let (org_name, org_slug, email, password) = (
        p.field("org_name"),
        p.field("org_slug"),
        p.field("email"),
        p.field("password"),
    );
    let again = |p: &Page<'_>, status: u16, msg: String| {
        p.render(
            status,
            "setup.html",
            None,
            json!({
                "needs_token": needs_token(p), "error": msg,
                "org_name": org_name, "org_slug": org_slug, "email": email,
            }),
        )
    };
    if needs_token(p) {
        let expected = p
            .state
            .setup_token
            .lock()
            .ok()
            .and_then(|t| t.clone())
            .unwrap_or_default();
        if !crypto::ct_eq(
            p.field("setup_token").trim().as_bytes(),
            expected.as_bytes(),
        ) {
            return again(p, 403, p.t("msg.setup_token_wrong"));
        }
    }
    let made = (|| {
        crate::validate::slug(org_slug.trim())?;
        let name = crate::validate::name("org_name", &org_name)?;
        let email = crate::validate::email(&email)?;
        crate::password::check_policy(&p.state.config.password, None, "password", &password)?;
        let hash = p.state.hasher.hash(&password)?;
        let now = p.ctx.now;
        let org = Org::new(org_slug.trim().to_string(), name, now);
        // The person at the first-run page is the operator: their address counts as verified.
        let user = User {
            password_hash: Some(hash),
            email_verified: true,
            ..User::new(email, now)
        };
        let m = Membership {
            id: crate::ids::new_id("mem", now),
            org_id: org.id.clone(),
            user_id: user.id.clone(),
            role: crate::role::Role::Owner.as_str().into(),
            status: MemberStatus::Active,
            metadata: json!({}),
            joined_at: now,
        };
        let (ctx, req) = (p.ctx, p.req);
        p.state.change(ctx, req, |tx| {
            if !orgs::list(tx, None, 1)?.is_empty() {
                return Err(ApiError::already_exists("Already set up"));
            }
            orgs::insert(tx, &org)?;
            users::insert(tx, &user)?;
            users::insert_membership(tx, &m)?;
            tx.audit(crate::db::audit::Entry::new(
                Some(&org.id),
                "user",
                Some(&user.id),
                "deployment.setup",
                Some("org"),
                Some(&org.id),
            ))?;
            Ok::<_, ApiError>(())
        })?;
        Ok::<_, ApiError>((org, user))
    })();
    match made {
        Ok((org, user)) => {
            if let Ok(mut t) = p.state.setup_token.lock() {
                *t = None;
            }
            p.start_browser_session(&user, &["pwd".to_string()], false)?;
            continue_sign_in(p, Some(org.slug), Some(String::new()))
        }
        Err(e) if e.status() < 500 => {
            let msg = p.error_text(&e);
            again(p, e.status(), msg)
        }
        Err(e) => Err(e),
    }
}
