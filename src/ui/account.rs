//! The account page (`/account`): the signed-in person's profile, password, second factor,
//! backup codes and sessions. Acts on the account deployment-wide (audit entries carry no
//! org), through the same functions as `/api/v1/auth/*`.

use super::{Page, Signed};
use crate::api::guard;
use crate::clock::rfc3339;
use crate::db::two_factor as tf;
use crate::db::users;
use crate::db::{browser_sessions, sessions};
use crate::error::{ApiError, ApiResult};
use rouille::Response;
use serde_json::{Value, json};

/// The signed-in person, else None (the caller redirects to the login).
fn me(p: &Page<'_>) -> ApiResult<Option<(Signed, users::User)>> {
    let Some(s) = p.signed_in() else {
        return Ok(None);
    };
    // Re-read the user: an earlier form on this page may have changed it.
    let user = p
        .state
        .db
        .read(|c| users::find_by_id(c, &s.user.id))?
        .ok_or_else(|| ApiError::unauthenticated("Sign in again"))?;
    Ok(Some((
        Signed {
            session: s.session.clone(),
            user: s.user.clone(),
        },
        user,
    )))
}

fn to_login() -> Response {
    Response::redirect_303("/login?return_to=%2Faccount")
}

/// The page, with `extra` (setup, new codes, error, notice) merged in.
fn page(p: &Page<'_>, status: u16, extra: Value) -> ApiResult<Response> {
    let Some((signed, user)) = me(p)? else {
        return Ok(to_login());
    };
    let now = p.ctx.now;
    let (remaining, orgs, live) = p.state.db.read(|c| {
        let remaining = tf::backup_codes_remaining(c, &user.id)?;
        let orgs = users::memberships_of(c, &user.id)?;
        let live = sessions::list_live_for_user(c, &user.id, now)?;
        // Which org sessions this browser made (the "current" ones).
        let mine = browser_sessions::org_sessions(c, &signed.session.id)?;
        Ok::<_, ApiError>((remaining, orgs, (live, mine)))
    })?;
    let (live, mine) = live;
    let org_names: std::collections::HashMap<String, String> = orgs
        .iter()
        .map(|(_, o)| (o.slug.clone(), o.name.clone()))
        .collect();
    let sessions: Vec<Value> = live
        .iter()
        .map(|(s, slug)| {
            json!({
                "id": s.id,
                "org_name": org_names.get(slug).cloned().unwrap_or_else(|| slug.clone()),
                "created_at": rfc3339(s.created_at),
                "last_seen_at": rfc3339(s.last_seen_at),
                "ip_address": s.ip_address,
                "user_agent": s.user_agent,
                "current": mine.contains(&s.id),
            })
        })
        .collect();
    let orgs: Vec<Value> = orgs
        .iter()
        .filter(|(m, _)| guard::is_active(m))
        .map(|(m, o)| json!({ "name": o.name, "slug": o.slug, "role": m.role }))
        .collect();
    let mut ctx = json!({
        "user": {
            "email": user.email,
            "name": user.name,
            "email_verified": user.email_verified,
            "two_factor_enabled": user.two_factor_enabled,
        },
        "backup_codes_remaining": remaining,
        "orgs": orgs,
        "sessions": sessions,
        "setup": null,
        "new_backup_codes": null,
    });
    if let Value::Object(e) = extra {
        for (k, v) in e {
            ctx[k] = v;
        }
    }
    p.render(status, "account.html", None, ctx)
}

