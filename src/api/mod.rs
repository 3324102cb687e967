//! The route table — every endpoint on one screen — and the dispatcher: 404 for an unknown
//! path, 405 (with `Allow`) for a known path with another method.

pub mod account;
pub mod admin;
pub mod admin_import;
pub mod admin_outbox;
pub mod admin_users;
pub mod api_keys;
pub mod audit_log;
pub mod auth;
pub mod email_flows;
pub mod guard;
pub mod invites;
pub mod links;
pub mod meta;
pub mod oauth_clients;
pub mod openapi;
pub mod org;
pub mod public;
pub mod two_factor;
pub mod views;
pub mod webhooks;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::oauth;
use crate::state::AppState;
use crate::workos;
use rouille::{Request, Response};
use std::net::IpAddr;

/// Per-request facts handlers may need, independent of how the connection was accepted.
pub struct Ctx {
    pub request_id: String,
    pub now: i64,
    pub ip: IpAddr,
    /// The matched route template (for logs and metrics), or "-".
    pub route: &'static str,
    params: Vec<(&'static str, String)>,
    /// Set when acting for an end user behind a backend (`/public/authenticate`): the user
    /// agent to record instead of the request's own (`Some(None)`: none known).
    user_agent: Option<Option<String>>,
}

impl Ctx {
    pub fn new(request_id: String, now: i64, ip: IpAddr) -> Ctx {
        Ctx {
            request_id,
            now,
            ip,
            route: "-",
            params: Vec::new(),
            user_agent: None,
        }
    }

    /// The same request acting for an end user behind a backend: `ip` and `user_agent`
    /// replace the caller's own in rate limits, sessions and the audit trail.
    pub fn on_behalf_of(&self, ip: IpAddr, user_agent: Option<String>) -> Ctx {
        Ctx {
            request_id: self.request_id.clone(),
            now: self.now,
            ip,
            route: self.route,
            params: self.params.clone(),
            user_agent: Some(user_agent),
        }
    }

    /// The user agent to record: the override of [`Ctx::on_behalf_of`], else the request's.
    pub fn user_agent(&self, req: &Request) -> Option<String> {
        match &self.user_agent {
            Some(ua) => ua.clone(),
            None => crate::http::input::user_agent(req),
        }
    }

