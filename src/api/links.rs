//! Where users are sent. Links that carry account-wide tokens (reset, magic link,
//! verification, invitations) always point at Latchkey's own pages on the deployment's link
//! base (`email.link_base_url`, else `server.public_url`). An org's `appUrl` is only where the
//! user goes afterwards, and only when the operator set it or its host is on
//! `security.allowed_app_hosts`; so an org admin can never have genuine emails deliver tokens
//! to a host they alone chose.

use crate::db::orgs::Org;
use crate::state::AppState;

/// Whether `url`'s host is on the operator's `security.allowed_app_hosts`.
pub fn host_allowed(state: &AppState, url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| state.config.app_host_allowed(h.trim_matches(['[', ']'])))
}

/// The org's `appUrl`, if links may go there (see the module docs).
pub fn trusted_app_url<'a>(state: &AppState, org: &'a Org) -> Option<&'a str> {
    org.app_url
        .as_deref()
        .filter(|u| org.app_url_by_operator || host_allowed(state, u))
}