/// Runs a form's action and shows the page again with its notice or error.
fn act(
    p: &mut Page<'_>,
    f: impl FnOnce(&mut Page<'_>, &users::User) -> ApiResult<Value>,
) -> ApiResult<Response> {
    let Some((_, user)) = me(p)? else {
        return Ok(to_login());
    };
    match f(p, &user) {
        Ok(extra) => page(p, 200, extra),
        Err(e) if e.status() < 500 => {
            let msg = p.error_text(&e);
            let mut resp = page(p, e.status(), json!({ "error": msg }))?;
            super::carry_headers(&mut resp, &e);
            Ok(resp)
        }
        Err(e) => Err(e),
    }
}

pub fn show(p: &mut Page<'_>) -> ApiResult<Response> {
    page(p, 200, json!({}))
}

pub fn profile(p: &mut Page<'_>) -> ApiResult<Response> {
    act(p, |p, user| {
        let name = crate::validate::name("name", &p.field("name"))?;
        let mut u = user.clone();
        u.name = Some(name);
        u.updated_at = p.ctx.now;
        let (ctx, req) = (p.ctx, p.req);
        p.state.change(ctx, req, |tx| {
            users::update_profile(tx, &u)?;
            tx.audit(crate::db::audit::Entry::new(
                None,
                "user",
                Some(&u.id),
                "user.updated",
                Some("user"),
                Some(&u.id),
            ))?;
            tx.emit(
                None,
                "user.updated",
                json!({ "user": crate::api::views::user(&u) }),
            )?;
            Ok(())
        })?;
        Ok(json!({ "notice": p.t("msg.profile_saved") }))
    })
}

pub fn password(p: &mut Page<'_>) -> ApiResult<Response> {
    act(p, |p, user| {
        let (current, new) = (p.field("current_password"), p.field("new_password"));
        crate::flows::account::change_password_for(
            p.state, p.ctx, p.req, user, None, None, &current, &new,
        )?;
        // Every session ended, this browser's too: sign it in again with what it had.
        let amr = p
            .browser
            .as_ref()
            .map(|b| b.session.auth_methods.clone())
            .unwrap_or_default();
        p.browser = None;
        p.start_browser_session(user, &amr, false)?;
        Ok(json!({ "notice": p.t("msg.password_changed") }))
    })
}

pub fn totp_setup(p: &mut Page<'_>) -> ApiResult<Response> {
    act(p, |p, user| {
        let e = crate::flows::two_factor::begin_enrolment(p.state, p.ctx, user, "Latchkey")?;
        Ok(
            json!({ "setup": { "secret": e.secret, "otpauth_url": e.otpauth_url, "qr_svg": e.qr_svg } }),
        )
    })
}

pub fn totp_enable(p: &mut Page<'_>) -> ApiResult<Response> {
    act(p, |p, user| {
        let codes = crate::flows::two_factor::enable_with_code(
            p.state,
            p.ctx,
            p.req,
            user,
            None,
            &p.field("code"),
        )?;
        Ok(json!({ "new_backup_codes": codes, "notice": p.t("msg.two_factor_enabled") }))
    })
}

pub fn totp_disable(p: &mut Page<'_>) -> ApiResult<Response> {
    act(p, |p, user| {
        crate::flows::two_factor::disable_with_code(
            p.state,
            p.ctx,
            p.req,
            user,
            None,
            &p.field("code"),
        )?;
        Ok(json!({ "notice": p.t("msg.two_factor_disabled") }))
    })
}

pub fn backup_codes(p: &mut Page<'_>) -> ApiResult<Response> {
    act(p, |p, user| {
        let codes = crate::flows::two_factor::regenerate_backup_codes(
            p.state,
            p.ctx,
            p.req,
            user,
            None,
            &p.field("code"),
        )?;
        Ok(json!({ "new_backup_codes": codes, "notice": p.t("msg.backup_codes_new") }))
    })
}

pub fn revoke_session(p: &mut Page<'_>) -> ApiResult<Response> {
    act(p, |p, user| {
        let id = crate::ids::SessionId::from_wire(p.field("session_id"));
        let (ctx, req) = (p.ctx, p.req);
        p.state.change(ctx, req, |tx| {
            crate::flows::account::revoke_own_session(tx, ctx, req, user, &id)
        })?;
        Ok(json!({ "notice": p.t("msg.session_revoked") }))
    })
}
