//! OAuth clients (API.md §13), shared by the operator API, the org-admin API and
//! `latchkey client create`: the rules of a registration, and its wire shape. The secret is
//! shown once and stored as its hash.

use crate::clock::rfc3339;
use crate::config::Config;
use crate::crypto;
use crate::db::oauth::{self, Client};
use crate::db::orgs::Org;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::validate;
use serde::Deserialize;
use serde_json::{Value, json};

/// The most redirect URIs (and post-logout URIs) one client may register.
const MAX_URIS: usize = 20;
pub const PROFILES: &[&str] = &["oidc", "workos"];

/// `POST /admin/oauth-clients` and `POST /org/oauth-clients` (which has no `orgSlug`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub first_party: bool,
    pub org_slug: Option<String>,
    pub profile: Option<String>,
}

/// `PUT …/oauth-clients/{id}`: what may change (never the org, the type or the secret).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateClient {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub first_party: Option<bool>,
    pub profile: Option<String>,
}

/// Who registers: the operator may mark a client first-party (no consent screen) and use any
/// redirect host; an org admin may not (their app would get members' tokens without asking
/// them), and registers only hosts the operator allowed (`security.allowed_app_hosts`) or
/// loopback.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Registrar {
    Operator,
    OrgAdmin,
}

fn bad(field: &str, msg: &str) -> ApiError {
    ApiError::field(ErrorCode::InvalidRequest, field, msg)
}

/// Checks one list of redirect URIs: absolute, no fragment, https (http only on loopback or
/// an allowed app host), or a private-use scheme of a native app (`com.example.app:/cb`).
pub fn redirect_uris(
    config: &Config,
    field: &str,
    uris: &[String],
    by: Registrar,
    required: bool,
) -> ApiResult<Vec<String>> {
    if required && uris.is_empty() {
        return Err(bad(field, "at least one URI is required"));
    }
    if uris.len() > MAX_URIS {
        return Err(bad(field, "at most 20 URIs"));
    }
    let mut out: Vec<String> = Vec::new();
    for u in uris {
        if u.len() > 2048 || u.contains(['\r', '\n', ' ']) {
            return Err(bad(field, "not a valid URI"));
        }
        let url = url::Url::parse(u).map_err(|_| bad(field, "each must be an absolute URI"))?;
        if url.fragment().is_some() {
            return Err(bad(field, "a redirect URI cannot have a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(field, "a redirect URI cannot carry credentials"));
        }
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let loopback = matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]");
        match url.scheme() {
            "https" | "http" => {
                if host.is_empty() {
                    return Err(bad(field, "each must name a host"));
                }
                if url.scheme() == "http" && !loopback && by == Registrar::OrgAdmin {
                    return Err(bad(field, "http is allowed only for localhost"));
                }
                if by == Registrar::OrgAdmin
                    && !loopback
                    && !config.app_host_allowed(host.trim_matches(['[', ']']))
                {
                    return Err(bad(
                        field,
                        "this host is not on the deployment's allowed app hosts \
                         (security.allowed_app_hosts); ask the operator to add it",
                    ));
                }
            }
            s if s.contains('.') && !matches!(s, "javascript" | "data" | "file") => {}
            _ => {
                return Err(bad(
                    field,
                    "use https, http on localhost, or a reverse-DNS app scheme",
                ));
            }
        }
        if !out.contains(u) {
            out.push(u.clone());
        }
    }
    Ok(out)
}

fn profile(p: Option<&str>) -> ApiResult<String> {
    let p = p.unwrap_or("oidc");
    if PROFILES.contains(&p) {
        Ok(p.to_string())
    } else {
        Err(bad("profile", "must be oidc or workos"))
    }
}

/// A new client of `org` (None: a deployment app) and its secret (None for a public client).
pub fn new_client(
    config: &Config,
    body: &CreateClient,
    org: Option<&Org>,
    by: Registrar,
    now: i64,
) -> ApiResult<(Client, Option<String>)> {
    let name = validate::name("name", &body.name)?;
    if body.first_party && by == Registrar::OrgAdmin {
        return Err(ApiError::forbidden(
            "Only the operator may register a first-party client",
        ));
    }
    if body.profile.as_deref() == Some("workos") && (by == Registrar::OrgAdmin || org.is_some()) {
        // Its secret is a WorkOS API key: it creates accounts and sets passwords, which no
        // tenant may do (API.md §14). The operator's, deployment-wide.
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "profile",
            "a workos client is the operator's and deployment-wide (no orgSlug)",
        ));
    }
    let secret = (!body.public).then(crate::oauth::new_secret);
    let client = Client {
        id: crate::ids::new_id("client", now),
        org_id: org.map(|o| o.id.clone()),
        name,
        secret_hash: secret.as_deref().map(crypto::token_hash),
        redirect_uris: redirect_uris(config, "redirectUris", &body.redirect_uris, by, true)?,
        post_logout_redirect_uris: redirect_uris(
            config,
            "postLogoutRedirectUris",
            &body.post_logout_redirect_uris,
            by,
            false,
        )?,
        first_party: body.first_party,
        profile: profile(body.profile.as_deref())?,
        created_at: now,
        updated_at: now,
    };
    Ok((client, secret))
}

/// Applies a `PUT` to `c`.
pub fn apply(
    config: &Config,
    c: &mut Client,
    body: &UpdateClient,
    by: Registrar,
    now: i64,
) -> ApiResult<()> {
    if let Some(n) = &body.name {
        c.name = validate::name("name", n)?;
    }
    if let Some(u) = &body.redirect_uris {
        c.redirect_uris = redirect_uris(config, "redirectUris", u, by, true)?;
    }
    if let Some(u) = &body.post_logout_redirect_uris {
        c.post_logout_redirect_uris =
            redirect_uris(config, "postLogoutRedirectUris", u, by, false)?;
    }
    if let Some(f) = body.first_party {
        if f && by == Registrar::OrgAdmin {
            return Err(ApiError::forbidden(
                "Only the operator may register a first-party client",
            ));
        }
        c.first_party = f;
    }
    if let Some(p) = &body.profile {
        let p = profile(Some(p))?;
        if p == "workos" && (by == Registrar::OrgAdmin || c.org_id.is_some()) {
            return Err(ApiError::field(
                ErrorCode::InvalidRequest,
                "profile",
                "a workos client is the operator's and deployment-wide (no orgSlug)",
            ));
        }
        c.profile = p;
    }
    c.updated_at = now;
    Ok(())
}

/// The wire shape of a client (never its secret).
pub fn view(c: &Client, org: Option<&Org>) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "orgId": c.org_id,
        "orgSlug": org.map(|o| o.slug.clone()),
        "redirectUris": c.redirect_uris,
        "postLogoutRedirectUris": c.post_logout_redirect_uris,
        "public": c.is_public(),
        "firstParty": c.first_party,
        "profile": c.profile,
        "tokenEndpointAuthMethod": if c.is_public() { "none" } else { "client_secret_basic" },
        "createdAt": rfc3339(c.created_at),
        "updatedAt": rfc3339(c.updated_at),
    })
}

/// Inserts a new client (a write of its own; the caller audits it).
pub fn insert(tx: &crate::db::Tx, c: &Client) -> ApiResult<()> {
    oauth::insert_client(tx, c)?;
    Ok(())
}