    /// A path parameter captured by `{name}` in the route template.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

pub type Handler = fn(&AppState, &Ctx, &Request) -> ApiResult<Response>;

/// (method, path template, handler). `{name}` captures one segment.
pub static ROUTES: &[(&str, &str, Handler)] = &[
    // Operations and well-known documents.
    ("GET", "/healthz", meta::healthz),
    ("GET", "/readyz", meta::readyz),
    ("GET", "/metrics", meta::metrics),
    ("GET", "/.well-known/jwks.json", meta::jwks),
    (
        "GET",
        "/.well-known/openid-configuration",
        meta::openid_configuration,
    ),
    (
        "GET",
        "/.well-known/oauth-authorization-server",
        meta::oauth_metadata,
    ),
    ("GET", "/api/v1/openapi.json", openapi::document),
    // The OAuth 2.1 / OIDC provider's back channel (the browser endpoints are pages).
    ("POST", "/oauth2/token", oauth::token::token),
    ("OPTIONS", "/oauth2/token", oauth::endpoints::preflight),
    ("GET", "/oauth2/userinfo", oauth::endpoints::userinfo),
    ("POST", "/oauth2/userinfo", oauth::endpoints::userinfo),
    ("OPTIONS", "/oauth2/userinfo", oauth::endpoints::preflight),
    ("POST", "/oauth2/revoke", oauth::endpoints::revoke),
    ("OPTIONS", "/oauth2/revoke", oauth::endpoints::preflight),
    ("POST", "/oauth2/introspect", oauth::endpoints::introspect),
    (
        "POST",
        "/oauth2/device_authorization",
        oauth::endpoints::device_authorization,
    ),
    // End users (X-Org-Slug).
    ("POST", "/api/v1/auth/signup", auth::signup),
    ("POST", "/api/v1/auth/login", auth::login),
    ("POST", "/api/v1/auth/logout", auth::logout),
    ("POST", "/api/v1/auth/refresh", auth::refresh),
    ("POST", "/api/v1/auth/is-available", auth::is_available),
    ("POST", "/api/v1/auth/switch-org", auth::switch_org),
    ("POST", "/api/v1/auth/verify-2fa", two_factor::verify),
    ("POST", "/api/v1/auth/2fa/setup", two_factor::setup),
    ("POST", "/api/v1/auth/2fa/enable", two_factor::enable),
    ("POST", "/api/v1/auth/2fa/disable", two_factor::disable),
    ("GET", "/api/v1/auth/2fa/status", two_factor::status),
    (
        "POST",
        "/api/v1/auth/2fa/backup-codes",
        two_factor::backup_codes,
    ),
    ("GET", "/api/v1/auth/me", account::me),
    ("PUT", "/api/v1/auth/me", account::update_me),
    (
        "POST",
        "/api/v1/auth/change-password",
        account::change_password,
    ),
    ("GET", "/api/v1/auth/sessions", account::list_sessions),
    (
        "DELETE",
        "/api/v1/auth/sessions",
        account::revoke_other_sessions,
    ),
    (
        "DELETE",
        "/api/v1/auth/sessions/{id}",
        account::revoke_session,
    ),
    ("GET", "/api/v1/auth/orgs", account::list_orgs),
    ("GET", "/api/v1/auth/audit", audit_log::mine),
    ("GET", "/api/v1/auth/invitations", invites::mine),
    (
        "POST",
        "/api/v1/auth/forgot-password",
        email_flows::forgot_password,
    ),
    (
        "POST",
        "/api/v1/auth/reset-password",
        email_flows::reset_password,
    ),
    (
        "POST",
        "/api/v1/auth/verify-email/send",
        email_flows::verify_email_send,
    ),
    (
        "POST",
        "/api/v1/auth/verify-email",
        email_flows::verify_email,
    ),
    (
        "GET",
        "/api/v1/auth/verify-email",
        email_flows::verify_email_link,
    ),
    ("POST", "/api/v1/auth/magic-link", email_flows::magic_link),
    (
        "POST",
        "/api/v1/auth/magic-link/verify",
        email_flows::magic_link_verify,
    ),
    // Invitations by token.
    ("POST", "/api/v1/invitations/accept", invites::accept),
    ("POST", "/api/v1/invitations/decline", invites::decline),
    // Org administration (X-Org-Slug + access token).
    ("GET", "/api/v1/org", org::get_org),
    ("PUT", "/api/v1/org", org::update_org),
    ("DELETE", "/api/v1/org", org::delete_org),
    ("GET", "/api/v1/org/members", org::list_members),
    ("POST", "/api/v1/org/members/invite", invites::invite),
    ("GET", "/api/v1/org/members/{userId}", org::get_member),
    ("PUT", "/api/v1/org/members/{userId}", org::update_member),
    ("DELETE", "/api/v1/org/members/{userId}", org::remove_member),
    (
        "POST",
        "/api/v1/org/members/{userId}/deactivate",
        org::deactivate_member,
    ),
    (
        "POST",
        "/api/v1/org/members/{userId}/reactivate",
        org::reactivate_member,
    ),
    ("GET", "/api/v1/org/audit", audit_log::org),
    ("GET", "/api/v1/org/invites", invites::list),
    ("DELETE", "/api/v1/org/invites/{id}", invites::revoke),
    ("POST", "/api/v1/org/invites/{id}/resend", invites::resend),
    // Org administration (access token + X-Org-Slug).
    ("POST", "/api/v1/org/api-keys", api_keys::create),
    ("GET", "/api/v1/org/api-keys", api_keys::list),
    ("DELETE", "/api/v1/org/api-keys/{id}", api_keys::revoke),
    ("POST", "/api/v1/org/webhooks", webhooks::create),
    ("GET", "/api/v1/org/webhooks", webhooks::list),
    ("GET", "/api/v1/org/webhooks/{id}", webhooks::get),
    ("PUT", "/api/v1/org/webhooks/{id}", webhooks::update),
    ("DELETE", "/api/v1/org/webhooks/{id}", webhooks::delete),
    (
        "POST",
        "/api/v1/org/webhooks/{id}/rotate-secret",
        webhooks::rotate_secret,
    ),
    ("POST", "/api/v1/org/webhooks/{id}/test", webhooks::test),
    (
        "GET",
        "/api/v1/org/webhooks/{id}/deliveries",
        webhooks::deliveries,
    ),
    (
        "POST",
        "/api/v1/org/webhooks/{id}/deliveries/{deliveryId}/retry",
        webhooks::retry,
    ),
    (
        "POST",
        "/api/v1/org/oauth-clients",
        oauth_clients::org_create,
    ),
    ("GET", "/api/v1/org/oauth-clients", oauth_clients::org_list),
    (
        "GET",
        "/api/v1/org/oauth-clients/{id}",
        oauth_clients::org_get,
    ),
    (
        "PUT",
        "/api/v1/org/oauth-clients/{id}",
        oauth_clients::org_update,
    ),
    (
        "DELETE",
        "/api/v1/org/oauth-clients/{id}",
        oauth_clients::org_delete,
    ),
    // The WorkOS-compatible API (docs/workos.md), at the root paths the SDKs call; 404
    // unless `[workos] enabled`.
    (
        "POST",
        "/user_management/authenticate",
        workos::authenticate::authenticate,
    ),
    (
        "GET",
        "/user_management/authorize",
        workos::authenticate::authorize,
    ),
    (
        "POST",
        "/user_management/authorize/device",
        workos::authenticate::device_authorization,
    ),
    (
        "GET",
        "/user_management/sessions/logout",
        workos::authenticate::logout,
    ),
    (
        "POST",
        "/user_management/sessions/revoke",
        workos::authenticate::revoke_session,
    ),
    ("GET", "/sso/jwks/{clientId}", workos::authenticate::jwks),
    ("GET", "/user_management/users", workos::users::list_users),
    ("POST", "/user_management/users", workos::users::create_user),
    (
        "GET",
        "/user_management/users/external_id/{externalId}",
        workos::users::get_user_by_external_id,
    ),
    (
        "GET",
        "/user_management/users/{id}",
        workos::users::get_user,
    ),
    (
        "PUT",
        "/user_management/users/{id}",
        workos::users::update_user,
    ),
    (
        "DELETE",
        "/user_management/users/{id}",
        workos::users::delete_user,
    ),
    (
        "GET",
        "/user_management/users/{id}/sessions",
        workos::users::list_sessions,
    ),
    (
        "POST",
        "/user_management/users/{id}/email_verification/send",
        workos::users::send_verification,
    ),
    (
        "POST",
        "/user_management/users/{id}/email_verification/confirm",
        workos::users::confirm_verification,
    ),
    (
        "GET",
        "/user_management/email_verification/{id}",
        workos::users::get_email_verification,
    ),
    (
        "POST",
        "/user_management/password_reset",
        workos::users::create_password_reset,
    ),
    (
        "POST",
        "/user_management/password_reset/confirm",
        workos::users::confirm_password_reset,
    ),
    (
        "GET",
        "/user_management/password_reset/{id}",
        workos::users::get_password_reset,
    ),
    (
        "POST",
        "/user_management/magic_auth",
        workos::users::create_magic_auth,
    ),
    (
        "GET",
        "/user_management/magic_auth/{id}",
        workos::users::get_magic_auth,
    ),
    (
        "POST",
        "/user_management/users/{id}/auth_factors",
        workos::authenticate::enroll_factor,
    ),
    (
        "GET",
        "/user_management/users/{id}/auth_factors",
        workos::authenticate::list_factors,
    ),
    (
        "GET",
        "/auth/factors/{id}",
        workos::authenticate::get_factor,
    ),
    (
        "POST",
        "/auth/factors/{id}/challenge",
        workos::authenticate::challenge_factor,
    ),
    (
        "POST",
        "/auth/challenges/{id}/verify",
        workos::authenticate::verify_challenge,
    ),
    (
        "GET",
        "/user_management/organization_memberships",
        workos::memberships::list_memberships,
    ),
    (
        "POST",
        "/user_management/organization_memberships",
        workos::memberships::create_membership,
    ),
    (
        "GET",
        "/user_management/organization_memberships/{id}",
        workos::memberships::get_membership,
    ),
    (
        "PUT",
        "/user_management/organization_memberships/{id}",
        workos::memberships::update_membership,
    ),
    (
        "DELETE",
        "/user_management/organization_memberships/{id}",
        workos::memberships::delete_membership,
    ),
    (
        "PUT",
        "/user_management/organization_memberships/{id}/deactivate",
        workos::memberships::deactivate,
    ),
    (
        "PUT",
        "/user_management/organization_memberships/{id}/reactivate",
        workos::memberships::reactivate,
    ),
    (
        "POST",
        "/user_management/invitations",
        workos::invitations::send,
    ),
    (
        "GET",
        "/user_management/invitations",
        workos::invitations::list_invitations,
    ),
    (
        "GET",
        "/user_management/invitations/by_token/{token}",
        workos::invitations::by_token,
    ),
    (
        "GET",
        "/user_management/invitations/{id}",
        workos::invitations::get,
    ),
    (
        "POST",
        "/user_management/invitations/{id}/accept",
        workos::invitations::accept,
    ),
    (
        "POST",
        "/user_management/invitations/{id}/revoke",
        workos::invitations::revoke,
    ),
    (
        "POST",
        "/user_management/invitations/{id}/resend",
        workos::invitations::resend,
    ),
    ("GET", "/organizations", workos::orgs::list_orgs),
    ("POST", "/organizations", workos::orgs::create_org),
    (
        "GET",
        "/organizations/external_id/{externalId}",
        workos::orgs::get_org_by_external_id,
    ),
    ("GET", "/organizations/{id}", workos::orgs::get_org),
    ("PUT", "/organizations/{id}", workos::orgs::update_org),
    ("DELETE", "/organizations/{id}", workos::orgs::delete_org),
    // Server to server (X-API-Key).
    ("POST", "/api/v1/public/verify", public::verify),
    ("GET", "/api/v1/public/users", public::list_users),
    ("POST", "/api/v1/public/users", public::create_user),
    ("GET", "/api/v1/public/users/{id}", public::get_user),
    (
        "DELETE",
        "/api/v1/public/users/{id}/sessions",
        public::revoke_sessions,
    ),
    ("GET", "/api/v1/public/members/{userId}", public::get_member),
    ("POST", "/api/v1/public/authenticate", public::authenticate),
    ("POST", "/api/v1/public/invitations", public::invite),
    // Operator API (admin key).
    ("POST", "/api/v1/admin/orgs", admin::create_org),
    ("GET", "/api/v1/admin/orgs", admin::list_orgs),
    ("GET", "/api/v1/admin/orgs/{slug}", admin::get_org),
    ("PUT", "/api/v1/admin/orgs/{slug}", admin::update_org),
    ("DELETE", "/api/v1/admin/orgs/{slug}", admin::delete_org),
    (
        "POST",
        "/api/v1/admin/orgs/{slug}/members",
        admin::add_member,
    ),
    ("POST", "/api/v1/admin/users", admin::create_user),
    ("GET", "/api/v1/admin/users", admin::list_users),
    (
        "POST",
        "/api/v1/admin/users/import",
        admin_import::import_users,
    ),
    ("GET", "/api/v1/admin/users/{id}", admin_users::get),
    ("PUT", "/api/v1/admin/users/{id}", admin_users::update),
    ("DELETE", "/api/v1/admin/users/{id}", admin_users::delete),
    (
        "POST",
        "/api/v1/admin/users/{id}/unlock",
        admin_users::unlock,
    ),
    (
        "DELETE",
        "/api/v1/admin/users/{id}/sessions",
        admin_users::revoke_sessions,
    ),
    (
        "POST",
        "/api/v1/admin/oauth-clients",
        oauth_clients::admin_create,
    ),
    (
        "GET",
        "/api/v1/admin/oauth-clients",
        oauth_clients::admin_list,
    ),
    (
        "GET",
        "/api/v1/admin/oauth-clients/{id}",
        oauth_clients::admin_get,
    ),
    (
        "PUT",
        "/api/v1/admin/oauth-clients/{id}",
        oauth_clients::admin_update,
    ),
    (
        "DELETE",
        "/api/v1/admin/oauth-clients/{id}",
        oauth_clients::admin_delete,
    ),
    ("GET", "/api/v1/admin/audit", audit_log::admin),
    ("GET", "/api/v1/admin/outbox", admin_outbox::list),
    (
        "POST",
        "/api/v1/admin/outbox/{id}/retry",
        admin_outbox::retry,
    ),
];

fn matches(template: &'static str, path: &str, params: &mut Vec<(&'static str, String)>) -> bool {
    params.clear();
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) => {
                if let Some(name) = ts.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if ps.is_empty() {
                        return false;
                    }
                    params.push((name, ps.to_string()));
                } else if ts != ps {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Routes a request to its handler.
pub fn dispatch(state: &AppState, ctx: &mut Ctx, req: &Request) -> ApiResult<Response> {
    let path = req.url();
    let method = req.method();
    let mut allowed: Vec<&str> = Vec::new();
    let mut params = Vec::new();
    for (m, template, handler) in ROUTES {
        if !matches(template, &path, &mut params) {
            continue;
        }
        if *m == method || (method == "HEAD" && *m == "GET") {
            ctx.route = template;
            ctx.params = std::mem::take(&mut params);
            return handler(state, ctx, req);
        }
        allowed.push(m);
    }
    if allowed.is_empty() {
        // Not an API route: maybe a hosted page.
        if let Some(r) = crate::ui::dispatch(state, ctx, req) {
            return r;
        }
        return Err(ApiError::not_found(format!("No route for {method} {path}")));
    }
    if allowed.contains(&"GET") {
        allowed.push("HEAD");
    }
    Err(ApiError::of(ErrorCode::MethodNotAllowed)
        .with_message(format!(
            "{method} is not allowed here; allowed: {}",
            allowed.join(", ")
        ))
        .with_header("Allow", allowed.join(", ")))
}
